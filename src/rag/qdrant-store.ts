import { readFile } from "node:fs/promises";
import { QdrantClient } from "@qdrant/js-client-rest";
import { describeQdrantFailure, QdrantStoreError } from "./qdrant-errors.ts";
import { documentSparse, querySparse } from "./sparse.ts";
import {
  StoreMismatchError,
  type ChunkRef,
  type SearchFilter,
  type SearchHit,
  type SearchRequest,
  type StoredChunk,
  type VectorStore,
} from "./store.ts";

export interface QdrantStoreOptions {
  /** e.g. http://qdrant.llama3-multi-adapter.svc.cluster.local:6333 */
  readonly url: string;
  readonly apiKey?: string;
  /** A file holding the API key (a mounted Secret), read at the first request. */
  readonly apiKeyFile?: string;
  /** @default 30000 */
  readonly timeoutMs?: number;
  /** Points per upsert request. @default 256 */
  readonly batchSize?: number;
  /**
   * Copies of each shard, for collections this store creates: the number of Qdrant nodes, so that
   * every node holds all the data. @default Qdrant's (1)
   */
  readonly replicationFactor?: number;
  /**
   * Replicas that must apply a write before it is acknowledged. A majority (2 of 3) keeps every
   * acknowledged write on a surviving node when one fails, and writes go on while one is down.
   * @default Qdrant's (1)
   */
  readonly writeConsistencyFactor?: number;
  /** Shards per collection. @default Qdrant's (the number of nodes when the collection is made) */
  readonly shardNumber?: number;
}

const DENSE = "dense";
const SPARSE = "sparse";
/**
 * Qdrant scores a fused point 1 / (k + position) with 0-based positions (measured on 1.19), so k = 61 gives
 * Cormack's 1 / (60 + rank) with 1-based ranks: the scores of reciprocalRankFusion and the embedded store.
 */
const QDRANT_RRF_K = 61;

interface Payload {
  source?: unknown;
  chunk?: unknown;
  hash?: unknown;
  text?: unknown;
}

function sourceFilter(filter: SearchFilter | undefined): { must: Array<{ key: string; match: { any: string[] } }> } | undefined {
  if (filter?.sources === undefined) return undefined;
  return { must: [{ key: "source", match: { any: [...filter.sources] } }] };
}

function hitOf(point: { id: string | number; score: number; payload?: Record<string, unknown> | null }): SearchHit {
  const payload = (point.payload ?? {}) as Payload;
  return {
    id: String(point.id),
    source: String(payload.source ?? ""),
    chunk: Number(payload.chunk ?? 0),
    text: String(payload.text ?? ""),
    score: point.score,
  };
}

async function readKeyFile(file: string, url: string): Promise<string> {
  try {
    return (await readFile(file, "utf8")).trim();
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code ?? (error as Error).message;
    throw new QdrantStoreError(
      `cannot read the API key for Qdrant at ${url} from ${file}: ${code}`,
      "mount the Qdrant API key Secret at vectorStore.apiKeyFile (the rendered gateway does)",
      undefined,
      { cause: error },
    );
  }
}

/**
 * Qdrant through its official REST client: a collection per adapter binding with a named dense vector
 * (cosine) and a named sparse vector with the IDF modifier (BM25 with our term weights), a keyword
 * payload index on `source`, and hybrid search as Qdrant's Query API with RRF fusion of both prefetches.
 */
export class QdrantStore implements VectorStore {
  private client: Promise<QdrantClient> | undefined;
  private readonly batchSize: number;

  constructor(private readonly options: QdrantStoreOptions) {
    this.batchSize = options.batchSize ?? 256;
  }

  /** One client call; a failure becomes a QdrantStoreError naming the server, the step and the fix. */
  private async call<T>(doing: string, request: (client: QdrantClient) => Promise<T>): Promise<T> {
    const client = await this.api();
    try {
      return await request(client);
    } catch (error) {
      const keySource =
        this.options.apiKeyFile !== undefined
          ? `the file ${this.options.apiKeyFile} (vectorStore.apiKeyFile, from the Qdrant API key Secret)`
          : "the store's apiKey";
      throw describeQdrantFailure(error, this.options.url, doing, keySource);
    }
  }

  private api(): Promise<QdrantClient> {
    this.client ??= (async () => {
      const { options } = this;
      const apiKey = options.apiKey ?? (options.apiKeyFile !== undefined ? await readKeyFile(options.apiKeyFile, options.url) : undefined);
      const url = new URL(options.url);
      return new QdrantClient({
        url: `${url.protocol}//${url.hostname}`,
        port: url.port === "" ? (url.protocol === "https:" ? 443 : 80) : Number(url.port),
        ...(apiKey ? { apiKey } : {}),
        timeout: options.timeoutMs ?? 30_000,
        // Its check is a console.warn outside our JSON logs; a server too old for a request fails that request, with its reason.
        checkCompatibility: false,
        // fetch asks for gzip, and Qdrant then writes a compressed answer's headers and body in two
        // sends without TCP_NODELAY: the body waits for the client's delayed ACK, about 40 ms a query
        // (strace of Qdrant 1.19; hybrid p50 fell from ~49 to ~5 ms). Answers are small: plain is faster.
        headers: { "accept-encoding": "identity" },
      });
    })();
    this.client.catch(() => (this.client = undefined));
    return this.client;
  }

  async dimension(collection: string): Promise<number | undefined> {
    const { exists } = await this.call(`checking collection ${collection}`, (api) => api.collectionExists(collection));
    if (!exists) return undefined;
    const info = await this.call(`reading collection ${collection}`, (api) => api.getCollection(collection));
    const vectors = info.config.params.vectors as Record<string, { size?: number }> | { size?: number } | undefined;
    const named = (vectors as Record<string, { size?: number }> | undefined)?.[DENSE];
    if (named?.size === undefined)
      throw new StoreMismatchError(`Qdrant collection ${collection} was not made by diatonic: it has no vector named "${DENSE}"`);
    return named.size;
  }

  async ensureCollection(collection: string, dimension: number): Promise<void> {
    const existing = await this.dimension(collection);
    if (existing !== undefined) {
      if (existing !== dimension) {
        throw new StoreMismatchError(
          `Qdrant collection ${collection} holds ${existing}-dimensional vectors, the embedding model gives ${dimension}: delete the collection and ingest again`,
        );
      }
      return;
    }
    const { replicationFactor, writeConsistencyFactor, shardNumber } = this.options;
    try {
      await this.call(`creating collection ${collection}`, (api) =>
        api.createCollection(collection, {
          vectors: { [DENSE]: { size: dimension, distance: "Cosine" } },
          sparse_vectors: { [SPARSE]: { modifier: "idf" } },
          ...(replicationFactor !== undefined ? { replication_factor: replicationFactor } : {}),
          ...(writeConsistencyFactor !== undefined ? { write_consistency_factor: writeConsistencyFactor } : {}),
          ...(shardNumber !== undefined ? { shard_number: shardNumber } : {}),
        }),
      );
    } catch (error) {
      // Another gateway replica made it first.
      if ((await this.dimension(collection)) !== dimension) throw error;
    }
    await this.call(`indexing the source field of ${collection}`, (api) =>
      api.createPayloadIndex(collection, { field_name: "source", field_schema: "keyword", wait: true }),
    );
  }

  async upsert(collection: string, chunks: readonly StoredChunk[]): Promise<void> {
    for (let start = 0; start < chunks.length; start += this.batchSize) {
      const points = chunks.slice(start, start + this.batchSize).map((c) => ({
        id: c.id,
        vector: { [DENSE]: [...c.vector], [SPARSE]: documentSparse(c.text) },
        payload: { source: c.source, chunk: c.chunk, hash: c.hash, text: c.text },
      }));
      await this.call(`writing ${points.length} chunks to ${collection}`, (api) => api.upsert(collection, { wait: true, points }));
    }
  }

  async deleteIds(collection: string, ids: readonly string[]): Promise<void> {
    if (ids.length === 0) return;
    await this.call(`deleting ${ids.length} chunks from ${collection}`, (api) => api.delete(collection, { wait: true, points: [...ids] }));
  }

  async deleteBySource(collection: string, sources: readonly string[]): Promise<void> {
    if (sources.length === 0 || (await this.dimension(collection)) === undefined) return;
    const filter = sourceFilter({ sources }) as NonNullable<ReturnType<typeof sourceFilter>>;
    await this.call(`deleting the chunks of ${sources.length} sources from ${collection}`, (api) =>
      api.delete(collection, { wait: true, filter }),
    );
  }

  async chunkRefs(collection: string, filter?: SearchFilter): Promise<ChunkRef[]> {
    if ((await this.dimension(collection)) === undefined) return [];
    const refs: ChunkRef[] = [];
    let offset: string | number | undefined;
    do {
      const page = await this.call(`listing the chunks of ${collection}`, (api) =>
        api.scroll(collection, {
          limit: 1000,
          with_payload: ["source", "chunk", "hash"],
          with_vector: false,
          ...(offset !== undefined ? { offset } : {}),
          ...(filter?.sources !== undefined ? { filter: sourceFilter(filter) } : {}),
        }),
      );
      for (const point of page.points) {
        const payload = (point.payload ?? {}) as Payload;
        refs.push({ id: String(point.id), source: String(payload.source), chunk: Number(payload.chunk), hash: String(payload.hash) });
      }
      const next = page.next_page_offset;
      offset = typeof next === "string" || typeof next === "number" ? next : undefined;
    } while (offset !== undefined);
    return refs;
  }

  async reindexKeywords(collection: string): Promise<number> {
    if ((await this.dimension(collection)) === undefined) return 0;
    let count = 0;
    let offset: string | number | undefined;
    do {
      const page = await this.call(`reading the chunks of ${collection}`, (api) =>
        api.scroll(collection, {
          limit: this.batchSize,
          with_payload: ["text"],
          with_vector: false,
          ...(offset !== undefined ? { offset } : {}),
        }),
      );
      // Only the sparse vector is replaced: the dense one and the payload stay as they are.
      const points = page.points.map((point) => ({
        id: point.id,
        vector: { [SPARSE]: documentSparse(String(((point.payload ?? {}) as Payload).text ?? "")) },
      }));
      if (points.length > 0)
        await this.call(`rewriting the keyword vectors of ${points.length} chunks of ${collection}`, (api) =>
          api.updateVectors(collection, { wait: true, points }),
        );
      count += points.length;
      const next = page.next_page_offset;
      offset = typeof next === "string" || typeof next === "number" ? next : undefined;
    } while (offset !== undefined);
    return count;
  }

  async search(collection: string, request: SearchRequest): Promise<SearchHit[]> {
    const filter = sourceFilter(request.filter);
    const common = { limit: request.limit, with_payload: ["source", "chunk", "text"], ...(filter ? { filter } : {}) };
    const sparse = querySparse(request.text);
    let query: Parameters<QdrantClient["query"]>[1];
    if (request.mode === "keyword") {
      if (sparse.indices.length === 0) return [];
      query = { ...common, query: sparse, using: SPARSE };
    } else {
      if (request.vector === undefined) throw new Error("dense search needs the query vector");
      // As in the embedded store, no threshold means 0: a chunk pointing away from the query is no match.
      const dense = { query: [...request.vector], using: DENSE, score_threshold: request.scoreThreshold ?? 0 };
      if (request.mode === "dense" || sparse.indices.length === 0) {
        query = { ...common, ...dense };
      } else {
        const candidates = Math.max(request.limit * 4, 20);
        query = {
          ...common,
          prefetch: [
            { ...dense, limit: candidates, ...(filter ? { filter } : {}) },
            { query: sparse, using: SPARSE, limit: candidates, ...(filter ? { filter } : {}) },
          ],
          // Qdrant's own default k is 2: ranks would weigh far more than in the embedded store.
          query: { rrf: { k: QDRANT_RRF_K } },
        };
      }
    }
    try {
      return (await this.call(`searching ${collection} (${request.mode})`, (api) => api.query(collection, query))).points.map(hitOf);
    } catch (error) {
      if (error instanceof QdrantStoreError && error.status === 404) return [];
      throw error;
    }
  }

  async close(): Promise<void> {
    // Nothing to release: the client's idle keep-alive sockets do not hold the process open.
  }
}
