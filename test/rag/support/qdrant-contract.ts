// Starts the stand-in Qdrant (support/qdrant_contract.py) in a cached Python venv with qdrant-client,
// installed from PyPI on first use. See the Python file for what it checks.
import { spawn, type ChildProcess } from "node:child_process";
import { createInterface } from "node:readline";
import { fileURLToPath } from "node:url";
import { pythonWith } from "../../../src/python-venv.ts";

const SERVER = fileURLToPath(new URL("./qdrant_contract.py", import.meta.url));

export interface ContractQdrant {
  readonly url: string;
  violations(): Promise<unknown[]>;
  close(): void;
}

export async function startContractQdrant(apiKey: string): Promise<ContractQdrant> {
  const child: ChildProcess = spawn(pythonWith("qdrant-contract-venv", "qdrant-client==1.12.1", "qdrant_client"), [SERVER, apiKey], { stdio: ["ignore", "pipe", "inherit"] });
  const port = await new Promise<number>((resolve, reject) => {
    child.once("exit", (code) => reject(new Error(`the stand-in Qdrant exited with ${code}`)));
    createInterface({ input: child.stdout as NodeJS.ReadableStream }).once("line", (line) => resolve((JSON.parse(line) as { port: number }).port));
  });
  child.removeAllListeners("exit");
  const url = `http://127.0.0.1:${port}`;
  return {
    url,
    violations: async () => (await (await fetch(`${url}/__violations`)).json()) as unknown[],
    close: () => void child.kill("SIGTERM"),
  };
}
