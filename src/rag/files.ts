import { readdir, readFile, stat } from "node:fs/promises";
import { basename, join, relative, resolve, sep } from "node:path";
import { MAX_SOURCE_CHARS } from "../gateway/documents.ts";
import { formatOf, type DocumentFormat } from "./chunker.ts";
import { sourceNameProblem } from "./source-name.ts";

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
  /**
   * The most bytes one document may take in a request, JSON-encoded (`{source, text, format}`): a
   * file over it is refused. JSON escapes newlines, quotes, tabs and backslashes, so a file can fit as
   * bytes on disk and still not fit a request.
   */
  readonly maxDocumentBytes: number;
  /**
   * The source name of the one path given, instead of its own name: a folder's files are stored as
   * `NAME/<path inside it>`, a file as `NAME`. @default the folder's or file's own name
   */
  readonly as?: string;
}

const KB = 1024;
const MB = 1024 * KB;

/** A size as people read it: `3.9 MB`, `12.0 KB`, `900 bytes`. */
function sized(bytes: number): string {
  if (bytes >= MB) return `${(bytes / MB).toFixed(1)} MB`;
  return bytes >= KB ? `${(bytes / KB).toFixed(1)} KB` : `${bytes} bytes`;
}

/** Why a file's source name cannot be stored, if it cannot: what the gateway would refuse, found before anything is sent. */
function fileSourceProblem(source: string): string | undefined {
  const problem = sourceNameProblem(source);
  if (problem !== undefined) return `would be stored as ${JSON.stringify(source)}, which ${problem}: rename the file`;
  if (source.length > MAX_SOURCE_CHARS) {
    return `would be stored under a name of ${source.length} characters, and the gateway takes ${MAX_SOURCE_CHARS} at most: move it nearer the folder ingested, or ingest its own folder (or name it with a shorter --as NAME)`;
  }
  return undefined;
}

/** A source under a root: the root's name, then the file's path inside the root, with `/`. */
function sourceIn(rootName: string, root: string, file: string): string {
  const inside = relative(root, file);
  return inside === "" ? rootName : [rootName, ...inside.split(sep)].join("/");
}

/**
 * The files under a folder, in name order, hidden ones and node_modules left out. A symbolic link is
 * not followed but noted with why: its target may lie outside the folder (a planted
 * `notes.txt -> ~/.aws/credentials` would be stored, and cited to every user of the adapter, under
 * the link's name), or inside it, where the walk reads it under its own name. Given as a path of its
 * own, a link is read like any file or folder.
 */
async function walk(dir: string, out: string[], notes: Array<{ file: string; reason: string }>): Promise<void> {
  const entries = await readdir(dir, { withFileTypes: true });
  entries.sort((a, b) => a.name.localeCompare(b.name));
  for (const entry of entries) {
    if (entry.name.startsWith(".") || entry.name === "node_modules") continue;
    const path = join(dir, entry.name);
    if (entry.isSymbolicLink()) {
      const target = await stat(path).then(
        () => true,
        () => false,
      );
      notes.push({
        file: path,
        reason: target
          ? "a symbolic link, not followed inside a folder (its target may lie outside it): give the target as a path of its own to ingest it"
          : "a symbolic link to nothing (its target is gone)",
      });
    } else if (entry.isDirectory()) await walk(path, out, notes);
    else if (entry.isFile()) out.push(path);
  }
}

/** Text with a byte-order mark of UTF-16 (Windows' "Unicode" text); undefined for any other bytes. */
function utf16(bytes: Buffer): string | undefined {
  const le = bytes[0] === 0xff && bytes[1] === 0xfe;
  const be = bytes[0] === 0xfe && bytes[1] === 0xff;
  if (!le && !be) return undefined;
  return new TextDecoder(le ? "utf-16le" : "utf-16be", { fatal: true }).decode(bytes);
}

const utf8 = new TextDecoder("utf-8", { fatal: true });

/** Reads files and folders for ingest, checking every file before anything is sent. */
export async function collectDocuments(paths: readonly string[], options: CollectOptions): Promise<CollectedDocuments> {
  const documents: SourceDocument[] = [];
  const skipped: Array<{ path: string; reason: string }> = [];
  const problems: Array<{ path: string; message: string }> = [];
  const roots: string[] = [];
  // source → the file stored under it: the same file given twice is read once, two files under one name are refused.
  const seen = new Map<string, { readonly path: string; readonly shown: string }>();
  for (const given of paths) {
    const path = resolve(options.cwd, given);
    const rootName = options.as ?? basename(path);
    const nameProblem = rootName === "" ? "has no name of its own" : sourceNameProblem(rootName);
    if (nameProblem !== undefined) {
      problems.push({
        path: given,
        message: `${options.as !== undefined ? `--as ${JSON.stringify(options.as)}` : "its name"} ${nameProblem}: name it with --as NAME (citations show NAME/<file>)`,
      });
      continue;
    }
    let files: Array<{ path: string; explicit: boolean }>;
    try {
      const info = await stat(path);
      if (info.isDirectory()) {
        const found: string[] = [];
        const notes: Array<{ file: string; reason: string }> = [];
        await walk(path, found, notes);
        for (const note of notes) skipped.push({ path: join(given, relative(path, note.file)), reason: note.reason });
        files = found.map((file) => ({ path: file, explicit: false }));
        roots.push(`${rootName}/`);
      } else {
        files = [{ path, explicit: true }];
        roots.push(rootName);
      }
    } catch (error) {
      const code = (error as NodeJS.ErrnoException).code;
      problems.push({ path: given, message: code === "ENOENT" ? "does not exist" : `cannot be read: ${code ?? (error as Error).message}` });
      continue;
    }
    for (const file of files) {
      // Relative to the root given, never the machine's path: citations show it to every user.
      const source = sourceIn(rootName, path, file.path);
      // Messages name the file as the user can find it: the path given, then the path inside it.
      const shown = file.path === path ? given : join(given, relative(path, file.path));
      const before = seen.get(source);
      if (before?.path === file.path) continue;
      if (before !== undefined) {
        problems.push({
          path: shown,
          message: `would be stored as ${source}, like ${before.shown}: ingest one of them in another run, named with --as NAME`,
        });
        continue;
      }
      seen.set(source, { path: file.path, shown });
      const format = formatOf(file.path);
      if (format === undefined && !file.explicit) {
        skipped.push({ path: shown, reason: "not Markdown, text or HTML" });
        continue;
      }
      const sourceProblem = fileSourceProblem(source);
      if (sourceProblem !== undefined) {
        problems.push({ path: shown, message: sourceProblem });
        continue;
      }
      const tooLarge = `the limit is ${sized(options.maxDocumentBytes)} per file (the gateway's request size): split it into smaller files`;
      let bytes: Buffer;
      try {
        const info = await stat(file.path);
        // JSON never makes a file smaller, so one over the limit on disk is refused unread.
        if (info.size > options.maxDocumentBytes) {
          problems.push({ path: shown, message: `is ${sized(info.size)}; ${tooLarge}` });
          continue;
        }
        bytes = await readFile(file.path);
      } catch (error) {
        const code = (error as NodeJS.ErrnoException).code;
        problems.push({
          path: shown,
          message:
            code === "EACCES" || code === "EPERM"
              ? "cannot be read: permission denied"
              : `cannot be read: ${code ?? (error as Error).message}`,
        });
        continue;
      }
      let text: string;
      try {
        // UTF-16 is full of NUL bytes: known by its byte-order mark before the binary check.
        const wide = utf16(bytes);
        if (wide === undefined && bytes.subarray(0, 8192).includes(0)) {
          problems.push({ path: shown, message: "is a binary file, not text: convert it to Markdown, text or HTML first" });
          continue;
        }
        text = wide ?? utf8.decode(bytes);
      } catch {
        // No NUL bytes but not UTF-8: text in a legacy encoding, which iconv turns into UTF-8.
        problems.push({
          path: shown,
          message:
            "is not UTF-8 text (another encoding, such as Latin-1 or Windows-1252?): convert it first, e.g. iconv -f WINDOWS-1252 -t UTF-8",
        });
        continue;
      }
      if (text.trim() === "") {
        skipped.push({ path: shown, reason: "empty" });
        continue;
      }
      const document: SourceDocument = { source, format: format ?? "text", text };
      const encoded = Buffer.byteLength(JSON.stringify(document));
      if (encoded > options.maxDocumentBytes) {
        problems.push({
          path: shown,
          message: `is ${sized(bytes.length)}, and ${sized(encoded)} in a request (JSON escapes its newlines, quotes, tabs and backslashes); ${tooLarge}`,
        });
        continue;
      }
      documents.push(document);
    }
  }
  return { documents, skipped, problems, roots };
}

/** Whether a stored source falls under one of the ingested paths (so `--prune` may remove it). */
export function underRoots(source: string, roots: readonly string[]): boolean {
  return roots.some((root) => root === "" || source === root || (root.endsWith("/") && source.startsWith(root)));
}
