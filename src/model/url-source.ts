// A file published at an HTTP(S) URL with its sha256: a LoRA as one GGUF or safetensors file, or a
// PEFT folder packed as .tar/.tar.gz/.tgz. Any object store, artifact repository or in-cluster web
// server can serve it; the sha256 pinned in the spec is what makes it safe to fetch.
import { mkdirSync, readdirSync, rmSync, statSync } from "node:fs";
import { basename, join } from "node:path";
import { x as extractTar } from "tar";
import { WorldError } from "../errors.ts";
import { shownUrl } from "./shown-url.ts";
import { downloadVerified } from "./verified-file.ts";

export interface UrlSource {
  readonly url: string;
  readonly sha256: string;
}

export interface UrlDownloadOptions {
  readonly progress?: (received: number, total: number | undefined) => void;
  readonly progressIntervalMs?: number;
  readonly signal?: AbortSignal;
  /** Sent as a bearer token when set (a private artifact server). */
  readonly token?: string;
}

const ARCHIVE = /\.(tar|tar\.gz|tgz)$/i;

/** The name the URL's file gets on disk: its last path segment. */
export function urlFileName(url: string): string {
  const name = decodeURIComponent(basename(new URL(url).pathname));
  if (name === "" || name === "." || name === "..")
    throw new WorldError(
      `${shownUrl(url)}: the URL names no file`,
      "give the URL of the file itself, e.g. https://host/loras/chatbot.tar.gz",
    );
  return name;
}

export function isArchiveUrl(url: string): boolean {
  return ARCHIVE.test(new URL(url).pathname);
}

/**
 * Fetches the URL into `dir` and returns the path to hand to the engine: the file itself, or for an
 * archive the folder it unpacks to (its one top-level folder, when it has exactly one).
 */
export async function downloadUrlSource(source: UrlSource, dir: string, options: UrlDownloadOptions = {}): Promise<string> {
  const name = urlFileName(source.url);
  const target = join(dir, name);
  const shown = shownUrl(source.url);
  mkdirSync(dir, { recursive: true });
  await downloadVerified({
    target,
    label: shown,
    expected: { sha256: source.sha256 },
    progress: options.progress,
    progressIntervalMs: options.progressIntervalMs,
    signal: options.signal,
    open: async (offset) => {
      let response: Response;
      try {
        response = await fetch(source.url, {
          headers: {
            ...(offset > 0 ? { range: `bytes=${offset}-` } : {}),
            ...(options.token ? { authorization: `Bearer ${options.token}` } : {}),
          },
          redirect: "follow",
          signal: options.signal,
        });
      } catch (error) {
        const cause = (error as Error).cause instanceof Error ? ((error as Error).cause as Error).message : (error as Error).message;
        throw new WorldError(`cannot fetch ${shown}: ${cause}`, "check the URL and that the pod may reach its host (egress, DNS)", {
          cause: error,
        });
      }
      if (response.status === 404) throw new WorldError(`${shown}: not found (HTTP 404)`, "check the URL in the spec");
      if (response.status === 401 || response.status === 403)
        throw new WorldError(
          `${shown}: access denied (HTTP ${response.status})`,
          "make the file readable to the platform, or serve it from a location it may read",
        );
      if (!response.ok || response.body === null)
        throw new WorldError(`${shown}: HTTP ${response.status}`, "retry later; downloads retry on their own");
      return { body: response.body, partial: response.status === 206 };
    },
  });
  if (!isArchiveUrl(source.url)) return target;
  const unpacked = join(dir, "unpacked");
  rmSync(unpacked, { recursive: true, force: true });
  mkdirSync(unpacked);
  try {
    // tar refuses absolute paths and `..` entries by default (preservePaths: false).
    await extractTar({ file: target, cwd: unpacked, strict: true });
  } catch (error) {
    throw new WorldError(
      `${shown}: not a readable tar archive: ${(error as Error).message}`,
      "publish the LoRA folder as .tar.gz (tar czf lora.tar.gz -C folder .)",
    );
  }
  rmSync(target, { force: true });
  const entries = readdirSync(unpacked);
  const only = entries.length === 1 && entries[0] !== undefined ? join(unpacked, entries[0]) : undefined;
  return only !== undefined && statSync(only).isDirectory() ? only : unpacked;
}
