import fc from 'fast-check';
import { once } from 'node:events';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { deflateSync, crc32 } from 'node:zlib';
import sharp from 'sharp';
import { Agent } from 'undici';
import { AdminApi, bootstrapKeyOf } from './support/api-keys';
import {
  type ApiAnswer,
  errorCodeOf,
  HOME,
  policyBody,
  postInference,
  rawPixels,
} from './support/inference-client';
import { findSamples, parsePrometheusText } from './support/prom-text';
import { startTestApp, type TestApp } from './support/test-app';

const TOKEN = 'inference-fuzz-metrics-token-1';
/** Statuses `POST /v1/inference` may answer with (TESTS B3; 429 needs a rate limit, which is off here). */
const ALLOWED_STATUSES = [200, 400, 404, 413, 415, 422, 503, 504];
const REPO = process.cwd();
/** A V8 stack frame (`    at fn (file.ts:1:2)`) or a source location: never in a response. */
const STACK_OR_PATH = /\n\s+at\s|\bat\s+\S+\s+\([^)]*:\d+:\d+\)|node_modules|\.[jt]s:\d+|\/apps\/api\/src\//;

async function scrape(t: TestApp) {
  const res = await t.fetch('/monitoring/metrics', { headers: { authorization: `Bearer ${TOKEN}` } });
  expect(res.status).toBe(200);
  return parsePrometheusText(res.text);
}

/** Every string in a parsed JSON value. */
function stringsIn(value: unknown, out: string[] = []): string[] {
  if (typeof value === 'string') out.push(value);
  else if (Array.isArray(value)) for (const v of value) stringsIn(v, out);
  else if (value !== null && typeof value === 'object')
    for (const v of Object.values(value)) stringsIn(v, out);
  return out;
}

/** The contract of every answer, whatever was sent. Throws (for fast-check) when it does not hold. */
function expectWellFormed(res: ApiAnswer): void {
  expect(ALLOWED_STATUSES).toContain(res.status);
  expect(res.headers['content-type']).toMatch(/^application\/json/);
  expect(res.json).toBeDefined();
  const requestId = res.headers['x-request-id'];
  expect(typeof requestId).toBe('string');
  if (res.status === 200) {
    expect((res.json as { request_id?: unknown }).request_id).toBe(requestId);
    expect(Array.isArray((res.json as { actions?: unknown }).actions)).toBe(true);
  } else {
    const error = (res.json as { error?: Record<string, unknown> }).error;
    expect(typeof error?.code).toBe('string');
    expect(typeof error?.message).toBe('string');
    expect(error?.request_id).toBe(requestId);
  }
  for (const s of stringsIn(res.json)) {
    expect(s).not.toMatch(STACK_OR_PATH);
    expect(s.includes(REPO)).toBe(false);
  }
}

// ---- Inputs -------------------------------------------------------------------------------------------

const RAW = rawPixels(77);
/** 10^5 numbers: far over the state's limit of 1 024, well under the body limit. */
const HUGE_STATE = Array.from({ length: 100_000 }, (_, i) => (i % 7) / 7);
const ABSENT = Symbol('absent');

const specialNumber = fc.constantFrom(
  -0,
  0,
  1,
  -1,
  1e308,
  -1e308,
  5e-324,
  -5e-324,
  1e-300,
  Number.MAX_SAFE_INTEGER,
  2 ** 53 + 2,
  3.4028235e38,
  // Finite in JSON, infinite once the state becomes a Float32Array.
  3.5e38,
  65_536,
  65_537,
  4_294_967_296,
  3_600_001,
);
const number = fc.oneof(specialNumber, fc.double(), fc.integer());
const oddString = fc.oneof(
  fc.string({ maxLength: 40 }),
  fc.string({ unit: 'binary', maxLength: 40 }),
  fc.constantFrom(
    '\ud800',
    '\udc00x',
    'x\udbff',
    '\u0000',
    'a\u0000b',
    '\u202e',
    '𝄞',
    '',
    ' ',
    'null',
    'NaN',
  ),
  fc.integer({ min: 1_000, max: 200_000 }).map((n) => 'z'.repeat(n)),
);
/** Nested values of every JSON type. */
const junk: fc.Arbitrary<unknown> = fc.letrec<{ value: unknown }>((tie) => ({
  value: fc.oneof(
    { depthSize: 'small', maxDepth: 4 },
    fc.constant(null),
    fc.boolean(),
    number,
    oddString,
    fc.array(tie('value'), { maxLength: 4 }),
    fc.dictionary(fc.oneof(fc.string({ maxLength: 8 }), oddString), tie('value'), { maxKeys: 4 }),
  ),
})).value;

const rawImage = fc.record(
  {
    format: fc.oneof({ weight: 4, arbitrary: fc.constant('raw') }, { weight: 1, arbitrary: junk }),
    shape: fc.oneof(
      fc.constant([224, 224, 3]),
      fc.array(fc.oneof(fc.integer({ min: -3, max: 70_000 }), specialNumber), { maxLength: 5 }),
      junk,
    ),
    data: fc.oneof(
      { weight: 3, arbitrary: fc.constant(RAW.data) },
      { weight: 2, arbitrary: fc.base64String({ maxLength: 64 }) },
      { weight: 1, arbitrary: fc.string({ maxLength: 64 }) },
      { weight: 1, arbitrary: junk },
    ),
    dtype: fc.oneof(fc.constantFrom('uint8', 'float32'), junk),
  },
  { requiredKeys: ['format'] },
);

function image(jpeg: string): fc.Arbitrary<unknown> {
  return fc.oneof(
    { weight: 4, arbitrary: fc.constant(RAW) },
    { weight: 1, arbitrary: fc.constant(jpeg) },
    { weight: 1, arbitrary: fc.constant(`data:image/jpeg;base64,${jpeg}`) },
    { weight: 3, arbitrary: rawImage },
    { weight: 2, arbitrary: fc.base64String({ maxLength: 400 }) },
    {
      weight: 2,
      arbitrary: fc
        .tuple(
          fc.constantFrom(
            'data:image/png;base64,',
            'data:image/svg+xml;base64,',
            'data:,',
            'DATA:IMAGE/JPEG;BASE64,',
            'data:image/png,',
            '',
          ),
          fc.oneof(fc.base64String({ maxLength: 200 }), oddString),
        )
        .map(([a, b]) => a + b),
    },
    {
      weight: 1,
      arbitrary: fc.constantFrom(
        'http://127.0.0.1:9/x.png',
        'https://example.com/a.jpg',
        'file:///etc/passwd',
        '//host/x.png',
        ' ftp://x',
      ),
    },
    { weight: 2, arbitrary: junk },
  );
}

/**
 * A valid body with 0 to 3 of its fields replaced by hostile values (or removed), so that every stage is
 * reached: the schema, the model's checks, image decoding, the model run and the safety check. Now and
 * then the whole body is junk instead.
 */
function bodies(jpeg: string): fc.Arbitrary<unknown> {
  const img = image(jpeg);
  const hostile: Record<string, fc.Arbitrary<unknown>> = {
    model: fc.oneof(fc.constantFrom('demo-policy-slow', 'no-such-model', 'DEMO-POLICY'), oddString, junk),
    robot_type: fc.oneof(fc.constantFrom('ur5e', 'r2d2'), oddString, junk),
    instruction: fc.oneof(oddString, fc.constantFrom('a'.repeat(2001), 'b'.repeat(100_001)), junk),
    images: fc.oneof(
      { weight: 8, arbitrary: img.map((primary) => ({ primary })) },
      { weight: 1, arbitrary: fc.tuple(img, img).map(([primary, wrist]) => ({ primary, wrist })) },
      { weight: 1, arbitrary: fc.dictionary(oddString, img, { maxKeys: 10 }) },
      { weight: 1, arbitrary: junk },
    ),
    state: fc.oneof(
      { weight: 6, arbitrary: fc.array(number, { minLength: 8, maxLength: 8 }) },
      {
        weight: 3,
        arbitrary: fc
          .tuple(fc.nat({ max: 7 }), specialNumber)
          .map(([i, v]) => HOME.map((h, j) => (i === j ? v : h))),
      },
      { weight: 1, arbitrary: fc.array(junk, { maxLength: 10 }) },
      { weight: 1, arbitrary: fc.array(fc.double(), { minLength: 1000, maxLength: 1100 }) },
      { weight: 1, arbitrary: fc.constant(HUGE_STATE) },
      { weight: 1, arbitrary: junk },
    ),
    options: fc.oneof(
      {
        weight: 4,
        arbitrary: fc.record(
          {
            safety_mode: fc.oneof(fc.constantFrom('clip', 'reject', 'off', 'CLIP'), junk),
            deadline_ms: fc.oneof(fc.integer({ min: -10, max: 4_000_000 }), specialNumber, junk),
          },
          { requiredKeys: [] },
        ),
      },
      { weight: 1, arbitrary: junk },
    ),
  };
  const fields = Object.keys(hostile);
  const mutation = fc.oneof(
    { weight: 10, arbitrary: fc.constantFrom(...fields).chain((f) => fc.tuple(fc.constant(f), hostile[f])) },
    { weight: 1, arbitrary: fc.constantFrom(...fields).map((f) => [f, ABSENT] as [string, unknown]) },
    { weight: 1, arbitrary: fc.tuple(oddString, junk) },
  );
  const body = fc.array(mutation, { maxLength: 3 }).map((mutations) => {
    const out: Record<string, unknown> = policyBody('demo-policy', { images: { primary: RAW } });
    for (const [name, value] of mutations) {
      if (value === ABSENT) delete out[name];
      else out[name] = value;
    }
    return out;
  });
  return fc.oneof({ weight: 15, arbitrary: body }, { weight: 1, arbitrary: junk });
}

/** Bodies sent as JSON text, for what JSON.stringify cannot write (1e309, duplicate keys, deep nesting). */
function rawTexts(): string[] {
  const valid = policyBody();
  const withState = (state: string) => JSON.stringify(valid).replace(JSON.stringify(HOME), state);
  return [
    withState('[1e309,0,0,0,0,0,0,0]'),
    withState('[-1e309,0,0,0,0,0,0,0]'),
    withState('[0,-0.785,0,-2.356,0,1.571,0.785,1e309]'),
    withState('[1e309]'),
    withState(`[${new Array(1000).fill('1e309').join(',')}]`),
    withState('[-0,-0,-0,-0,-0,-0,-0,-0]'),
    withState('[1E+308,1e-400,0,0,0,0,0,0]'),
    JSON.stringify({ ...valid, options: { deadline_ms: 1 } }).replace(
      '"deadline_ms":1',
      '"deadline_ms":1e309',
    ),
    JSON.stringify(valid).replace('"model":"demo-policy"', '"model":"nope","model":"demo-policy"'),
    JSON.stringify(valid).replace('{', '{"__proto__":{"polluted":true},'),
    JSON.stringify(valid).replace('{', '{"constructor":{"prototype":{"polluted":true}},'),
    JSON.stringify(valid).replace('"model"', '"\\u005f_proto__":{},"model"'),
    `${'['.repeat(100_000)}${']'.repeat(100_000)}`,
    JSON.stringify({ ...valid, instruction: 0 }).replace(
      '"instruction":0',
      `"instruction":${'['.repeat(50_000)}${']'.repeat(50_000)}`,
    ),
    JSON.stringify(valid).slice(0, 200),
    '{"model":"demo-policy",}',
    '',
    'null',
    '1e309',
    '"\\ud800"',
    '{"model":"demo-policy\\u0000","robot_type":"franka_panda"}',
    // Over the 8 MiB body limit: 413.
    JSON.stringify({ ...valid, instruction: 'x'.repeat(9 * 1024 * 1024) }),
  ];
}

// ---- Crafted images ------------------------------------------------------------------------------------

function pngChunk(type: string, data: Buffer): Buffer {
  const head = Buffer.alloc(8);
  head.writeUInt32BE(data.length, 0);
  head.write(type, 4, 'latin1');
  const crc = Buffer.alloc(4);
  crc.writeUInt32BE(crc32(Buffer.concat([head.subarray(4), data])), 0);
  return Buffer.concat([head, data, crc]);
}

/**
 * A complete 1-bit greyscale PNG of `width` x `height` black pixels: a decompression bomb when large
 * (14000 x 14000 is 196 million pixels in about 25 KB).
 */
function blackPng(width: number, height: number): Buffer {
  const ihdr = Buffer.alloc(13);
  ihdr.writeUInt32BE(width, 0);
  ihdr.writeUInt32BE(height, 4);
  ihdr[8] = 1; // bit depth
  ihdr[9] = 0; // greyscale
  const rowBytes = 1 + Math.ceil(width / 8); // filter byte + packed pixels
  const idat = deflateSync(Buffer.alloc(rowBytes * Math.max(height, 1)), { level: 9 });
  return Buffer.concat([
    Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]),
    pngChunk('IHDR', ihdr),
    pngChunk('IDAT', idat),
    pngChunk('IEND', Buffer.alloc(0)),
  ]);
}

/** A JPEG whose frame header (SOF0) says 0 x 0. */
async function zeroJpeg(): Promise<Buffer> {
  const buf = await sharp({ create: { width: 16, height: 16, channels: 3, background: '#888' } })
    .jpeg()
    .toBuffer();
  const sof = buf.indexOf(Buffer.from([0xff, 0xc0]));
  if (sof < 0) throw new Error('no SOF0 marker');
  buf.writeUInt16BE(0, sof + 5); // height
  buf.writeUInt16BE(0, sof + 7); // width
  return buf;
}

// ---- Suites --------------------------------------------------------------------------------------------

describe('POST /v1/inference under structure-aware fuzzing and hostile images (TESTS B3, B4)', () => {
  let t: TestApp;
  let key: string;
  let jpeg: string;
  let agent: Agent;
  const post = (body: unknown, rawText = false) =>
    postInference(t.url, key, body, { dispatcher: agent, rawText });
  const withImage = (primary: unknown) => policyBody('demo-policy', { images: { primary } });

  beforeAll(async () => {
    t = await startTestApp({ METRICS_TOKEN: TOKEN });
    const admin = new AdminApi(t, bootstrapKeyOf(t));
    await admin.createTenant('fuzz');
    key = (await admin.createKey('fuzz', ['inference'])).key;
    agent = new Agent({ connections: 4 });
    jpeg = (
      await sharp({ create: { width: 32, height: 24, channels: 3, background: { r: 9, g: 99, b: 199 } } })
        .jpeg()
        .toBuffer()
    ).toString('base64');
  });
  afterAll(async () => {
    await agent.close();
    await t.close();
  });

  describe('B4: image bombs, format confusion, URLs', () => {
    it('refuses a 14000x14000 PNG as 422 image_too_large from its header, RSS growing under 100 MB', async () => {
      const bomb = blackPng(14_000, 14_000);
      expect(bomb.length).toBeLessThan(100_000);
      // A real PNG decode first, so that sharp's own start-up is not counted against the bomb.
      const small = (await sharp(blackPng(64, 48)).png().toBuffer()).toString('base64');
      expect((await post(withImage(small))).status).toBe(200);

      const before = process.memoryUsage().rss;
      for (const primary of [bomb.toString('base64'), `data:image/png;base64,${bomb.toString('base64')}`]) {
        const res = await post(withImage(primary));
        expectWellFormed(res);
        expect(res.status).toBe(422);
        expect(errorCodeOf(res)).toBe('image_too_large');
        expect((res.json as { error: { details: { reason: string } } }).error.details.reason).toBe(
          'too_many_pixels',
        );
      }
      expect(process.memoryUsage().rss - before).toBeLessThan(100 * 1024 * 1024);
      const samples = await scrape(t);
      expect(
        findSamples(samples, 'vla_image_processing_errors_total', { reason: 'too_many_pixels' }).reduce(
          (n, s) => n + s.value,
          0,
        ),
      ).toBe(2);
    });

    it('refuses SVG, TIFF, GIF and WebP bytes labelled as PNG with 415, by their magic bytes', async () => {
      const base = () => sharp({ create: { width: 8, height: 8, channels: 3, background: '#f00' } });
      const files: Record<string, Buffer> = {
        svg: Buffer.from(
          '<svg xmlns="http://www.w3.org/2000/svg" width="8" height="8"><image href="http://127.0.0.1:9/x"/></svg>',
        ),
        tiff: await base().tiff().toBuffer(),
        gif: await base().gif().toBuffer(),
        webp: await base().webp().toBuffer(),
      };
      for (const [name, bytes] of Object.entries(files)) {
        for (const primary of [
          `data:image/png;base64,${bytes.toString('base64')}`,
          bytes.toString('base64'),
        ]) {
          const res = await post(withImage(primary));
          expectWellFormed(res);
          expect({ name, status: res.status, code: errorCodeOf(res) }).toEqual({
            name,
            status: 415,
            code: 'unsupported_image_format',
          });
        }
      }
    });

    it('refuses an http URL in place of base64 with 422, and never fetches it', async () => {
      const hits: string[] = [];
      const server: Server = createServer((req, res) => {
        hits.push(req.url ?? '');
        res.writeHead(200, { 'content-type': 'image/png' }).end(blackPng(8, 8));
      });
      server.listen(0, '127.0.0.1');
      await once(server, 'listening');
      try {
        const { port } = server.address() as AddressInfo;
        for (const primary of [
          `http://127.0.0.1:${port}/x.png`,
          `HTTP://127.0.0.1:${port}/y.png`,
          ` http://127.0.0.1:${port}/z.png`,
          `//127.0.0.1:${port}/w.png`,
        ]) {
          const res = await post(withImage(primary));
          expectWellFormed(res);
          expect(res.status).toBe(422);
          expect(errorCodeOf(res)).toBe('invalid_image');
          expect((res.json as { error: { details: { reason: string } } }).error.details.reason).toBe(
            'url_not_allowed',
          );
        }
        // A request served after them: anything the app had started to fetch would have arrived by now.
        expect((await post(policyBody())).status).toBe(200);
        expect(hits).toEqual([]);
      } finally {
        server.close();
      }
    });

    it('refuses 0x0 PNG and JPEG images with 422 invalid_image', async () => {
      for (const bytes of [blackPng(0, 0), blackPng(0, 10), await zeroJpeg()]) {
        const res = await post(withImage(bytes.toString('base64')));
        expectWellFormed(res);
        expect(res.status).toBe(422);
        expect(errorCodeOf(res)).toBe('invalid_image');
      }
    });
  });

  describe('B3: fuzzed bodies', () => {
    it('answers ~2 000 generated and hand-written bodies within the contract, never 500, and keeps serving', async () => {
      const texts = rawTexts();
      for (const text of texts) {
        const res = await post(text, true);
        expectWellFormed(res);
      }
      const statuses = new Map<number, number>();
      await fc.assert(
        fc.asyncProperty(bodies(jpeg), async (body) => {
          const res = await post(body);
          statuses.set(res.status, (statuses.get(res.status) ?? 0) + 1);
          expectWellFormed(res);
        }),
        { seed: 20_261_201, numRuns: 2000 - texts.length },
      );
      // The generator reaches every stage: some bodies pass validation and run, others fail each way.
      expect(statuses.get(200)).toBeGreaterThan(0);
      expect(statuses.get(400)).toBeGreaterThan(0);
      expect(statuses.get(422)).toBeGreaterThan(0);

      const samples = await scrape(t);
      expect(findSamples(samples, 'vla_exceptions_total').filter((s) => s.value > 0)).toEqual([]);
      expect(
        findSamples(samples, 'vla_errors_total', { type: 'internal_error' }).filter((s) => s.value > 0),
      ).toEqual([]);
      const after = await post(policyBody());
      expect(after.status).toBe(200);
      expect((after.json as { actions: number[][] }).actions).toHaveLength(10);
    }, 180_000);
  });
});
