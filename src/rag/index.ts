// RAG: chunking, embeddings, vector stores (Qdrant in the cluster, LanceDB on disk locally), ingest
// and the gateway's retriever.
export { StructuredChunker, formatOf, type Chunk, type Chunker, type ChunkerOptions, type DocumentFormat } from "./chunker.ts";
export { HttpEmbedder, EmbeddingError, type Embedder, type HttpEmbedderOptions } from "./embedder.ts";
export {
  reciprocalRankFusion,
  StoreMismatchError,
  type VectorStore,
  type StoredChunk,
  type SearchRequest,
  type SearchHit,
  type ChunkRef,
  type RetrievalMode,
} from "./store.ts";
export { LanceStore, type LanceStoreOptions } from "./lance-store.ts";
export { QdrantStore, type QdrantStoreOptions } from "./qdrant-store.ts";
export { QdrantStoreError } from "./qdrant-errors.ts";
export {
  locateQdrant,
  QdrantNotFoundError,
  QDRANT_RELEASE,
  QDRANT_VERSION,
  type QdrantExecutable,
  type LocateQdrantOptions,
} from "./qdrant-binary.ts";
export { startQdrant, type QdrantServerOptions, type RunningQdrant } from "./qdrant-server.ts";
export { ingestDocuments, IngestInputError } from "./ingest.ts";
export { RagService, RagUnavailableError, ragServiceFor, type RagServiceOptions } from "./service.ts";
export { chunkId, contentHash } from "./ids.ts";
