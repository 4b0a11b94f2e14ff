import { crc32 } from 'node:zlib';
import {
  API_KEY_PATTERN,
  generateApiKey,
  hashSecret,
  parseApiKey,
  randomBase62,
  secretMatches,
} from './api-key-format';

const PEPPER = 'pepper-for-tests';

describe('API key format', () => {
  it('issues keys of the published shape whose parts parse back', () => {
    for (let i = 0; i < 200; i++) {
      const issued = generateApiKey();
      expect(issued.key).toMatch(API_KEY_PATTERN);
      expect(issued.key.startsWith(`vla_${issued.publicId}_${issued.secret}`)).toBe(true);
      expect(parseApiKey(issued.key)).toEqual({ publicId: issued.publicId, secret: issued.secret });
    }
  });

  it('ends with the CRC32 of the rest, in 6 zero-padded base62 characters', () => {
    const { key } = generateApiKey();
    const body = key.slice(0, -6);
    const digits = '0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz';
    const decoded = [...key.slice(-6)].reduce((n, c) => n * 62 + digits.indexOf(c), 0);
    expect(decoded).toBe(crc32(body));
  });

  it('never issues the same public id or secret twice in 10 000 keys', () => {
    const ids = new Set<string>();
    const secrets = new Set<string>();
    for (let i = 0; i < 10_000; i++) {
      const { publicId, secret } = generateApiKey();
      ids.add(publicId);
      secrets.add(secret);
    }
    expect(ids.size).toBe(10_000);
    expect(secrets.size).toBe(10_000);
  });

  it('draws base62 characters uniformly (every character appears, none dominates)', () => {
    const counts = new Map<string, number>();
    for (const c of randomBase62(62_000)) counts.set(c, (counts.get(c) ?? 0) + 1);
    expect(counts.size).toBe(62);
    // Expected 1000 each; a biased draw (byte % 62 without rejection) gives the first 8 about 1.25x.
    for (const n of counts.values()) expect(n).toBeLessThan(1200);
  });

  it('refuses every single-character typo through the checksum', () => {
    const { key } = generateApiKey();
    for (let i = 4; i < key.length; i++) {
      if (key[i] === '_') continue;
      const typo = key.slice(0, i) + (key[i] === 'a' ? 'b' : 'a') + key.slice(i + 1);
      expect(parseApiKey(typo)).toBeNull();
    }
  });

  it.each(['', 'vla_', 'Bearer vla_x', 'sk-live-0123456789abcdef0123456789abcdef', 'x'.repeat(10_000)])(
    'refuses garbage %j',
    (value) => {
      expect(parseApiKey(value)).toBeNull();
    },
  );

  it('refuses a key with extra text around it', () => {
    const { key } = generateApiKey();
    for (const value of [` ${key}`, `${key} `, `${key}\n`, `${key}0`, key.slice(1)]) {
      expect(parseApiKey(value)).toBeNull();
    }
  });

  it('stores an HMAC that matches only the right secret, id and pepper', () => {
    const issued = generateApiKey();
    const stored = hashSecret(issued.publicId, issued.secret, PEPPER);
    expect(stored).toMatch(/^[0-9a-f]{64}$/);
    expect(stored).not.toContain(issued.secret);
    expect(secretMatches(issued, stored, PEPPER)).toBe(true);
    expect(secretMatches(issued, stored, 'another-pepper')).toBe(false);
    expect(secretMatches(issued, stored, null)).toBe(false);
    expect(secretMatches({ ...issued, publicId: generateApiKey().publicId }, stored, PEPPER)).toBe(false);
    expect(secretMatches({ ...issued, secret: generateApiKey().secret }, stored, PEPPER)).toBe(false);
    expect(secretMatches(issued, 'not-hex', PEPPER)).toBe(false);
  });

  it('hashes without a pepper too, deterministically', () => {
    const issued = generateApiKey();
    expect(hashSecret(issued.publicId, issued.secret, null)).toBe(
      hashSecret(issued.publicId, issued.secret, null),
    );
    expect(hashSecret(issued.publicId, issued.secret, null)).not.toBe(
      hashSecret(issued.publicId, issued.secret, PEPPER),
    );
  });
});
