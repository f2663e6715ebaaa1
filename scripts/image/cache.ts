// Where built images are kept between runs, and the helpers that make their keys and run their
// tools. Everything is keyed by a hash of its inputs, so a changed input builds a new entry and an
// unchanged one is found again without any work.
import { spawn } from "node:child_process";
import { createHash } from "node:crypto";
import { createReadStream, readFileSync } from "node:fs";
import { homedir } from "node:os";
import { join } from "node:path";
import { WorldError } from "../../src/errors.ts";

/** `$DIATONIC_IMAGE_CACHE`, else `$XDG_CACHE_HOME/diatonic/images`, else `~/.cache/diatonic/images`. */
export function imageCacheDir(env: NodeJS.ProcessEnv = process.env): string {
  if (env.DIATONIC_IMAGE_CACHE) return env.DIATONIC_IMAGE_CACHE;
  return join(env.XDG_CACHE_HOME || join(homedir(), ".cache"), "diatonic", "images");
}

/** A hash over named parts: each part's name and value are framed, so `a`+`bc` differs from `ab`+`c`. */
export function inputHash(parts: ReadonlyArray<readonly [string, string | Buffer]>): string {
  const hash = createHash("sha256");
  for (const [name, value] of parts) {
    hash.update(`${name}\0${Buffer.byteLength(value)}\0`);
    hash.update(value);
  }
  return hash.digest("hex");
}

/**
 * The image builder's own files (names in scripts/image), as input-hash parts: the code that makes
 * an image is one of its inputs, so a changed builder never leaves an old image in the cache.
 */
export function builderSources(names: readonly string[]): [string, string][] {
  return names.map((name) => [`builder ${name}`, readFileSync(new URL(name, import.meta.url), "utf8")]);
}

export async function sha256File(path: string): Promise<string> {
  const hash = createHash("sha256");
  for await (const chunk of createReadStream(path)) hash.update(chunk as Buffer);
  return hash.digest("hex");
}

export const sha256 = (data: string | Buffer): string => createHash("sha256").update(data).digest("hex");

export interface RunResult {
  readonly stdout: string;
  readonly stderr: string;
}

/**
 * Runs a tool and resolves with its output; a non-zero exit is a WorldError naming the command, the
 * end of its output and `fix`. `onLine` sees each output line as it comes (for progress).
 */
export function runTool(command: string, args: readonly string[], fix: string, onLine?: (line: string) => void): Promise<RunResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(command, args, { stdio: ["ignore", "pipe", "pipe"] });
    let stdout = "";
    let stderr = "";
    let partial = "";
    const take = (chunk: Buffer, into: "stdout" | "stderr"): void => {
      const text = chunk.toString();
      if (into === "stdout") stdout += text;
      else stderr = (stderr + text).slice(-64_000);
      if (onLine === undefined) return;
      const lines = (partial + text).split("\n");
      partial = lines.pop() ?? "";
      for (const line of lines) onLine(line);
    };
    child.stdout.on("data", (chunk: Buffer) => take(chunk, "stdout"));
    child.stderr.on("data", (chunk: Buffer) => take(chunk, "stderr"));
    child.on("error", (error) => reject(new WorldError(`${command} could not start: ${error.message}`, fix)));
    child.on("close", (code, signal) => {
      if (code === 0) resolve({ stdout, stderr });
      else {
        const tail = `${stdout.slice(-2000)}${stderr.slice(-3000)}`.trim();
        reject(new WorldError(`${command} ${args.join(" ")} failed (${signal ?? `exit ${code}`}):\n${tail}`, fix));
      }
    });
  });
}

/** "12.3 s" or "850 ms": how long since `started` (a performance.now()). */
export function elapsed(started: number): string {
  const ms = performance.now() - started;
  return ms >= 1000 ? `${(ms / 1000).toFixed(1)} s` : `${Math.round(ms)} ms`;
}

export const mib = (bytes: number): string => `${(bytes / 2 ** 20).toFixed(1)} MiB`;
