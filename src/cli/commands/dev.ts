import { ExitCode, InputError } from "../../errors.ts";
import { devBanner, startDevStack } from "../../dev/stack.ts";
import { parseFlags, type Command, type CommandIO } from "../command.ts";

export const devCommand: Command = {
  name: "dev",
  summary: "Run the platform's local stack in one process: engine, gateway with the spec's adapters, embedded vector store",
  usage: "diatonic dev [--spec FILE] [--model GGUF] [--port N] [--api-key KEY] [--data DIR]",
  async run(argv: readonly string[], io: CommandIO) {
    const { values } = parseFlags(this, argv, {
      spec: { type: "string" },
      model: { type: "string" },
      port: { type: "string" },
      host: { type: "string" },
      "api-key": { type: "string" },
      data: { type: "string" },
    });
    let port: number | undefined;
    if (values.port !== undefined) {
      port = Number(values.port);
      if (!Number.isInteger(port) || port < 0 || port > 65535) throw new InputError(`--port ${JSON.stringify(values.port)} is not a port number`, "pass --port 0..65535");
    }
    const model = values.model ?? (io.env.DIATONIC_MODEL || undefined);
    if (model === undefined) io.stderr.write("diatonic dev: no --model or DIATONIC_MODEL: generating a tiny test model (its output is noise)\n");
    else io.stderr.write(`diatonic dev: loading ${model}…\n`);
    const stack = await startDevStack({
      cwd: io.cwd,
      ...(values.spec !== undefined ? { spec: values.spec } : {}),
      ...(model !== undefined ? { model } : {}),
      ...(port !== undefined ? { port } : {}),
      ...(values.host !== undefined ? { host: values.host } : {}),
      ...(values["api-key"] !== undefined ? { apiKey: values["api-key"] } : {}),
      ...(values.data !== undefined ? { dataDir: values.data } : {}),
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
