import { readdir, readFile, stat } from "node:fs/promises";
import { isAbsolute, join, relative, resolve, sep } from "node:path";
import { formatOf, type DocumentFormat } from "./chunker.ts";

/** A file read for ingest: its source name (as citations show it), format and text. */
export interface SourceDocument {
  readonly source: string;
  readonly format: DocumentFormat;
  readonly text: string;
}

export interface CollectedDocuments {
  readonly documents: SourceDocument[];
  /** Files left out on purpose (empty, or of a kind a folder walk does not read), with why. */
  readonly skipped: Array<{ readonly path: string; readonly reason: string }>;
  /** Files that cannot be ingested as given: the whole ingest stops before writing anything. */
  readonly problems: Array<{ readonly path: string; readonly message: string }>;
  /** Source prefixes the paths cover: what `--prune` may remove. A folder gives `dir/`, a file itself. */
  readonly roots: string[];
}

export interface CollectOptions {
  readonly cwd: string;
  /** Larger files are refused. */
  readonly maxFileBytes: number;
}

const MB = 1024 * 1024;

function sourceOf(cwd: string, path: string): string {
  const rel = relative(cwd, path);
  const name = rel === "" || rel.startsWith("..") || isAbsolute(rel) ? path : rel;
  return name.split(sep).join("/");
}

async function walk(dir: string, out: string[]): Promise<void> {
  const entries = await readdir(dir, { withFileTypes: true });
  entries.sort((a, b) => a.name.localeCompare(b.name));
  for (const entry of entries) {
    if (entry.name.startsWith(".") || entry.name === "node_modules") continue;
    const path = join(dir, entry.name);
    if (entry.isDirectory()) await walk(path, out);
    else if (entry.isFile()) out.push(path);
  }
}

const utf8 = new TextDecoder("utf-8", { fatal: true });

/** Reads files and folders for ingest, checking every file before anything is sent. */
export async function collectDocuments(paths: readonly string[], options: CollectOptions): Promise<CollectedDocuments> {
  const documents: SourceDocument[] = [];
  const skipped: Array<{ path: string; reason: string }> = [];
  const problems: Array<{ path: string; message: string }> = [];
  const roots: string[] = [];
  const seen = new Set<string>();
  for (const given of paths) {
    const path = resolve(options.cwd, given);
    let files: Array<{ path: string; explicit: boolean }>;
    try {
      const info = await stat(path);
      if (info.isDirectory()) {
        const found: string[] = [];
        await walk(path, found);
        files = found.map((file) => ({ path: file, explicit: false }));
        const root = sourceOf(options.cwd, path);
        roots.push(root === "" ? "" : `${root}/`);
      } else {
        files = [{ path, explicit: true }];
        roots.push(sourceOf(options.cwd, path));
      }
    } catch (error) {
      const code = (error as NodeJS.ErrnoException).code;
      problems.push({ path: given, message: code === "ENOENT" ? "does not exist" : `cannot be read: ${code ?? (error as Error).message}` });
      continue;
    }
    for (const file of files) {
      const source = sourceOf(options.cwd, file.path);
      if (seen.has(source)) continue;
      seen.add(source);
      const format = formatOf(file.path);
      if (format === undefined && !file.explicit) {
        skipped.push({ path: source, reason: "not Markdown, text or HTML" });
        continue;
      }
      let bytes: Buffer;
      try {
        const info = await stat(file.path);
        if (info.size > options.maxFileBytes) {
          problems.push({ path: source, message: `is ${(info.size / MB).toFixed(1)} MB; the limit is ${(options.maxFileBytes / MB).toFixed(1)} MB per file (the gateway's request size): split it into smaller files` });
          continue;
        }
        bytes = await readFile(file.path);
      } catch (error) {
        const code = (error as NodeJS.ErrnoException).code;
        problems.push({ path: source, message: code === "EACCES" || code === "EPERM" ? "cannot be read: permission denied" : `cannot be read: ${code ?? (error as Error).message}` });
        continue;
      }
      if (bytes.subarray(0, 8192).includes(0)) {
        problems.push({ path: source, message: "is a binary file, not text: convert it to Markdown, text or HTML first" });
        continue;
      }
      let text: string;
      try {
        text = utf8.decode(bytes);
      } catch {
        // No NUL bytes but not UTF-8: text in a legacy encoding, which iconv turns into UTF-8.
        problems.push({ path: source, message: "is not UTF-8 text (another encoding, such as Latin-1 or Windows-1252?): convert it first, e.g. iconv -f WINDOWS-1252 -t UTF-8" });
        continue;
      }
      if (text.trim() === "") {
        skipped.push({ path: source, reason: "empty" });
        continue;
      }
      documents.push({ source, format: format ?? "text", text });
    }
  }
  return { documents, skipped, problems, roots };
}

/** Whether a stored source falls under one of the ingested paths (so `--prune` may remove it). */
export function underRoots(source: string, roots: readonly string[]): boolean {
  return roots.some((root) => root === "" || source === root || (root.endsWith("/") && source.startsWith(root)));
}
