import type { RagBindingSpec } from "../spec/schema.ts";

export type RetrievalMode = RagBindingSpec["mode"];

/** A chunk as stored: where it came from, its position there, its content hash, text and vector. */
export interface StoredChunk {
  readonly id: string;
  readonly source: string;
  readonly chunk: number;
  readonly hash: string;
  readonly text: string;
  readonly vector: readonly number[];
}

/** What is stored for a chunk, without text and vector: enough to decide what an ingest must write. */
export type ChunkRef = Pick<StoredChunk, "id" | "source" | "chunk" | "hash">;

export interface SearchFilter {
  /** Only chunks of these sources. */
  readonly sources?: readonly string[];
}

export interface SearchRequest {
  readonly mode: RetrievalMode;
  /** The query text: the keyword half searches it. */
  readonly text: string;
  /** The query's embedding: the dense half searches it (not needed for `keyword`). */
  readonly vector?: readonly number[];
  readonly limit: number;
  /**
   * Dense candidates must score above this cosine similarity (one exactly at it is dropped, as Qdrant's
   * score_threshold does); keyword hits are exact matches and kept. @default 0: nothing pointing away from the query
   */
  readonly scoreThreshold?: number;
  readonly filter?: SearchFilter;
}

export interface SearchHit {
  readonly id: string;
  readonly source: string;
  readonly chunk: number;
  readonly text: string;
  /** Cosine similarity (dense), BM25 score (keyword) or reciprocal-rank-fusion score (hybrid). */
  readonly score: number;
}

/** A store of chunks per collection: one collection per adapter RAG binding. */
export interface VectorStore {
  /** Creates the collection with this dimension (cosine distance) if missing; fails if it exists with another dimension. */
  ensureCollection(collection: string, dimension: number): Promise<void>;
  /** The collection's vector dimension, or undefined when it does not exist. */
  dimension(collection: string): Promise<number | undefined>;
  /** Inserts or replaces chunks by id. */
  upsert(collection: string, chunks: readonly StoredChunk[]): Promise<void>;
  deleteIds(collection: string, ids: readonly string[]): Promise<void>;
  deleteBySource(collection: string, sources: readonly string[]): Promise<void>;
  /** Every stored chunk (without text and vector), optionally of some sources only. */
  chunkRefs(collection: string, filter?: SearchFilter): Promise<ChunkRef[]>;
  search(collection: string, request: SearchRequest): Promise<SearchHit[]>;
  /**
   * Works out the keyword half (terms, sparse vectors) of every stored chunk again from its text, as
   * this version's keywordTerms gives it, without embedding anything: for a collection ingested by a
   * version whose terms knew less (`diatonic ingest --reindex`). The number of chunks; 0 when the
   * collection does not exist.
   */
  reindexKeywords(collection: string): Promise<number>;
  close(): Promise<void>;
}

/** A store's answer that the stored data no longer fits the request (another embedding model, say). */
export class StoreMismatchError extends Error {
  override readonly name = "StoreMismatchError";
}

/** Reciprocal rank fusion (Cormack et al., k = 60, as Qdrant's and LanceDB's): rank, not raw score, decides. */
export function reciprocalRankFusion(lists: readonly (readonly SearchHit[])[], limit: number, k = 60): SearchHit[] {
  const fused = new Map<string, { hit: SearchHit; score: number }>();
  for (const list of lists) {
    list.forEach((hit, rank) => {
      const entry = fused.get(hit.id);
      const add = 1 / (k + rank + 1);
      if (entry === undefined) fused.set(hit.id, { hit, score: add });
      else entry.score += add;
    });
  }
  return [...fused.values()]
    .sort((a, b) => b.score - a.score || a.hit.source.localeCompare(b.hit.source) || a.hit.chunk - b.hit.chunk)
    .slice(0, limit)
    .map(({ hit, score }) => ({ ...hit, score }));
}
