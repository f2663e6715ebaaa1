// The gateway's public surface: what the CLI and `diatonic dev` call, and what the RAG module implements.
export { startGateway, type GatewayOptions, type RunningGateway } from "./server.ts";
export { loadGatewayConfig, parseGatewayConfig } from "./config-watch.ts";
export type { Retriever, Retrieval, RetrievedChunk, Citation } from "./retriever.ts";
export { GatewayConfig } from "./config.ts";
