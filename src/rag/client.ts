import { request } from "undici";
import { z } from "zod";
import { InputError, WorldError } from "../errors.ts";
import {
  DocumentsListing,
  IngestCounts,
  MAX_DELETE_SOURCES_PER_REQUEST,
  MAX_DOCUMENTS_PER_REQUEST,
  type DocumentsRequest,
} from "../gateway/documents.ts";
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
  /** Called once the files are checked, before anything is sent, and after each batch the gateway accepted. */
  readonly onProgress?: (progress: IngestProgress) => void;
  /** How long the gateway may take to answer one request. @default ANSWER_TIMEOUT_MS */
  readonly timeoutMs?: number;
  /**
   * After the files, have the gateway work out the keyword terms of every chunk in the collection
   * again from its text (a collection from a version whose terms knew less); PATHs may then be none.
   * @default false
   */
  readonly reindex?: boolean;
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

/** undici's errors for an answer that did not come in time. */
const TIMED_OUT = new Set(["UND_ERR_HEADERS_TIMEOUT", "UND_ERR_BODY_TIMEOUT"]);

/** How long one request may wait for the gateway's answer: it embeds a batch's new chunks before it answers. */
export const ANSWER_TIMEOUT_MS = 600_000;

/**
 * About how many chunks one request makes the gateway embed before it answers. The demo's e5 on a CPU
 * takes ~6 s a chunk, so a batch answers in ~3 minutes, well inside ANSWER_TIMEOUT_MS, and progress
 * moves with each; a failure later keeps what was stored. On a GPU a batch takes well under a second,
 * so even 10,000 one-chunk files cost only ~300 requests.
 */
export const BATCH_CHUNKS = 32;

/**
 * JSON bytes per chunk, for that estimate: this repository's docs/ give ~1.3 KB a chunk (512-token
 * chunks, many short sections), prose without headings ~2 KB; 1 KiB errs towards smaller batches. A
 * file counts as one chunk at least, so a batch holds at most 32 files and about 32 KiB.
 */
const JSON_BYTES_PER_CHUNK = 1024;

/** Room left in a request for the JSON around the documents. */
const ENVELOPE_BYTES = 1024;

/** A gateway's refusal: OpenAI's error shape, `{error: {message, type, param, code}}`. */
const GatewayRefusal = z.object({ error: z.object({ message: z.string(), code: z.string().nullish() }) });

const seconds = (ms: number): string => `${ms / 1000} s`;

/** The gateway's base URL, refused up front unless it is an http(s) URL (`127.0.0.1:8080` failed later as ERR_INVALID_URL). */
function gatewayBase(options: IngestPathsOptions): string {
  const given = options.gateway ?? DEV_GATEWAY_URL;
  let url: URL | undefined;
  try {
    url = new URL(given);
  } catch {
    url = undefined;
  }
  if (url === undefined || (url.protocol !== "http:" && url.protocol !== "https:") || url.host === "") {
    const example =
      given.trim() === "" ? DEV_GATEWAY_URL : given.includes("://") ? given.replace(/^[^:]*:\/\//, "http://") : `http://${given}`;
    throw new InputError(
      `--gateway ${JSON.stringify(given)} is not an http:// or https:// URL`,
      `give the gateway's URL with its scheme, e.g. --gateway ${example}`,
    );
  }
  return given.replace(/\/+$/, "");
}

function notGatewayFix(options: IngestPathsOptions): string {
  return options.gateway === undefined
    ? `something other than diatonic dev answers at ${DEV_GATEWAY_URL}: start the local stack with \`diatonic dev\`, or pass --gateway URL`
    : `point --gateway at the Diatonic gateway's base URL (not the engine, Qdrant or a path under the gateway), e.g. --gateway ${DEV_GATEWAY_URL} for diatonic dev`;
}

async function call<T>(
  options: IngestPathsOptions,
  base: string,
  schema: z.ZodType<T>,
  method: "GET" | "POST",
  body?: DocumentsRequest,
): Promise<T> {
  const url = `${base}/v1/adapters/${encodeURIComponent(options.adapter)}/documents`;
  const timeoutMs = options.timeoutMs ?? ANSWER_TIMEOUT_MS;
  let response;
  try {
    response = await request(url, {
      method,
      headers: { "content-type": "application/json", ...(options.apiKey ? { authorization: `Bearer ${options.apiKey}` } : {}) },
      ...(body !== undefined ? { body: JSON.stringify(body) } : {}),
      headersTimeout: timeoutMs,
      bodyTimeout: timeoutMs,
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
    if (code !== undefined && TIMED_OUT.has(code)) {
      throw new WorldError(
        `the gateway at ${base} took longer than ${seconds(timeoutMs)} to answer`,
        method === "POST"
          ? "it embeds every new chunk of a batch before it answers, so its embeddings model is too slow for this batch: give the model a GPU or more CPU, or split the largest files"
          : "check that the gateway and its vector store are healthy (diatonic status)",
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
  const status = response.statusCode;
  const text = await response.body.text();
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch {
    const shown = text.slice(0, 200).replace(/\s+/g, " ").trim() || "an empty body";
    if (status >= 500) {
      throw new WorldError(
        `${url} answered ${status} with something that is not JSON (a proxy in front of the gateway?): ${shown}`,
        "check that the gateway runs (diatonic status) and that --gateway points at it",
      );
    }
    throw new WorldError(
      `${url} answered ${status} with something that is not JSON (${shown}): it does not look like a Diatonic gateway`,
      notGatewayFix(options),
    );
  }
  if (status >= 400) {
    const refusal = GatewayRefusal.safeParse(parsed);
    if (!refusal.success) {
      throw new WorldError(
        `${url} answered ${status} with ${text.slice(0, 200).replace(/\s+/g, " ").trim()}, not the gateway's {"error": {...}}: it does not look like a Diatonic gateway`,
        notGatewayFix(options),
      );
    }
    const error = refusal.data.error;
    const message = `the gateway refused: ${error.message}`;
    const fixes: Record<string, string> = {
      missing_api_key: "pass --api-key KEY (a key with the admin scope)",
      invalid_api_key: "pass a valid --api-key",
      missing_scope: "use a key whose scopes include admin",
      adapter_not_found: "pick an adapter of the spec (GET /v1/models lists them)",
      not_a_rag_adapter: "give the adapter a rag binding in the spec, or ingest into a RAG adapter",
    };
    const fix = fixes[error.code ?? ""];
    if (status < 500) throw new InputError(message, fix);
    throw new WorldError(message);
  }
  const answer = schema.safeParse(parsed);
  if (!answer.success) {
    throw new WorldError(
      `${url} answered ${status}, but not as a diatonic gateway's documents API does (${answer.error.issues[0]?.path.join(".") || "body"}: ${answer.error.issues[0]?.message ?? "unexpected"})`,
      "point --gateway at the diatonic gateway (not the engine or Qdrant)",
    );
  }
  return answer.data;
}

/** One request's worth: files to store, and sources to drop once every file is stored. */
interface Batch {
  readonly documents: SourceDocument[];
  readonly deleteSources: string[];
}

/**
 * Splits documents into requests of about BATCH_CHUNKS chunks, under the gateway's body limit and its
 * documents per request; the pruned sources ride on the last batch, and on requests of their own
 * after it where they do not fit.
 */
function batches(documents: readonly SourceDocument[], pruned: readonly string[], maxBodyBytes: number): Batch[] {
  const out: Batch[] = [];
  let current: Batch = { documents: [], deleteSources: [] };
  let size = ENVELOPE_BYTES;
  let chunks = 0;
  const next = () => {
    out.push(current);
    current = { documents: [], deleteSources: [] };
    size = ENVELOPE_BYTES;
    chunks = 0;
  };
  for (const document of documents) {
    const bytes = Buffer.byteLength(JSON.stringify(document)) + 1;
    const estimate = Math.max(1, Math.ceil(bytes / JSON_BYTES_PER_CHUNK));
    const full = size + bytes > maxBodyBytes || chunks + estimate > BATCH_CHUNKS || current.documents.length >= MAX_DOCUMENTS_PER_REQUEST;
    if (current.documents.length > 0 && full) next();
    current.documents.push(document);
    size += bytes;
    chunks += estimate;
  }
  for (const source of pruned) {
    const bytes = Buffer.byteLength(JSON.stringify(source)) + 1;
    const full = size + bytes > maxBodyBytes || current.deleteSources.length >= MAX_DELETE_SOURCES_PER_REQUEST;
    if ((current.documents.length > 0 || current.deleteSources.length > 0) && full) next();
    current.deleteSources.push(source);
    size += bytes;
  }
  if (current.documents.length > 0 || current.deleteSources.length > 0) out.push(current);
  return out;
}

/**
 * `diatonic ingest`: checks every file first (nothing is sent if one is unreadable, binary, too large
 * or badly named), then sends them to the gateway's admin API in small batches, so that each stored
 * batch survives a later failure and a run again skips it.
 */
export async function ingestPaths(options: IngestPathsOptions): Promise<IngestSummary> {
  if (options.paths.length === 0 && options.reindex !== true)
    throw new InputError(
      "no files or folders to ingest",
      "pass one or more PATHs, or --reindex alone to rebuild the collection's keyword index",
    );
  if (options.as !== undefined && options.paths.length !== 1) {
    throw new InputError(
      `--as names one PATH, and ${options.paths.length} are given`,
      "ingest each path in its own run with its own --as, or leave --as out (each folder's files are then stored under the folder's name)",
    );
  }
  const base = gatewayBase(options);
  const listing = await call(options, base, DocumentsListing, "GET");
  const collected = await collectDocuments(options.paths, {
    cwd: options.cwd,
    maxDocumentBytes: listing.maxBodyBytes - ENVELOPE_BYTES * 2,
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
  const totals = { added: 0, updated: 0, unchanged: 0, removed: 0, reindexed: 0 };
  const groups = batches(collected.documents, pruned, listing.maxBodyBytes);
  const filesTotal = collected.documents.length;
  let done = 0;
  if (filesTotal > 0) options.onProgress?.({ filesDone: 0, filesTotal });
  for (const [index, group] of groups.entries()) {
    let result: IngestCounts;
    try {
      result = await call(options, base, IngestCounts, "POST", {
        documents: group.documents.map((d) => ({ source: d.source, text: d.text, format: d.format })),
        deleteSources: group.deleteSources,
      });
    } catch (error) {
      // Earlier batches are stored; say so, and that running again finishes the job without redoing them.
      if (error instanceof InputError || error instanceof WorldError) {
        const what =
          group.documents.length > 0
            ? `${group.documents.length} files from ${group.documents[0]?.source ?? "-"}`
            : `removing ${group.deleteSources.length} pruned sources`;
        const where = `batch ${index + 1} of ${groups.length} (${what}) failed after ${done} of ${filesTotal} files were stored`;
        const rerun = "run the same command again: stored files are skipped as unchanged";
        throw error instanceof InputError
          ? new InputError(`${where}: ${error.message}`, error.fix ?? `fix the cause and ${rerun}`)
          : new WorldError(
              `${where}: ${error.message}`,
              error.fix !== undefined ? `${error.fix}; then ${rerun}` : `fix the cause and ${rerun}`,
              {
                cause: error,
              },
            );
      }
      throw error;
    }
    totals.added += result.added;
    totals.updated += result.updated;
    totals.unchanged += result.unchanged;
    totals.removed += result.removed;
    done += group.documents.length;
    options.onProgress?.({ filesDone: done, filesTotal });
  }
  if (options.reindex === true) {
    try {
      const result = await call(options, base, IngestCounts, "POST", {
        documents: [],
        deleteSources: [],
        reindex: true,
      } satisfies Partial<DocumentsRequest>);
      totals.reindexed = result.reindexed;
    } catch (error) {
      // A gateway older than the CLI refuses the field (its request schema is strict).
      if (error instanceof InputError && /reindex/.test(error.message))
        throw new WorldError(
          `the gateway at ${base} does not know reindex: it is older than this CLI${filesTotal > 0 ? ` (the ${filesTotal} files were ingested)` : ""}`,
          "upgrade the gateway to this CLI's version, then run diatonic ingest --adapter NAME --reindex again",
        );
      throw error;
    }
  }
  return {
    ...totals,
    adapter: options.adapter,
    collection: listing.collection,
    files: filesTotal,
    pruned,
    skipped: collected.skipped,
  };
}
