import { resolve } from "node:path";
import { pino } from "pino";
import { ExitCode, InputError } from "../../errors.ts";
import { parseFlags, portFlag, type Command, type CommandIO } from "../command.ts";

export const adapterAgentCommand: Command = {
  name: "adapter-agent",
  usage: "diatonic adapter-agent --config FILE --engine URL [--cache DIR] [--port N] [--host H]",
  async run(argv: readonly string[], io: CommandIO) {
    const { values } = parseFlags(this, argv, {
      config: { type: "string" },
      engine: { type: "string" },
      cache: { type: "string" },
      port: { type: "string" },
      host: { type: "string", default: "0.0.0.0" },
    });
    if (values.config === undefined) throw new InputError("missing required flag --config", `usage: ${this.usage}`);
    if (values.engine === undefined)
      throw new InputError(
        "missing required flag --engine",
        `pass the engine's base URL, e.g. --engine http://127.0.0.1:8000; usage: ${this.usage}`,
      );
    if (!URL.canParse(values.engine) || !/^https?:$/.test(new URL(values.engine).protocol)) {
      throw new InputError(
        `--engine ${JSON.stringify(values.engine)} is not an http(s) URL`,
        "pass the engine's base URL, e.g. --engine http://127.0.0.1:8000",
      );
    }
    const { startAdapterAgent, AGENT_PORT } = await import("../../adapters/index.ts");
    const logger = pino({ base: { component: "adapter-agent" } }, io.stdout);
    const running = await startAdapterAgent({
      configFile: resolve(io.cwd, values.config),
      engineUrl: values.engine,
      cacheDir: resolve(io.cwd, values.cache ?? ".diatonic/adapters"),
      host: values.host,
      port: portFlag(values.port, AGENT_PORT),
      logger,
    });
    io.stderr.write(`adapter agent at ${running.url}/status, following ${values.config} for ${values.engine}; Ctrl-C stops it\n`);
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
