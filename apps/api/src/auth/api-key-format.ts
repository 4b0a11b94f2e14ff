import { createHmac, randomBytes, timingSafeEqual } from 'node:crypto';
import { crc32 } from 'node:zlib';

const BASE62 = '0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz';
const PREFIX = 'vla_';
const PUBLIC_ID_LENGTH = 12;
/** 24 base62 characters: 142 bits from the CSPRNG (at least 128 are required). */
const SECRET_LENGTH = 24;
/** CRC32 (< 2^32) in 6 base62 characters (62^6 > 2^32), zero-padded, as GitHub's tokens do. */
const CHECKSUM_LENGTH = 6;

/**
 * The published shape of a platform key, for secret scanners: `vla_`, a 12-character public id, `_`, then
 * 24 characters of secret and a 6-character CRC32 checksum, all base62.
 */
export const API_KEY_PATTERN = /^vla_[0-9A-Za-z]{12}_[0-9A-Za-z]{30}$/;

/** A key as issued: the clear `key` goes to the caller once; only `publicId` and a hash are stored. */
export interface IssuedApiKey {
  readonly key: string;
  readonly publicId: string;
  readonly secret: string;
}

/** The parts of a well-formed key whose checksum matches. */
export interface ParsedApiKey {
  readonly publicId: string;
  readonly secret: string;
}

/** Uniform base62 characters from the CSPRNG (rejection sampling: no modulo bias). */
export function randomBase62(length: number): string {
  let out = '';
  while (out.length < length) {
    for (const byte of randomBytes(length * 2)) {
      // 248 = 4 * 62: bytes at or above it would favour the first characters.
      if (byte < 248) out += BASE62[byte % 62];
      if (out.length === length) break;
    }
  }
  return out;
}

function base62Fixed(value: number, width: number): string {
  let out = '';
  for (let v = value; v > 0; v = Math.floor(v / 62)) out = BASE62[v % 62] + out;
  return out.padStart(width, '0');
}

function checksum(body: string): string {
  return base62Fixed(crc32(body), CHECKSUM_LENGTH);
}

/** A new key: random public id and secret, with the checksum of everything before it. */
export function generateApiKey(): IssuedApiKey {
  const publicId = randomBase62(PUBLIC_ID_LENGTH);
  const secret = randomBase62(SECRET_LENGTH);
  const body = `${PREFIX}${publicId}_${secret}`;
  return { key: body + checksum(body), publicId, secret };
}

/**
 * The public id and secret of `key`, or null when it is not a platform key or its checksum does not match:
 * typos and garbage are refused here, without a database look-up.
 */
export function parseApiKey(key: string): ParsedApiKey | null {
  if (key.length !== PREFIX.length + PUBLIC_ID_LENGTH + 1 + SECRET_LENGTH + CHECKSUM_LENGTH) return null;
  if (!API_KEY_PATTERN.test(key)) return null;
  const body = key.slice(0, -CHECKSUM_LENGTH);
  if (checksum(body) !== key.slice(-CHECKSUM_LENGTH)) return null;
  const publicId = key.slice(PREFIX.length, PREFIX.length + PUBLIC_ID_LENGTH);
  return { publicId, secret: body.slice(PREFIX.length + PUBLIC_ID_LENGTH + 1) };
}

/**
 * The stored form of a secret: HMAC-SHA256 keyed with the pepper (`API_KEY_PEPPER`, or a fixed domain key
 * when none is set), over the public id and the secret, hex. A slow password hash buys nothing for 142
 * random bits and would cost milliseconds per request; the pepper keeps a stolen table useless on its own.
 */
export function hashSecret(publicId: string, secret: string, pepper: string | null): string {
  return createHmac('sha256', pepper ?? 'vla-platform/api-key/v1')
    .update(`${publicId}.${secret}`)
    .digest('hex');
}

/** Constant-time check of a presented secret against the stored hash. */
export function secretMatches(parsed: ParsedApiKey, storedHash: string, pepper: string | null): boolean {
  const presented = Buffer.from(hashSecret(parsed.publicId, parsed.secret, pepper), 'hex');
  const stored = Buffer.from(storedHash, 'hex');
  return presented.length === stored.length && timingSafeEqual(presented, stored);
}
