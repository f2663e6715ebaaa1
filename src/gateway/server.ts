import { randomBytes } from "node:crypto";
import { createServer, type IncomingHttpHeaders, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import { hostname } from "node:os";
import type { Logger } from "pino";
import { ADMIN_PREFIX, handleAdmin, SESSION_PATH } from "./admin.ts";
import { authenticate, mayUse, presentsKey, requireScope, KeyStore, type Principal } from "./auth.ts";
import type { GatewayConfig } from "./config.ts";
import { FileWatcher, type FileWatcherOptions } from "../file-watch.ts";
import { readGatewayConfig } from "./config-watch.ts";
import { CONSOLE_PATH, ConsoleAssets } from "./console.ts";
import { badRequest, GatewayError, methodNotAllowed, notFound, sendError, toGatewayError, ErrorType } from "./errors.ts";
import { accessLogFor, createGatewayLogger } from "./logging.ts";
import { MetricsHistory, type MetricsHistoryOptions } from "./history.ts";
import { GatewayMetrics } from "./metrics.ts";
import { handleInference, type Exchange, type ProxyContext } from "./proxy.ts";
import { RecentErrors } from "./recent-errors.ts";
import type { InferenceEndpoint } from "./request.ts";
import type { Retriever } from "./retriever.ts";
import { handleDocuments, type DocumentService } from "./documents.ts";
import { poolTransport } from "./embeddings-transport.ts";
import { Runtime, type ModelTarget, type Snapshot } from "./runtime.ts";

export interface GatewayOptions {
  /** The config file (the `gateway` ConfigMap's config.yaml); watched and reloaded when it changes. */
  readonly configFile?: string;
  /** A config given directly (in-process use): not watched. One of `configFile` and `config` is needed. */
  readonly config?: GatewayConfig;
  /** @default "127.0.0.1" */
  readonly host?: string;
  /** 0 picks a free port. @default config.server.port */
  readonly port?: number;
  /** Retrieval for RAG adapters. Without one, RAG adapters follow their `onFailure` policy. */
  readonly retriever?: Retriever;
  /**
   * The admin API's documents back end. Without it and without `retriever`, both come from the RAG
   * module for the config's `vectorStore` and `embeddings`.
   */
  readonly documents?: DocumentService;
  /** @default JSON lines on stdout at `info`, batched (see createGatewayLogger) */
  readonly logger?: Logger;
  /** How the config and keys files are watched; `false` turns watching off. @default {} */
  readonly watch?: FileWatcherOptions | false;
  /** Node's process metrics on /metrics. @default true */
  readonly defaultMetrics?: boolean;
  /** How host names become addresses (counting the replicas that share the rate limits). @default DNS lookup of every address */
  readonly resolveHost?: (host: string) => Promise<readonly string[]>;
  /** The built web console served at /console/. @default console/dist beside the package (CONSOLE_DIR) */
  readonly consoleDir?: string;
  /** The in-memory history of the request metrics behind the console's charts. @default every 5 s, 15 minutes */
  readonly history?: Omit<MetricsHistoryOptions, "replica">;
}

export interface RunningGateway {
  readonly url: string;
  readonly port: number;
  readonly metrics: GatewayMetrics;
  /** The sampled request metrics the console charts (GET /v1/admin/metrics). */
  readonly history: MetricsHistory;
  readonly logger: Logger;
  /**
   * Loads the config and keys again (or applies `config`, for a gateway given its config directly);
   * resolves false (old config kept, error logged) when they are invalid.
   */
  reload(config?: GatewayConfig): Promise<boolean>;
  /** The configuration in use. */
  config(): GatewayConfig;
  /** Stops listening; open requests get `graceMs` to finish before their connections are closed. @default 0 */
  close(graceMs?: number): Promise<void>;
}

function keysFileOf(config: GatewayConfig): string | undefined {
  return config.auth.mode === "disabled" ? undefined : config.auth.keysFile;
}

/** A caller's x-request-id is kept for tracing only when it is short and plain. */
const REQUEST_ID = /^[\w.:-]{1,128}$/;

/**
 * Request ids the gateway makes: random per process, then counted (`3f9c2a71d04e-1b`); unique across
 * replicas and restarts for tracing, at a fraction of a UUID's cost per request.
 */
function requestIds(): () => string {
  const prefix = randomBytes(6).toString("hex");
  let count = 0;
  return () => `${prefix}-${(++count).toString(36)}`;
}

/** What the read-only endpoints answer to: HEAD is GET without the body (Node leaves it out). */
const READ_METHODS = "GET, HEAD";

type Route =
  | { readonly kind: "inference"; readonly endpoint: InferenceEndpoint }
  | { readonly kind: "models"; readonly id: string | undefined }
  | { readonly kind: "none" };

const INFERENCE_ROUTES: ReadonlyMap<string, Route> = new Map([
  ["/v1/chat/completions", { kind: "inference", endpoint: "chat" }],
  ["/v1/completions", { kind: "inference", endpoint: "completions" }],
  ["/v1/embeddings", { kind: "inference", endpoint: "embeddings" }],
]);

/** A percent-encoded path segment, decoded; malformed encoding is the caller's mistake (400), not ours. */
/** Who sent a request, by the current config's auth mode, keys and the host names keyless callers may use. */
function callerOf(snapshot: Snapshot, headers: IncomingHttpHeaders): Principal {
  return authenticate(snapshot.config.auth.mode, snapshot.keys, headers, snapshot.config.server.keylessHosts ?? []);
}

function decodeSegment(segment: string): string {
  try {
    return decodeURIComponent(segment);
  } catch {
    throw badRequest(
      `the path segment ${JSON.stringify(segment)} is not valid percent-encoding (RFC 3986): encode it with encodeURIComponent`,
      null,
      "invalid_path",
    );
  }
}

/** `method` is the request's, with HEAD already read as GET. */
function routeOf(method: string, path: string): Route | GatewayError {
  const inference = INFERENCE_ROUTES.get(path);
  if (inference !== undefined) return method === "POST" ? inference : methodNotAllowed(path, "POST");
  if (path === "/v1/models" || path.startsWith("/v1/models/")) {
    if (method !== "GET") return methodNotAllowed(path, READ_METHODS);
    return { kind: "models", id: path === "/v1/models" ? undefined : decodeSegment(path.slice("/v1/models/".length)) };
  }
  return { kind: "none" };
}

function modelCard(snapshot: Snapshot, target: ModelTarget): Record<string, unknown> {
  const created = Math.floor(snapshot.loadedAt.getTime() / 1000);
  const owner = snapshot.config.platform;
  if (target.kind === "base") return { id: target.name, object: "model", created, owned_by: owner, root: target.name, parent: null };
  return {
    id: target.name,
    object: "model",
    created,
    owned_by: owner,
    root: target.upstreamModel,
    parent: snapshot.config.baseModel.name,
    description: target.adapter?.description ?? "",
  };
}

function sendJson(res: ServerResponse, status: number, value: unknown, headers: Record<string, string> = {}): void {
  const body = JSON.stringify(value);
  res.writeHead(status, { "content-type": "application/json", "content-length": Buffer.byteLength(body), ...headers });
  res.end(body);
}

/** Starts the gateway: loads and checks the config, finds the upstreams, listens. */
export async function startGateway(options: GatewayOptions): Promise<RunningGateway> {
  const logger = options.logger ?? createGatewayLogger();
  const accessLog = accessLogFor(logger);
  const nextRequestId = requestIds();
  const metrics = new GatewayMetrics({ defaultMetrics: options.defaultMetrics ?? true });
  const runtime = new Runtime(metrics, logger, options.resolveHost);
  const startedAt = new Date();
  const replica = hostname();
  const history = new MetricsHistory(metrics, { ...options.history, replica });
  const recentErrors = new RecentErrors();
  const consoleAssets = ConsoleAssets.load(options.consoleDir);

  /** The config and keys, with the hashes of the files as read (the watcher's baseline). */
  let given = options.config;
  const load = async (): Promise<{ config: GatewayConfig; keys: KeyStore; hashes: Map<string, string> }> => {
    const hashes = new Map<string, string>();
    let config = given;
    if (options.configFile !== undefined) {
      const read = await readGatewayConfig(options.configFile);
      config = read.config;
      hashes.set(options.configFile, read.hash);
    }
    if (config === undefined) throw new Error("startGateway needs configFile or config");
    const keys = await KeyStore.load(config);
    const keysFile = keysFileOf(config);
    if (keysFile !== undefined && keys.sourceHash !== undefined) hashes.set(keysFile, keys.sourceHash);
    return { config, keys, hashes };
  };
  /** Keys required and none there: every inference call will be 401 (an empty or unfilled Secret). */
  const warnIfKeyless = (config: GatewayConfig, keys: KeyStore) => {
    if (config.auth.mode !== "required" || keys.size > 0) return;
    logger.warn(
      { keysFile: keysFileOf(config) },
      "auth is required and the keys file holds no keys: every API call gets 401 until it has one (the keys Secret's keys.yaml)",
    );
  };
  const first = await load();
  await runtime.apply(first.config, first.keys);
  warnIfKeyless(first.config, first.keys);

  let reloading: Promise<boolean> = Promise.resolve(true);
  const reload = (config?: GatewayConfig): Promise<boolean> => {
    if (config !== undefined) given = config;
    reloading = reloading.then(async () => {
      try {
        const next = await load();
        const previous = runtime.current?.config;
        await runtime.apply(next.config, next.keys);
        metrics.configReloads.inc({ result: "ok" });
        logger.info({ adapters: next.config.adapters.length, keys: next.keys.size }, "gateway config reloaded");
        warnIfKeyless(next.config, next.keys);
        if (previous !== undefined && previous.server.port !== next.config.server.port && options.port === undefined) {
          logger.warn(
            { port: previous.server.port, wanted: next.config.server.port },
            "server.port changed: it takes effect at the next restart",
          );
        }
        if (watcher !== undefined && keysFileOf(next.config) !== keysFileOf(previous ?? next.config))
          await watchFiles(next.config, next.hashes);
        return true;
      } catch (error) {
        metrics.configReloads.inc({ result: "rejected" });
        logger.error({ err: { message: (error as Error).message } }, "new gateway config rejected; the old one keeps serving");
        return false;
      }
    });
    return reloading;
  };

  let watcher: FileWatcher | undefined;
  const configFile = options.configFile;
  const watchOptions = options.watch;
  // The config file and the keys file it names; watched again when a reload names another keys file.
  async function watchFiles(config: GatewayConfig, loaded: ReadonlyMap<string, string>): Promise<void> {
    if (configFile === undefined || watchOptions === false) return;
    const keysFile = keysFileOf(config);
    const next = new FileWatcher([configFile, ...(keysFile !== undefined ? [keysFile] : [])], () => void reload(), watchOptions ?? {});
    await next.prime(loaded);
    watcher?.close();
    watcher = next;
  }
  await watchFiles(first.config, first.hashes);

  // Loaded only when needed: the RAG module brings a native vector store with it.
  const rag =
    options.retriever === undefined && options.documents === undefined && first.config.vectorStore !== undefined
      ? (await import("../rag/service.ts")).ragServiceFor(
          first.config,
          poolTransport(() => runtime.current?.embeddings?.upstream),
        )
      : undefined;
  const retriever = options.retriever ?? rag;
  const documents = options.documents ?? rag;
  const server: Server = createServer((req, res) => {
    void handle(req, res);
  });
  // Longer than the usual load balancer idle timeout, so the balancer closes idle connections first.
  server.keepAliveTimeout = 65_000;
  server.headersTimeout = 66_000;
  server.requestTimeout = 0;

  /** /healthz, /readyz and /metrics: unauthenticated, unlogged (probes and scrapers call them often). */
  async function probe(method: string, path: string, res: ServerResponse): Promise<void> {
    if (method !== "GET") return sendError(res, methodNotAllowed(path, READ_METHODS));
    if (path === "/healthz") return sendJson(res, 200, { status: "ok" });
    if (path === "/readyz") {
      const { ready, problems, degraded } = runtime.readiness();
      const status = !ready ? "not ready" : degraded.length > 0 ? "degraded" : "ready";
      return sendJson(res, ready ? 200 : 503, { status, problems, degraded, upstreams: runtime.upstreams() });
    }
    try {
      const { body, contentType } = await metrics.render();
      res.writeHead(200, { "content-type": contentType });
      res.end(body);
    } catch (error) {
      logger.error({ err: error }, "gateway bug");
      sendError(res, toGatewayError(error));
    }
  }

  async function handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const url = req.url ?? "/";
    const query = url.indexOf("?");
    const path = query < 0 ? url : url.slice(0, query);
    const method = req.method === "HEAD" ? "GET" : (req.method ?? "GET");
    if (path === "/healthz" || path === "/readyz" || path === "/metrics") return probe(method, path, res);
    // The console's static files: unlogged and uncounted, like the probes (its API calls are counted).
    if (path.startsWith(CONSOLE_PATH) && (path.length === CONSOLE_PATH.length || path[CONSOLE_PATH.length] === "/"))
      return consoleAssets.serve(req, path, res);
    const given = req.headers["x-request-id"];
    const requestId = typeof given === "string" && REQUEST_ID.test(given) ? given : nextRequestId();
    const exchange: Exchange = {
      req,
      res,
      requestId,
      started: performance.now(),
      adapter: "",
      tenant: "",
      keyId: "",
      stream: false,
      usage: undefined,
      firstByteAt: undefined,
      replica: undefined,
      attempts: 0,
      retrieval: undefined,
      prompt: undefined,
      errorCode: undefined,
      errorMessage: undefined,
      cancel: undefined,
    };
    // One listener does both: a client that goes away calls the request off, and the request is
    // counted and logged once it has both closed and been handled (so the log has the outcome).
    let ends = 0;
    const ended = () => {
      if (++ends === 2) record(exchange, path);
    };
    res.on("close", () => {
      if (!res.writableFinished) {
        exchange.clientLeft = true;
        exchange.cancel?.abort(new GatewayError(499, ErrorType.server, "client closed the request", "client_closed"));
      }
      ended();
    });
    try {
      const snapshot = runtime.current;
      if (snapshot === undefined) throw new GatewayError(503, ErrorType.overloaded, "the gateway has no configuration yet", "not_ready");
      const documentsPath = path.startsWith("/v1/adapters/") ? /^\/v1\/adapters\/([^/]+)\/documents$/.exec(path) : null;
      if (documentsPath !== null) {
        const principal = callerOf(snapshot, req.headers);
        exchange.tenant = principal.tenant;
        exchange.keyId = principal.keyId;
        const adapter = decodeSegment(documentsPath[1] as string);
        // Only a name the platform serves labels the request's metrics: a made-up one would add series
        // that nothing ever removes (any caller could grow /metrics without bound); it is counted as "-".
        if (snapshot.models.get(adapter)?.adapter !== undefined) exchange.adapter = adapter;
        return await handleDocuments(req, res, adapter, { snapshot, principal, service: documents });
      }
      if (path.startsWith(ADMIN_PREFIX)) {
        // The session view answers a caller without a key too (a key that is presented must be valid).
        const principal = path === SESSION_PATH && !presentsKey(req.headers) ? undefined : callerOf(snapshot, req.headers);
        exchange.tenant = principal?.tenant ?? "";
        exchange.keyId = principal?.keyId ?? "";
        return await handleAdmin(method, path, res, {
          snapshot,
          principal,
          runtime,
          metrics,
          history,
          errors: recentErrors,
          replica,
          startedAt,
        });
      }
      let routeTarget: ModelTarget | undefined;
      let apiPath = path;
      if (!path.startsWith("/v1/")) {
        const slash = path.indexOf("/", 1);
        const prefix = slash < 0 ? path : path.slice(0, slash);
        routeTarget = snapshot.routes.get(prefix);
        if (routeTarget === undefined || slash < 0)
          throw notFound(`no route for ${path}: use /v1/... or /<adapter>/v1/...`, "unknown_route");
        apiPath = path.slice(slash);
      }
      const route = routeOf(method, apiPath);
      if (route instanceof GatewayError) throw route;
      if (route.kind === "none") throw notFound(`no route for ${req.method ?? ""} ${path}`, "unknown_route");
      const principal = callerOf(snapshot, req.headers);
      exchange.tenant = principal.tenant;
      exchange.keyId = principal.keyId;
      requireScope(principal, "inference");
      if (route.kind === "models") return listModels(res, snapshot, principal, routeTarget, route.id, requestId);
      await handleInference(contextFor(snapshot), exchange, route.endpoint, routeTarget, principal);
    } catch (error) {
      const failure = toGatewayError(error);
      if (failure.status === 500) logger.error({ err: error, requestId }, "gateway bug");
      exchange.errorCode = failure.code;
      exchange.errorMessage = failure.message;
      if (failure.status === 413) res.setHeader("connection", "close");
      if (!res.destroyed) sendError(res, failure, requestId);
    } finally {
      ended();
    }
  }

  /** The proxy's view of a snapshot, made once per configuration rather than per request. */
  let context: ProxyContext | undefined;
  function contextFor(snapshot: Snapshot): ProxyContext {
    if (context?.snapshot !== snapshot) context = { runtime, snapshot, metrics, retriever };
    return context;
  }

  function listModels(
    res: ServerResponse,
    snapshot: Snapshot,
    principal: Principal,
    routeTarget: ModelTarget | undefined,
    id: string | undefined,
    requestId: string,
  ): void {
    const visible = [...snapshot.models.values()].filter(
      (target) => mayUse(principal, target.name) && (routeTarget === undefined || target === routeTarget),
    );
    const headers = { "x-request-id": requestId };
    if (id === undefined)
      return sendJson(res, 200, { object: "list", data: visible.map((target) => modelCard(snapshot, target)) }, headers);
    const target = visible.find((candidate) => candidate.name === id);
    if (target === undefined) throw notFound(`the model ${JSON.stringify(id)} does not exist`, "model_not_found", "model");
    sendJson(res, 200, modelCard(snapshot, target), headers);
  }

  function record(exchange: Exchange, path: string): void {
    const { res } = exchange;
    // A client that left before the whole answer went out (a stream it closed) is 499, whatever status the headers had.
    const status = res.headersSent && exchange.clientLeft !== true ? res.statusCode : 499;
    const seconds = (performance.now() - exchange.started) / 1000;
    const firstToken = exchange.stream && exchange.firstByteAt !== undefined ? (exchange.firstByteAt - exchange.started) / 1000 : undefined;
    // The console's reads of the admin API are logged but not counted, as probes and scrapes are not:
    // an open console would otherwise be most of an idle platform's traffic.
    if (!path.startsWith(ADMIN_PREFIX))
      metrics.countRequest(exchange.adapter || "-", exchange.tenant || "-", status, seconds, firstToken, exchange.usage);
    // Built by assignment rather than spreads: this runs for every request.
    const entry: Record<string, unknown> = {
      requestId: exchange.requestId,
      method: exchange.req.method,
      path,
      status,
      ms: Math.round(seconds * 10_000) / 10,
    };
    if (exchange.adapter !== "") entry.adapter = exchange.adapter;
    if (exchange.tenant !== "") {
      entry.tenant = exchange.tenant;
      entry.key = exchange.keyId;
    }
    if (exchange.stream) entry.stream = true;
    if (exchange.firstByteAt !== undefined) entry.ttftMs = Math.round((exchange.firstByteAt - exchange.started) * 10) / 10;
    if (exchange.usage) {
      entry.promptTokens = exchange.usage.promptTokens;
      entry.completionTokens = exchange.usage.completionTokens;
      // Counted from the chunks relayed (no usage chunk came): a lower bound, without the prompt.
      if (exchange.usage.estimated === true) entry.usageEstimated = true;
    }
    if (exchange.replica !== undefined) {
      entry.replica = exchange.replica;
      entry.attempts = exchange.attempts;
    }
    if (exchange.retrieval !== undefined) entry.retrieval = exchange.retrieval;
    if (exchange.errorCode) entry.error = exchange.errorCode;
    if (exchange.prompt !== undefined) entry.prompt = exchange.prompt;
    accessLog(entry);
    // A client that went away (499) is not an error of the platform's.
    if ((status >= 400 && status !== 499) || exchange.errorCode) {
      recentErrors.add({
        requestId: exchange.requestId,
        method: exchange.req.method ?? "",
        path,
        adapter: exchange.adapter || null,
        tenant: exchange.tenant || null,
        status,
        code: exchange.errorCode ?? null,
        // No message of the gateway's: the engine's own answer, passed on as it was (not kept: it may quote the request).
        message: exchange.errorMessage ?? `the upstream answered ${status}`,
      });
    }
  }

  const host = options.host ?? "127.0.0.1";
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(options.port ?? first.config.server.port, host, () => {
      server.off("error", reject);
      resolve();
    });
  });
  const port = (server.address() as AddressInfo).port;
  const url = `http://${host.includes(":") ? `[${host}]` : host === "0.0.0.0" ? "127.0.0.1" : host}:${port}`;
  history.start();
  logger.info(
    { url, adapters: first.config.adapters.map((adapter) => adapter.name), auth: first.config.auth.mode, console: consoleAssets.built },
    "gateway listening",
  );
  logger.flush();

  let closing: Promise<void> | undefined;
  return {
    url,
    port,
    metrics,
    history,
    logger,
    reload,
    config: () => (runtime.current as Snapshot).config,
    close: (graceMs = 0) => {
      closing ??= (async () => {
        watcher?.close();
        history.stop();
        await new Promise<void>((resolve) => {
          server.close(() => resolve());
          server.closeIdleConnections();
          setTimeout(() => server.closeAllConnections(), graceMs).unref();
        });
        await runtime.close();
        await rag?.close();
        logger.flush();
      })();
      return closing;
    },
  };
}
