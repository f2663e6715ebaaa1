// `diatonic engine` in a process of its own (llama.cpp, the given GGUF), as the routing benchmark runs
// three of them and the hung-engine test freezes one with SIGSTOP: resolves with its URL once it
// prints "engine ready at …".
import { spawn, type ChildProcess } from "node:child_process";
import { fileURLToPath } from "node:url";

const BIN = fileURLToPath(new URL("../../bin/diatonic.js", import.meta.url));

export interface EngineProcess {
  readonly url: string;
  readonly child: ChildProcess;
}

export async function startEngineProcess(options: {
  readonly modelPath: string;
  /** @default "127.0.0.1" */
  readonly host?: string;
  /** Flags after the model's, the host's and the port's (`--max-loras 2`, …). */
  readonly args?: readonly string[];
  /** Told of the process as it starts (to stop it if the caller is interrupted before it is ready). */
  readonly onSpawn?: (child: ChildProcess) => void;
}): Promise<EngineProcess> {
  const child = spawn(
    process.execPath,
    [
      BIN,
      "engine",
      "--model",
      options.modelPath,
      "--served-model-name",
      "tiny",
      "--host",
      options.host ?? "127.0.0.1",
      "--port",
      "0",
      ...(options.args ?? []),
    ],
    { stdio: ["ignore", "ignore", "pipe"], env: { ...process.env, NODE_NO_WARNINGS: "1" } },
  );
  options.onSpawn?.(child);
  const url = await new Promise<string>((resolve, reject) => {
    let text = "";
    child.stderr?.on("data", (chunk: Buffer) => {
      text += chunk.toString();
      const found = /engine ready at (http:\/\/\S+)\/v1/.exec(text);
      if (found?.[1]) resolve(found[1]);
    });
    child.once("exit", (code) => reject(new Error(`the engine exited ${String(code)}: ${text}`)));
  });
  return { url, child };
}
