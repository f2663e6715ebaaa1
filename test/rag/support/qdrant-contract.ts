// Starts the stand-in Qdrant (support/qdrant_contract.py) in a cached Python venv with qdrant-client,
// installed from PyPI on first use. See the Python file for what it checks.
import { execFileSync, spawn, type ChildProcess } from "node:child_process";
import { existsSync, mkdirSync } from "node:fs";
import { homedir } from "node:os";
import { join } from "node:path";
import { createInterface } from "node:readline";
import { fileURLToPath } from "node:url";

const QDRANT_CLIENT = "qdrant-client==1.12.1";
const VENV = join(process.env.XDG_CACHE_HOME ?? join(homedir(), ".cache"), "diatonic", "qdrant-contract-venv");
const SERVER = fileURLToPath(new URL("./qdrant_contract.py", import.meta.url));

export interface ContractQdrant {
  readonly url: string;
  violations(): Promise<unknown[]>;
  close(): void;
}

function python(): string {
  const bin = join(VENV, "bin", "python");
  const ready = (): boolean => {
    if (!existsSync(bin)) return false;
    try {
      execFileSync(bin, ["-c", "import qdrant_client"], { stdio: "ignore" });
      return true;
    } catch {
      return false;
    }
  };
  if (!ready()) {
    mkdirSync(VENV, { recursive: true });
    execFileSync("python3", ["-m", "venv", VENV], { stdio: "inherit" });
    execFileSync(join(VENV, "bin", "pip"), ["install", "--quiet", "--disable-pip-version-check", QDRANT_CLIENT], { stdio: "inherit", timeout: 600_000 });
  }
  return bin;
}

export async function startContractQdrant(apiKey: string): Promise<ContractQdrant> {
  const child: ChildProcess = spawn(python(), [SERVER, apiKey], { stdio: ["ignore", "pipe", "inherit"] });
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
