// Hugging Face Hub access through @huggingface/hub: the repo's file list with each file's size and
// checksum, and resumable, verified downloads (plain HTTP ranges, or Xet for files stored there).
import { downloadFile, fileDownloadInfo, HubApiError, listFiles } from "@huggingface/hub";
import { WorldError } from "../errors.ts";
import { downloadVerified, type Expected } from "./verified-file.ts";

export const HF_ENDPOINT = "https://huggingface.co";

export interface HubOptions {
  /** A Hugging Face-compatible endpoint (a mirror). @default process.env.HF_ENDPOINT ?? https://huggingface.co */
  readonly endpoint?: string;
  /** Sent as a bearer token, whatever its form (mirrors use their own). @default process.env.HF_TOKEN */
  readonly token?: string;
  readonly signal?: AbortSignal;
}

export interface HubRepo {
  readonly repo: string;
  readonly revision: string;
}

export interface HubFile extends Expected {
  readonly path: string;
  readonly size: number;
}

function settings(options: HubOptions): { hubUrl: string; fetch: typeof fetch; token: string | undefined } {
  const hubUrl = (options.endpoint ?? process.env["HF_ENDPOINT"] ?? HF_ENDPOINT).replace(/\/+$/, "");
  const token = options.token ?? process.env["HF_TOKEN"];
  // The token goes in our own header: the library accepts only `hf_…` tokens, a mirror may use others.
  const authorized: typeof fetch = (input, init) => {
    const headers = new Headers(init?.headers);
    if (token) headers.set("authorization", `Bearer ${token}`);
    headers.set("user-agent", "diatonic/0.1");
    return fetch(input, { ...init, headers, signal: init?.signal ?? options.signal });
  };
  return { hubUrl, fetch: authorized, token };
}

/** Node's TLS errors for a certificate it does not trust (a private CA, a self-signed one). */
const UNTRUSTED_CERTIFICATE = new Set([
  "UNABLE_TO_VERIFY_LEAF_SIGNATURE",
  "UNABLE_TO_GET_ISSUER_CERT_LOCALLY",
  "SELF_SIGNED_CERT_IN_CHAIN",
  "DEPTH_ZERO_SELF_SIGNED_CERT",
]);

/** Turns the hub's and the network's failures into errors that say what to do. */
function explain(error: unknown, where: HubRepo & { file?: string }, hubUrl: string, token: string | undefined): Error {
  const label = `${where.repo}@${where.revision}${where.file ? ` file ${where.file}` : ""}`;
  if (error instanceof HubApiError) {
    if (error.statusCode === 401 || error.statusCode === 403) {
      return new WorldError(
        `${label}: access denied (HTTP ${error.statusCode})`,
        token
          ? "the token lacks access: accept the model's licence on its page with this account"
          : "the repo is gated: create the HF token Secret the platform lists and accept the licence",
      );
    }
    if (error.statusCode === 404)
      return new WorldError(`${label}: not found (HTTP 404)`, "check the repo id, revision and file name in the spec");
    return new WorldError(
      `${label}: ${hubUrl} answered HTTP ${error.statusCode}: ${error.message}`,
      "retry later; downloads retry on their own",
    );
  }
  if (error instanceof WorldError) return error;
  const cause = error instanceof Error ? ((error.cause as Error | undefined)?.message ?? error.message) : String(error);
  const code = error instanceof Error ? (error.cause as { code?: unknown } | undefined)?.code : undefined;
  if (typeof code === "string" && UNTRUSTED_CERTIFICATE.has(code)) {
    return new WorldError(
      `${hubUrl} for ${label}: its TLS certificate is not trusted (${cause})`,
      "a mirror behind its own CA: put the CA (PEM) in the download ConfigMap's key ca.crt and set NODE_EXTRA_CA_CERTS=/etc/diatonic/download-env/ca.crt in it (outside the cluster: NODE_EXTRA_CA_CERTS=FILE)",
      { cause: error },
    );
  }
  return new WorldError(
    `cannot reach ${hubUrl} for ${label}: ${cause}`,
    "check the pod's egress (HTTPS) and DNS, or point HF_ENDPOINT at a mirror",
    { cause: error },
  );
}

/** Every file of the repo at the revision (or the one `file`), with its size and checksum. */
export async function listRepoFiles(where: HubRepo & { file?: string }, options: HubOptions = {}): Promise<HubFile[]> {
  const { hubUrl, fetch: authorized, token } = settings(options);
  const files: HubFile[] = [];
  try {
    for await (const entry of listFiles({ repo: where.repo, revision: where.revision, recursive: true, hubUrl, fetch: authorized })) {
      if (entry.type !== "file") continue;
      if (where.file !== undefined && entry.path !== where.file) continue;
      files.push({
        path: entry.path,
        size: entry.size,
        ...(entry.lfs ? { sha256: entry.lfs.oid } : entry.oid ? { gitSha1: entry.oid } : {}),
      });
    }
  } catch (error) {
    throw explain(error, where, hubUrl, token);
  }
  if (where.file !== undefined && files.length === 0) {
    throw new WorldError(
      `${where.repo}@${where.revision} file ${where.file}: not found (the revision has no such file)`,
      "check the file name and revision in the spec",
    );
  }
  return files.sort((a, b) => a.path.localeCompare(b.path));
}

export interface HubDownloadOptions extends HubOptions {
  readonly progress?: (received: number, total: number | undefined) => void;
  readonly progressIntervalMs?: number;
}

/** Downloads one listed file to `target`, resuming a partial one, and checks its checksum. */
export async function downloadHubFile(
  where: HubRepo,
  file: HubFile,
  target: string,
  options: HubDownloadOptions = {},
): Promise<{ bytes: number; resumedFrom: number }> {
  const { hubUrl, fetch: authorized, token } = settings(options);
  const at = { ...where, file: file.path };
  try {
    const info = await fileDownloadInfo({ repo: where.repo, revision: where.revision, path: file.path, hubUrl, fetch: authorized });
    if (info === null)
      throw new WorldError(
        `${where.repo}@${where.revision} file ${file.path}: not found (HTTP 404)`,
        "check the repo id, revision and file name in the spec",
      );
    return await downloadVerified({
      target,
      label: `${where.repo}/${file.path}`,
      expected: file,
      progress: options.progress,
      progressIntervalMs: options.progressIntervalMs,
      signal: options.signal,
      open: async (offset) => {
        if (info.xet !== undefined) {
          // Xet reconstructs any byte range itself.
          const blob = await downloadFile({
            repo: where.repo,
            revision: where.revision,
            path: file.path,
            hubUrl,
            fetch: authorized,
            downloadInfo: info,
          });
          if (blob === null) throw new WorldError(`${where.repo}@${where.revision} file ${file.path}: not found`);
          return { body: blob.slice(offset).stream(), partial: offset > 0 };
        }
        const response = await authorized(info.url, { headers: offset > 0 ? { range: `bytes=${offset}-` } : {}, redirect: "follow" });
        if (!response.ok || response.body === null) throw new HubApiError(info.url, response.status, undefined, `HTTP ${response.status}`);
        return { body: response.body, partial: response.status === 206 };
      },
    });
  } catch (error) {
    throw explain(error, at, hubUrl, token);
  }
}
