import { fnv1a32, splitWords, tokenize } from './tokenizer';

const bytes = (text: string) => new TextEncoder().encode(text);

/*
 * Expected values, worked out independently of this code:
 * - FNV-1a of "" is the offset basis 0x811c9dc5; of "a" 0xe40c292c and of "foobar" 0xbf9cf968 (the
 *   published test vectors of the FNV reference code).
 *   By hand for "a": 0x811c9dc5 ^ 0x61 = 0x811c9da4; times 0x01000193 mod 2^32 is
 *   0x811c9da4 * 0x193 + (0x811c9da4 << 24) = 0x400c292c + 0xa4000000 = 0xe40c292c (mod 2^32).
 * - Ids with vocab_size 1024 (1 + hash % 1023): "a" 3826002220 % 1023 = 634 -> 635; "pick" 0xfa41edf8
 *   = 4198624760, % 1023 = 539 -> 540; "up" 0x43430b20 = 1128467232, % 1023 = 24 -> 25; "the"
 *   0xb40eb21c -> 269; "red" 0x40f480dc -> 525; "block" 0xeb0cbd62 -> 838; "café" (UTF-8 63 61 66 c3 a9)
 *   0xa82b5049 -> 419; "fi" 0x5c22ded0 -> 332; "12" 0x1deb2d6a -> 533. (Computed with a separate
 *   Python implementation.)
 */
const ID = { a: 635, pick: 540, up: 25, the: 269, red: 525, block: 838, cafe: 419, fi: 332, twelve: 533 };

describe('fnv1a32', () => {
  it.each([
    ['', 0x811c9dc5],
    ['a', 0xe40c292c],
    ['foobar', 0xbf9cf968],
    ['café', 0xa82b5049],
  ])('hashes the UTF-8 bytes of %j to the FNV-1a 32-bit value', (text, hash) => {
    expect(fnv1a32(bytes(text))).toBe(hash);
  });
});

describe('tokenize (words-fnv1a-v1)', () => {
  it('maps each word to 1 + fnv1a32(word) % (vocab_size - 1) and pads with 0 up to max_tokens', () => {
    expect(Array.from(tokenize('pick up the red block', 1024, 8))).toEqual([
      ID.pick,
      ID.up,
      ID.the,
      ID.red,
      ID.block,
      0,
      0,
      0,
    ]);
  });

  it('keeps only the first max_tokens words', () => {
    expect(Array.from(tokenize('pick up the red block', 1024, 3))).toEqual([ID.pick, ID.up, ID.the]);
  });

  it('returns only padding for empty text and for text without letters or digits', () => {
    expect(Array.from(tokenize('', 1024, 4))).toEqual([0, 0, 0, 0]);
    expect(Array.from(tokenize('  ,.;!? -- 🤖 \t\n', 1024, 4))).toEqual([0, 0, 0, 0]);
  });

  it('splits on every character that is not a letter, mark or number, and drops it', () => {
    expect(Array.from(tokenize('pick-up,the_red...block!', 1024, 6))).toEqual([
      ID.pick,
      ID.up,
      ID.the,
      ID.red,
      ID.block,
      0,
    ]);
    expect(splitWords('a12 x²')).toEqual(['a12', 'x2']);
    expect(Array.from(tokenize('a 12', 1024, 2))).toEqual([ID.a, ID.twelve]);
  });

  it('lower-cases, so case does not change the ids', () => {
    expect(tokenize('PICK Up THE Red BLOCK', 1024, 6)).toEqual(tokenize('pick up the red block', 1024, 6));
  });

  it('normalises to NFKC first: ligatures, full-width forms and decomposed accents give the same ids', () => {
    // U+FB01 (the "fi" ligature), full-width "ＰＩＣＫ", and "cafe" + U+0301 (combining acute accent).
    expect(Array.from(tokenize('\ufb01 ＰＩＣＫ cafe\u0301', 1024, 4))).toEqual([ID.fi, ID.pick, ID.cafe, 0]);
    expect(Array.from(tokenize('café', 1024, 1))).toEqual([ID.cafe]);
  });

  it('keeps letters of any script and their combining marks inside one word', () => {
    // Hindi: the vowel signs are combining marks (Mc/Mn); the word stays one token.
    expect(splitWords('नमस्ते दुनिया')).toEqual(['नमस्ते', 'दुनिया']);
    expect(splitWords('Привет, МИР')).toEqual(['привет', 'мир']);
    // "привет" (UTF-8 d0 bf d1 80 d0 b8 d0 b2 d0 b5 d1 82) hashes to 0x8148137f = 2168984447 -> 411.
    expect(Array.from(tokenize('Привет', 1024, 1))).toEqual([411]);
  });

  it('gives ids in 1..vocab_size-1 for every word', () => {
    const ids = tokenize('the quick brown fox jumps over the lazy dog 0 1 2 3 4 5 6 7 8 9', 7, 19);
    expect(ids.every((id) => id >= 1 && id <= 6)).toBe(true);
    // "a" is 0xe40c292c = 3826002220; 3826002220 % 6 = 4 (3826002216 is divisible by 6).
    expect(tokenize('a', 7, 1)[0]).toBe(5);
  });

  it('refuses a vocab_size below 2 or above 2^31 and a max_tokens below 1', () => {
    expect(() => tokenize('a', 1, 4)).toThrow(RangeError);
    expect(() => tokenize('a', 2 ** 31 + 1, 4)).toThrow(RangeError);
    expect(() => tokenize('a', 1024.5, 4)).toThrow(RangeError);
    expect(() => tokenize('a', 1024, 0)).toThrow(RangeError);
  });

  it('with vocab_size 2 every word is id 1', () => {
    expect(Array.from(tokenize('pick up', 2, 3))).toEqual([1, 1, 0]);
  });
});
