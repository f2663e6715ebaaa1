import { request } from "undici";
import type { z } from "zod";
import { InputError, WorldError } from "../errors.ts";
import { DocumentsListing, IngestCounts, type DocumentsRequest } from "../gateway/documents.ts";
import { collectDocuments, underRoots, type SourceDocument } from "./files.ts";

/** Where `diatonic dev` listens by default, and so where `diatonic ingest` looks without --gateway. */
export const DEV_GATEWAY_URL = "http://127.0.0.1:8080";

export interface IngestPathsOptions {
  readonly adapter: string;
  readonly paths: readonly string[];
  readonly cwd: string;
  /** @default DEV_GATEWAY_URL */
  readonly gateway?: string;
  readonly apiKey?: string;
  /** Also remove chunks of sources under the paths that no longer exist. @default false */
  readonly prune?: boolean;
  /** The source name of the one path given (`NAME/<file>` for a folder). @default the folder's or file's own name */
  readonly as?: string;
  /** Called after each batch the gateway accepted. */
  readonly onProgress?: (progress: IngestProgress) => void;
}

export interface IngestProgress {
  readonly filesDone: number;
  readonly filesTotal: number;
}

export interface IngestSummary extends IngestCounts {
  readonly adapter: string;
  readonly collection: string;
  readonly files: number;
  readonly pruned: readonly string[];
  readonly skipped: ReadonlyArray<{ readonly path: string; readonly reason: string }>;
}

/** Node's TLS errors for a certificate chain it cannot verify (a self-signed or private CA). */
const UNTRUSTED_CERTIFICATE = new Set([
  "DEPTH_ZERO_SELF_SIGNED_CERT",
  "SELF_SIGNED_CERT_IN_CHAIN",
  "UNABLE_TO_VERIFY_LEAF_SIGNATURE",
  "UNABLE_TO_GET_ISSUER_CERT_LOCALLY",
]);

/** Room left in a request for the JSON around the documents. */
const ENVELOPE_BYTES = 1024;

async function call<T>(options: IngestPathsOptions, schema: z.ZodType<T>, method: "GET" | "POST", body?: DocumentsRequest): Promise<T> {
  const base = (options.gateway ?? DEV_GATEWAY_URL).replace(/\/+$/, "");
  const url = `${base}/v1/adapters/${encodeURIComponent(options.adapter)}/documents`;
  let response;
  try {
    response = await request(url, {
      method,
      headers: { "content-type": "application/json", ...(options.apiKey ? { authorization: `Bearer ${options.apiKey}` } : {}) },
      ...(body !== undefined ? { body: JSON.stringify(body) } : {}),
      headersTimeout: 600_000,
      bodyTimeout: 600_000,
    });
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    if (code !== undefined && UNTRUSTED_CERTIFICATE.has(code)) {
      throw new WorldError(
        `the gateway at ${base} answers, but its TLS certificate is not trusted here (${code})`,
        "a platform whose certificate comes from its own CA: save the CA as ca.crt (diatonic status prints the command) and run with NODE_EXTRA_CA_CERTS=ca.crt",
        { cause: error },
      );
    }
    throw new WorldError(
      `no gateway answers at ${base}: ${code ?? (error as Error).message}`,
      options.gateway === undefined
        ? "start the local stack with `diatonic dev`, or pass --gateway URL"
        : "check --gateway and that the gateway runs",
      { cause: error },
    );
  }
  const text = await response.body.text();
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch {
    throw new WorldError(`${url} answered ${response.statusCode} with something that is not JSON: ${text.slice(0, 200)}`);
  }
  if (response.statusCode >= 400) {
    const error = (parsed as { error?: { message?: string; code?: string } }).error;
    const message = `the gateway refused: ${error?.message ?? `status ${response.statusCode}`}`;
    const fixes: Record<string, string> = {
      missing_api_key: "pass --api-key KEY (a key with the admin scope)",
      invalid_api_key: "pass a valid --api-key",
      missing_scope: "use a key whose scopes include admin",
      adapter_not_found: "pick an adapter of the spec (GET /v1/models lists them)",
      not_a_rag_adapter: "give the adapter a rag binding in the spec, or ingest into a RAG adapter",
    };
    const fix = fixes[error?.code ?? ""];
    if (response.statusCode < 500) throw new InputError(message, fix);
    throw new WorldError(message);
  }
  const answer = schema.safeParse(parsed);
  if (!answer.success) {
    throw new WorldError(
      `${url} answered ${response.statusCode}, but not as a diatonic gateway's documents API does (${answer.error.issues[0]?.path.join(".") || "body"}: ${answer.error.issues[0]?.message ?? "unexpected"})`,
      "point --gateway at the diatonic gateway (not the engine or Qdrant)",
    );
  }
  return answer.data;
}

/** Splits documents into requests under the gateway's body limit. */
function batches(documents: readonly SourceDocument[], maxBytes: number): SourceDocument[][] {
  const out: SourceDocument[][] = [];
  let current: SourceDocument[] = [];
  let size = ENVELOPE_BYTES;
  for (const document of documents) {
    const bytes = Buffer.byteLength(JSON.stringify(document)) + 1;
    if (current.length > 0 && size + bytes > maxBytes) {
      out.push(current);
      current = [];
      size = ENVELOPE_BYTES;
    }
    current.push(document);
    size += bytes;
  }
  if (current.length > 0) out.push(current);
  return out;
}

/**
 * `diatonic ingest`: checks every file first (nothing is sent if one is unreadable, binary or too
 * large), then sends them to the gateway's admin API in batches under its request limit.
 */
export async function ingestPaths(options: IngestPathsOptions): Promise<IngestSummary> {
  if (options.paths.length === 0) throw new InputError("no files or folders to ingest", "pass one or more PATHs");
  if (options.as !== undefined && options.paths.length !== 1) {
    throw new InputError(
      `--as names one PATH, and ${options.paths.length} are given`,
      "ingest each path in its own run with its own --as, or leave --as out (each folder's files are then stored under the folder's name)",
    );
  }
  const listing = await call(options, DocumentsListing, "GET");
  const collected = await collectDocuments(options.paths, {
    cwd: options.cwd,
    maxFileBytes: listing.maxBodyBytes - ENVELOPE_BYTES * 2,
    ...(options.as !== undefined ? { as: options.as } : {}),
  });
  if (collected.problems.length > 0) {
    throw new InputError(
      `nothing was ingested; ${collected.problems.length === 1 ? "a file has a problem" : `${collected.problems.length} files have problems`}:\n${collected.problems.map((p) => `  ${p.path}: ${p.message}`).join("\n")}`,
      "fix or leave out those files and run again",
    );
  }
  const present = new Set(collected.documents.map((d) => d.source));
  const pruned = options.prune
    ? listing.sources.map((s) => s.source).filter((source) => underRoots(source, collected.roots) && !present.has(source))
    : [];
  const totals = { added: 0, updated: 0, unchanged: 0, removed: 0 };
  const groups = batches(collected.documents, listing.maxBodyBytes);
  if (groups.length === 0 && pruned.length > 0) groups.push([]);
  let done = 0;
  for (const [index, group] of groups.entries()) {
    const last = index === groups.length - 1;
    let result: IngestCounts;
    try {
      result = await call(options, IngestCounts, "POST", {
        documents: group.map((d) => ({ source: d.source, text: d.text, format: d.format })),
        deleteSources: last ? pruned : [],
      });
    } catch (error) {
      // Earlier batches are stored; say so, and that running again finishes the job without redoing them.
      if (error instanceof InputError || error instanceof WorldError) {
        const where = `batch ${index + 1} of ${groups.length} (${group.length} files from ${group[0]?.source ?? "-"}) failed after ${done} of ${collected.documents.length} files were stored`;
        const fix = "fix the cause and run the same command again: stored files are skipped as unchanged";
        throw error instanceof InputError
          ? new InputError(`${where}: ${error.message}`, error.fix ?? fix)
          : new WorldError(`${where}: ${error.message}`, fix, { cause: error });
      }
      throw error;
    }
    totals.added += result.added;
    totals.updated += result.updated;
    totals.unchanged += result.unchanged;
    totals.removed += result.removed;
    done += group.length;
    options.onProgress?.({ filesDone: done, filesTotal: collected.documents.length });
  }
  return {
    ...totals,
    adapter: options.adapter,
    collection: listing.collection,
    files: collected.documents.length,
    pruned,
    skipped: collected.skipped,
  };
}
