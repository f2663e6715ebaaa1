import type { IncomingMessage, ServerResponse } from "node:http";
import { z } from "zod";
import { mayUse, requireScope, type Principal } from "./auth.ts";
import type { AdapterRoute } from "./config.ts";
import { badRequest, ErrorType, GatewayError, methodNotAllowed, notFound } from "./errors.ts";
import { parseJsonObject, readBody } from "./request.ts";
import type { Snapshot } from "./runtime.ts";

/** Documents one request may carry (`diatonic ingest` splits its batches under it). */
export const MAX_DOCUMENTS_PER_REQUEST = 10_000;
/** Sources one request may name for deletion. */
export const MAX_DELETE_SOURCES_PER_REQUEST = 100_000;
/** Characters of a source name, as citations show it. */
export const MAX_SOURCE_CHARS = 1024;

/** `POST /v1/adapters/{name}/documents`: documents to chunk, embed and store, and sources to drop. */
export const DocumentsRequest = z.strictObject({
  documents: z
    .array(
      z.strictObject({
        /** Where the text came from, as citations will name it (a path relative to where ingest ran). */
        source: z.string().min(1).max(MAX_SOURCE_CHARS),
        text: z.string(),
        format: z.enum(["markdown", "text", "html"]).default("text"),
      }),
    )
    .max(MAX_DOCUMENTS_PER_REQUEST)
    .default([]),
  /** Sources whose chunks are removed (`diatonic ingest --prune`: files that no longer exist). */
  deleteSources: z.array(z.string().min(1).max(MAX_SOURCE_CHARS)).max(MAX_DELETE_SOURCES_PER_REQUEST).default([]),
  /**
   * After the rest, work out the keyword half of every chunk in the collection again from its text
   * (`diatonic ingest --reindex`): for chunks stored by a version whose keyword terms knew less.
   */
  reindex: z.boolean().optional(),
});
export type DocumentsRequest = z.infer<typeof DocumentsRequest>;

/** What an ingest changed, in chunks (schemas: `diatonic ingest` checks the answers with them). */
export const IngestCounts = z.object({
  added: z.number(),
  updated: z.number(),
  unchanged: z.number(),
  removed: z.number(),
  /** Chunks whose keyword terms were worked out again (`reindex`); absent from older gateways' answers. */
  reindexed: z.number().default(0),
});
export type IngestCounts = Readonly<z.infer<typeof IngestCounts>>;

export const SourceListing = z.object({
  collection: z.string(),
  sources: z.array(z.object({ source: z.string(), chunks: z.number() }).readonly()).readonly(),
});
export type SourceListing = Readonly<z.infer<typeof SourceListing>>;

/** GET's answer: the listing and the request limit ingest batches must stay under. */
export const DocumentsListing = SourceListing.extend({ maxBodyBytes: z.number().int().positive() });

/** The admin API's back end, implemented by the RAG module. */
export interface DocumentService {
  list(adapter: AdapterRoute, signal: AbortSignal): Promise<SourceListing>;
  ingest(adapter: AdapterRoute, request: DocumentsRequest, signal: AbortSignal): Promise<IngestCounts>;
}

/** Errors the RAG module throws, by name (the gateway does not import it): status and code. */
const FAILURES: Readonly<Record<string, readonly [number, ErrorType, string]>> = {
  IngestInputError: [400, ErrorType.invalidRequest, "invalid_documents"],
  RagUnavailableError: [409, ErrorType.invalidRequest, "rag_unavailable"],
  StoreMismatchError: [409, ErrorType.invalidRequest, "collection_mismatch"],
  EmbeddingError: [502, ErrorType.upstream, "embeddings_failed"],
};

export interface DocumentsContext {
  readonly snapshot: Snapshot;
  readonly principal: Principal;
  readonly service: DocumentService | undefined;
}

/** `/v1/adapters/{name}/documents`: GET lists stored sources, POST ingests. Admin scope only. */
export async function handleDocuments(
  req: IncomingMessage,
  res: ServerResponse,
  adapterName: string,
  context: DocumentsContext,
): Promise<void> {
  const { snapshot, principal, service } = context;
  requireScope(principal, "admin");
  const target = snapshot.models.get(adapterName);
  if (target?.adapter === undefined)
    throw notFound(`the adapter ${JSON.stringify(adapterName)} does not exist: GET /v1/models lists the adapters`, "adapter_not_found");
  if (!mayUse(principal, adapterName))
    throw new GatewayError(
      403,
      ErrorType.permission,
      `this API key may not use the adapter ${JSON.stringify(adapterName)}`,
      "adapter_not_allowed",
    );
  const adapter = target.adapter;
  if (adapter.rag === undefined) {
    throw new GatewayError(
      409,
      ErrorType.invalidRequest,
      `the adapter ${JSON.stringify(adapterName)} does not use RAG (it has no rag binding in the spec), so it has no documents`,
      "not_a_rag_adapter",
    );
  }
  if (service === undefined)
    throw new GatewayError(
      503,
      ErrorType.overloaded,
      "this gateway has no vector store configured (vectorStore in its config)",
      "no_vector_store",
    );
  if (req.method !== "GET" && req.method !== "POST") throw methodNotAllowed(`/v1/adapters/${adapterName}/documents`, "GET, POST");
  const controller = new AbortController();
  res.once("close", () => {
    if (!res.writableFinished) controller.abort(new Error("client closed the request"));
  });
  let result: unknown;
  try {
    if (req.method === "GET") {
      result = {
        object: "list",
        adapter: adapterName,
        ...(await service.list(adapter, controller.signal)),
        maxBodyBytes: snapshot.config.server.maxBodyBytes,
      };
    } else {
      const parsed = DocumentsRequest.safeParse(parseJsonObject(await readBody(req, snapshot.config.server.maxBodyBytes)));
      if (!parsed.success) {
        const issue = parsed.error.issues[0];
        throw badRequest(
          `invalid documents request: ${issue?.path.join(".") ?? ""}: ${issue?.message ?? "invalid"}`,
          issue?.path.join(".") ?? null,
          "invalid_documents",
        );
      }
      result = {
        object: "ingest.result",
        adapter: adapterName,
        collection: adapter.rag.collection,
        ...(await service.ingest(adapter, parsed.data, controller.signal)),
      };
    }
  } catch (error) {
    if (error instanceof GatewayError) throw error;
    const known = FAILURES[(error as Error).name];
    if (known !== undefined) throw new GatewayError(known[0], known[1], (error as Error).message, known[2]);
    throw new GatewayError(502, ErrorType.upstream, `the vector store failed: ${(error as Error).message}`, "vector_store_failed");
  }
  const body = JSON.stringify(result);
  res.writeHead(200, { "content-type": "application/json", "content-length": Buffer.byteLength(body) });
  res.end(body);
}
