// An image layer: a gzipped tar of chosen paths under a root folder, with the owners, modes and
// links as they are on disk and nothing of this machine's clock or order, so that the same files
// give the same digest. Written by GNU tar (it knows hard links, long names and special modes);
// hashed here while it streams.
import { spawn } from "node:child_process";
import { createHash } from "node:crypto";
import { createWriteStream, readdirSync, renameSync, rmSync } from "node:fs";
import { join } from "node:path";
import { Transform } from "node:stream";
import { pipeline } from "node:stream/promises";
import { createGzip } from "node:zlib";
import { WorldError } from "../../src/errors.ts";

export interface LayerBlob {
  /** The gzipped tar. */
  readonly path: string;
  /** `sha256:…` of the gzipped tar: the manifest's layer digest. */
  readonly digest: string;
  /** `sha256:…` of the uncompressed tar: the config's rootfs.diff_ids entry. */
  readonly diffId: string;
  /** Bytes of the gzipped tar. */
  readonly size: number;
  /** Bytes of the uncompressed tar. */
  readonly tarSize: number;
}

/** What to do with a path (relative to the root, no leading slash): put it in, leave it and all below it out, or only look below it. */
export type EntryChoice = "emit" | "skip" | "descend";

/**
 * The paths under `root` that `choose` keeps, sorted bytewise (so parents come before children and
 * the order never depends on the file system). Symbolic links are entries, never followed.
 */
export function layerEntries(root: string, choose: (path: string, isDirectory: boolean) => EntryChoice): string[] {
  const out: string[] = [];
  const walk = (dir: string, prefix: string): void => {
    for (const entry of readdirSync(dir, { withFileTypes: true })) {
      const path = prefix === "" ? entry.name : `${prefix}/${entry.name}`;
      const choice = choose(path, entry.isDirectory());
      if (choice === "skip") continue;
      if (choice === "emit") out.push(path);
      if (entry.isDirectory()) walk(join(dir, entry.name), path);
    }
  };
  walk(root, "");
  return out.sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
}

/** Every path under `root`. */
export const allEntries = (): EntryChoice => "emit";

/** Fixed for every entry: layers differ only when their files do. */
export const LAYER_MTIME = 0;

const TAR_ARGS = [
  "--create",
  "--file=-",
  "--no-recursion",
  "--null",
  "--files-from=-",
  "--numeric-owner",
  "--format=posix",
  // PAX headers named without tar's pid, and without access and change times.
  "--pax-option=exthdr.name=%d/PaxHeaders/%f,delete=atime,delete=ctime",
  `--mtime=@${LAYER_MTIME}`,
] as const;

function hashing(hash: ReturnType<typeof createHash>, count: { bytes: number }): Transform {
  return new Transform({
    transform(chunk: Buffer, _encoding, done) {
      hash.update(chunk);
      count.bytes += chunk.length;
      done(null, chunk);
    },
  });
}

/** Writes `entries` of `root` as a gzipped tar at `out` (through a temp file), with both digests. */
export async function writeLayer(root: string, entries: readonly string[], out: string): Promise<LayerBlob> {
  const temp = `${out}.tmp-${process.pid}`;
  const tar = spawn("tar", ["--directory", root, ...TAR_ARGS], { stdio: ["pipe", "pipe", "pipe"] });
  let stderr = "";
  tar.stderr.on("data", (chunk: Buffer) => (stderr = (stderr + chunk.toString()).slice(-4000)));
  const exited = new Promise<number | null>((resolve, reject) => {
    tar.on("error", reject);
    tar.on("close", resolve);
  });
  tar.stdin.end(entries.map((entry) => `${entry}\0`).join(""));
  const uncompressed = createHash("sha256");
  const compressed = createHash("sha256");
  const tarBytes = { bytes: 0 };
  const gzBytes = { bytes: 0 };
  try {
    // gzip's header carries no name or time when written by zlib, so it adds nothing variable.
    await pipeline(
      tar.stdout,
      hashing(uncompressed, tarBytes),
      createGzip({ level: 6 }),
      hashing(compressed, gzBytes),
      createWriteStream(temp),
    );
    const code = await exited;
    if (code !== 0)
      throw new WorldError(
        `tar of ${root} into ${out} failed (exit ${code}): ${stderr.trim()}`,
        "check that GNU tar is installed and the folder is readable",
      );
    renameSync(temp, out);
  } catch (error) {
    rmSync(temp, { force: true });
    throw error;
  }
  return {
    path: out,
    digest: `sha256:${compressed.digest("hex")}`,
    diffId: `sha256:${uncompressed.digest("hex")}`,
    size: gzBytes.bytes,
    tarSize: tarBytes.bytes,
  };
}
