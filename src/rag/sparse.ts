import { keywordTerms } from "./tokens.ts";

/** A sparse vector as Qdrant takes it: term ids and weights. */
export interface SparseVector {
  readonly indices: number[];
  readonly values: number[];
}

/** FNV-1a, 32-bit: a stable term → id map, no vocabulary to store. */
function termId(term: string): number {
  let hash = 0x811c9dc5;
  for (let i = 0; i < term.length; i++) {
    hash ^= term.charCodeAt(i);
    hash = Math.imul(hash, 0x01000193);
  }
  return hash >>> 0;
}

const K1 = 1.2;
const B = 0.75;
/** Documents are chunks of ~512 tokens; a fixed average length keeps weights independent of the corpus. */
const AVERAGE_TERMS = 256;

function counts(text: string): Map<number, number> {
  const tf = new Map<number, number>();
  for (const term of keywordTerms(text)) {
    const id = termId(term);
    tf.set(id, (tf.get(id) ?? 0) + 1);
  }
  return tf;
}

/**
 * The BM25 term-frequency part of a chunk's weights; the collection's IDF modifier supplies the
 * inverse document frequency at query time, so together they score as BM25.
 */
export function documentSparse(text: string): SparseVector {
  const tf = counts(text);
  let length = 0;
  for (const n of tf.values()) length += n;
  const norm = K1 * (1 - B + (B * length) / AVERAGE_TERMS);
  const entries = [...tf].sort((a, b) => a[0] - b[0]);
  return { indices: entries.map(([id]) => id), values: entries.map(([, n]) => (n * (K1 + 1)) / (n + norm)) };
}

/** A query weighs each distinct term once. */
export function querySparse(text: string): SparseVector {
  const ids = [...counts(text).keys()].sort((a, b) => a - b);
  return { indices: ids, values: ids.map(() => 1) };
}
