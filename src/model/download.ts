import { createWriteStream, existsSync, mkdirSync, readFileSync, renameSync, rmSync, writeFileSync } from "node:fs";
import { dirname, join, normalize } from "node:path";
import { Readable, Transform } from "node:stream";
import { pipeline } from "node:stream/promises";
import type { ReadableStream as WebReadableStream } from "node:stream/web";
import { InputError, WorldError } from "../errors.ts";

/** One thing to fetch: a whole Hugging Face repo at a revision, or one file of it, into `dir`. */
export interface DownloadItem {
  readonly dir: string;
  readonly repo: string;
  readonly revision: string;
  readonly file?: string;
}

export interface DownloadOptions {
  /** @default process.env.HF_ENDPOINT ?? "https://huggingface.co" */
  readonly endpoint?: string;
  /** @default process.env.HF_TOKEN */
  readonly token?: string;
  /** Called with one line per event (start, progress every few seconds, done). */
  readonly progress?: (line: string) => void;
  /** @default 5000 */
  readonly progressIntervalMs?: number;
}

export interface DownloadReport {
  readonly downloaded: readonly string[];
  readonly skipped: readonly string[];
}

const MARKER = ".diatonic-download.json";

/** Parses `DIR=REPO@REVISION[#FILE]`, the form the rendered download Job passes. */
export function parseItem(text: string): DownloadItem {
  const match = /^([^=]+)=([\w.-]+\/[\w.-]+)@([^#\s]+)(?:#(.+))?$/.exec(text);
  if (!match?.[1] || !match[2] || !match[3]) {
    throw new InputError(`download item ${JSON.stringify(text)} is not DIR=REPO@REVISION[#FILE]`, "example: /models/llama=meta-llama/Meta-Llama-3-8B-Instruct@main");
  }
  return { dir: match[1], repo: match[2], revision: match[3], ...(match[4] ? { file: match[4] } : {}) };
}

function headers(token: string | undefined): Record<string, string> {
  return { "user-agent": "diatonic-model-download/0.1", ...(token ? { authorization: `Bearer ${token}` } : {}) };
}

async function request(url: string, item: DownloadItem, token: string | undefined): Promise<Response> {
  let response: Response;
  try {
    response = await fetch(url, { headers: headers(token), redirect: "follow" });
  } catch (error) {
    throw new WorldError(`cannot reach ${new URL(url).origin} for ${item.repo}: ${(error as Error).message}`, "check the Job's egress (HTTPS) and DNS, or set HF_ENDPOINT to a mirror", { cause: error });
  }
  if (response.status === 401 || response.status === 403) {
    throw new WorldError(`${item.repo}@${item.revision}: access denied (HTTP ${response.status})`, token ? "the token lacks access: accept the model's licence on its page with this account" : "the repo is gated: create the HF token Secret the platform lists and accept the licence");
  }
  if (response.status === 404) {
    throw new WorldError(`${item.repo}@${item.revision}${item.file ? ` file ${item.file}` : ""}: not found (HTTP 404)`, "check the repo id, revision and file name in the spec");
  }
  if (!response.ok) throw new WorldError(`${url}: HTTP ${response.status}`, "retry later; the Job retries on its own");
  return response;
}

async function listFiles(endpoint: string, item: DownloadItem, token: string | undefined): Promise<string[]> {
  const response = await request(`${endpoint}/api/models/${item.repo}/revision/${encodeURIComponent(item.revision)}`, item, token);
  const body = (await response.json()) as { siblings?: { rfilename?: unknown }[] };
  return (body.siblings ?? []).map((s) => s.rfilename).filter((name): name is string => typeof name === "string");
}

/** A path inside `dir`; a repo listing that tries to escape it is refused. */
function inside(dir: string, file: string): string {
  const path = normalize(join(dir, file));
  if (!path.startsWith(normalize(dir) + "/")) throw new WorldError(`refusing file ${JSON.stringify(file)}: it would land outside ${dir}`);
  return path;
}

async function fetchFile(endpoint: string, item: DownloadItem, file: string, token: string | undefined, options: DownloadOptions): Promise<void> {
  const target = inside(item.dir, file);
  const response = await request(`${endpoint}/${item.repo}/resolve/${encodeURIComponent(item.revision)}/${file.split("/").map(encodeURIComponent).join("/")}`, item, token);
  if (!response.body) throw new WorldError(`${item.repo}/${file}: empty response`);
  const total = Number(response.headers.get("content-length") ?? 0);
  mkdirSync(dirname(target), { recursive: true });
  const partial = `${target}.part`;
  let received = 0;
  let lastReport = Date.now();
  const interval = options.progressIntervalMs ?? 5000;
  const counter = new Transform({
    transform(chunk: Buffer, _encoding, callback) {
      received += chunk.length;
      if (Date.now() - lastReport >= interval) {
        lastReport = Date.now();
        const share = total > 0 ? ` (${((received / total) * 100).toFixed(1)}%)` : "";
        options.progress?.(`  ${file}: ${(received / 1e6).toFixed(1)} MB${share}`);
      }
      callback(null, chunk);
    },
  });
  await pipeline(Readable.fromWeb(response.body as WebReadableStream<Uint8Array>), counter, createWriteStream(partial));
  if (total > 0 && received !== total) {
    rmSync(partial, { force: true });
    throw new WorldError(`${item.repo}/${file}: got ${received} of ${total} bytes`, "the connection dropped; the Job retries");
  }
  renameSync(partial, target);
}

/**
 * Downloads each item unless its folder already holds that exact repo@revision (a marker written
 * last, so an interrupted download starts again). Files land under a `.part` name, then rename.
 */
export async function downloadModels(items: readonly DownloadItem[], options: DownloadOptions = {}): Promise<DownloadReport> {
  const endpoint = (options.endpoint ?? process.env["HF_ENDPOINT"] ?? "https://huggingface.co").replace(/\/$/, "");
  const token = options.token ?? process.env["HF_TOKEN"];
  const downloaded: string[] = [];
  const skipped: string[] = [];
  for (const item of items) {
    const label = `${item.repo}@${item.revision}${item.file ? `#${item.file}` : ""}`;
    const markerPath = join(item.dir, MARKER);
    if (existsSync(markerPath)) {
      const marker = JSON.parse(readFileSync(markerPath, "utf8")) as { label?: string };
      if (marker.label === label) {
        options.progress?.(`${label}: already in ${item.dir}`);
        skipped.push(label);
        continue;
      }
    }
    const files = item.file ? [item.file] : await listFiles(endpoint, item, token);
    options.progress?.(`${label}: ${files.length} file(s) → ${item.dir}`);
    for (const file of files) {
      await fetchFile(endpoint, item, file, token, options);
      options.progress?.(`  ${file}: done`);
    }
    writeFileSync(markerPath, `${JSON.stringify({ label, files, at: new Date().toISOString() })}\n`);
    downloaded.push(label);
  }
  return { downloaded, skipped };
}
