import { performance } from 'node:perf_hooks';
import sharp, { type FitEnum } from 'sharp';
import { AppError, type AppErrorOptions } from '../errors/app-error';
import type { ErrorCode } from '../errors/error-codes';
import type { ImageInputConfig } from './model-config';

/**
 * Why an image was refused: the closed set of `reason` label values of
 * `vla_image_processing_errors_total{reason}`, and `error.details.reason` in the response.
 */
export const IMAGE_ERROR_REASONS = [
  'invalid_base64',
  'url_not_allowed',
  'too_large_bytes',
  'unsupported_format',
  'too_many_pixels',
  'empty_image',
  'truncated',
  'decode_failed',
  'raw_shape_mismatch',
] as const;

export type ImageErrorReason = (typeof IMAGE_ERROR_REASONS)[number];

/** Default cap on an image's bytes once its base64 is decoded: 16 MiB. */
export const MAX_IMAGE_BYTES = 16 * 1024 * 1024;

/** A refused image: an {@link AppError} that also carries the metric reason (also in `details.reason`). */
export class ImageDecodeError extends AppError {
  constructor(
    code: ErrorCode,
    readonly reason: ImageErrorReason,
    message: string,
    options: AppErrorOptions = {},
  ) {
    super(code, message, { ...options, details: { reason, ...options.details } });
    this.name = 'ImageDecodeError';
  }
}

/** The metric reason of an error thrown by {@link decodeImage}; `undefined` for any other error. */
export function imageErrorReason(error: unknown): ImageErrorReason | undefined {
  return error instanceof ImageDecodeError ? error.reason : undefined;
}

/** One request image, ready for the tensor: `spec.height x spec.width x spec.channels` bytes, HWC. */
export interface DecodedImage {
  /** uint8, HWC, sRGB (3 channels) or grey (1); owns its whole ArrayBuffer, so it can be transferred. */
  readonly pixels: Uint8Array<ArrayBuffer>;
  /** From the magic bytes, or `raw` for pixels sent as they are. */
  readonly format: 'jpeg' | 'png' | 'raw';
  /** The image as sent, after its EXIF orientation (for raw input: the model's size). */
  readonly sourceWidth: number;
  readonly sourceHeight: number;
  /** Milliseconds spent in sharp (header read and pipeline), from `performance.now()`; 0 for raw input. */
  readonly decodeMs: number;
}

export interface DecodeImageOptions {
  /** Largest width x height accepted, checked from the header before any pixel is decoded. */
  readonly maxPixels: number;
  /** The request path of the image (`images.primary`), named in every error. */
  readonly field: string;
  /** Cap on the decoded bytes; default {@link MAX_IMAGE_BYTES}. */
  readonly maxBytes?: number;
}

/** Runs `fn` and measures it on the monotonic clock. */
export async function measureMs<T>(fn: () => Promise<T>): Promise<{ value: T; ms: number }> {
  const start = performance.now();
  const value = await fn();
  return { value, ms: performance.now() - start };
}

/** The decode time in seconds, the unit of a duration histogram. */
export function decodeSeconds(image: Pick<DecodedImage, 'decodeMs'>): number {
  return image.decodeMs / 1000;
}

const JPEG_MAGIC = Buffer.from([0xff, 0xd8, 0xff]);
const PNG_MAGIC = Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]);
/** The last 12 bytes of every complete PNG: a zero-length IEND chunk and its CRC. */
const PNG_IEND = Buffer.from([0, 0, 0, 0, 0x49, 0x45, 0x4e, 0x44, 0xae, 0x42, 0x60, 0x82]);

/** Any scheme with `//`, `file:`, or a scheme-relative `//host`. Base64 never has `:`, and a JPEG or PNG never starts `//`. */
const URL_PATTERN = /^\s*(?:[a-z][a-z0-9+.-]*:\/\/|file:|\/\/)/i;
const DATA_URL_PREFIX = /^data:/i;
/** A data URL's header is short; a comma further in means it is not one we take. */
const MAX_DATA_URL_HEADER = 256;
const DATA_URL_TYPES = new Set(['image/jpeg', 'image/png']);
const STANDARD_BASE64 = /^[A-Za-z0-9+/]*={0,2}$/;
const URL_SAFE_BASE64 = /^[A-Za-z0-9_-]*={0,2}$/;
const NOT_BASE64 = /[^A-Za-z0-9+/=_-]/;

/**
 * libvips loaders for JPEG and PNG; everything else (SVG through librsvg, TIFF, GIF, HEIF, PDF, ...) is
 * blocked. Magic bytes already keep other formats away from sharp; this holds even if that check is wrong.
 */
const ALLOWED_LOADERS = ['Jpeg', 'Png'].flatMap((f) =>
  ['Buffer', 'File', 'Source'].map((s) => `VipsForeignLoad${f}${s}`),
);
let restricted = false;

/**
 * Restricts libvips, for the whole process, to loading JPEG and PNG (from buffers, files or streams);
 * creating images and raw pixel input are unaffected. Idempotent; {@link decodeImage} calls it on first use.
 * sharp offers no per-call restriction, so this is the nearest it has.
 */
export function restrictSharpToJpegAndPng(): void {
  if (restricted) return;
  sharp.block({ operation: ['VipsForeignLoad'] });
  sharp.unblock({ operation: ALLOWED_LOADERS });
  restricted = true;
}

/**
 * Turns one entry of a request's `images` into the pixels `spec` describes. A string is base64 JPEG or PNG
 * (an optional `data:image/jpeg;base64,` or `data:image/png;base64,` prefix is stripped); an object
 * `{ format: 'raw', shape: [h, w, c], data }` carries uint8 HWC pixels of exactly the model's size and is
 * not decoded. Nothing is ever fetched: URLs are refused.
 *
 * Base64: the standard or the URL-safe alphabet (not both in one string), `=` padding optional but, when
 * present, correct; CR and LF are ignored (wrapped output of `base64`), any other character (spaces and
 * tabs included) is refused. Decoding: format by magic bytes only; the pixel count is checked from the
 * header; then EXIF orientation, alpha flattened onto black, sRGB (or grey for 1 channel), resized with
 * `spec.resize` (`contain` pads with black), uint8. libvips is strict (`failOn: 'warning'`): truncated or
 * corrupt data is refused rather than decoded into grey blocks the policy would act on.
 *
 * Throws {@link ImageDecodeError}: 422 `invalid_image`, 415 `unsupported_image_format`, 422
 * `image_too_large`, or `invalid_request` (422 for a raw image of the wrong size, 400 for a value that is
 * neither a string nor an object). Messages name `options.field` and never carry libvips' own text.
 */
export async function decodeImage(
  input: unknown,
  spec: ImageInputConfig,
  options: DecodeImageOptions,
): Promise<DecodedImage> {
  const { field } = options;
  const maxBytes = options.maxBytes ?? MAX_IMAGE_BYTES;
  if (typeof input === 'string') {
    return decodeEncoded(decodeBase64(unwrapDataUrl(input, field), field, maxBytes), spec, options);
  }
  if (typeof input === 'object' && input !== null && !Array.isArray(input)) {
    return decodeRaw(input as Record<string, unknown>, spec, field, maxBytes);
  }
  throw new ImageDecodeError(
    'invalid_request',
    'invalid_base64',
    `${field} must be a base64 JPEG or PNG string, or a {"format": "raw", "shape", "data"} object.`,
    { fields: [{ path: field, message: 'must be a string or an object' }] },
  );
}

function invalidImage(field: string, reason: ImageErrorReason, message: string, cause?: unknown) {
  return new ImageDecodeError('invalid_image', reason, `${field} ${message}`, {
    fields: [{ path: field, message }],
    cause,
  });
}

/** The base64 payload of `value`: refuses URLs and data URLs of other types, strips an accepted prefix. */
function unwrapDataUrl(value: string, field: string): string {
  if (URL_PATTERN.test(value)) {
    throw invalidImage(
      field,
      'url_not_allowed',
      'is a URL; URLs are not fetched. Send the image itself as base64 JPEG or PNG.',
    );
  }
  if (!DATA_URL_PREFIX.test(value)) return value;
  const comma = value.slice(0, MAX_DATA_URL_HEADER + 1).indexOf(',');
  if (comma < 0) {
    throw invalidImage(field, 'invalid_base64', 'is not a valid data URL (data:image/png;base64,...).');
  }
  const [mediaType, ...params] = value.slice('data:'.length, comma).split(';');
  const type = mediaType.trim().toLowerCase();
  if (!DATA_URL_TYPES.has(type)) {
    const shown = /^[\w.+-]{1,64}\/[\w.+-]{1,64}$/.test(type) ? ` (${type})` : '';
    throw new ImageDecodeError(
      'unsupported_image_format',
      'unsupported_format',
      `${field} is a data URL of another media type${shown}; images must be JPEG or PNG.`,
      { fields: [{ path: field, message: 'must be image/jpeg or image/png' }] },
    );
  }
  if (params.at(-1)?.trim().toLowerCase() !== 'base64') {
    throw invalidImage(field, 'invalid_base64', 'must be a base64 data URL (data:image/png;base64,...).');
  }
  return value.slice(comma + 1);
}

/**
 * Validates `text` as strict base64 and decodes it. The decoded size is computed from the length and
 * checked against `maxBytes` first, so an oversized body is refused before it is scanned or copied.
 */
function decodeBase64(text: string, field: string, maxBytes: number): Buffer {
  const tooLarge = () =>
    new ImageDecodeError(
      'image_too_large',
      'too_large_bytes',
      `${field} is larger than ${maxBytes} bytes once decoded; send a smaller image.`,
      {
        fields: [{ path: field, message: `must be at most ${maxBytes} bytes` }],
        details: { limit: maxBytes },
      },
    );
  // Checked before the string is scanned. Allowing as many line-break characters as base64 ones keeps
  // any sanely wrapped payload (2 per 76) clear of this unscanned refusal.
  if (decodedLength(text) > 2 * maxBytes + 3) throw tooLarge();
  const compact = withoutLineBreaks(text);
  if (decodedLength(compact) > maxBytes) throw tooLarge();

  // Fast path (native code only): a payload that Node decodes and re-encodes to itself is strict base64.
  // Regular expressions over a 200 KB string cost about a millisecond each; this costs a tenth of that.
  const urlSafe = compact.includes('-') || compact.includes('_');
  const decoded = Buffer.from(compact, urlSafe ? 'base64url' : 'base64');
  const canonical = decoded.toString(urlSafe ? 'base64url' : 'base64');
  if (withoutPadding(canonical) === withoutPadding(compact) && paddingFits(compact)) return decoded;

  // Slow path: say exactly what is wrong, or accept what only differs in unused trailing bits.
  const bad = NOT_BASE64.exec(compact);
  if (bad !== null) {
    throw invalidImage(
      field,
      'invalid_base64',
      `is not valid base64: unexpected character at offset ${bad.index} (line breaks are the only whitespace allowed).`,
    );
  }
  if (!STANDARD_BASE64.test(compact) && !URL_SAFE_BASE64.test(compact)) {
    throw invalidImage(
      field,
      'invalid_base64',
      'is not valid base64: "=" may only end it, and the standard (+/) and URL-safe (-_) alphabets cannot be mixed.',
    );
  }
  if (!paddingFits(compact)) {
    throw invalidImage(field, 'invalid_base64', 'is not valid base64: its length does not fit its padding.');
  }
  // Node's decoder reads both alphabets; the checks above are what make it strict.
  return Buffer.from(compact, 'base64');
}

/** `=` padding, when present, makes the length a multiple of 4; without it, 4n + 1 is impossible. */
function paddingFits(text: string): boolean {
  const padded = text.endsWith('=');
  return padded ? text.length % 4 === 0 : text.length % 4 !== 1;
}

function withoutPadding(text: string): string {
  let end = text.length;
  while (end > 0 && text.charCodeAt(end - 1) === 0x3d) end--;
  return end === text.length ? text : text.slice(0, end);
}

const withoutLineBreaks = (text: string): string =>
  text.includes('\n') || text.includes('\r') ? text.replace(/[\r\n]/g, '') : text;

/** Bytes that base64 `text` (without line breaks) decodes to; `=` padding does not count. */
function decodedLength(text: string): number {
  let chars = text.length;
  while (chars > 0 && text.charCodeAt(chars - 1) === 0x3d) chars--;
  return Math.floor((chars * 3) / 4);
}

function sniff(buf: Buffer): 'jpeg' | 'png' | undefined {
  if (buf.length >= PNG_MAGIC.length && buf.subarray(0, PNG_MAGIC.length).equals(PNG_MAGIC)) return 'png';
  if (buf.length >= JPEG_MAGIC.length && buf.subarray(0, JPEG_MAGIC.length).equals(JPEG_MAGIC)) return 'jpeg';
  return undefined;
}

/** Width or height 0 in a PNG's IHDR (libvips only says "corrupt header" about those). */
function pngHasZeroDimension(buf: Buffer): boolean {
  return (
    buf.length >= 24 &&
    buf.toString('latin1', 12, 16) === 'IHDR' &&
    (buf.readUInt32BE(16) === 0 || buf.readUInt32BE(20) === 0)
  );
}

const RESIZE_FIT: Record<ImageInputConfig['resize'], keyof FitEnum> = {
  fill: 'fill',
  contain: 'contain',
  cover: 'cover',
};
const BLACK = { r: 0, g: 0, b: 0, alpha: 1 };

async function decodeEncoded(
  buf: Buffer,
  spec: ImageInputConfig,
  options: DecodeImageOptions,
): Promise<DecodedImage> {
  const { field, maxPixels } = options;
  const format = sniff(buf);
  if (format === undefined) {
    const empty = buf.length === 0;
    throw new ImageDecodeError(
      'unsupported_image_format',
      empty ? 'empty_image' : 'unsupported_format',
      empty ? `${field} is empty; send a JPEG or PNG.` : `${field} is not a JPEG or PNG image.`,
      { fields: [{ path: field, message: 'must be a JPEG or PNG image' }] },
    );
  }
  if (format === 'png' && pngHasZeroDimension(buf)) {
    throw invalidImage(field, 'empty_image', 'has a width or height of 0.');
  }
  restrictSharpToJpegAndPng();
  const start = performance.now();

  // Header only. No pixel limit here, so that the refusal can say how large the image is; the decode
  // below has the same limit in libvips as well.
  let meta: sharp.Metadata;
  try {
    meta = await sharp(buf, { limitInputPixels: false }).metadata();
  } catch (error) {
    throw sharpFailure(error, buf, format, field);
  }
  const { width, height } = meta;
  if (meta.format !== format) throw sharpFailure(undefined, buf, format, field);
  if (!(width > 0 && height > 0)) throw invalidImage(field, 'empty_image', 'has no width or height.');
  if (width * height > maxPixels) {
    throw new ImageDecodeError(
      'image_too_large',
      'too_many_pixels',
      `${field} is ${width}x${height} (${width * height} pixels); the limit is ${maxPixels} pixels.`,
      {
        fields: [{ path: field, message: `must have at most ${maxPixels} pixels` }],
        details: { width, height, limit: maxPixels },
      },
    );
  }

  let out: { data: Buffer; info: sharp.OutputInfo };
  try {
    const pipeline = sharp(buf, {
      limitInputPixels: maxPixels,
      failOn: 'warning',
      pages: 1,
      autoOrient: true,
    })
      .resize({ width: spec.width, height: spec.height, fit: RESIZE_FIT[spec.resize], background: BLACK })
      .flatten({ background: BLACK });
    out = await (spec.channels === 1 ? pipeline.greyscale() : pipeline.toColourspace('srgb'))
      .raw({ depth: 'uchar' })
      .toBuffer({ resolveWithObject: true });
  } catch (error) {
    throw sharpFailure(error, buf, format, field);
  }
  const decodeMs = performance.now() - start;

  const { data, info } = out;
  const expected = spec.width * spec.height * spec.channels;
  if (
    info.width !== spec.width ||
    info.height !== spec.height ||
    info.channels !== spec.channels ||
    data.length !== expected
  ) {
    // A bug in the pipeline above, not in the image: let it surface as internal_error.
    throw new Error(
      `image pipeline produced ${info.width}x${info.height}x${info.channels} (${data.length} bytes) for ${spec.width}x${spec.height}x${spec.channels}`,
    );
  }
  return {
    pixels: owned(data, true),
    format,
    sourceWidth: meta.autoOrient.width,
    sourceHeight: meta.autoOrient.height,
    decodeMs,
  };
}

/** Maps a sharp failure to a short, stable refusal; libvips' message stays in `cause`, for logs only. */
function sharpFailure(error: unknown, buf: Buffer, format: 'jpeg' | 'png', field: string): ImageDecodeError {
  const text = error instanceof Error ? error.message : '';
  const name = format === 'jpeg' ? 'JPEG' : 'PNG';
  if (/exceeds pixel limit/i.test(text)) {
    return new ImageDecodeError(
      'image_too_large',
      'too_many_pixels',
      `${field} has more pixels than the limit.`,
      {
        fields: [{ path: field, message: 'has too many pixels' }],
        cause: error,
      },
    );
  }
  if (/empty jpeg image/i.test(text))
    return invalidImage(field, 'empty_image', 'has a width or height of 0.', error);
  // libpng says "read error" for truncation and corruption alike: a missing IEND trailer tells them apart.
  const truncated =
    format === 'jpeg'
      ? /premature end of jpeg (image|file)/i.test(text)
      : !buf.subarray(buf.length - PNG_IEND.length).equals(PNG_IEND);
  return truncated
    ? invalidImage(field, 'truncated', `is a truncated ${name}: the data ends early.`, error)
    : invalidImage(field, 'decode_failed', `could not be decoded: the ${name} data is corrupt.`, error);
}

/**
 * `data` as a Uint8Array that owns a detachable ArrayBuffer of exactly its size, so that a worker hop can
 * transfer it. Node pools small buffers in a shared slab, and sharp's output is external memory that V8
 * cannot detach (a transfer silently copies it): both are copied once here.
 */
function owned(data: Buffer, external: boolean): Uint8Array<ArrayBuffer> {
  const { buffer } = data;
  if (
    !external &&
    buffer instanceof ArrayBuffer &&
    data.byteOffset === 0 &&
    data.byteLength === buffer.byteLength
  ) {
    return new Uint8Array(buffer, 0, data.byteLength);
  }
  return new Uint8Array(data);
}

function rawMismatch(path: string, message: string): ImageDecodeError {
  return new ImageDecodeError('invalid_request', 'raw_shape_mismatch', `${path} ${message}`, {
    status: 422,
    fields: [{ path, message }],
  });
}

/** Raw uint8 HWC pixels: checked against the model's size before the base64 is decoded, then used as they are. */
function decodeRaw(
  raw: Record<string, unknown>,
  spec: ImageInputConfig,
  field: string,
  maxBytes: number,
): DecodedImage {
  const want = [spec.height, spec.width, spec.channels];
  if (raw.format !== 'raw') {
    throw rawMismatch(`${field}.format`, 'must be "raw" (or send the image as a base64 JPEG or PNG string).');
  }
  if (raw.dtype !== undefined && raw.dtype !== 'uint8') {
    throw rawMismatch(`${field}.dtype`, 'must be "uint8" (one byte per channel).');
  }
  const shape = raw.shape;
  if (!Array.isArray(shape) || shape.length !== 3 || !shape.every((n, i) => n === want[i])) {
    const got =
      Array.isArray(shape) && shape.length <= 4 && shape.every((n) => typeof n === 'number')
        ? `; got [${shape.join(', ')}]`
        : '';
    throw rawMismatch(
      `${field}.shape`,
      `must be [${want.join(', ')}] (height, width, channels) for this model${got}.`,
    );
  }
  if (typeof raw.data !== 'string') {
    throw rawMismatch(`${field}.data`, 'must be a base64 string of uint8 HWC pixels.');
  }
  const expected = spec.height * spec.width * spec.channels;
  // Sized from the length alone (no scan, no copy) unless line breaks might make up the difference.
  const upper = decodedLength(raw.data);
  const sent = upper > 2 * expected + 3 ? undefined : decodedLength(withoutLineBreaks(raw.data));
  if (sent !== expected) {
    throw rawMismatch(
      `${field}.data`,
      `must hold ${want.join(' x ')} = ${expected} bytes; it holds ${sent ?? `more than ${2 * expected}`}.`,
    );
  }
  const pixels = decodeBase64(raw.data, `${field}.data`, Math.min(maxBytes, expected));
  return {
    pixels: owned(pixels, false),
    format: 'raw',
    sourceWidth: spec.width,
    sourceHeight: spec.height,
    decodeMs: 0,
  };
}
