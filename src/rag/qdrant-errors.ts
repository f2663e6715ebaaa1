import { WorldError } from "../errors.ts";

/**
 * Qdrant refused a request or could not be reached. The message names the server and what was being
 * done, never the API key; the gateway shows it in a 502 retrieval_failed or the ingest's error.
 */
export class QdrantStoreError extends WorldError {
  constructor(
    message: string,
    fix: string,
    /** The HTTP status Qdrant answered with, or undefined when it did not answer. */
    readonly status: number | undefined,
    options?: { readonly cause?: unknown },
  ) {
    super(message, fix, options);
  }
}

interface HttpFailure {
  status?: unknown;
  statusText?: unknown;
  data?: { status?: { error?: unknown } | string };
}

/** The errno-style code of a failed fetch (`ECONNREFUSED`, `ENOTFOUND`, …), looked for along the cause chain. */
function networkCode(error: unknown): string | undefined {
  for (let at: unknown = error, depth = 0; at instanceof Error && depth < 4; at = at.cause, depth++) {
    const code = (at as { code?: unknown }).code;
    if (typeof code === "string" && /^E[A-Z]+/.test(code)) return code;
  }
  return undefined;
}

/** Turns what the official client throws into a QdrantStoreError that says what to fix. */
export function describeQdrantFailure(error: unknown, url: string, doing: string, keySource: string): QdrantStoreError {
  if (error instanceof QdrantStoreError) return error;
  const failure = (typeof error === "object" && error !== null ? error : {}) as HttpFailure;
  const status = typeof failure.status === "number" ? failure.status : undefined;
  if (status === 401 || status === 403) {
    return new QdrantStoreError(
      `Qdrant at ${url} refused the API key (${status}) while ${doing}`,
      `give the key the server was started with (its QDRANT__SERVICE__API_KEY) in ${keySource}`,
      status,
      { cause: error },
    );
  }
  if (status !== undefined) {
    const detail = typeof failure.data?.status === "object" ? failure.data.status.error : failure.data?.status;
    return new QdrantStoreError(
      `Qdrant at ${url} answered ${status} while ${doing}: ${String(detail ?? failure.statusText ?? "no detail")}`,
      "see Qdrant's log for the cause",
      status,
      { cause: error },
    );
  }
  const code = networkCode(error);
  if (error instanceof Error && error.name === "QdrantClientTimeoutError") {
    return new QdrantStoreError(
      `Qdrant at ${url} did not answer in time while ${doing}`,
      "check that Qdrant is up and not overloaded, or raise the store's timeoutMs",
      undefined,
      { cause: error },
    );
  }
  return new QdrantStoreError(
    `no Qdrant answers at ${url} while ${doing}: ${code ?? (error instanceof Error ? error.message : String(error))}`,
    "check vectorStore.url (host and port) and that Qdrant runs there",
    undefined,
    { cause: error },
  );
}
