// `diatonic adapter-agent`: the sidecar in each engine pod. It reads the adapter set from the
// mounted ConfigMap, follows kubelet's updates of it, keeps the engine's LoRAs equal to it, and
// answers GET /status, /healthz, /readyz and /metrics.
import { readFile } from "node:fs/promises";
import { createServer, type IncomingMessage, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import { pino, type Logger } from "pino";
import { WorldError } from "../errors.ts";
import { FileWatcher, textHash, type FileWatcherOptions } from "../file-watch.ts";
import type { HubOptions } from "../model/hub.ts";
import { AdapterAgent, type AdapterStatus } from "./agent.ts";
import { EngineClient } from "./engine-client.ts";
import { AgentMetrics } from "./metrics.ts";
import { AGENT_PORT } from "./port.ts";
import { PLACEMENT_PATH, PlacementMessage, type PlacementStatus } from "./placement.ts";
import { parseAdapterSet } from "./set.ts";
import { readBody } from "../http-body.ts";

export { AdapterAgent, type AdapterState, type AdapterStatus } from "./agent.ts";
export { EngineClient } from "./engine-client.ts";
export { parseAdapterSet, type AdapterSet, type AdapterSetEntry } from "./set.ts";

export { AGENT_PORT } from "./port.ts";
export { AgentMetrics } from "./metrics.ts";
export { PLACED_ELSEWHERE } from "./agent.ts";
export {
  PLACEMENT_PATH,
  PlacementBook,
  type PlacementAnswer,
  type PlacementFailure,
  type PlacementMessage,
  type PlacementStatus,
} from "./placement.ts";

export interface StartAdapterAgentOptions {
  /** The adapter set file (adapters.yaml of the engine's adapters ConfigMap). */
  readonly configFile: string;
  /** The engine's base URL, e.g. http://127.0.0.1:8000 */
  readonly engineUrl: string;
  /** Where LoRA files are kept. */
  readonly cacheDir: string;
  /** @default "0.0.0.0" */
  readonly host?: string;
  /** 0 picks a free port. @default 8001 */
  readonly port?: number;
  readonly hub?: HubOptions;
  /** @default a pino logger on stdout */
  readonly logger?: Logger;
  /** @default kubelet-friendly defaults (see FileWatcher) */
  readonly watch?: FileWatcherOptions;
  /** Passed to the reconciler (tests shorten them). */
  readonly resyncMs?: number;
  readonly backoffMs?: number;
  readonly placementGraceMs?: number;
}

export interface RunningAdapterAgent {
  readonly url: string;
  readonly agent: AdapterAgent;
  close(): Promise<void>;
}

/** GET /status's body. */
export interface AgentStatusBody {
  readonly engine: { readonly url: string; readonly ready: boolean; readonly problem?: string };
  readonly adapters: readonly AdapterStatus[];
  /** Which adapters the gateways place on this replica (placed: null while none does: every adapter is loaded). */
  readonly placement: PlacementStatus;
}

function sendJson(res: ServerResponse, status: number, body: unknown): void {
  const text = JSON.stringify(body);
  res.writeHead(status, { "content-type": "application/json", "content-length": Buffer.byteLength(text) }).end(text);
}

export async function startAdapterAgent(options: StartAdapterAgentOptions): Promise<RunningAdapterAgent> {
  const log = options.logger ?? pino({ base: { component: "adapter-agent" } });
  const first = await readFile(options.configFile, "utf8").catch((error: unknown) => {
    throw new WorldError(
      `cannot read the adapter set ${options.configFile}: ${(error as Error).message}`,
      "pass --config FILE: the adapters.yaml of the engine's adapters ConfigMap that `diatonic render` writes",
    );
  });
  const metrics = new AgentMetrics();
  const engine = new EngineClient({ url: options.engineUrl });
  const agent = new AdapterAgent({
    engine,
    cacheDir: options.cacheDir,
    hub: options.hub,
    log,
    events: metrics.events,
    resyncMs: options.resyncMs,
    backoffMs: options.backoffMs,
    placementGraceMs: options.placementGraceMs,
  });
  agent.update(parseAdapterSet(first, options.configFile));
  log.info({ adapters: agent.adapterSet?.adapters.length, engine: options.engineUrl }, "adapter set loaded");

  // A bad edit keeps the last good set: the engine keeps serving what it has.
  let lastError: string | undefined;
  const watcher = new FileWatcher(
    [options.configFile],
    () =>
      void readFile(options.configFile, "utf8")
        .then(
          (text) => {
            agent.update(parseAdapterSet(text, options.configFile));
            lastError = undefined;
            log.info({ adapters: agent.adapterSet?.adapters.map((a) => a.name) }, "adapter set changed");
          },
          (error: unknown) => log.error({ err: error }, "cannot read the adapter set"),
        )
        .catch((error: unknown) => {
          lastError = (error as Error).message;
          log.error({ err: error }, "the new adapter set is not valid; keeping the last good one");
        }),
    options.watch ?? { debounceMs: 200, pollMs: 2000 },
  );
  await watcher.prime(new Map([[options.configFile, textHash(first)]]));

  const served = await serveAdapterAgent({
    agent,
    metrics,
    engineUrl: options.engineUrl,
    host: options.host,
    port: options.port,
    log,
    configError: () => lastError,
  });
  let closing: Promise<void> | undefined;
  return {
    url: served.url,
    agent,
    close: () =>
      (closing ??= (async () => {
        watcher.close();
        await agent.close();
        await served.close();
      })()),
  };
}

export interface ServeAdapterAgentOptions {
  readonly agent: AdapterAgent;
  /** The metrics the agent reports its events to (AgentMetrics.events). */
  readonly metrics: AgentMetrics;
  readonly engineUrl: string;
  /** @default "0.0.0.0" */
  readonly host?: string;
  /** 0 picks a free port. @default 8001 */
  readonly port?: number;
  readonly log: Logger;
  /** Why the last edit of the adapter set was refused, for GET /status. */
  readonly configError?: () => string | undefined;
}

/**
 * The agent's HTTP side: PUT /v1/placement from the gateways, GET /status, /healthz, /readyz and
 * /metrics. The sidecar serves it for its agent, and `diatonic dev` for the agent in its process.
 */
export async function serveAdapterAgent(options: ServeAdapterAgentOptions): Promise<{ readonly url: string; close(): Promise<void> }> {
  const { agent, metrics, log } = options;
  /** PUT /v1/placement from a gateway: the adapters it places on this replica (see placement.ts). */
  const place = async (req: IncomingMessage, res: ServerResponse): Promise<void> => {
    if (req.method !== "PUT") {
      res.setHeader("allow", "PUT");
      sendJson(res, 405, { error: `${req.method ?? "?"} is not allowed on ${PLACEMENT_PATH}: PUT a placement` });
      return;
    }
    let text: string;
    try {
      text = (await readBody(req, 8 * 1024 * 1024, () => new Error("the placement is larger than 8 MiB"))).toString("utf8");
    } catch (error) {
      sendJson(res, 413, { error: (error as Error).message });
      return;
    }
    let body: unknown;
    try {
      body = JSON.parse(text);
    } catch (error) {
      sendJson(res, 400, { error: `the placement is not JSON: ${(error as Error).message}` });
      return;
    }
    const parsed = PlacementMessage.safeParse(body);
    if (!parsed.success) {
      const problems = parsed.error.issues.map((issue) => `${issue.path.map(String).join(".") || "(body)"}: ${issue.message}`);
      sendJson(res, 400, {
        error: `not a placement: ${problems.join("; ")}`,
        fix: 'send {"gateway": "<its name>", "adapters": ["<adapter>", ...], "ttlMs": 30000}',
      });
      return;
    }
    const result = agent.place(parsed.data);
    log.debug({ gateway: parsed.data.gateway, placed: result.placed.length, unknown: result.unknown.length }, "placement");
    sendJson(res, 200, result);
  };

  const server = createServer((req: IncomingMessage, res: ServerResponse) => {
    const path = (req.url ?? "/").split("?")[0];
    if (path === PLACEMENT_PATH) {
      void place(req, res);
      return;
    }
    if (req.method !== "GET" && req.method !== "HEAD") {
      sendJson(res, 405, { error: `${req.method ?? "?"} is not allowed` });
      return;
    }
    switch (path) {
      case "/status": {
        const problem = agent.engineStatus;
        const body: AgentStatusBody = {
          engine: { url: options.engineUrl, ready: problem === undefined, ...(problem !== undefined ? { problem } : {}) },
          adapters: agent.status(),
          placement: agent.placementStatus(),
        };
        const configError = options.configError?.();
        sendJson(res, 200, configError !== undefined ? { ...body, configError } : body);
        return;
      }
      case "/healthz":
        sendJson(res, 200, { status: "ok" });
        return;
      case "/readyz":
        // Ready once it has an adapter set; the engine's own readiness is the engine's probe.
        sendJson(res, agent.adapterSet !== undefined ? 200 : 503, { status: agent.adapterSet !== undefined ? "ready" : "no adapter set" });
        return;
      case "/metrics":
        metrics.engineUp.set(agent.engineStatus === undefined ? 1 : 0);
        void metrics.registry.metrics().then((text) => res.writeHead(200, { "content-type": metrics.registry.contentType }).end(text));
        return;
      default:
        sendJson(res, 404, { error: `no such path: ${path ?? ""}` });
    }
  });
  const host = options.host ?? "0.0.0.0";
  await new Promise<void>((resolve, reject) => {
    server.once("error", (error: Error) =>
      reject(new WorldError(`cannot listen on ${host}:${options.port ?? AGENT_PORT}: ${error.message}`, "pick another --port")),
    );
    server.listen(options.port ?? AGENT_PORT, host, () => resolve());
  });
  const address = server.address() as AddressInfo;
  const url = `http://${address.address === "0.0.0.0" ? "127.0.0.1" : address.address}:${address.port}`;
  log.info({ url }, "adapter agent listening");
  return {
    url,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}
