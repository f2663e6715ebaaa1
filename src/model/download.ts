// `diatonic model-download`: what each engine pod's init container runs before the engine starts,
// so the base model is on the node first. Files resume and are checksummed (src/model/hub.ts); a
// folder shared by several pods (a ReadWriteMany volume) is filled by one of them at a time.
import { existsSync, mkdirSync, readFileSync, rmSync, statSync, utimesSync, writeFileSync } from "node:fs";
import { join, normalize } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { InputError, WorldError } from "../errors.ts";
import { downloadHubFile, listRepoFiles, type HubOptions } from "./hub.ts";

/** One thing to fetch: a whole Hugging Face repo at a revision, or one file of it, into `dir`. */
export interface DownloadItem {
  readonly dir: string;
  readonly repo: string;
  readonly revision: string;
  readonly file?: string;
}

export interface DownloadOptions extends HubOptions {
  /** Called with one line per event (start, progress every few seconds, done). */
  readonly progress?: (line: string) => void;
  /** @default 5000 */
  readonly progressIntervalMs?: number;
  /** A lock older than this is taken over (its holder died). @default 60000 */
  readonly staleLockMs?: number;
}

export interface DownloadReport {
  readonly downloaded: readonly string[];
  readonly skipped: readonly string[];
}

const MARKER = ".diatonic-download.json";
const LOCK = ".diatonic-download.lock";

/** Parses `DIR=REPO@REVISION[#FILE]`, the form the rendered init container passes. */
export function parseItem(text: string): DownloadItem {
  const match = /^([^=]+)=([\w.-]+\/[\w.-]+)@([^#\s]+)(?:#(.+))?$/.exec(text);
  if (!match?.[1] || !match[2] || !match[3]) {
    throw new InputError(
      `download item ${JSON.stringify(text)} is not DIR=REPO@REVISION[#FILE]`,
      "example: /models/llama=meta-llama/Meta-Llama-3-8B-Instruct@main",
    );
  }
  return { dir: match[1], repo: match[2], revision: match[3], ...(match[4] ? { file: match[4] } : {}) };
}

/** A path inside `dir`; a repo listing that tries to escape it is refused. */
function inside(dir: string, file: string): string {
  const path = normalize(join(dir, file));
  if (!path.startsWith(normalize(dir) + "/")) throw new WorldError(`refusing file ${JSON.stringify(file)}: it would land outside ${dir}`);
  return path;
}

function labelOf(item: DownloadItem): string {
  return `${item.repo}@${item.revision}${item.file ? `#${item.file}` : ""}`;
}

function isComplete(item: DownloadItem): boolean {
  const markerPath = join(item.dir, MARKER);
  if (!existsSync(markerPath)) return false;
  try {
    return (JSON.parse(readFileSync(markerPath, "utf8")) as { label?: string }).label === labelOf(item);
  } catch {
    return false;
  }
}

/**
 * Runs `fill` holding the folder's lock (a directory made atomically, kept fresh while held). A lock
 * left by a pod that died is taken over once stale; a waiter that sees the marker appear is done.
 */
async function underLock(item: DownloadItem, options: DownloadOptions, fill: () => Promise<void>): Promise<"filled" | "done-by-another"> {
  const lock = join(item.dir, LOCK);
  const staleMs = options.staleLockMs ?? 60_000;
  let told = false;
  for (;;) {
    try {
      mkdirSync(lock);
      break;
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== "EEXIST") throw error;
      if (isComplete(item)) return "done-by-another";
      const age = Date.now() - (statSync(lock, { throwIfNoEntry: false })?.mtimeMs ?? 0);
      if (age > staleMs) {
        options.progress?.(`${labelOf(item)}: taking over a lock left ${Math.round(age / 1000)} s ago`);
        rmSync(lock, { recursive: true, force: true });
        continue;
      }
      if (!told) options.progress?.(`${labelOf(item)}: another pod is downloading into ${item.dir}; waiting for it`);
      told = true;
      await sleep(Math.min(2000, staleMs / 4));
    }
  }
  const heartbeat = setInterval(
    () => {
      const now = new Date();
      try {
        utimesSync(lock, now, now);
      } catch {
        // The lock was taken over; the download still finishes, its files land by rename.
      }
    },
    Math.max(100, staleMs / 6),
  );
  try {
    // The holder before us may have finished between our last look and taking the lock.
    if (isComplete(item)) return "done-by-another";
    await fill();
    return "filled";
  } finally {
    clearInterval(heartbeat);
    rmSync(lock, { recursive: true, force: true });
  }
}

/**
 * Downloads each item unless its folder already holds that exact repo@revision (a marker written
 * last, so an interrupted download resumes where it stopped).
 */
export async function downloadModels(items: readonly DownloadItem[], options: DownloadOptions = {}): Promise<DownloadReport> {
  const downloaded: string[] = [];
  const skipped: string[] = [];
  for (const item of items) {
    const label = labelOf(item);
    if (isComplete(item)) {
      options.progress?.(`${label}: already in ${item.dir}`);
      skipped.push(label);
      continue;
    }
    mkdirSync(item.dir, { recursive: true });
    const outcome = await underLock(item, options, async () => {
      const files = await listRepoFiles(item, options);
      const total = files.reduce((sum, f) => sum + f.size, 0);
      options.progress?.(`${label}: ${files.length} file(s), ${(total / 1e6).toFixed(1)} MB → ${item.dir}`);
      for (const file of files) {
        const result = await downloadHubFile(item, file, inside(item.dir, file.path), {
          ...options,
          progress: (received, size) =>
            options.progress?.(
              `  ${file.path}: ${(received / 1e6).toFixed(1)} MB${size ? ` (${((received / size) * 100).toFixed(1)}%)` : ""}`,
            ),
        });
        options.progress?.(
          `  ${file.path}: done${result.resumedFrom > 0 ? ` (resumed at ${(result.resumedFrom / 1e6).toFixed(1)} MB)` : ""}, checksum verified`,
        );
      }
      writeFileSync(
        join(item.dir, MARKER),
        `${JSON.stringify({ label, files: files.map((f) => f.path), at: new Date().toISOString() })}\n`,
      );
    });
    if (outcome === "filled") downloaded.push(label);
    else {
      options.progress?.(`${label}: downloaded by another pod`);
      skipped.push(label);
    }
  }
  return { downloaded, skipped };
}
