import { ExitCode } from "../../errors.ts";
import { devBanner } from "../../dev/banner.ts";
import { DEV_VECTOR_STORES, startDevStack, type DevStack } from "../../dev/stack.ts";
import { oneOf, onOff, parseFlags, portFlag, type Command, type CommandIO } from "../command.ts";

export const devCommand: Command = {
  name: "dev",
  usage:
    "diatonic dev [--spec FILE] [--model GGUF|tiny] [--embeddings e5|engine] [--vector-store embedded|qdrant] [--port N] [--api-key KEY] [--data DIR] [--demo-loras|--no-demo-loras]",
  async run(argv: readonly string[], io: CommandIO) {
    const { values } = parseFlags(this, argv, {
      spec: { type: "string" },
      model: { type: "string" },
      embeddings: { type: "string" },
      port: { type: "string" },
      host: { type: "string" },
      "api-key": { type: "string" },
      data: { type: "string" },
      "vector-store": { type: "string" },
      "demo-loras": { type: "boolean" },
      "no-demo-loras": { type: "boolean" },
    });
    const port = portFlag(values.port);
    const demoLoras = onOff("--demo-loras", values["demo-loras"], values["no-demo-loras"]);
    const vectorStore = oneOf("--vector-store", values["vector-store"], DEV_VECTOR_STORES, "embedded");
    const model = values.model ?? (io.env.DIATONIC_MODEL || undefined);
    const embeddings = values.embeddings === undefined ? undefined : oneOf("--embeddings", values.embeddings, ["e5", "engine"] as const);
    // Installed before anything starts: a signal during start-up aborts it, and what started is closed.
    const stopping = new AbortController();
    const stopped = new Promise<void>((done) => stopping.signal.addEventListener("abort", () => done(), { once: true }));
    const stop = (signal: NodeJS.Signals) => {
      process.off("SIGINT", stop);
      process.off("SIGTERM", stop);
      io.stderr.write(`diatonic dev: ${signal}: stopping\n`);
      stopping.abort(new Error(`stopped by ${signal}`));
    };
    process.on("SIGINT", stop);
    process.on("SIGTERM", stop);
    try {
      let stack: DevStack;
      try {
        stack = await startDevStack({
          cwd: io.cwd,
          ...(values.spec !== undefined ? { spec: values.spec } : {}),
          ...(model !== undefined ? { model } : {}),
          ...(port !== undefined ? { port } : {}),
          ...(values.host !== undefined ? { host: values.host } : {}),
          ...(values["api-key"] !== undefined ? { apiKey: values["api-key"] } : {}),
          ...(values.data !== undefined ? { dataDir: values.data } : {}),
          ...(embeddings !== undefined ? { embeddings } : {}),
          vectorStore,
          ...(demoLoras !== undefined ? { demoLoras } : {}),
          signal: stopping.signal,
          onDownload: (url) =>
            io.stderr.write(`diatonic dev: no Qdrant binary here (QDRANT_BIN, ../shared/tools/qdrant): downloading ${url}…\n`),
          onSpecChange: (line) => io.stderr.write(`diatonic dev: ${line}\n`),
          onProgress: (line) => io.stderr.write(`diatonic dev: ${line}\n`),
        });
      } catch (error) {
        // Stopped while starting: startDevStack closed what had started.
        if (stopping.signal.aborted) return ExitCode.ok;
        throw error;
      }
      if (!stopping.signal.aborted) io.stdout.write(devBanner(stack, io.cwd));
      await stopped;
      await stack.close();
      return ExitCode.ok;
    } finally {
      process.off("SIGINT", stop);
      process.off("SIGTERM", stop);
    }
  },
};
