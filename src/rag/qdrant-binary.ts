// Where a Qdrant server binary comes from, for the RAG tests, `diatonic dev --vector-store qdrant` and
// the cluster's Qdrant image: $QDRANT_BIN, else ../shared/tools/qdrant beside the checkout, else the
// official release (pinned URL and checksum). Unpacked binaries are cached, checked against SHA256SUMS.
import { spawnSync } from "node:child_process";
import { createHash, randomUUID } from "node:crypto";
import {
  chmodSync,
  createReadStream,
  createWriteStream,
  existsSync,
  mkdirSync,
  readFileSync,
  readdirSync,
  renameSync,
  rmSync,
  statSync,
} from "node:fs";
import { homedir } from "node:os";
import { basename, dirname, join, resolve } from "node:path";
import { Readable, Transform } from "node:stream";
import { pipeline } from "node:stream/promises";
import { createGunzip } from "node:zlib";
import { x as extractTar } from "tar";
import { InputError, WorldError } from "../errors.ts";
import { PACKAGE_ROOT } from "../paths.ts";

/** The server version the platform is tested against. */
export const QDRANT_VERSION = "1.19.0";

/**
 * Qdrant's own release of QDRANT_VERSION for x86_64 Linux (glibc): a tar.gz holding one file, `qdrant`.
 * The checksum is the archive's, as published for that release asset.
 */
export const QDRANT_RELEASE = {
  version: QDRANT_VERSION,
  url: `https://github.com/qdrant/qdrant/releases/download/v${QDRANT_VERSION}/qdrant-x86_64-unknown-linux-gnu.tar.gz`,
  sha256: "e4405091f67d02f96fb941695ef8a6974e677632507ff7b04a3fcbb332ad9c19",
} as const;

export type QdrantRelease = { readonly version: string; readonly url: string; readonly sha256: string };

const FILE_NAME = /^qdrant-(\d+\.\d+\.\d+)-x86_64-linux(\.gz)?$/;

/** The checkout this module belongs to (src/rag → ../..; dist/rag → ../.. as well). */
export { PACKAGE_ROOT };

/** Where a checkout keeps its shared tools: ../shared/tools/qdrant beside the repository root. */
export const sharedQdrantDir = (repoRoot: string): string => join(repoRoot, "..", "shared", "tools", "qdrant");

export interface QdrantBinary {
  /** The file: `qdrant-X.Y.Z-x86_64-linux.gz` (or not gzipped). */
  readonly path: string;
  readonly version: string;
  readonly gzipped: boolean;
}

/**
 * Qdrant's binary: `binary` if given, else $QDRANT_BIN, else the one in <repoRoot>/../shared/tools/qdrant.
 * A folder is searched for `qdrant-X.Y.Z-x86_64-linux(.gz)`. Undefined when there is none.
 */
export function findQdrant(repoRoot: string, binary: string | undefined = process.env.QDRANT_BIN || undefined): QdrantBinary | undefined {
  const where = resolve(binary ?? sharedQdrantDir(repoRoot));
  if (!existsSync(where)) return undefined;
  const candidates = statSync(where).isDirectory()
    ? readdirSync(where)
        .filter((name) => FILE_NAME.test(name) || name === "qdrant")
        .map((name) => join(where, name))
    : [where];
  const path = candidates.sort().at(-1);
  if (path === undefined) return undefined;
  const named = FILE_NAME.exec(basename(path));
  if (named !== null) return { path, version: named[1] as string, gzipped: named[2] !== undefined };
  // A plain binary under another name says its version itself.
  const said = /(\d+\.\d+\.\d+)/.exec(spawnSync(path, ["--version"], { encoding: "utf8" }).stdout ?? "")?.[1];
  if (said === undefined)
    throw new InputError(
      `${path} is not a Qdrant binary (\`${path} --version\` names no version)`,
      "point QDRANT_BIN at qdrant-X.Y.Z-x86_64-linux(.gz), a Qdrant executable, or a folder holding one",
    );
  return { path, version: said, gzipped: false };
}

/** The checksum SHA256SUMS beside the binary gives for it (of the gunzipped file), if there is one. */
export function expectedSum(binary: QdrantBinary): string | undefined {
  const sums = join(dirname(binary.path), "SHA256SUMS");
  if (!existsSync(sums)) return undefined;
  const unpacked = basename(binary.path).replace(/\.gz$/, "");
  for (const line of readFileSync(sums, "utf8").split("\n")) {
    const [sum, file] = line.trim().split(/\s+/);
    if (sum !== undefined && file?.replace(/^\*/, "") === unpacked) return sum;
  }
  return undefined;
}

function hashing(hash: ReturnType<typeof createHash>): Transform {
  return new Transform({
    transform(chunk: Buffer, _encoding, done) {
      hash.update(chunk);
      done(null, chunk);
    },
  });
}

/** Copies (gunzipping if need be) the binary to `to`, executable; returns the sha256 of what was written. */
export async function unpackQdrant(binary: QdrantBinary, to: string): Promise<string> {
  const hash = createHash("sha256");
  if (binary.gzipped) await pipeline(createReadStream(binary.path), createGunzip(), hashing(hash), createWriteStream(to));
  else await pipeline(createReadStream(binary.path), hashing(hash), createWriteStream(to));
  chmodSync(to, 0o755);
  return hash.digest("hex");
}

/** A Qdrant server ready to run. */
export interface QdrantExecutable {
  readonly path: string;
  readonly version: string;
  /** Where it came from, for messages: `QDRANT_BIN=…`, the shared tools folder, or the release URL. */
  readonly origin: string;
}

export interface LocateQdrantOptions {
  /** @default this package's checkout */
  readonly repoRoot?: string;
  /** A binary, gzipped binary or folder. @default $QDRANT_BIN */
  readonly binary?: string;
  /** Where unpacked and downloaded binaries are kept. @default $XDG_CACHE_HOME/diatonic/qdrant (~/.cache/…) */
  readonly cacheDir?: string;
  /** The release to download when nothing is found; false: never download. @default QDRANT_RELEASE */
  readonly release?: QdrantRelease | false;
  /** Told once when a download starts. */
  readonly onDownload?: (url: string) => void;
  /** Calls a download off (Ctrl-C in `diatonic dev`): it rejects with the signal's reason, leaving nothing in the cache. */
  readonly signal?: AbortSignal;
}

/** No Qdrant binary could be had: the message names QDRANT_BIN, the paths looked at and the download's fate. */
export class QdrantNotFoundError extends WorldError {}

export const defaultQdrantCache = (): string => join(process.env.XDG_CACHE_HOME || join(homedir(), ".cache"), "diatonic", "qdrant");

/** Writes through a temporary name and renames, so a reader never sees half a binary (several tests may unpack at once). */
async function cached(dir: string, write: (to: string) => Promise<void>): Promise<string> {
  const target = join(dir, "qdrant");
  if (existsSync(target)) return target;
  mkdirSync(dir, { recursive: true });
  const temporary = join(dir, `.qdrant-${randomUUID()}`);
  try {
    await write(temporary);
    renameSync(temporary, target);
  } finally {
    rmSync(temporary, { force: true });
  }
  return target;
}

async function fromFile(binary: QdrantBinary, cacheDir: string, origin: string): Promise<QdrantExecutable> {
  const expected = expectedSum(binary);
  if (!binary.gzipped && expected === undefined) return { path: binary.path, version: binary.version, origin };
  const stat = statSync(binary.path);
  const key =
    expected ?? `unchecked-${createHash("sha256").update(`${binary.path}\0${stat.size}\0${stat.mtimeMs}`).digest("hex").slice(0, 16)}`;
  const path = await cached(join(cacheDir, `${binary.version}-${key}`), async (to) => {
    const sum = await unpackQdrant(binary, to);
    if (expected !== undefined && sum !== expected) {
      throw new WorldError(
        `${binary.path}: sha256 ${sum} after unpacking, SHA256SUMS beside it says ${expected}`,
        "the binary is damaged or not the one SHA256SUMS lists: copy it again",
      );
    }
  });
  return {
    path,
    version: binary.version,
    origin: expected !== undefined ? `${origin} (sha256 checked)` : `${origin} (no SHA256SUMS: not checked)`,
  };
}

/** Downloads the release archive, checks its sha256, and takes the `qdrant` file out of it. */
async function download(
  release: QdrantRelease,
  cacheDir: string,
  onDownload: ((url: string) => void) | undefined,
  signal: AbortSignal | undefined,
): Promise<QdrantExecutable> {
  const path = await cached(join(cacheDir, `${release.version}-release-${release.sha256.slice(0, 16)}`), async (to) => {
    onDownload?.(release.url);
    const timeout = AbortSignal.timeout(600_000);
    const response = await fetch(release.url, {
      redirect: "follow",
      signal: signal !== undefined ? AbortSignal.any([signal, timeout]) : timeout,
    });
    if (!response.ok || response.body === null) throw new Error(`${release.url} answered ${response.status}`);
    const archive = `${to}.tar.gz`;
    const hash = createHash("sha256");
    try {
      await pipeline(Readable.fromWeb(response.body), hashing(hash), createWriteStream(archive));
      const sum = hash.digest("hex");
      if (sum !== release.sha256) throw new Error(`${release.url}: the archive's sha256 is ${sum}, the pinned one is ${release.sha256}`);
      const unpacked = `${to}.d`;
      mkdirSync(unpacked);
      try {
        await extractTar({ file: archive, cwd: unpacked, filter: (entry) => basename(entry) === "qdrant" });
        const found = readdirSync(unpacked, { recursive: true, encoding: "utf8" }).find((entry) => basename(entry) === "qdrant");
        if (found === undefined) throw new Error(`${release.url}: the archive holds no file named qdrant`);
        renameSync(join(unpacked, found), to);
        chmodSync(to, 0o755);
      } finally {
        rmSync(unpacked, { recursive: true, force: true });
      }
    } finally {
      rmSync(archive, { force: true });
    }
  });
  return { path, version: release.version, origin: `${release.url} (sha256 checked)` };
}

/**
 * A runnable Qdrant: $QDRANT_BIN (a binary, a .gz or a folder), else ../shared/tools/qdrant beside the
 * checkout (gunzipped into the cache and checked against SHA256SUMS), else the official release
 * downloaded once into the cache. Throws QdrantNotFoundError naming each place it looked.
 */
export async function locateQdrant(options: LocateQdrantOptions = {}): Promise<QdrantExecutable> {
  const repoRoot = options.repoRoot ?? PACKAGE_ROOT;
  const cacheDir = options.cacheDir ?? defaultQdrantCache();
  const named = options.binary ?? (process.env.QDRANT_BIN || undefined);
  if (named !== undefined) {
    const binary = findQdrant(repoRoot, named);
    if (binary === undefined)
      throw new QdrantNotFoundError(
        `QDRANT_BIN names ${resolve(named)}, which does not exist or holds no qdrant-X.Y.Z-x86_64-linux(.gz)`,
        "point QDRANT_BIN at a Qdrant server binary, a .gz of one, or a folder holding one",
      );
    return fromFile(binary, cacheDir, `QDRANT_BIN=${named}`);
  }
  const shared = sharedQdrantDir(repoRoot);
  const binary = findQdrant(repoRoot, shared);
  if (binary !== undefined) return fromFile(binary, cacheDir, resolve(shared));
  const release = options.release ?? QDRANT_RELEASE;
  const looked = `QDRANT_BIN is not set and ${resolve(shared)} holds no Qdrant binary`;
  const fix = `set QDRANT_BIN to a Qdrant ${QDRANT_VERSION} server binary (or its .gz), or put qdrant-${QDRANT_VERSION}-x86_64-linux.gz in ${resolve(shared)}`;
  if (release === false) throw new QdrantNotFoundError(looked, fix);
  try {
    return await download(release, cacheDir, options.onDownload, options.signal);
  } catch (error) {
    // Called off: the caller's reason, not a "could not be downloaded".
    options.signal?.throwIfAborted();
    const cause = error instanceof Error ? ((error.cause as { code?: string } | undefined)?.code ?? error.message) : String(error);
    throw new QdrantNotFoundError(`${looked}, and the official release could not be downloaded from ${release.url}: ${cause}`, fix, {
      cause: error,
    });
  }
}
