// An adapter's LoRA files in the pod's own cache: `<cache>/<adapter>/<digest>/`, complete once its
// marker is written (the last step), so a fetch cut short resumes and is never loaded half-done.
import { existsSync, readdirSync, readFileSync, renameSync, rmSync, statSync, writeFileSync } from "node:fs";
import { isAbsolute, join, normalize, resolve } from "node:path";
import { WorldError } from "../errors.ts";
import { downloadHubFile, listRepoFiles, type HubOptions } from "../model/hub.ts";
import { downloadUrlSource } from "../model/url-source.ts";
import { describeSource, sourceDigest, type AdapterSetEntry } from "./set.ts";

const MARKER = ".complete.json";

export interface FetchAdapterOptions {
  /** The pod's adapter cache. */
  readonly cacheDir: string;
  /** Where `path` sources are relative to (the spec file's folder in `diatonic dev`). */
  readonly baseDir: string;
  readonly hub?: HubOptions;
  readonly signal?: AbortSignal;
  /** Bytes so far of the whole adapter, and its total when known. */
  readonly progress?: (received: number, total: number | undefined) => void;
}

/** The folder an adapter's files of this source go to. */
export function adapterDir(cacheDir: string, entry: AdapterSetEntry): string {
  return join(cacheDir, entry.name, sourceDigest(entry.source));
}

/** A path below `dir` for a file the hub lists; a listing that climbs out is refused. */
function inside(dir: string, file: string): string {
  const path = normalize(join(dir, file));
  if (!path.startsWith(normalize(dir) + "/")) throw new WorldError(`refusing file ${JSON.stringify(file)}: it would land outside ${dir}`);
  return path;
}

/** Fetches what is missing and returns the path to hand to the engine as `lora_path`. */
export async function fetchAdapter(entry: AdapterSetEntry, options: FetchAdapterOptions): Promise<string> {
  const source = entry.source;
  if ("path" in source) {
    const path = isAbsolute(source.path) ? source.path : resolve(options.baseDir, source.path);
    if (!existsSync(path))
      throw new WorldError(
        `${path} (adapter ${entry.name}'s lora.source.path) does not exist`,
        "fix the path in the spec: it is relative to the spec file",
      );
    return path;
  }
  const dir = adapterDir(options.cacheDir, entry);
  const marker = join(dir, MARKER);
  if (existsSync(marker)) return (JSON.parse(readFileSync(marker, "utf8")) as { path: string }).path;
  let loraPath: string;
  if ("url" in source) {
    loraPath = await downloadUrlSource(source.url, dir, { signal: options.signal, progress: options.progress, progressIntervalMs: 1000 });
  } else {
    const hf = source.huggingFace;
    const files = await listRepoFiles(hf, { ...options.hub, signal: options.signal });
    const total = files.reduce((sum, file) => sum + file.size, 0);
    let done = 0;
    for (const file of files) {
      await downloadHubFile(hf, file, inside(dir, file.path), {
        ...options.hub,
        signal: options.signal,
        progressIntervalMs: 1000,
        progress: (received) => options.progress?.(done + received, total),
      });
      done += file.size;
    }
    loraPath = hf.file !== undefined ? join(dir, hf.file) : dir;
  }
  const temp = `${marker}.tmp`;
  writeFileSync(temp, `${JSON.stringify({ source: describeSource(source), path: loraPath, at: new Date().toISOString() })}\n`);
  renameSync(temp, marker);
  return loraPath;
}

/** Removes an adapter's cached files but those of `keep` (a digest), or all of them. */
export function pruneAdapterCache(cacheDir: string, name: string, keep?: string): void {
  const dir = join(cacheDir, name);
  if (!existsSync(dir) || !statSync(dir).isDirectory()) return;
  for (const digest of readdirSync(dir)) if (digest !== keep) rmSync(join(dir, digest), { recursive: true, force: true });
  if (keep === undefined) rmSync(dir, { recursive: true, force: true });
}

/** Cache folders of adapters no longer in the set (left by an earlier run of the agent). */
export function staleCacheEntries(cacheDir: string, names: ReadonlySet<string>): string[] {
  if (!existsSync(cacheDir)) return [];
  return readdirSync(cacheDir).filter((name) => !names.has(name));
}
