import type { AdapterRoute, GatewayConfig } from "../gateway/config.ts";
import type { DocumentService, DocumentsRequest, IngestCounts, SourceListing } from "../gateway/documents.ts";
import type { Retrieval, Retriever } from "../gateway/retriever.ts";
import { StructuredChunker, type Chunker } from "./chunker.ts";
import { HttpEmbedder, type Embedder, type EmbeddingsTransport } from "./embedder.ts";
import { ingestDocuments } from "./ingest.ts";
import { LanceStore } from "./lance-store.ts";
import { QdrantStore } from "./qdrant-store.ts";
import type { VectorStore } from "./store.ts";

export interface RagServiceOptions {
  readonly store: VectorStore;
  /** Needed for dense and hybrid retrieval and for ingest. */
  readonly embedder?: Embedder;
  /** @default new StructuredChunker() (512 tokens, 128 overlap) */
  readonly chunker?: Chunker;
}

/** A request the RAG module cannot serve as configured (the API answers 409 or 503). */
/** For requests with no documents (deleting sources, reindexing keywords): ingestDocuments embeds only new chunks, so it is never called. */
const NOTHING_TO_EMBED: Embedder = {
  embed: () => Promise.reject(new Error("a request without documents has nothing to embed")),
};

export class RagUnavailableError extends Error {
  override readonly name = "RagUnavailableError";
}

function bindingOf(adapter: AdapterRoute): NonNullable<AdapterRoute["rag"]> {
  if (adapter.rag === undefined) throw new RagUnavailableError(`adapter ${adapter.name} has no RAG binding`);
  return adapter.rag;
}

/** Retrieval and ingestion for the gateway's RAG adapters: one store, one embedder, one chunker. */
export class RagService implements Retriever, DocumentService {
  readonly store: VectorStore;
  readonly embedder: Embedder | undefined;
  readonly chunker: Chunker;

  constructor(options: RagServiceOptions) {
    this.store = options.store;
    this.embedder = options.embedder;
    this.chunker = options.chunker ?? new StructuredChunker();
  }

  private requireEmbedder(what: string): Embedder {
    if (this.embedder === undefined)
      throw new RagUnavailableError(`${what} needs an embeddings model, and the gateway config names none (set embeddings)`);
    return this.embedder;
  }

  async retrieve(adapter: AdapterRoute, query: string, signal: AbortSignal): Promise<Retrieval> {
    const rag = bindingOf(adapter);
    const vector = rag.mode === "keyword" ? undefined : (await this.requireEmbedder(`${rag.mode} retrieval`).embed([query], signal))[0];
    signal.throwIfAborted();
    const hits = await this.store.search(rag.collection, {
      mode: rag.mode,
      text: query,
      ...(vector ? { vector } : {}),
      limit: rag.topK,
      scoreThreshold: rag.scoreThreshold,
    });
    return { chunks: hits.map((hit) => ({ source: hit.source, chunk: hit.chunk, score: hit.score, text: hit.text })) };
  }

  async list(adapter: AdapterRoute): Promise<SourceListing> {
    const rag = bindingOf(adapter);
    const counts = new Map<string, number>();
    for (const ref of await this.store.chunkRefs(rag.collection)) counts.set(ref.source, (counts.get(ref.source) ?? 0) + 1);
    return {
      collection: rag.collection,
      sources: [...counts].sort((a, b) => a[0].localeCompare(b[0])).map(([source, chunks]) => ({ source, chunks })),
    };
  }

  ingest(adapter: AdapterRoute, request: DocumentsRequest, signal: AbortSignal): Promise<IngestCounts> {
    const rag = bindingOf(adapter);
    return ingestDocuments(request, {
      store: this.store,
      // Deleting sources and reindexing keywords embed nothing: a gateway without an embeddings model may do them.
      embedder: request.documents.length > 0 ? this.requireEmbedder("ingest") : NOTHING_TO_EMBED,
      chunker: this.chunker,
      collection: rag.collection,
      signal,
    });
  }

  close(): Promise<void> {
    return this.store.close();
  }
}

/** The store and embedder a gateway config names, or undefined when it names no vector store. */
export function ragServiceFor(config: GatewayConfig, transport?: EmbeddingsTransport): RagService | undefined {
  const vectorStore = config.vectorStore;
  if (vectorStore === undefined) return undefined;
  let store: VectorStore;
  if (vectorStore.kind === "qdrant") {
    const { url, apiKeyFile, replicationFactor, writeConsistencyFactor, shardNumber } = vectorStore;
    store = new QdrantStore({
      url,
      ...(apiKeyFile !== undefined ? { apiKeyFile } : {}),
      ...(replicationFactor !== undefined ? { replicationFactor } : {}),
      ...(writeConsistencyFactor !== undefined ? { writeConsistencyFactor } : {}),
      ...(shardNumber !== undefined ? { shardNumber } : {}),
    });
  } else {
    store = new LanceStore({ path: vectorStore.path });
  }
  const embeddings = config.embeddings;
  const upstream = embeddings !== undefined ? config.upstreams[embeddings.upstream] : undefined;
  const embedder =
    embeddings !== undefined && upstream !== undefined
      ? new HttpEmbedder({
          url: upstream.url,
          model: embeddings.model,
          // The pool retries on other replicas itself: one more try here, for a 429 or a timeout.
          ...(transport !== undefined ? { transport, attempts: 2 } : {}),
        })
      : undefined;
  return new RagService({ store, ...(embedder ? { embedder } : {}) });
}
