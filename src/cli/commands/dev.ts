import { ExitCode } from "../../errors.ts";
import { devBanner } from "../../dev/banner.ts";
import { DEV_VECTOR_STORES, startDevStack } from "../../dev/stack.ts";
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
    if (model === "tiny") io.stderr.write("diatonic dev: generating a tiny test model (its output is noise)\n");
    else if (model !== undefined) io.stderr.write(`diatonic dev: loading ${model}…\n`);
    const stack = await startDevStack({
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
      onDownload: (url) =>
        io.stderr.write(`diatonic dev: no Qdrant binary here (QDRANT_BIN, ../shared/tools/qdrant): downloading ${url}…\n`),
      onSpecChange: (line) => io.stderr.write(`diatonic dev: ${line}\n`),
      onProgress: (line) => io.stderr.write(`diatonic dev: ${line}\n`),
    });
    io.stdout.write(devBanner(stack, io.cwd));
    await new Promise<void>((done) => {
      const stop = (signal: NodeJS.Signals) => {
        process.off("SIGINT", stop);
        process.off("SIGTERM", stop);
        io.stderr.write(`diatonic dev: ${signal}: stopping\n`);
        void stack.close().then(done);
      };
      process.on("SIGINT", stop);
      process.on("SIGTERM", stop);
    });
    return ExitCode.ok;
  },
};
