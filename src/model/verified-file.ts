// Writes a download to disk so that it can resume and is checked before it counts: bytes go to
// `<file>.part` (appended to on a retry), are hashed as they come, and the file appears under its
// name only once its size and checksum match what the source published.
import { createHash, type Hash } from "node:crypto";
import { createReadStream, createWriteStream, existsSync, mkdirSync, renameSync, rmSync, statSync } from "node:fs";
import { dirname } from "node:path";
import { Readable, Transform } from "node:stream";
import { pipeline } from "node:stream/promises";
import type { ReadableStream as WebReadableStream } from "node:stream/web";
import { WorldError } from "../errors.ts";

/** What the source says the file is. Either checksum (or none, for sources that publish none). */
export interface Expected {
  readonly size?: number;
  /** Hex sha256 of the content (Hugging Face LFS files, URL sources). */
  readonly sha256?: string;
  /** Hex git blob sha1 (Hugging Face files kept in git, not LFS). */
  readonly gitSha1?: string;
}

export interface VerifiedFileOptions {
  /** Where the file lands. */
  readonly target: string;
  /** Its name in messages (`org/repo/adapter_model.safetensors`). */
  readonly label: string;
  readonly expected: Expected;
  /**
   * The content from byte `offset` on. Undefined `partial` in the result means the source ignored
   * the offset and sent everything (the part file is then started again).
   */
  readonly open: (offset: number) => Promise<{ body: ReadableStream<Uint8Array>; partial: boolean }>;
  /** Bytes so far and the total when known, every few seconds. */
  readonly progress?: (received: number, total: number | undefined) => void;
  /** @default 5000 */
  readonly progressIntervalMs?: number;
  readonly signal?: AbortSignal;
}

/** The content does not match the checksum its source publishes (the part file is dropped). */
export class ChecksumError extends WorldError {}

function hasherFor(expected: Expected): { hash: Hash; want: string; kind: string } | undefined {
  if (expected.sha256 !== undefined) return { hash: createHash("sha256"), want: expected.sha256.toLowerCase(), kind: "sha256" };
  if (expected.gitSha1 !== undefined && expected.size !== undefined) {
    // git hashes a blob as sha1("blob <size>\0" + content).
    const hash = createHash("sha1").update(`blob ${expected.size}\0`);
    return { hash, want: expected.gitSha1.toLowerCase(), kind: "git sha1" };
  }
  return undefined;
}

/** Downloads into `target` (resuming a `.part` left by an earlier try) and verifies it. */
export async function downloadVerified(options: VerifiedFileOptions): Promise<{ bytes: number; resumedFrom: number }> {
  const { target, expected, label } = options;
  const part = `${target}.part`;
  mkdirSync(dirname(target), { recursive: true });
  let offset = existsSync(part) ? statSync(part).size : 0;
  if (expected.size !== undefined && offset > expected.size) {
    rmSync(part, { force: true });
    offset = 0;
  }
  const checker = hasherFor(expected);
  // The bytes already on disk count toward the checksum: hash them before appending more.
  if (offset > 0 && checker !== undefined) {
    await pipeline(createReadStream(part), new Transform({ transform: (chunk: Buffer, _e, done) => (checker.hash.update(chunk), done()) }));
  }
  let received = offset;
  const resumedFrom = offset;
  if (expected.size === undefined || offset < expected.size) {
    const opened = await options.open(offset);
    if (offset > 0 && !opened.partial) {
      // The source sent the whole file again: start over with a fresh hash.
      rmSync(part, { force: true });
      return downloadVerified({ ...options, open: async () => opened });
    }
    const interval = options.progressIntervalMs ?? 5000;
    let lastReport = Date.now();
    const counter = new Transform({
      transform(chunk: Buffer, _encoding, callback) {
        received += chunk.length;
        checker?.hash.update(chunk);
        if (Date.now() - lastReport >= interval) {
          lastReport = Date.now();
          options.progress?.(received, expected.size);
        }
        callback(null, chunk);
      },
    });
    // The global ReadableStream and node:stream/web's are one class under two type declarations.
    await pipeline(
      Readable.fromWeb(opened.body as WebReadableStream<Uint8Array>),
      counter,
      createWriteStream(part, { flags: offset > 0 ? "a" : "w" }),
      { signal: options.signal },
    );
  }
  if (expected.size !== undefined && received !== expected.size) {
    // Short: keep the part file, the next try resumes it. Long: it cannot be right.
    if (received > expected.size) rmSync(part, { force: true });
    throw new WorldError(
      `${label}: got ${received} of ${expected.size} bytes`,
      "the connection dropped; the next try resumes where it stopped",
    );
  }
  if (checker !== undefined) {
    const got = checker.hash.digest("hex");
    if (got !== checker.want) {
      rmSync(part, { force: true });
      throw new ChecksumError(
        `${label}: ${checker.kind} is ${got}, but the source publishes ${checker.want}`,
        "the file is corrupt or was replaced at the source: check the pinned revision or sha256 in the spec",
      );
    }
  }
  renameSync(part, target);
  options.progress?.(received, expected.size);
  return { bytes: received, resumedFrom };
}
