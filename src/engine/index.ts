// The local engine: vLLM's API on llama.cpp, for machines without a GPU. `startEngine` is what the
// CLI and `diatonic dev` call; it listens at once (health answers 503 while the model loads) and
// resolves when the model is ready.
import type { AddressInfo } from "node:net";
import { pino, type Logger } from "pino";
import { WorldError } from "../errors.ts";
import { checkAdapterNames, checkModelFile, Engine, servedModelNameOf, type EngineOptions } from "./engine.ts";
import { createEngineServer } from "./server.ts";

export { Engine, type EngineOptions, type LoraModule, type ModelCard } from "./engine.ts";
export { ApiError } from "./api-error.ts";
export { TINY_MODEL_SHAPE, writeTestModels, type TestModelFiles } from "./tiny/model.ts";

export interface StartEngineOptions extends EngineOptions {
  /** @default "127.0.0.1" */
  readonly host?: string;
  /** 0 picks a free port. @default 8000 (vLLM's) */
  readonly port?: number;
  /** JSON logs go here. @default a pino logger on stdout at level info */
  readonly logger?: Logger;
}

export interface RunningEngine {
  /** Base URL without the /v1 suffix, e.g. http://127.0.0.1:8000 */
  readonly url: string;
  readonly engine: Engine;
  close(): Promise<void>;
}

export async function startEngine(options: StartEngineOptions): Promise<RunningEngine> {
  const log = options.logger ?? pino({ base: { component: "engine" } });
  checkAdapterNames(options.loras ?? [], servedModelNameOf(options));
  await checkModelFile(options.modelPath);
  let engine: Engine | undefined;
  const server = createEngineServer(() => engine, log);
  const host = options.host ?? "127.0.0.1";
  await new Promise<void>((resolve, reject) => {
    server.once("error", (error: NodeJS.ErrnoException) =>
      reject(
        new WorldError(`cannot listen on ${host}:${options.port ?? 8000}: ${error.message}`, "pick another --port or --host", {
          cause: error,
        }),
      ),
    );
    server.listen(options.port ?? 8000, host, () => resolve());
  });
  const address = server.address() as AddressInfo;
  const url = `http://${address.family === "IPv6" ? `[${address.address}]` : address.address}:${address.port}`;
  log.info({ url }, "engine listening; loading the model");
  const closeServer = (): Promise<void> =>
    new Promise((resolve) => {
      server.close(() => resolve());
      server.closeAllConnections();
    });
  try {
    engine = await Engine.load(options, log);
  } catch (error) {
    await closeServer();
    throw error;
  }
  const loaded = engine;
  log.info(
    {
      url,
      model: loaded.servedModelName,
      loras: loaded
        .models()
        .slice(1)
        .map((m) => m.id),
    },
    "engine ready",
  );
  let closing: Promise<void> | undefined;
  return {
    url,
    engine: loaded,
    close: () => {
      closing ??= (async () => {
        engine = undefined;
        await closeServer();
        await loaded.close();
        log.info("engine stopped");
      })();
      return closing;
    },
  };
}
