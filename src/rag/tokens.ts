/**
 * Token counting and keyword terms without a model tokenizer. Chunk sizes are counted in "tokens"
 * approximated as words and punctuation marks, which tracks Llama 3's BPE closely enough for
 * English prose (BPE gives ~1.1–1.3 tokens per word), and keeps the chunker independent of the model.
 * Chinese and Japanese are written without spaces: each Han, Hiragana or Katakana character is a
 * token of its own (BPE gives about one to two per character), or a page of Chinese would be one
 * "word" and one unbounded chunk. Thai, Lao, Khmer and Burmese, also written without spaces, are
 * split into words by ICU's dictionaries.
 */
// Built from strings: the `v` flag (set subtraction) runs on Node 20, but TypeScript accepts it in a
// literal only when targeting ES2024.
// Letters used in Han, Hiragana or Katakana text (by Script_Extensions: the prolonged sound mark ー
// is a letter of both kana, not of Script=Katakana; punctuation such as 、 is left out).
const CJK = String.raw`\p{L}&&[\p{scx=Han}\p{scx=Hiragana}\p{scx=Katakana}]`;
// Thai, Lao, Khmer and Burmese are also written without spaces between words, but have words of
// several letters: a run of them is split into words by ICU's dictionaries (Intl.Segmenter).
const SEA = String.raw`[\p{L}\p{M}]&&[\p{scx=Thai}\p{scx=Lao}\p{scx=Khmer}\p{scx=Myanmar}]`;
// A word's letters carry their combining marks (Devanagari's vowel signs and virama, Arabic's
// harakat): without them "नमस्ते" would be four pieces and three "punctuation" tokens. A mark with no
// letter before it (an emoji's variation selector) is no token and no term.
const BASE = String.raw`[\p{L}\p{N}_]--[${CJK}]--[${SEA}]`;
/** A CJK letter, a run of Thai-like script (group 1), a word, or a mark of punctuation. */
const TOKEN = new RegExp(String.raw`[${CJK}]|([${SEA}]+)|(?:[${BASE}]\p{M}*)+|[^\s\p{L}\p{M}\p{N}_]`, "gv");
/** A run of Han, Hiragana or Katakana (group 1), a run of Thai-like script (group 2), or a word of any other letters and digits. */
const WORD = new RegExp(String.raw`([${CJK}]+)|([${SEA}]+)|(?:[[\p{L}\p{N}]--[${CJK}]--[${SEA}]]\p{M}*)+`, "gv");

const segmenter = new Intl.Segmenter(undefined, { granularity: "word" });

/** The words of a run of Thai, Lao, Khmer or Burmese: `[start, end)` within the run. */
function* runWords(run: string): Generator<readonly [number, number]> {
  for (const segment of segmenter.segment(run))
    if (segment.isWordLike === true) yield [segment.index, segment.index + segment.segment.length];
}

/** Offsets of every token in the text: `[start, end)` pairs, in order. */
export function tokenSpans(text: string): Array<readonly [number, number]> {
  const spans: Array<readonly [number, number]> = [];
  for (const match of text.matchAll(TOKEN)) {
    if (match[1] === undefined) spans.push([match.index, match.index + match[0].length]);
    else for (const [start, end] of runWords(match[1])) spans.push([match.index + start, match.index + end]);
  }
  return spans;
}

export function countTokens(text: string): number {
  let count = 0;
  for (const match of text.matchAll(TOKEN)) {
    if (match[1] === undefined) count++;
    else for (const _ of runWords(match[1])) count++;
  }
  return count;
}

const STOPWORDS = new Set(
  "a an and are as at be but by for from has have how i if in into is it its my of on or our so that the their then there these this to was we were what when where which who why will with you your".split(
    " ",
  ),
);

/**
 * Lower-cased words minus stop words: the terms of the keyword (BM25-style) half of retrieval. A run
 * of Chinese or Japanese gives its overlapping character pairs (a lone character, itself), as
 * Lucene's CJK bigrams do: a query then matches the words it shares with a text, with no dictionary.
 * A run of Thai, Lao, Khmer or Burmese gives its dictionary words.
 */
export function keywordTerms(text: string): string[] {
  const terms: string[] = [];
  for (const match of text.toLowerCase().matchAll(WORD)) {
    const term = match[0];
    if (match[1] !== undefined) {
      const chars = [...term];
      if (chars.length === 1) terms.push(term);
      for (let i = 0; i + 1 < chars.length; i++) terms.push(`${chars[i] as string}${chars[i + 1] as string}`);
    } else if (match[2] !== undefined) {
      for (const [start, end] of runWords(term)) terms.push(term.slice(start, end));
    } else if (!STOPWORDS.has(term)) terms.push(term);
  }
  return terms;
}
