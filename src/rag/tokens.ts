/**
 * Token counting and keyword terms without a model tokenizer. Chunk sizes are counted in "tokens"
 * approximated as words and punctuation marks, which tracks Llama 3's BPE closely enough for
 * English prose (BPE gives ~1.1–1.3 tokens per word), and keeps the chunker independent of the model.
 */
const TOKEN = /[\p{L}\p{N}_]+|[^\s\p{L}\p{N}_]/gu;
const WORD = /[\p{L}\p{N}]+/gu;

/** Offsets of every token in the text: `[start, end)` pairs, in order. */
export function tokenSpans(text: string): Array<readonly [number, number]> {
  const spans: Array<readonly [number, number]> = [];
  for (const match of text.matchAll(TOKEN)) spans.push([match.index, match.index + match[0].length]);
  return spans;
}

export function countTokens(text: string): number {
  let count = 0;
  for (const _ of text.matchAll(TOKEN)) count++;
  return count;
}

const STOPWORDS = new Set(
  "a an and are as at be but by for from has have how i if in into is it its my of on or our so that the their then there these this to was we were what when where which who why will with you your".split(
    " ",
  ),
);

/** Lower-cased words minus stop words: the terms of the keyword (BM25-style) half of retrieval. */
export function keywordTerms(text: string): string[] {
  const terms: string[] = [];
  for (const match of text.toLowerCase().matchAll(WORD)) {
    const term = match[0];
    if (!STOPWORDS.has(term)) terms.push(term);
  }
  return terms;
}
