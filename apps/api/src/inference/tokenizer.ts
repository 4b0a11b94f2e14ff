/**
 * The `words-fnv1a-v1` instruction tokenizer: a vocabulary-free word hash, so a model needs no tokenizer
 * file and ids never depend on a training corpus. Changing anything below changes the ids a deployed model
 * sees: a different algorithm gets a new name.
 *
 * 1. Normalise the text to Unicode NFKC (`"ﬁ"` -> `"fi"`, full-width `"Ａ"` -> `"A"`, `"²"` -> `"2"`), then
 *    lower-case it (`String.prototype.toLowerCase`, locale-independent).
 * 2. Split it into words: maximal runs of letters (`\p{L}`), combining marks (`\p{M}`, so that scripts
 *    whose vowels are marks keep their words whole) and numbers (`\p{N}`). Everything else (spaces,
 *    punctuation, symbols, emoji, unpaired surrogates) separates words and is dropped.
 * 3. Each word becomes `1 + fnv1a32(utf8(word)) % (vocabSize - 1)`, an id in 1..vocabSize-1. 0 is padding.
 * 4. The first `maxTokens` ids are kept (later words are dropped); fewer are padded with 0 at the end.
 *
 * FNV-1a 32-bit: h = 0x811c9dc5; for each byte b: h = (h XOR b) * 0x01000193 mod 2^32.
 */

export const WORDS_FNV1A_V1 = 'words-fnv1a-v1';

const FNV_OFFSET_BASIS = 0x811c9dc5;
const FNV_PRIME = 0x01000193;
const WORD = /[\p{L}\p{M}\p{N}]+/gu;
const utf8 = new TextEncoder();

/** FNV-1a 32-bit hash of `bytes`, as an unsigned integer (0 ..< 2^32). */
export function fnv1a32(bytes: Uint8Array): number {
  let hash = FNV_OFFSET_BASIS;
  for (const byte of bytes) hash = Math.imul(hash ^ byte, FNV_PRIME);
  return hash >>> 0;
}

/** The words of `text` after NFKC normalisation and lower-casing (step 1 and 2 above). */
export function splitWords(text: string): string[] {
  return text.normalize('NFKC').toLowerCase().match(WORD) ?? [];
}

/**
 * Token ids of `text` for a model with `vocabSize` embeddings: `maxTokens` ids in 0..vocabSize-1, 0 being
 * padding. `vocabSize` must be an integer from 2 to 2^31 (ids fit an int32) and `maxTokens` a positive integer (a RangeError
 * otherwise: both come from a validated model config, never from a request). The caller limits the text's
 * length first (`max_chars`).
 */
export function tokenize(text: string, vocabSize: number, maxTokens: number): Int32Array {
  if (!Number.isInteger(vocabSize) || vocabSize < 2 || vocabSize > 2 ** 31) {
    throw new RangeError(`vocabSize must be an integer from 2 to 2^31, got ${vocabSize}`);
  }
  if (!Number.isInteger(maxTokens) || maxTokens < 1) {
    throw new RangeError(`maxTokens must be a positive integer, got ${maxTokens}`);
  }
  const ids = new Int32Array(maxTokens);
  let count = 0;
  for (const word of splitWords(text)) {
    if (count === maxTokens) break;
    ids[count++] = 1 + (fnv1a32(utf8.encode(word)) % (vocabSize - 1));
  }
  return ids;
}
