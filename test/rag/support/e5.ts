// A real small embedding model for retrieval-quality tests: the dev stack's (src/dev/embeddings.ts).
export { startE5Server, type EmbeddingServer } from "../../../src/dev/embeddings.ts";
