// Loads llama.cpp through node-llama-cpp on the CPU, from the prebuilt binary that npm installed
// (@node-llama-cpp/linux-x64 and friends). It never builds from source or downloads at run time:
// a missing binary is a clear error, not a 10-minute compile on a laptop or in a pod.
import { availableParallelism } from "node:os";
import { getLlama, LlamaLogLevel, type Llama } from "node-llama-cpp";
import { WorldError } from "../errors.ts";

export interface LlamaRuntimeOptions {
  /** Threads llama.cpp may use. @default one core is left for the HTTP event loop: max(1, min(8, cores - 1)) */
  readonly threads?: number;
  /** Receives llama.cpp's warnings and errors. */
  readonly log?: (level: "warn" | "error", message: string) => void;
}

export function defaultThreads(): number {
  return Math.max(1, Math.min(8, availableParallelism() - 1));
}

export async function loadLlamaRuntime(options: LlamaRuntimeOptions = {}): Promise<Llama> {
  const threads = options.threads ?? defaultThreads();
  try {
    return await getLlama({
      gpu: false,
      build: "never",
      skipDownload: true,
      usePrebuiltBinaries: true,
      progressLogs: false,
      maxThreads: threads,
      logLevel: LlamaLogLevel.warn,
      logger: (level, message) => {
        const text = message.trim();
        if (text.length === 0) return;
        if (level === LlamaLogLevel.error || level === LlamaLogLevel.fatal) options.log?.("error", text);
        else if (level === LlamaLogLevel.warn) options.log?.("warn", text);
      },
    });
  } catch (error) {
    throw new WorldError(
      `cannot load llama.cpp's prebuilt CPU binary: ${error instanceof Error ? error.message : String(error)}`,
      "run `npm ci` so the optional package @node-llama-cpp/<platform> is installed (x64/arm64 Linux, macOS, Windows)",
      { cause: error },
    );
  }
}
