import { once } from 'node:events';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { crc32, deflateSync } from 'node:zlib';
import sharp from 'sharp';
import { AppError } from '../errors/app-error';
import { statusFor } from '../errors/error-codes';
import {
  type DecodedImage,
  IMAGE_ERROR_REASONS,
  type ImageErrorReason,
  ImageDecodeError,
  MAX_IMAGE_BYTES,
  decodeImage,
  decodeSeconds,
  imageErrorReason,
  measureMs,
  restrictSharpToJpegAndPng,
} from './image-decoder';
import type { ImageInputConfig } from './model-config';

const FIELD = 'images.primary';
const MAX_PIXELS = 40_000_000;

/** An image input of the given size; everything else as a typical model.yaml would have it. */
const input = (over: Partial<ImageInputConfig> = {}): ImageInputConfig => ({
  name: 'primary',
  tensor: 'image',
  height: 24,
  width: 32,
  channels: 3,
  layout: 'nchw',
  dtype: 'float32',
  mean: [0, 0, 0],
  std: [1, 1, 1],
  resize: 'fill',
  ...over,
});

const decode = (value: unknown, spec = input(), maxPixels = MAX_PIXELS): Promise<DecodedImage> =>
  decodeImage(value, spec, { maxPixels, field: FIELD });

/** The error `promise` rejects with; fails the test when it resolves or rejects with another type. */
async function refusal(promise: Promise<unknown>): Promise<ImageDecodeError> {
  try {
    await promise;
  } catch (error) {
    if (error instanceof ImageDecodeError) return error;
    throw error;
  }
  throw new Error('decoded without error');
}

/** The parts of a refusal a client or a metric sees; checks the message carries no libvips internals. */
function seen(error: ImageDecodeError) {
  expect(error).toBeInstanceOf(AppError);
  expect(error.message).not.toMatch(/vips|libpng|libjpeg|sharp|\/tmp|\/work|node_modules/i);
  return {
    code: error.code,
    status: statusFor(error.code, error.status),
    reason: error.details?.reason,
    named: error.message.includes(FIELD),
  };
}

const b64 = (buf: Buffer) => buf.toString('base64');

/** A solid image of `width` x `height`, encoded as `format`. */
function solid(
  width: number,
  height: number,
  colour: { r: number; g: number; b: number; alpha?: number },
  format: 'png' | 'jpeg',
): Promise<Buffer> {
  const channels = colour.alpha === undefined ? 3 : 4;
  return sharp({ create: { width, height, channels, background: colour } })
    .toFormat(format, format === 'jpeg' ? { quality: 95 } : {})
    .toBuffer();
}

/** Deterministic noise, so encoders cannot compress it away (truncation needs data worth cutting). */
function noise(width: number, height: number, channels: 1 | 3): Buffer {
  const data = Buffer.alloc(width * height * channels);
  let x = 0x2545f491;
  for (let i = 0; i < data.length; i++) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    data[i] = x & 0xff;
  }
  return data;
}

const noisy = (format: 'png' | 'jpeg', width = 160, height = 120) =>
  sharp(noise(width, height, 3), { raw: { width, height, channels: 3 } })
    .toFormat(format)
    .toBuffer();

/** One PNG chunk: length, type, data, CRC over type and data. */
function chunk(type: string, data: Buffer): Buffer {
  const head = Buffer.alloc(8);
  head.writeUInt32BE(data.length, 0);
  head.write(type, 4, 'latin1');
  const crc = Buffer.alloc(4);
  crc.writeUInt32BE(crc32(Buffer.concat([head.subarray(4), data])), 0);
  return Buffer.concat([head, data, crc]);
}

const PNG_SIGNATURE = Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]);

/** A PNG built byte by byte: IHDR (greyscale at `bitDepth`), the given IDAT payload, IEND. */
function craftedPng(width: number, height: number, idat: Buffer, bitDepth = 8): Buffer {
  const ihdr = Buffer.alloc(13);
  ihdr.writeUInt32BE(width, 0);
  ihdr.writeUInt32BE(height, 4);
  ihdr[8] = bitDepth;
  ihdr[9] = 0; // greyscale; compression, filter and interlace stay 0
  return Buffer.concat([
    PNG_SIGNATURE,
    chunk('IHDR', ihdr),
    chunk('IDAT', idat),
    chunk('IEND', Buffer.alloc(0)),
  ]);
}

/** The pixel (x, y) of HWC `pixels` that are `width` wide. */
function at(pixels: Uint8Array, width: number, channels: number, x: number, y: number): number[] {
  const o = (y * width + x) * channels;
  return [...pixels.subarray(o, o + channels)];
}

const near = (actual: number[], expected: number[], tolerance: number) =>
  actual.length === expected.length && actual.every((v, i) => Math.abs(v - expected[i]) <= tolerance);

/** Every pixel within `tolerance` of `expected`. */
function allNear(pixels: Uint8Array, channels: number, expected: number[], tolerance: number): boolean {
  for (let o = 0; o < pixels.length; o += channels) {
    if (!near([...pixels.subarray(o, o + channels)], expected, tolerance)) return false;
  }
  return true;
}

describe('decodeImage: base64 strings', () => {
  let png: Buffer;
  beforeAll(async () => {
    png = await solid(8, 6, { r: 10, g: 200, b: 30 }, 'png');
  });

  it('decodes standard base64 with padding to the model size', async () => {
    const out = await decode(b64(png));

    expect(out.format).toBe('png');
    expect(out.pixels).toHaveLength(24 * 32 * 3);
    expect([out.sourceWidth, out.sourceHeight]).toEqual([8, 6]);
    expect(allNear(out.pixels, 3, [10, 200, 30], 0)).toBe(true);
  });

  it('accepts the URL-safe alphabet and unpadded input, with the same pixels', async () => {
    const image = await noisy('png', 40, 30);
    const standard = b64(image);
    expect(standard).toMatch(/[+/]/);
    const urlSafe = image.toString('base64url');
    expect(urlSafe).not.toMatch(/[+/=]/);

    const a = await decode(standard);
    const b = await decode(urlSafe);
    const c = await decode(standard.replace(/=+$/, ''));

    expect(Buffer.from(b.pixels).equals(Buffer.from(a.pixels))).toBe(true);
    expect(Buffer.from(c.pixels).equals(Buffer.from(a.pixels))).toBe(true);
  });

  it('tolerates LF and CRLF line breaks (as `base64` wraps its output), but not spaces or tabs', async () => {
    const text = b64(png);
    const wrap = (eol: string) => text.match(/.{1,76}/g)!.join(eol) + eol;

    await expect(decode(wrap('\n'))).resolves.toMatchObject({ format: 'png' });
    await expect(decode(wrap('\r\n'))).resolves.toMatchObject({ format: 'png' });
    for (const sep of [' ', '\t']) {
      const error = await refusal(decode(text.slice(0, 20) + sep + text.slice(20)));
      expect(seen(error)).toEqual({
        code: 'invalid_image',
        status: 422,
        reason: 'invalid_base64',
        named: true,
      });
      expect(error.message).toContain('offset 20');
      expect(error.fields?.map((f) => f.path)).toEqual([FIELD]);
    }
  });

  it.each([
    ['both alphabets mixed', (t: string) => `-_-_${t}`],
    ['a character outside both alphabets', (t: string) => `${t.slice(0, 10)}*${t.slice(10)}`],
    ['a non-ASCII character', (t: string) => `${t.slice(0, 10)}é${t.slice(10)}`],
    ['padding in the middle', (t: string) => `${t.slice(0, 8)}=${t.slice(8)}`],
    ['three padding characters', (t: string) => `${t.replace(/=+$/, '')}===`],
    ['padding on a length that is not a multiple of 4', () => 'QUJD='],
    ['one character left over (length 4n+1)', () => 'QUJDRA'.slice(0, 5)],
    ['a NUL character', (t: string) => `${t}\u0000`],
  ])('refuses %s as invalid_base64 naming the field', async (_name, mangle) => {
    const text = b64(await noisy('png', 40, 30));
    expect(text).toMatch(/\//);
    const error = await refusal(decode(mangle(text)));

    expect(seen(error)).toEqual({
      code: 'invalid_image',
      status: 422,
      reason: 'invalid_base64',
      named: true,
    });
  });

  it('strips data:image/png and data:image/jpeg prefixes (any case), choosing the format by magic bytes', async () => {
    const jpeg = await solid(8, 6, { r: 200, g: 20, b: 20 }, 'jpeg');

    await expect(decode(`data:image/png;base64,${b64(png)}`)).resolves.toMatchObject({ format: 'png' });
    await expect(decode(`DATA:Image/JPEG;BASE64,${b64(jpeg)}`)).resolves.toMatchObject({ format: 'jpeg' });
    // The declared type is not trusted: the bytes decide.
    await expect(decode(`data:image/jpeg;base64,${b64(png)}`)).resolves.toMatchObject({ format: 'png' });
  });

  it.each(['image/gif', 'image/webp', 'image/svg+xml', 'text/plain', ''])(
    'refuses a data URL of type %j with 415 unsupported_image_format',
    async (type) => {
      const error = await refusal(decode(`data:${type};base64,${b64(png)}`));

      expect(seen(error)).toEqual({
        code: 'unsupported_image_format',
        status: 415,
        reason: 'unsupported_format',
        named: true,
      });
    },
  );

  it('refuses a data URL that is not base64, or has no comma, as invalid_base64', async () => {
    for (const value of ['data:image/png,%89PNG', 'data:image/png;base64']) {
      expect(seen(await refusal(decode(value)))).toEqual({
        code: 'invalid_image',
        status: 422,
        reason: 'invalid_base64',
        named: true,
      });
    }
  });

  it.each([
    'http://127.0.0.1/x.png',
    'https://example.com/x.jpg',
    'HTTPS://EXAMPLE.COM/X.JPG',
    'file:///etc/passwd',
    'file:relative.png',
    '//example.com/x.png',
    'ftp://example.com/x.png',
    '  https://example.com/x.png',
  ])('refuses the URL %j as url_not_allowed', async (url) => {
    const error = await refusal(decode(url));

    expect(seen(error)).toEqual({
      code: 'invalid_image',
      status: 422,
      reason: 'url_not_allowed',
      named: true,
    });
    expect(error.message).toMatch(/URLs are not fetched/);
  });

  it('never fetches a URL it is given', async () => {
    let hits = 0;
    const server = createServer((_req, res) => {
      hits++;
      res.end();
    });
    server.listen(0, '127.0.0.1');
    await once(server, 'listening');
    const { port } = server.address() as AddressInfo;
    try {
      const error = await refusal(decode(`http://127.0.0.1:${port}/image.png`));
      expect(error.reason).toBe('url_not_allowed');
    } finally {
      // close() waits for any connection still open, so a request in flight would be counted.
      await new Promise((resolve) => server.close(resolve));
    }
    expect(hits).toBe(0);
  });

  it('caps the decoded size at 16 MiB before validating the base64', async () => {
    const justOver = Math.ceil((MAX_IMAGE_BYTES + 1) / 3) * 4;

    for (const text of ['A'.repeat(justOver), '*'.repeat(justOver), '*'.repeat(3 * justOver)]) {
      const error = await refusal(decode(text));
      expect(seen(error)).toEqual({
        code: 'image_too_large',
        status: 422,
        reason: 'too_large_bytes',
        named: true,
      });
      expect(error.details).toEqual({ reason: 'too_large_bytes', limit: MAX_IMAGE_BYTES });
    }
  });

  it('applies a smaller maxBytes when given, counting decoded bytes (not characters or line breaks)', async () => {
    const text = b64(png);
    const opts = (maxBytes: number) => ({ maxPixels: MAX_PIXELS, field: FIELD, maxBytes });

    await expect(
      decodeImage(text.match(/.{1,4}/g)!.join('\n'), input(), opts(png.length)),
    ).resolves.toMatchObject({
      format: 'png',
    });
    const error = await refusal(decodeImage(text, input(), opts(png.length - 1)));
    expect(error.reason).toBe('too_large_bytes');
  });

  it.each([null, 42, true, ['a']])(
    'refuses %j (neither a string nor an object) as invalid_request 400',
    async (v) => {
      const error = await refusal(decode(v));

      expect(seen(error)).toEqual({
        code: 'invalid_request',
        status: 400,
        reason: 'invalid_base64',
        named: true,
      });
    },
  );
});

describe('decodeImage: format by magic bytes', () => {
  const tiny = { width: 6, height: 4, channels: 3 as const, background: { r: 1, g: 2, b: 3 } };
  const bmp = (): Buffer => {
    const header = Buffer.alloc(54);
    header.write('BM', 0, 'latin1');
    header.writeUInt32LE(54 + 4, 2);
    header.writeUInt32LE(54, 10);
    header.writeUInt32LE(40, 14);
    header.writeInt32LE(1, 18);
    header.writeInt32LE(1, 22);
    header.writeUInt16LE(1, 26);
    header.writeUInt16LE(24, 28);
    return Buffer.concat([header, Buffer.from([0, 0, 255, 0])]);
  };

  it.each<[string, () => Promise<Buffer> | Buffer]>([
    ['GIF', () => sharp({ create: tiny }).gif().toBuffer()],
    ['TIFF', () => sharp({ create: tiny }).tiff().toBuffer()],
    ['WebP', () => sharp({ create: tiny }).webp().toBuffer()],
    ['AVIF', () => sharp({ create: tiny }).avif().toBuffer()],
    ['SVG', () => Buffer.from('<svg xmlns="http://www.w3.org/2000/svg" width="4" height="4"/>')],
    [
      'SVG with an XML declaration and an external image',
      () =>
        Buffer.from(
          '<?xml version="1.0"?><svg xmlns="http://www.w3.org/2000/svg" xmlns:xlink="http://www.w3.org/1999/xlink"><image xlink:href="file:///etc/passwd"/></svg>',
        ),
    ],
    ['BMP', bmp],
    ['a JPEG signature cut to 2 bytes', () => Buffer.from([0xff, 0xd8])],
    ['a PNG signature missing its last byte', () => PNG_SIGNATURE.subarray(0, 7)],
    ['text', () => Buffer.from('hello, robot')],
  ])('refuses %s with 415 unsupported_image_format', async (_name, make) => {
    const error = await refusal(decode(b64(await make())));

    expect(seen(error)).toEqual({
      code: 'unsupported_image_format',
      status: 415,
      reason: 'unsupported_format',
      named: true,
    });
  });

  it('refuses an empty image (also as an empty data URL) with 415 and reason empty_image', async () => {
    for (const value of ['', 'data:image/png;base64,']) {
      expect(seen(await refusal(decode(value)))).toEqual({
        code: 'unsupported_image_format',
        status: 415,
        reason: 'empty_image',
        named: true,
      });
    }
  });

  it('leaves libvips able to load only JPEG and PNG once restricted (SVG never reaches librsvg)', async () => {
    const webp = await sharp({ create: tiny }).webp().toBuffer();
    const svg = Buffer.from('<svg xmlns="http://www.w3.org/2000/svg" width="4" height="4"/>');
    const png = await sharp({ create: tiny }).png().toBuffer();
    const jpeg = await sharp({ create: tiny }).jpeg().toBuffer();

    restrictSharpToJpegAndPng();
    restrictSharpToJpegAndPng(); // idempotent

    await expect(sharp(webp).metadata()).rejects.toThrow(/unsupported image format/);
    await expect(sharp(svg).metadata()).rejects.toThrow(/unsupported image format/);
    await expect(sharp(png).metadata()).resolves.toMatchObject({ format: 'png' });
    await expect(sharp(jpeg).metadata()).resolves.toMatchObject({ format: 'jpeg' });
  });
});

describe('decodeImage: pixel limit from the header', () => {
  const rssGrowth = async (run: () => Promise<unknown>): Promise<number> => {
    const before = process.memoryUsage().rss;
    let peak = before;
    const timer = setInterval(() => {
      peak = Math.max(peak, process.memoryUsage().rss);
    }, 1);
    try {
      await run();
    } finally {
      clearInterval(timer);
    }
    return Math.max(peak, process.memoryUsage().rss) - before;
  };

  it('refuses a 300-byte PNG whose IHDR says 14000x14000, without decoding it', async () => {
    const bomb = craftedPng(14000, 14000, deflateSync(Buffer.alloc(14001)));
    expect(bomb.length).toBeLessThan(300);
    let error: ImageDecodeError | undefined;

    const growth = await rssGrowth(async () => {
      error = await refusal(decode(b64(bomb), input(), 50_000_000));
    });

    expect(seen(error!)).toEqual({
      code: 'image_too_large',
      status: 422,
      reason: 'too_many_pixels',
      named: true,
    });
    expect(error!.details).toEqual({
      reason: 'too_many_pixels',
      width: 14000,
      height: 14000,
      limit: 50_000_000,
    });
    expect(growth).toBeLessThan(100 * 1024 * 1024);
  });

  it('refuses a complete, valid 14000x14000 PNG bomb (decodes to 196 M pixels) with RSS growth < 100 MB', async () => {
    // 1-bit greyscale: each row is a filter byte and 1750 zero bytes; 24.5 MB of rows deflate to ~24 KB.
    const row = Buffer.alloc(1 + 14000 / 8);
    const bomb = craftedPng(
      14000,
      14000,
      deflateSync(Buffer.concat(Array(14000).fill(row)), { level: 9 }),
      1,
    );
    expect(bomb.length).toBeLessThan(100 * 1024);
    await expect(sharp(bomb).metadata()).resolves.toMatchObject({
      format: 'png',
      width: 14000,
      height: 14000,
    });
    const text = b64(bomb);
    let error: ImageDecodeError | undefined;

    const growth = await rssGrowth(async () => {
      error = await refusal(decode(text, input(), 50_000_000));
    });

    expect(error!.details).toEqual({
      reason: 'too_many_pixels',
      width: 14000,
      height: 14000,
      limit: 50_000_000,
    });
    expect(growth).toBeLessThan(100 * 1024 * 1024);
  });

  it('accepts width x height equal to the limit and refuses one pixel over it', async () => {
    const png = b64(await solid(10, 10, { r: 0, g: 0, b: 0 }, 'png'));

    await expect(decode(png, input(), 100)).resolves.toMatchObject({ sourceWidth: 10, sourceHeight: 10 });
    const error = await refusal(decode(png, input(), 99));
    expect(error.code).toBe('image_too_large');
    expect(error.details).toEqual({ reason: 'too_many_pixels', width: 10, height: 10, limit: 99 });
    expect(error.message).toContain('10x10');
  });

  it('refuses a PNG whose IHDR width or height is 0 as empty_image', async () => {
    for (const [w, h] of [
      [0, 0],
      [0, 8],
      [8, 0],
    ]) {
      const error = await refusal(decode(b64(craftedPng(w, h, deflateSync(Buffer.alloc(9))))));
      expect(seen(error)).toEqual({ code: 'invalid_image', status: 422, reason: 'empty_image', named: true });
    }
  });

  it('refuses a JPEG whose SOF height or width is 0 as empty_image', async () => {
    const jpeg = await solid(16, 8, { r: 9, g: 9, b: 9 }, 'jpeg');
    // Walk the markers to the start of frame: FF Cx, length, precision, height, width.
    let sof = 2;
    while (!(jpeg[sof + 1] >= 0xc0 && jpeg[sof + 1] <= 0xc2)) sof += 2 + jpeg.readUInt16BE(sof + 2);

    for (const offset of [5, 7]) {
      const zeroed = Buffer.from(jpeg);
      zeroed.writeUInt16BE(0, sof + offset);
      const error = await refusal(decode(b64(zeroed)));
      expect(seen(error)).toEqual({ code: 'invalid_image', status: 422, reason: 'empty_image', named: true });
    }
  });
});

describe('decodeImage: broken data', () => {
  let jpeg: Buffer;
  let png: Buffer;
  beforeAll(async () => {
    [jpeg, png] = await Promise.all([noisy('jpeg'), noisy('png')]);
  });

  it.each([0.6, 0.95])(
    'refuses a JPEG and a PNG truncated to %f of their length as truncated',
    async (part) => {
      for (const image of [jpeg, png]) {
        const cut = image.subarray(0, Math.floor(image.length * part));
        // The header survives the cut: it is the pixel data that ends early.
        await expect(sharp(cut).metadata()).resolves.toMatchObject({ width: 160, height: 120 });

        const error = await refusal(decode(b64(cut)));
        expect(seen(error)).toEqual({ code: 'invalid_image', status: 422, reason: 'truncated', named: true });
        expect(error.message).toMatch(/truncated/);
      }
    },
  );

  it('refuses images cut inside their header (magic bytes and a little more) as truncated', async () => {
    for (const cut of [jpeg.subarray(0, 40), png.subarray(0, 20)]) {
      const error = await refusal(decode(b64(cut)));
      expect(seen(error)).toEqual({ code: 'invalid_image', status: 422, reason: 'truncated', named: true });
    }
  });

  it('refuses a PNG with garbage after its signature but a proper ending as decode_failed', async () => {
    const garbage = Buffer.concat([PNG_SIGNATURE, Buffer.alloc(40, 7), chunk('IEND', Buffer.alloc(0))]);

    const error = await refusal(decode(b64(garbage)));
    expect(seen(error)).toEqual({ code: 'invalid_image', status: 422, reason: 'decode_failed', named: true });
  });

  it('refuses a JPEG with corrupt entropy data (a stray restart marker) as decode_failed', async () => {
    let sos = 2;
    while (jpeg[sos + 1] !== 0xda) sos += 2 + jpeg.readUInt16BE(sos + 2);
    const corrupt = Buffer.from(jpeg);
    corrupt.writeUInt16BE(0xffd3, sos + 2000);
    // libjpeg alone would decode it, with a warning and grey blocks.
    await expect(sharp(corrupt, { failOn: 'none' }).raw().toBuffer()).resolves.toHaveLength(160 * 120 * 3);

    const error = await refusal(decode(b64(corrupt)));
    expect(seen(error)).toEqual({ code: 'invalid_image', status: 422, reason: 'decode_failed', named: true });
  });

  it('refuses a complete PNG whose IDAT fails its CRC as decode_failed', async () => {
    const corrupt = Buffer.from(png);
    corrupt[PNG_SIGNATURE.length + 25 + 500] ^= 0xff;

    const error = await refusal(decode(b64(corrupt)));
    expect(seen(error)).toEqual({ code: 'invalid_image', status: 422, reason: 'decode_failed', named: true });
  });
});

describe('decodeImage: pixels', () => {
  it('decodes a solid-colour JPEG and PNG to that colour at the model size', async () => {
    const colour = { r: 200, g: 90, b: 30 };
    const spec = input({ height: 224, width: 224 });

    for (const [format, tolerance] of [
      ['png', 0],
      ['jpeg', 4],
    ] as const) {
      const out = await decode(b64(await solid(640, 480, colour, format)), spec);
      expect(out.format).toBe(format);
      expect(out.pixels).toHaveLength(224 * 224 * 3);
      expect(allNear(out.pixels, 3, [200, 90, 30], tolerance)).toBe(true);
      expect(out.decodeMs).toBeGreaterThan(0);
    }
  });

  describe('fit on a 200x100 image: green | red (middle half) | blue, to 40x40', () => {
    let image: string;
    beforeAll(async () => {
      const raw = Buffer.alloc(200 * 100 * 3);
      for (let y = 0; y < 100; y++) {
        for (let x = 0; x < 200; x++) raw[(y * 200 + x) * 3 + (x < 50 ? 1 : x < 150 ? 0 : 2)] = 255;
      }
      image = b64(
        await sharp(raw, { raw: { width: 200, height: 100, channels: 3 } })
          .png()
          .toBuffer(),
      );
    });
    const px = (out: DecodedImage, x: number, y: number) => at(out.pixels, 40, 3, x, y);
    const [GREEN, RED, BLUE, BLACK] = [
      [0, 255, 0],
      [255, 0, 0],
      [0, 0, 255],
      [0, 0, 0],
    ];

    it('fill stretches: quarters of green and blue beside a red half, on every row', async () => {
      const out = await decode(image, input({ width: 40, height: 40, resize: 'fill' }));

      for (const y of [1, 20, 38]) {
        expect(px(out, 4, y)).toEqual(GREEN);
        expect(px(out, 20, y)).toEqual(RED);
        expect(px(out, 35, y)).toEqual(BLUE);
      }
    });

    it('contain letterboxes: black bands above and below the 40x20 image', async () => {
      const out = await decode(image, input({ width: 40, height: 40, resize: 'contain' }));

      for (const y of [0, 8, 31, 39]) {
        for (const x of [0, 20, 39]) expect(px(out, x, y)).toEqual(BLACK);
      }
      expect(px(out, 4, 20)).toEqual(GREEN);
      expect(px(out, 20, 20)).toEqual(RED);
      expect(px(out, 35, 20)).toEqual(BLUE);
    });

    it('cover crops the centre square: all red', async () => {
      const out = await decode(image, input({ width: 40, height: 40, resize: 'cover' }));

      // Away from the two crop edges, where the resampling kernel reaches the green and blue beyond them.
      for (const y of [0, 20, 39]) {
        for (const x of [3, 20, 36]) expect(px(out, x, y)).toEqual(RED);
      }
      expect([out.sourceWidth, out.sourceHeight]).toEqual([200, 100]);
    });
  });

  it('flattens an RGBA PNG onto black and outputs 3 channels', async () => {
    // Left half opaque orange, right half fully transparent white.
    const raw = Buffer.alloc(8 * 4 * 4);
    for (let i = 0; i < 32; i++) {
      raw.set(i % 8 < 4 ? [250, 120, 10, 255] : [255, 255, 255, 0], i * 4);
    }
    const rgba = await sharp(raw, { raw: { width: 8, height: 4, channels: 4 } })
      .png()
      .toBuffer();
    await expect(sharp(rgba).metadata()).resolves.toMatchObject({ channels: 4, hasAlpha: true });

    const out = await decode(b64(rgba), input({ width: 8, height: 4 }));

    expect(out.pixels).toHaveLength(8 * 4 * 3);
    expect(at(out.pixels, 8, 3, 1, 1)).toEqual([250, 120, 10]);
    expect(at(out.pixels, 8, 3, 6, 2)).toEqual([0, 0, 0]);
  });

  it('darkens a half-transparent pixel (flattened on black, not alpha removed)', async () => {
    const png = await solid(4, 4, { r: 200, g: 100, b: 50, alpha: 0.5 }, 'png');

    const out = await decode(b64(png), input({ width: 4, height: 4 }));

    expect(allNear(out.pixels, 3, [100, 50, 25], 1)).toBe(true);
  });

  it('outputs grey for channels 1: black 0, white 255, and green > red > blue in luminance', async () => {
    const spec = input({ width: 4, height: 4, channels: 1 });
    const grey = async (c: { r: number; g: number; b: number }) => {
      const out = await decode(b64(await solid(6, 6, c, 'png')), spec);
      expect(out.pixels).toHaveLength(16);
      expect(new Set(out.pixels).size).toBe(1);
      return out.pixels[0];
    };

    expect(await grey({ r: 0, g: 0, b: 0 })).toBe(0);
    expect(await grey({ r: 255, g: 255, b: 255 })).toBe(255);
    const [r, g, b] = [
      await grey({ r: 255, g: 0, b: 0 }),
      await grey({ r: 0, g: 255, b: 0 }),
      await grey({ r: 0, g: 0, b: 255 }),
    ];
    expect(g).toBeGreaterThan(r);
    expect(r).toBeGreaterThan(b);
  });

  it('expands a greyscale PNG to three equal channels for a 3-channel model', async () => {
    // Four rows, each a filter byte 0 and four grey bytes of 77.
    const rows = Buffer.concat(Array(4).fill(Buffer.from([0, 77, 77, 77, 77])));
    const png = craftedPng(4, 4, deflateSync(rows));
    await expect(sharp(png).metadata()).resolves.toMatchObject({ channels: 1 });

    const out = await decode(b64(png), input({ width: 4, height: 4 }));

    expect(out.pixels).toHaveLength(48);
    expect(allNear(out.pixels, 3, [77, 77, 77], 0)).toBe(true);
  });

  it('brings a 16-bit PNG to uint8', async () => {
    const png16 = await sharp({
      create: { width: 4, height: 4, channels: 3, background: { r: 255, g: 128, b: 0 } },
    })
      .toColourspace('rgb16')
      .png()
      .toBuffer();
    await expect(sharp(png16).metadata()).resolves.toMatchObject({ depth: 'ushort' });

    const out = await decode(b64(png16), input({ width: 4, height: 4 }));

    expect(out.pixels).toHaveLength(48);
    expect(allNear(out.pixels, 3, [255, 128, 0], 1)).toBe(true);
  });

  it.each(['jpeg', 'png'] as const)(
    'rotates a %s by its EXIF orientation (6: 90° clockwise)',
    async (format) => {
      // 40x20: left half red, right half blue. Rotated 90° clockwise it is 20x40, red on top.
      const raw = Buffer.alloc(40 * 20 * 3);
      for (let i = 0; i < 800; i++) raw[i * 3 + (i % 40 < 20 ? 0 : 2)] = 255;
      const image = await sharp(raw, { raw: { width: 40, height: 20, channels: 3 } })
        .toFormat(format, format === 'jpeg' ? { quality: 95 } : {})
        .withMetadata({ orientation: 6 })
        .toBuffer();
      await expect(sharp(image).metadata()).resolves.toMatchObject({ orientation: 6, width: 40, height: 20 });

      const out = await decode(b64(image), input({ width: 20, height: 40 }));

      expect([out.sourceWidth, out.sourceHeight]).toEqual([20, 40]);
      expect(near(at(out.pixels, 20, 3, 10, 5), [255, 0, 0], 8)).toBe(true);
      expect(near(at(out.pixels, 20, 3, 10, 34), [0, 0, 255], 8)).toBe(true);
    },
  );

  it('returns pixels in a buffer of their own that a transfer moves (sharp output is copied out)', async () => {
    for (const [w, h] of [
      [2, 2],
      [224, 224],
    ]) {
      const out = await decode(
        b64(await solid(4, 4, { r: 1, g: 2, b: 3 }, 'png')),
        input({ width: w, height: h }),
      );

      expect(out.pixels.byteOffset).toBe(0);
      expect(out.pixels.buffer.byteLength).toBe(w * h * 3);
      const moved = structuredClone(out.pixels, { transfer: [out.pixels.buffer] });
      expect([...moved.subarray(0, 3)]).toEqual([1, 2, 3]);
      expect(out.pixels.byteLength).toBe(0); // detached: moved, not copied
    }
  });
});

describe('decodeImage: raw pixels', () => {
  const spec = input({ height: 3, width: 4, channels: 3 });
  const raw = (over: Record<string, unknown> = {}) => ({
    format: 'raw',
    shape: [3, 4, 3],
    data: b64(noise(4, 3, 3)),
    ...over,
  });

  it('round-trips byte for byte without decoding, even bytes that look like a PNG', async () => {
    const bytes = noise(4, 3, 3);
    bytes.set(PNG_SIGNATURE, 0);

    const out = await decode(raw({ data: b64(bytes) }), spec);

    expect(Buffer.from(out.pixels).equals(bytes)).toBe(true);
    expect(out).toMatchObject({ format: 'raw', sourceWidth: 4, sourceHeight: 3, decodeMs: 0 });
  });

  it('takes grey raw pixels for a 1-channel model, in URL-safe base64, and owns their buffer', async () => {
    const bytes = noise(4, 3, 1);
    const out = await decode(
      { format: 'raw', shape: [3, 4, 1], data: bytes.toString('base64url') },
      input({ height: 3, width: 4, channels: 1 }),
    );

    expect(Buffer.from(out.pixels).equals(bytes)).toBe(true);
    // 12 bytes decode into Node's shared pool; the result must not be a view of it.
    expect(out.pixels.buffer.byteLength).toBe(12);
    structuredClone(out.pixels, { transfer: [out.pixels.buffer] });
    expect(out.pixels.byteLength).toBe(0);
  });

  it.each<[string, Record<string, unknown>, string]>([
    ['height and width swapped', { shape: [4, 3, 3] }, 'shape'],
    ['another channel count', { shape: [3, 4, 1] }, 'shape'],
    ['two dimensions', { shape: [3, 4] }, 'shape'],
    ['a batch dimension', { shape: [1, 3, 4, 3] }, 'shape'],
    ['non-integers', { shape: [3, 4, 3.5] }, 'shape'],
    ['strings', { shape: ['3', '4', '3'] }, 'shape'],
    ['no shape', { shape: undefined }, 'shape'],
    ['a dtype other than uint8', { dtype: 'float32' }, 'dtype'],
    ['another format', { format: 'rgb' }, 'format'],
    ['one byte short', { data: b64(noise(4, 3, 3).subarray(1)) }, 'data'],
    ['one byte over', { data: b64(Buffer.concat([noise(4, 3, 3), Buffer.from([1])])) }, 'data'],
    ['far too much data', { data: 'A'.repeat(10_000) }, 'data'],
    ['data that is not a string', { data: [1, 2, 3] }, 'data'],
  ])('refuses %s as 422 invalid_request naming the field', async (_name, over, key) => {
    const error = await refusal(decode(raw(over), spec));

    expect(seen(error)).toEqual({
      code: 'invalid_request',
      status: 422,
      reason: 'raw_shape_mismatch',
      named: true,
    });
    expect(error.fields?.map((f) => f.path)).toEqual([`${FIELD}.${key}`]);
    expect(error.message.startsWith(`${FIELD}.${key} `)).toBe(true);
  });

  it('says which shape the model takes and what was sent', async () => {
    const error = await refusal(decode(raw({ shape: [4, 3, 3] }), spec));

    expect(error.message).toBe(
      'images.primary.shape must be [3, 4, 3] (height, width, channels) for this model; got [4, 3, 3].',
    );
  });

  it('refuses raw data of the right length with invalid base64 as invalid_image naming .data', async () => {
    const data = b64(noise(4, 3, 3));
    const error = await refusal(decode(raw({ data: `${data.slice(0, 4)}!${data.slice(5)}` }), spec));

    expect(seen(error)).toEqual({
      code: 'invalid_image',
      status: 422,
      reason: 'invalid_base64',
      named: true,
    });
    expect(error.fields?.map((f) => f.path)).toEqual([`${FIELD}.data`]);
  });
});

describe('reasons, for vla_image_processing_errors_total{reason}', () => {
  it('lists the nine stable reasons', () => {
    expect(IMAGE_ERROR_REASONS).toEqual([
      'invalid_base64',
      'url_not_allowed',
      'too_large_bytes',
      'unsupported_format',
      'too_many_pixels',
      'empty_image',
      'truncated',
      'decode_failed',
      'raw_shape_mismatch',
    ]);
  });

  it('gives every listed reason for some input, and imageErrorReason reads it back', async () => {
    const jpeg = await noisy('jpeg', 64, 48);
    const inputs: Record<ImageErrorReason, unknown> = {
      invalid_base64: 'not base64!',
      url_not_allowed: 'https://example.com/a.png',
      too_large_bytes: 'A'.repeat(Math.ceil((MAX_IMAGE_BYTES + 1) / 3) * 4),
      unsupported_format: b64(Buffer.from('GIF89a')),
      too_many_pixels: b64(craftedPng(20_000, 20_000, deflateSync(Buffer.alloc(1)))),
      empty_image: '',
      truncated: b64(jpeg.subarray(0, jpeg.length >> 1)),
      // Complete (it ends with IEND) but no image: a header libpng cannot read.
      decode_failed: b64(Buffer.concat([PNG_SIGNATURE, Buffer.alloc(40, 7), chunk('IEND', Buffer.alloc(0))])),
      raw_shape_mismatch: { format: 'raw', shape: [1, 1, 1], data: 'AA==' },
    };

    for (const reason of IMAGE_ERROR_REASONS) {
      const error = await refusal(decode(inputs[reason]));
      expect(imageErrorReason(error)).toBe(reason);
      expect(error.details?.reason).toBe(reason);
    }
  });

  it('imageErrorReason is undefined for other errors', () => {
    expect(imageErrorReason(new AppError('invalid_image'))).toBeUndefined();
    expect(imageErrorReason(new Error('x'))).toBeUndefined();
    expect(imageErrorReason('invalid_base64')).toBeUndefined();
  });
});

describe('timing helpers', () => {
  it('measureMs returns the value and a non-negative duration, and passes rejections on', async () => {
    const { value, ms } = await measureMs(() => Promise.resolve('done'));

    expect(value).toBe('done');
    expect(ms).toBeGreaterThanOrEqual(0);
    await expect(measureMs(() => Promise.reject(new Error('boom')))).rejects.toThrow('boom');
  });

  it('decodeSeconds converts decodeMs to seconds', () => {
    expect(decodeSeconds({ decodeMs: 1250 })).toBe(1.25);
    expect(decodeSeconds({ decodeMs: 0 })).toBe(0);
  });
});
