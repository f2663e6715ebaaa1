import type { DocumentsRequest, IngestCounts } from "../gateway/documents.ts";
import type { Chunker } from "./chunker.ts";
import type { Embedder } from "./embedder.ts";
import { chunkId, contentHash } from "./ids.ts";
import { sourceNameProblem } from "./source-name.ts";
import type { ChunkRef, StoredChunk, VectorStore } from "./store.ts";

export interface IngestOptions {
  readonly store: VectorStore;
  readonly embedder: Embedder;
  readonly chunker: Chunker;
  readonly collection: string;
  readonly signal?: AbortSignal;
}

/** An ingest request that cannot be carried out as sent (the API answers 400). */
export class IngestInputError extends Error {
  override readonly name = "IngestInputError";
}

interface Planned {
  readonly write: Array<Omit<StoredChunk, "vector">>;
  readonly deleteIds: string[];
  readonly counts: { added: number; updated: number; unchanged: number; removed: number };
}

/** Compares the new chunks of each document with what is stored, by position and content hash. */
function plan(request: DocumentsRequest, chunker: Chunker, stored: readonly ChunkRef[]): Planned {
  const bySource = new Map<string, ChunkRef[]>();
  for (const ref of stored) {
    const list = bySource.get(ref.source);
    if (list === undefined) bySource.set(ref.source, [ref]);
    else list.push(ref);
  }
  const counts = { added: 0, updated: 0, unchanged: 0, removed: 0 };
  const write: Array<Omit<StoredChunk, "vector">> = [];
  const deleteIds: string[] = [];
  for (const document of request.documents) {
    const old = bySource.get(document.source) ?? [];
    const oldIds = new Set(old.map((ref) => ref.id));
    const oldIndexes = new Set(old.map((ref) => ref.chunk));
    const keep = new Set<string>();
    const newIndexes = new Set<number>();
    for (const chunk of chunker.chunk(document.text, document.format)) {
      const hash = contentHash(chunk.text);
      const id = chunkId(document.source, chunk.index, hash);
      newIndexes.add(chunk.index);
      keep.add(id);
      if (oldIds.has(id)) {
        counts.unchanged++;
        continue;
      }
      if (oldIndexes.has(chunk.index)) counts.updated++;
      else counts.added++;
      write.push({ id, source: document.source, chunk: chunk.index, hash, text: chunk.text });
    }
    for (const ref of old) {
      if (keep.has(ref.id)) continue;
      deleteIds.push(ref.id);
      if (!newIndexes.has(ref.chunk)) counts.removed++;
    }
  }
  return { write, deleteIds, counts };
}

/**
 * Chunks, embeds (in batches) and upserts documents; unchanged chunks are neither embedded nor
 * written. New chunks are written before the old ones are deleted, so a failure part-way leaves the
 * previous version searchable, and the next run finishes the job.
 */
export async function ingestDocuments(request: DocumentsRequest, options: IngestOptions): Promise<IngestCounts> {
  const { store, collection } = options;
  const seen = new Set<string>();
  for (const document of request.documents) {
    const problem = sourceNameProblem(document.source);
    if (problem !== undefined) {
      throw new IngestInputError(
        `the source ${JSON.stringify(document.source)} ${problem}: citations show it to every user; send a name relative to the folder ingested (diatonic ingest does)`,
      );
    }
    if (seen.has(document.source)) throw new IngestInputError(`the source ${JSON.stringify(document.source)} appears twice in one request`);
    seen.add(document.source);
  }
  const exists = (await store.dimension(collection)) !== undefined;
  const stored = exists && request.documents.length > 0 ? await store.chunkRefs(collection, { sources: [...seen] }) : [];
  const planned = plan(request, options.chunker, stored);
  if (planned.write.length > 0) {
    const vectors = await options.embedder.embed(
      planned.write.map((chunk) => chunk.text),
      options.signal,
    );
    await store.ensureCollection(collection, (vectors[0] as number[]).length);
    await store.upsert(
      collection,
      planned.write.map((chunk, i) => ({ ...chunk, vector: vectors[i] as number[] })),
    );
  }
  if (exists) await store.deleteIds(collection, planned.deleteIds);
  let removedBySource = 0;
  const deleteSources = request.deleteSources.filter((source) => !seen.has(source));
  if (exists && deleteSources.length > 0) {
    removedBySource = (await store.chunkRefs(collection, { sources: deleteSources })).length;
    await store.deleteBySource(collection, deleteSources);
  }
  const reindexed = request.reindex === true ? await store.reindexKeywords(collection) : 0;
  return { ...planned.counts, removed: planned.counts.removed + removedBySource, reindexed };
}
