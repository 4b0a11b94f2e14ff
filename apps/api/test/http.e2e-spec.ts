import { parsePrometheusText, sampleValue } from './support/prom-text';
import { parseRawResponse, rawHttp } from './support/raw-http';
import { startTestApp, type TestApp } from './support/test-app';

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/;
const JSON_HEADERS = { 'content-type': 'application/json' };
const METRICS_TOKEN = 'e2e-metrics-token-0123456789';

interface ErrorJson {
  error: { code: string; message: string; request_id: string; fields?: { path: string; message: string }[] };
}

/** Asserts the envelope shape, that request_id equals the header, and returns the error. */
function expectEnvelope(res: { headers: Record<string, string>; json: () => unknown }): ErrorJson['error'] {
  const body = res.json() as ErrorJson;
  expect(Object.keys(body)).toEqual(['error']);
  expect(typeof body.error.code).toBe('string');
  expect(typeof body.error.message).toBe('string');
  expect(body.error.request_id).toBe(res.headers['x-request-id']);
  expect(res.headers['content-type']).toMatch(/^application\/json/);
  return body.error;
}

describe('HTTP pipeline: request ids, errors, body parsing, access log', () => {
  let t: TestApp;

  beforeAll(async () => {
    t = await startTestApp({ HTTP_BODY_LIMIT_BYTES: '65536', METRICS_TOKEN });
  });
  afterAll(async () => {
    await t.close();
  });

  describe('request id', () => {
    it('generates a UUID and echoes it when the client sends none', async () => {
      const res = await t.fetch('/health');
      expect(res.status).toBe(200);
      expect(res.headers['x-request-id']).toMatch(UUID);
    });

    it('keeps a sane X-Request-Id and uses it in error bodies and the access line', async () => {
      const res = await t.fetch('/no/such/route', { headers: { 'x-request-id': 'trace-abc.123:XYZ' } });
      expect(res.status).toBe(404);
      expect(res.headers['x-request-id']).toBe('trace-abc.123:XYZ');
      expect(expectEnvelope(res).request_id).toBe('trace-abc.123:XYZ');
      const line = t.logs.accessLines().find((l) => l.request_id === 'trace-abc.123:XYZ');
      expect(line).toMatchObject({ method: 'GET', route: 'unmatched', status: 404 });
    });

    it.each([
      ['too long', 'x'.repeat(10_000)],
      ['with spaces', 'a b'],
      ['with a tab', 'a\tb'],
      ['with quotes and braces', '"},{"level":"fatal'],
    ])('replaces an id %s with a UUID', async (_name, id) => {
      const res = await t.fetch('/health', { headers: { 'x-request-id': id } });
      expect(res.status).toBe(200);
      expect(res.headers['x-request-id']).toMatch(UUID);
    });

    it('replaces non-ASCII ids and never splits the response on CR/LF (raw socket)', async () => {
      const nonAscii = await rawHttp(
        t.url,
        Buffer.concat([
          Buffer.from('GET /health HTTP/1.1\r\nHost: x\r\nX-Request-Id: caf'),
          Buffer.from([0xc3, 0xa9]),
          Buffer.from('\r\nConnection: close\r\n\r\n'),
        ]),
      );
      const parsed = parseRawResponse(nonAscii);
      expect(parsed.status).toBe(200);
      expect(parsed.headers['x-request-id']).toMatch(UUID);

      // A bare CR inside the value: the parser refuses the request; nothing of the value comes back.
      const bareCr = parseRawResponse(
        await rawHttp(t.url, 'GET /health HTTP/1.1\r\nHost: x\r\nX-Request-Id: a\rSet-Cookie: x\r\n\r\n'),
      );
      expect(bareCr.status).toBe(400);
      expect(bareCr.headers['set-cookie']).toBeUndefined();
      expect(bareCr.headers['x-request-id']).toMatch(UUID);
      expect((JSON.parse(bareCr.body) as ErrorJson).error).toMatchObject({
        code: 'invalid_request',
        request_id: bareCr.headers['x-request-id'],
      });
    });

    it('answers malformed HTTP with our JSON error, not an empty socket', async () => {
      const parsed = parseRawResponse(await rawHttp(t.url, 'GET /health HTTP/1.1\r\nHost x\r\n\r\n'));
      expect(parsed.status).toBe(400);
      const body = JSON.parse(parsed.body) as ErrorJson;
      expect(body.error.code).toBe('invalid_request');
      expect(body.error.request_id).toMatch(UUID);
    });
  });

  describe('what the HTTP server answers before any middleware', () => {
    it('Expect: 100-continue gets 100 only for a body we would accept', async () => {
      const limit = t.config.http.bodyLimitBytes;
      const head = (length: number, type: string) =>
        `POST /probe/echo HTTP/1.1\r\nHost: x\r\nContent-Type: ${type}\r\nContent-Length: ${length}\r\n` +
        'Expect: 100-continue\r\nConnection: close\r\n\r\n';

      const tooLarge = await rawHttp(t.url, head(limit + 1, 'application/json'), { halfClose: false });
      expect(tooLarge).not.toContain('100 Continue');
      const refused = parseRawResponse(tooLarge);
      expect(refused.status).toBe(413);
      expect(refused.headers.connection).toBe('close');
      expect((JSON.parse(refused.body) as ErrorJson).error.code).toBe('payload_too_large');

      const wrongType = parseRawResponse(await rawHttp(t.url, head(10, 'text/plain'), { halfClose: false }));
      expect(wrongType.status).toBe(415);

      const body = '{"name":"x","count":1}';
      const accepted = await rawHttp(t.url, head(body.length, 'application/json') + body, {
        halfClose: false,
      });
      expect(accepted.startsWith('HTTP/1.1 100 Continue\r\n\r\n')).toBe(true);
      expect(parseRawResponse(accepted.slice('HTTP/1.1 100 Continue\r\n\r\n'.length)).status).toBe(201);
    });

    it('an unsupported Expect gets 417 in our envelope, logged and counted', async () => {
      const before = await scrape(t);
      const raw = parseRawResponse(
        await rawHttp(
          t.url,
          'GET /health HTTP/1.1\r\nHost: x\r\nExpect: 200-ok\r\nConnection: close\r\n\r\n',
        ),
      );
      expect(raw.status).toBe(417);
      const body = JSON.parse(raw.body) as ErrorJson;
      expect(body.error).toMatchObject({
        code: 'expectation_failed',
        request_id: raw.headers['x-request-id'],
      });
      const line = t.logs.records().find((r) => r.request_id === body.error.request_id);
      expect(line).toMatchObject({ status: 417, code: 'expectation_failed' });
      const after = await scrape(t);
      const refusals = (s: typeof after) =>
        sampleValue(s, 'vla_http_requests_total', { method: 'OTHER', route: 'unmatched', status: '417' }) ??
        0;
      expect(refusals(after) - refusals(before)).toBe(1);
    });
  });

  describe('errors', () => {
    it('404 not_found for an unknown route, without echoing the URL or its query', async () => {
      const res = await t.fetch('/no/such/route?api_key=supersecret');
      expect(res.status).toBe(404);
      const error = expectEnvelope(res);
      expect(error.code).toBe('not_found');
      expect(res.text).not.toContain('supersecret');
      expect(res.text).not.toContain('/no/such/route');
    });

    it('400 invalid_json for malformed JSON, on a known route and an unknown one', async () => {
      for (const path of ['/probe/echo', '/health']) {
        const res = await t.fetch(path, { method: 'POST', headers: JSON_HEADERS, body: '{"name": "x",' });
        expect(res.status).toBe(400);
        expect(expectEnvelope(res).code).toBe('invalid_json');
      }
    });

    it('400 invalid_request for a route parameter with broken percent-encoding, and the server lives on', async () => {
      const res = await t.fetch('/probe/items/%E0%A4%A');
      expect(res.status).toBe(400);
      expect(expectEnvelope(res).code).toBe('invalid_request');
      expect((await t.fetch('/health')).status).toBe(200);
    });

    it('400 invalid_json for a JSON scalar body (strict mode)', async () => {
      const res = await t.fetch('/probe/echo', {
        method: 'POST',
        headers: JSON_HEADERS,
        body: '"just a string"',
      });
      expect(res.status).toBe(400);
      expect(expectEnvelope(res).code).toBe('invalid_json');
    });

    it('413 payload_too_large one byte over the limit, and for a chunked body without Content-Length', async () => {
      const limit = t.config.http.bodyLimitBytes;
      const name = 'x'.repeat(limit - '{"name":"","count":1}'.length + 1);
      const body = `{"name":"${name}","count":1}`;
      expect(Buffer.byteLength(body)).toBe(limit + 1);
      const res = await t.fetch('/probe/echo', { method: 'POST', headers: JSON_HEADERS, body });
      expect(res.status).toBe(413);
      expect(expectEnvelope(res).code).toBe('payload_too_large');
      // Refused unread: the connection closes instead of reading the rest of the upload.
      expect(res.headers.connection).toBe('close');

      const chunks = [`{"name":"${'y'.repeat(limit)}`, '","count":1}'];
      const raw =
        'POST /probe/echo HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n' +
        'Connection: close\r\n\r\n' +
        chunks.map((c) => `${Buffer.byteLength(c).toString(16)}\r\n${c}\r\n`).join('') +
        '0\r\n\r\n';
      const parsed = parseRawResponse(await rawHttp(t.url, raw));
      expect(parsed.status).toBe(413);
      expect((JSON.parse(parsed.body) as ErrorJson).error.code).toBe('payload_too_large');
    });

    it('a body exactly at the limit is accepted', async () => {
      const limit = t.config.http.bodyLimitBytes;
      const name = 'x'.repeat(50);
      const padding = ' '.repeat(limit - `{"name":"${name}","count":1}`.length);
      const body = `{"name":"${name}","count":1}${padding}`;
      expect(Buffer.byteLength(body)).toBe(limit);
      const res = await t.fetch('/probe/echo', { method: 'POST', headers: JSON_HEADERS, body });
      expect(res.status).toBe(201);
      expect(res.json()).toEqual({ name, count: 1 });
    });

    it('415 unsupported_media_type for a body that is not JSON', async () => {
      for (const type of ['text/plain', 'application/x-www-form-urlencoded', 'application/xml']) {
        const res = await t.fetch('/probe/echo', {
          method: 'POST',
          headers: { 'content-type': type },
          body: 'name=x&count=1',
        });
        expect(res.status).toBe(415);
        expect(expectEnvelope(res).code).toBe('unsupported_media_type');
      }
      const noType = parseRawResponse(
        await rawHttp(
          t.url,
          'POST /probe/echo HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\nConnection: close\r\n\r\n{}',
        ),
      );
      expect(noType.status).toBe(415);
    });

    it('415 for an unsupported charset', async () => {
      const res = await t.fetch('/probe/echo', {
        method: 'POST',
        headers: { 'content-type': 'application/json; charset=latin1' },
        body: '{"name":"x","count":1}',
      });
      expect(res.status).toBe(415);
      expect(expectEnvelope(res).code).toBe('unsupported_media_type');
    });

    it('400 invalid_request listing every failing field', async () => {
      const res = await t.fetch('/probe/echo', {
        method: 'POST',
        headers: JSON_HEADERS,
        body: JSON.stringify({ name: '', count: 11, options: { mode: 'off' }, extra: 1 }),
      });
      expect(res.status).toBe(400);
      const error = expectEnvelope(res);
      expect(error.code).toBe('invalid_request');
      const paths = (error.fields ?? []).map((f) => f.path).sort();
      expect(paths).toEqual(['', 'count', 'name', 'options.mode']);
    });

    it('validated bodies come back transformed and typed', async () => {
      const res = await t.fetch('/probe/echo', {
        method: 'POST',
        headers: JSON_HEADERS,
        body: JSON.stringify({ name: 'arm', count: 3, options: {} }),
      });
      expect(res.status).toBe(201);
      expect(res.json()).toEqual({ name: 'arm', count: 3, options: { mode: 'clip' } });
    });

    it.each([
      ['top-level __proto__', '{"__proto__":{"polluted":1},"name":"x","count":1}', '__proto__'],
      [
        'nested __proto__',
        '{"name":"x","count":1,"options":{"__proto__":{"polluted":1}}}',
        'options.__proto__',
      ],
      ['escaped __proto__', '{"name":"x","count":1,"\\u005f_proto__":{"polluted":1}}', '__proto__'],
      [
        'constructor.prototype',
        '{"name":"x","count":1,"constructor":{"prototype":{"polluted":1}}}',
        'constructor',
      ],
      [
        '__proto__ in an array',
        '{"name":"x","count":1,"items":[1,{"__proto__":{"polluted":1}}]}',
        'items[1].__proto__',
      ],
    ])('400 for %s, and nothing is polluted', async (_name, body, path) => {
      const res = await t.fetch('/probe/echo', { method: 'POST', headers: JSON_HEADERS, body });
      expect(res.status).toBe(400);
      const error = expectEnvelope(res);
      expect(error.code).toBe('invalid_request');
      expect(error.fields).toEqual([{ path, message: expect.any(String) as string }]);
      expect(({} as Record<string, unknown>).polluted).toBeUndefined();
      expect((Object.prototype as Record<string, unknown>).polluted).toBeUndefined();
    });

    it('10 000 levels of nesting get 400, not a stack overflow', async () => {
      const body = `{"name":"x","count":1,"deep":${'['.repeat(10_000)}${']'.repeat(10_000)}}`;
      const res = await t.fetch('/probe/echo', { method: 'POST', headers: JSON_HEADERS, body });
      expect(res.status).toBe(400);
      expect(expectEnvelope(res).code).toBe('invalid_request');
    });

    it('500 internal_error with nothing internal in the body, logged once with the request id', async () => {
      const before = await scrape(t);
      const res = await t.fetch('/probe/boom', { headers: { 'x-request-id': 'boom-1' } });
      expect(res.status).toBe(500);
      const error = expectEnvelope(res);
      expect(error).toEqual({
        code: 'internal_error',
        message: 'An internal error occurred; it has been logged with the request id.',
        request_id: 'boom-1',
      });
      expect(res.text).not.toMatch(/secret|\.ts|exploded|at /);

      const errorLines = t.logs.records().filter((r) => r.request_id === 'boom-1' && r.level === 'error');
      expect(errorLines).toHaveLength(1);
      expect(JSON.stringify(errorLines[0])).toContain('exploded');

      const after = await scrape(t);
      const exceptions = (s: typeof after) =>
        sampleValue(s, 'vla_exceptions_total', { exception_type: 'Error' }) ?? 0;
      const errors = (s: typeof after) =>
        sampleValue(s, 'vla_errors_total', { type: 'internal_error', component: 'api' }) ?? 0;
      expect(exceptions(after) - exceptions(before)).toBe(1);
      expect(errors(after) - errors(before)).toBe(1);
    });
  });

  describe('access log', () => {
    it('writes exactly one JSON line per request with id, method, route template, status and latency', async () => {
      const ids = ['log-a', 'log-b', 'log-c'];
      await t.fetch('/probe/items/42', { headers: { 'x-request-id': ids[0] } });
      await t.fetch('/probe/echo', {
        method: 'POST',
        headers: { ...JSON_HEADERS, 'x-request-id': ids[1] },
        body: '{"name":"x","count":1}',
      });
      await t.fetch('/probe/echo', {
        method: 'POST',
        headers: { ...JSON_HEADERS, 'x-request-id': ids[2] },
        body: '{',
      });
      const lines = t.logs.accessLines().filter((l) => ids.includes(l.request_id as string));
      expect(lines).toHaveLength(3);
      expect(lines.map(({ method, route, status }) => ({ method, route, status }))).toEqual([
        { method: 'GET', route: '/probe/items/:id', status: 200 },
        { method: 'POST', route: '/probe/echo', status: 201 },
        { method: 'POST', route: '/probe/echo', status: 400 },
      ]);
      for (const line of lines) {
        expect(typeof line.latency_ms).toBe('number');
        expect(line.latency_ms).toBeGreaterThanOrEqual(0);
        expect(typeof line.time).toBe('string');
      }
    });

    it('never logs credentials, query strings or bodies, and injected text stays inside a field', async () => {
      const secrets = [
        'Bearer-secret-token-value-1',
        'api-key-secret-value-2',
        'admin-token-secret-3',
        'query-secret-4',
      ];
      const before = t.logs.lines.length;
      await t.fetch(`/probe/items/1?api_key=${secrets[3]}`, {
        headers: {
          authorization: `Bearer ${secrets[0]}`,
          'x-api-key': secrets[1],
          'x-admin-token': secrets[2],
        },
      });
      const injected = 'pick\n{"level":"info","msg":"fake"}\r\nup';
      await t.fetch('/probe/echo', {
        method: 'POST',
        headers: JSON_HEADERS,
        body: JSON.stringify({ name: injected.slice(0, 50), count: 1 }),
      });
      const newLines = t.logs.lines.slice(before);
      expect(newLines).toHaveLength(2);
      for (const line of newLines) expect(() => JSON.parse(line) as unknown).not.toThrow();
      const text = newLines.join('\n');
      for (const secret of secrets) expect(text).not.toContain(secret);
      expect(text).not.toContain('fake');
      expect(text).not.toContain('pick');
    });

    it('logs the listening line once at start', () => {
      const listening = t.logs
        .records()
        .filter((r) => typeof r.msg === 'string' && r.msg.startsWith('listening on'));
      expect(listening).toHaveLength(1);
      expect(listening[0]).toMatchObject({ url: t.url, database: 'sqlite' });
    });
  });
});

async function scrape(t: TestApp) {
  const res = await t.fetch('/monitoring/metrics', { headers: { authorization: `Bearer ${METRICS_TOKEN}` } });
  expect(res.status).toBe(200);
  return parsePrometheusText(res.text);
}
