import { resolve } from "node:path";
import { pino } from "pino";
import type { LoraModule } from "../../engine/index.ts";
import { ExitCode, InputError } from "../../errors.ts";
import { parseFlags, portFlag, type Command, type CommandIO } from "../command.ts";

const usage =
  "diatonic engine --model GGUF [--lora NAME=GGUF ...] [--host H] [--port N] [--parallel N] [--max-queue N] [--max-loras N] [--max-lora-rank N] [--max-model-len N] [--served-model-name NAME] [--threads N] [--emulate-lora-load-ms N]\n" +
  "       diatonic engine make-test-model --out DIR [--seed N]";

function positiveInt(flag: string, value: string | undefined, fallback?: number): number | undefined {
  if (value === undefined) return fallback;
  const n = Number(value);
  if (!Number.isInteger(n) || n <= 0) {
    throw new InputError(`${flag} ${JSON.stringify(value)} is not a positive integer`, `usage: ${usage}`);
  }
  return n;
}

function parseLora(spec: string): LoraModule {
  const at = spec.indexOf("=");
  if (at <= 0 || at === spec.length - 1)
    throw new InputError(`--lora ${JSON.stringify(spec)} is not NAME=PATH`, "pass --lora chatbot=/models/chatbot-lora.gguf");
  return { name: spec.slice(0, at), path: spec.slice(at + 1) };
}

async function makeTestModel(argv: readonly string[], io: CommandIO): Promise<ExitCode> {
  const { values } = parseFlags({ name: "engine make-test-model", usage }, argv, { out: { type: "string" }, seed: { type: "string" } });
  if (values.out === undefined) throw new InputError("missing required flag --out", "pass --out DIR (the directory is created)");
  const { writeTestModels } = await import("../../engine/tiny/model.ts");
  const started = performance.now();
  const files = writeTestModels(resolve(io.cwd, values.out), { seed: positiveInt("--seed", values.seed, 1) });
  const ms = performance.now() - started;
  io.stdout.write(`model ${files.model}\n`);
  for (const lora of files.loras) io.stdout.write(`lora ${lora.name}=${lora.path}\n`);
  io.stderr.write(
    `wrote ${files.loras.length + 1} files (${(files.bytes / 1024).toFixed(0)} KiB) in ${ms.toFixed(0)} ms; random weights: the output is noise\n` +
      `serve them with: diatonic engine --model ${files.model} ${files.loras.map((l) => `--lora ${l.name}=${l.path}`).join(" ")}\n`,
  );
  return ExitCode.ok;
}

export const engineCommand: Command = {
  name: "engine",
  usage,
  async run(argv: readonly string[], io: CommandIO) {
    if (argv[0] === "make-test-model") return makeTestModel(argv.slice(1), io);
    const { values } = parseFlags(this, argv, {
      model: { type: "string" },
      lora: { type: "string", multiple: true },
      host: { type: "string", default: "127.0.0.1" },
      port: { type: "string" },
      parallel: { type: "string" },
      "max-queue": { type: "string" },
      "max-loras": { type: "string" },
      "max-lora-rank": { type: "string" },
      "max-model-len": { type: "string" },
      "served-model-name": { type: "string" },
      threads: { type: "string" },
      "emulate-lora-load-ms": { type: "string" },
    });
    const model = values.model ?? io.env["DIATONIC_MODEL"];
    if (model === undefined || model === "") {
      throw new InputError(
        "missing required flag --model (or DIATONIC_MODEL)",
        "pass --model FILE.gguf; `diatonic engine make-test-model --out DIR` writes a tiny one",
      );
    }
    const logger = pino({ base: { component: "engine" } }, io.stdout);
    // Loaded here, not at the top: node-llama-cpp reads its files at import, and images without it
    // (the gateway's) must still be able to run every other command.
    const { startEngine } = await import("../../engine/index.ts");
    const running = await startEngine({
      modelPath: resolve(io.cwd, model),
      loras: (values.lora ?? []).map(parseLora).map((l) => ({ name: l.name, path: resolve(io.cwd, l.path) })),
      host: values.host,
      port: portFlag(values.port, 8000),
      parallel: positiveInt("--parallel", values.parallel),
      maxQueue: positiveInt("--max-queue", values["max-queue"]),
      maxLoras: positiveInt("--max-loras", values["max-loras"]),
      maxLoraRank: positiveInt("--max-lora-rank", values["max-lora-rank"]),
      maxModelLen: positiveInt("--max-model-len", values["max-model-len"]),
      servedModelName: values["served-model-name"],
      threads: positiveInt("--threads", values.threads),
      emulatedLoraLoadMs: positiveInt("--emulate-lora-load-ms", values["emulate-lora-load-ms"]),
      logger,
    });
    io.stderr.write(`engine ready at ${running.url}/v1 (model ${running.engine.servedModelName}); Ctrl-C stops it\n`);
    await new Promise<void>((done) => {
      const stop = (): void => {
        process.off("SIGINT", stop);
        process.off("SIGTERM", stop);
        done();
      };
      process.on("SIGINT", stop);
      process.on("SIGTERM", stop);
    });
    await running.close();
    return ExitCode.ok;
  },
};
