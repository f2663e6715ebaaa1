import { resolve } from "node:path";
import { ExitCode, InputError, WorldError } from "../../errors.ts";
import { startGateway } from "../../gateway/server.ts";
import { parseFlags, portFlag, type Command, type CommandIO } from "../command.ts";

/** Time for streams in flight to finish after SIGTERM (the pod's grace period is 60 s). */
const DRAIN_MS = 50_000;

export const gatewayCommand: Command = {
  name: "gateway",
  usage: "diatonic gateway --config FILE [--host H] [--port N]",
  async run(argv: readonly string[], io: CommandIO) {
    const { values } = parseFlags(this, argv, {
      config: { type: "string" },
      host: { type: "string", default: "0.0.0.0" },
      port: { type: "string" },
    });
    if (values.config === undefined) throw new InputError("missing required flag --config", `usage: ${this.usage}`);
    const port = portFlag(values.port);
    let gateway;
    try {
      gateway = await startGateway({
        configFile: resolve(io.cwd, values.config),
        host: values.host,
        ...(port !== undefined ? { port } : {}),
      });
    } catch (error) {
      const code = (error as NodeJS.ErrnoException).code;
      if (code === "EADDRINUSE" || code === "EACCES" || code === "EADDRNOTAVAIL") {
        throw new WorldError(`cannot listen on ${values.host}:${port ?? "the configured port"}: ${code}`, "pick another --port or --host", {
          cause: error,
        });
      }
      throw error;
    }
    const running = gateway;
    await new Promise<void>((done) => {
      const stop = (signal: NodeJS.Signals) => {
        running.logger.info({ signal }, "gateway stopping");
        process.off("SIGINT", stop);
        process.off("SIGTERM", stop);
        void running.close(DRAIN_MS).then(done);
      };
      process.on("SIGINT", stop);
      process.on("SIGTERM", stop);
    });
    return ExitCode.ok;
  },
};
