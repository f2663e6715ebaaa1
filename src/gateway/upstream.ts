import { lookup } from "node:dns/promises";
import type { IncomingHttpHeaders } from "node:http";
import type { Socket } from "node:net";
import { buildConnector, errors, Pool, type Dispatcher } from "undici";
import { joinChunks } from "../http-body.ts";
import type { UpstreamConfig } from "./config.ts";
import { ErrorType, GatewayError } from "./errors.ts";
import { scrapeEngineLoad, type EngineLoad } from "./engine-load.ts";
import { PlacementPublisher, type AdapterFailure } from "./placement.ts";
import { Residency } from "./residency.ts";
import { isResident, makePolicy, slotsOf, type Candidate, type Choice, type RoutingPolicy, type RoutingSettings } from "./routing/index.ts";

/** How a request is called off (the client went away, the total timeout passed). */
export interface Cancellation {
  readonly aborted: boolean;
  readonly reason: unknown;
  /** The running upstream call to abort on cancellation (at once if already cancelled); undefined unbinds. */
  bind(call: { abort(reason: Error): void } | undefined): void;
}

export interface UpstreamRequest {
  readonly method: "GET" | "POST";
  /** Path below the upstream's base URL, e.g. `/v1/chat/completions`. */
  readonly path: string;
  /**
   * Sent as given, `host` included (UpstreamPool.hostHeader): the caller builds them as one object
   * literal, which undici and Node handle far faster than a copy with `host` added here.
   */
  readonly headers: Readonly<Record<string, string>> & { readonly host: string };
  readonly body?: string | Buffer;
  /**
   * Resolve only once the whole body is in (`UpstreamResponse.complete`), for answers that are
   * not streamed: one wait instead of two. A body that breaks off after the headers is still not
   * retried; reading it rejects. Its headers are not held to firstByteTimeoutMs: an engine (vLLM,
   * ours) sends them only when the whole answer is done. @default false
   */
  readonly wholeBody?: boolean;
  /**
   * Also what bounds every wait firstByteTimeoutMs does not: a whole-body answer, and the gaps in a
   * stream. The caller calls it off at the request's total timeout (proxy.ts).
   */
  readonly cancel: Cancellation;
  /** Time allowed for a streamed answer's headers (vLLM sends them at once, our engine when it admits the request). */
  readonly firstByteTimeoutMs: number;
  /** The LoRA the request runs on: with residency on, only replicas holding it are chosen. */
  readonly lora?: string;
}

/** Where a response body goes, chunk by chunk, once the proxy has seen the headers. */
export interface BodySink {
  /** False pauses the upstream until `UpstreamResponse.resume()`. */
  onData(chunk: Buffer): boolean;
  onEnd(): void;
  onError(error: Error): void;
}

/**
 * One attempt's response, as an undici dispatch handler: status and headers, then a body that is
 * read once (text, dump or pipe). No stream objects per request: chunks go straight to the reader.
 */
export class UpstreamResponse implements Dispatcher.DispatchHandler {
  statusCode = 0;
  headers: IncomingHttpHeaders = {};
  private controller: Dispatcher.DispatchController | undefined;
  private sink: BodySink | undefined;
  private pending: Buffer[] = [];
  private started = false;
  private done = false;
  /** Where it is in its replica's `running` list (-1 when not there). */
  slot = -1;
  /** performance.now() of the body's first bytes (0 until they come): about the first token of a stream. */
  firstDataAt = 0;
  private failure: Error | undefined;
  /** Set by abandon() before undici started the request: it is aborted as it starts. */
  private abandoned: Error | undefined;
  /** The whole body, when the request asked for it and it arrived intact (see UpstreamRequest.wholeBody). */
  complete: Buffer | undefined;

  constructor(
    readonly replica: string,
    /** Counts what comes back from the replica (headers, each chunk): the health check's sign of life. */
    private readonly liveness: { activity: number },
    readonly attempts: number,
    private readonly cancel: Cancellation,
    private readonly wholeBody: boolean,
    /** Headers are in (no error), or the attempt failed before them. Called once. */
    private readonly onStart: (response: UpstreamResponse, error: Error | undefined) => void,
    /** The exchange with the replica is over: body complete or failed. Called once. */
    private readonly onFinish: (error: Error | undefined) => void,
  ) {}

  onRequestStart(controller: Dispatcher.DispatchController): void {
    this.controller = controller;
    if (this.abandoned !== undefined) {
      controller.abort(this.abandoned);
      return;
    }
    this.cancel.bind(controller);
  }

  /**
   * Gives up on a replica that stopped answering. Before the headers, `reason` reaches the attempt's
   * start callback as if the transport had failed, so the request may be retried elsewhere; after
   * them, the body breaks off with it (a stream ends with an error event, not at its total timeout).
   */
  abandon(reason: Error): void {
    if (this.done) return;
    if (this.controller === undefined) this.abandoned = reason;
    else this.controller.abort(reason);
  }

  onResponseStart(_controller: Dispatcher.DispatchController, statusCode: number, headers: IncomingHttpHeaders): void {
    this.liveness.activity++;
    this.statusCode = statusCode;
    this.headers = headers;
    this.started = true;
    if (!this.wholeBody) this.onStart(this, undefined);
  }

  onResponseData(controller: Dispatcher.DispatchController, chunk: Buffer): void {
    this.liveness.activity++;
    if (this.firstDataAt === 0) this.firstDataAt = performance.now();
    if (this.sink === undefined) this.pending.push(chunk);
    else if (!this.sink.onData(chunk)) controller.pause();
  }

  onResponseEnd(): void {
    this.finish(undefined);
  }

  onResponseError(_controller: Dispatcher.DispatchController | undefined, error: Error): void {
    this.finish(error);
  }

  private finish(error: Error | undefined): void {
    if (this.done) return;
    this.done = true;
    // A call-off's reason is the caller's to report; anything else that breaks an answer is put in words.
    if (error !== undefined && this.started && !this.cancel.aborted) error = brokenAnswer(error);
    this.failure = error;
    this.cancel.bind(undefined);
    if (this.started && this.wholeBody) {
      // The headers came: the answer is reported now, whole or broken (reading a broken one rejects),
      // before the end of the exchange, in the order a streamed answer reports them.
      if (error === undefined) this.complete = joinChunks(this.pending);
      this.onStart(this, undefined);
      this.onFinish(error);
      return;
    }
    this.onFinish(error);
    if (!this.started) {
      this.started = true;
      this.onStart(this, error ?? new Error("the upstream closed the request without a response"));
    } else if (this.sink !== undefined) {
      if (error === undefined) this.sink.onEnd();
      else this.sink.onError(error);
    }
  }

  /** Sends the body to `sink`, starting with what has arrived already. */
  pipe(sink: BodySink): void {
    if (this.sink !== undefined) throw new Error("the upstream body is already being read");
    this.sink = sink;
    const pending = this.pending;
    this.pending = [];
    let paused = false;
    for (const chunk of pending) if (!sink.onData(chunk)) paused = true;
    if (this.done) {
      if (this.failure === undefined) sink.onEnd();
      else sink.onError(this.failure);
    } else if (paused) {
      this.controller?.pause();
    }
  }

  /** Continues a body paused by a sink. */
  resume(): void {
    this.controller?.resume();
  }

  /** The whole body. */
  bytes(): Promise<Buffer> {
    return new Promise((resolve, reject) => this.pipe(new BytesSink(resolve, reject)));
  }

  async text(): Promise<string> {
    return (await this.bytes()).toString("utf8");
  }

  /** Reads and drops the body (so the connection can be reused). */
  dump(): Promise<void> {
    return new Promise((resolve) => this.pipe({ onData: () => true, onEnd: resolve, onError: () => resolve() }));
  }
}

/** What an attempt abandoned on a replica that failed its health checks fails with (see UpstreamPool.check). */
const STOPPED_ANSWERING = "DIATONIC_REPLICA_STOPPED_ANSWERING";

/** What breaks off an answer after its headers, by undici's or Node's code. */
const BROKEN_BY: Readonly<Record<string, string>> = {
  [STOPPED_ANSWERING]: "the engine stopped answering (its health checks failed, and it was taken out of rotation)",
  UND_ERR_SOCKET: "the engine closed the connection",
  ECONNRESET: "the engine reset the connection",
  EPIPE: "the engine closed the connection",
  UND_ERR_RES_CONTENT_LENGTH_MISMATCH: "the engine's answer was shorter than its Content-Length",
};

/**
 * An answer that broke after its headers, in words: the proxy passes this message to the client
 * (in a stream's error event), and undici's codes (UND_ERR_SOCKET) tell a client nothing.
 */
function brokenAnswer(error: Error): Error {
  const code = (error as { code?: unknown }).code;
  const what = (typeof code === "string" ? BROKEN_BY[code] : undefined) ?? `the connection to the engine failed (${error.message})`;
  return new Error(`${what} before the answer was complete; the engine's logs say why (it may have crashed or restarted)`, {
    cause: error,
  });
}

/** Collects a whole body. */
class BytesSink implements BodySink {
  private readonly chunks: Buffer[] = [];

  constructor(
    private readonly resolve: (body: Buffer) => void,
    private readonly reject: (error: Error) => void,
  ) {}

  onData(chunk: Buffer): boolean {
    this.chunks.push(chunk);
    return true;
  }

  onEnd(): void {
    this.resolve(joinChunks(this.chunks));
  }

  onError(error: Error): void {
    this.reject(error);
  }
}

/** What an upstream reports to metrics and logs. */
export interface UpstreamEvents {
  /** A replica was chosen for a LoRA's request: by which policy, why, and whether its slots held the LoRA. */
  onRoute?(upstream: string, policy: string, reason: string, lora: string | undefined, hit: boolean): void;
  onRetry?(upstream: string, reason: string): void;
  /** Why: requests failed in a row, or the active health check did. */
  onEjection?(upstream: string, replica: string, forMs: number, reason: EjectionReason): void;
  onRestore?(upstream: string, replica: string): void;
  /** A replica's adapter agent was told which adapters to keep (placed: how many), or could not be (error). */
  onPlacement?(upstream: string, replica: string, placed: number, error: string | undefined): void;
}

export type EjectionReason = "requests failed" | "health check failed";

const DEFAULTS = {
  ejectAfterFailures: 3,
  ejectionMs: 1000,
  maxEjectionMs: 30_000,
  probePath: "/health",
  checkIntervalMs: 5000,
  // Generous: a saturated engine can be slow to answer its health path, and a busy one is not hung.
  checkTimeoutMs: 5000,
  ejectAfterFailedChecks: 3,
  maxRetries: 2,
  dnsRefreshMs: 5000,
  keepAliveMs: 30_000,
  firstResolveMs: 3000,
} as const;

/** Transport errors where the request cannot have reached the engine's handler: safe to retry. */
const RETRYABLE_CODES = new Set([
  "ECONNREFUSED",
  "ECONNRESET",
  "EPIPE",
  "EHOSTUNREACH",
  "ENETUNREACH",
  "EAI_AGAIN",
  "ENOTFOUND",
  "UND_ERR_SOCKET",
  "UND_ERR_CONNECT_TIMEOUT",
  "UND_ERR_CLOSED",
]);
const RETRYABLE_STATUS = new Set([502, 503, 504]);
/**
 * Nothing listened or answered at the replica's address: no engine took the request, so it is a
 * 503 with Retry-After (what clients and the OpenAI SDK wait and retry on), not a 502 (a broken answer).
 */
const UNAVAILABLE_CODES = new Set(["ECONNREFUSED", "EHOSTUNREACH", "ENETUNREACH", "EAI_AGAIN", "ENOTFOUND"]);

/**
 * Like Finagle's: every request deposits `ratio` of a retry, every retry withdraws one, so retries
 * stay a fraction of traffic and cannot multiply an outage. A small reserve covers quiet periods.
 */
export class RetryBudget {
  private balance: number;
  constructor(
    private readonly ratio = 0.2,
    private readonly reserve = 10,
  ) {
    this.balance = reserve;
  }
  deposit(): void {
    this.balance = Math.min(this.balance + this.ratio, this.reserve + 100);
  }
  tryWithdraw(): boolean {
    if (this.balance < 1) return false;
    this.balance -= 1;
    return true;
  }
}

/**
 * undici's connector with a connect timeout that is kept to the millisecond: undici's own runs on
 * its coarse "fast timers" and fires after about a second whatever shorter time is asked (measured:
 * 300 ms asked, 1000 ms taken). A connect that does not finish in time is destroyed and fails with
 * undici's ConnectTimeoutError, as undici's own would.
 */
function connectWithin(timeoutMs: number): buildConnector.connector {
  // undici's connector returns the socket it made, though its type says void.
  const connect = buildConnector({ timeout: 0 }) as unknown as (
    options: buildConnector.Options,
    callback: buildConnector.Callback,
  ) => Socket | undefined;
  return (options, callback) => {
    let settled = false;
    const timer = setTimeout(() => {
      if (settled) return;
      settled = true;
      socket?.destroy();
      callback(
        new errors.ConnectTimeoutError(`Connect Timeout Error (${options.hostname}:${options.port}, timeout: ${timeoutMs}ms)`),
        null,
      );
    }, timeoutMs);
    const socket = connect(options, (...result) => {
      if (settled) {
        result[1]?.destroy();
        return;
      }
      settled = true;
      clearTimeout(timer);
      callback(...result);
    });
  };
}

/** How many LoRAs each replica's "sent here last" list keeps (more than any engine's slots). */
const RECENT_LORAS = 64;

class Replica implements Candidate {
  outstanding = 0;
  outstandingSwaps = 0;
  loadOutstanding = 0;
  failures = 0;
  /** Active health checks failed in a row (apart from `failures`: a check that passes must not hide requests that fail). */
  checkFailures = 0;
  /** Headers and body chunks that came back from it: a replica with activity is busy, not hung. */
  activity = 0;
  /** `activity` when it was last ejected: probes that fail with none since find it hung. */
  activityAtEjection = 0;
  /** Probes in a row, since its ejection, that failed with nothing back from it meanwhile. */
  silentProbes = 0;
  /** Ejections so far (never reset): a check's answer from before one is dropped. */
  timesEjected = 0;
  ejections = 0;
  /** Out of rotation since its last ejection, until a probe of the health path answers. */
  ejected = false;
  /** When the next probe is due (for Retry-After); the replica stays out until that probe answers. */
  ejectedUntil = 0;
  retired = false;
  readonly pool: Pool;
  /** The engine's last report of its load, and how old it may be before it is not used. */
  engineLoad: EngineLoad | undefined;
  readonly recent: string[] = [];
  /** Attempts sent here and not finished: taken back (or cut off, once answering) if the replica fails its health checks. */
  // An array with each attempt's index in it (UpstreamResponse.slot), not a Set: a Set of these
  // objects cost the gateway ~20 µs of CPU a request in bench:gateway (81 against 100 µs).
  readonly running: UpstreamResponse[] = [];

  /** Adds an attempt to `running`. */
  track(attempt: UpstreamResponse): void {
    attempt.slot = this.running.length;
    this.running.push(attempt);
  }

  /** Takes an attempt out of `running` (the last one moves into its place). */
  untrack(attempt: UpstreamResponse): void {
    const at = attempt.slot;
    if (at < 0 || this.running[at] !== attempt) return;
    const last = this.running.pop() as UpstreamResponse;
    if (last !== attempt) {
      this.running[at] = last;
      last.slot = at;
    }
    attempt.slot = -1;
  }

  constructor(
    readonly origin: string,
    connectTimeoutMs: number,
    private readonly staleMs: number,
  ) {
    this.pool = new Pool(origin, {
      connect: connectWithin(connectTimeoutMs),
      keepAliveTimeout: DEFAULTS.keepAliveMs,
      pipelining: 1,
    });
  }

  get load(): EngineLoad | undefined {
    const load = this.engineLoad;
    return load !== undefined && performance.now() - load.at <= this.staleMs ? load : undefined;
  }

  /** Sent this LoRA: it moves to the end of the list. */
  sent(lora: string): void {
    const at = this.recent.lastIndexOf(lora);
    if (at >= 0) this.recent.splice(at, 1);
    this.recent.push(lora);
    if (this.recent.length > RECENT_LORAS) this.recent.shift();
  }

  /**
   * In rotation: not ejected, or ejected and since restored by a probe (a replica being probed is
   * still ejected). The ejection's end alone does not restore it: between that time and the probe, it
   * would take requests (and /readyz would say ready) on an upstream that may still refuse them.
   */
  healthy(): boolean {
    return !this.ejected;
  }
}

/**
 * One engine Service: its replicas (a static list, or every address of a headless Service found by
 * DNS), each with a keep-alive pool; least-outstanding-requests balancing; passive health with
 * ejection and active probing back; retries before the first byte within a budget.
 */
export class UpstreamPool {
  private replicas: Replica[] = [];
  private readonly base: URL;
  private readonly basePath: string;
  /** The Host header for requests to any replica: the configured URL's host (the Service name). */
  readonly hostHeader: string;
  private readonly settings: Required<NonNullable<UpstreamConfig["health"]>> & { maxRetries: number; dnsRefreshMs: number };
  private readonly budget = new RetryBudget();
  private dnsTimer: NodeJS.Timeout | undefined;
  private readonly probeTimers = new Set<NodeJS.Timeout>();
  private cursor = 0;
  private closed = false;
  /** Replaced at a config reload: its requests finish, but it no longer checks or places (the new pool does). */
  private retired = false;
  private lastResolveError: string | undefined;
  /** Which LoRAs each replica holds, when the config asks to route by it. */
  readonly residency: Residency | undefined;
  private residencyTimer: NodeJS.Timeout | undefined;
  private loadTimer: NodeJS.Timeout | undefined;
  private checkTimer: NodeJS.Timeout | undefined;
  /** Chooses among the replicas that may take a request. */
  readonly policy: RoutingPolicy;
  /** Tells the replicas' adapter agents what to keep loaded, where the config and the policy place adapters. */
  readonly placement: PlacementPublisher | undefined;

  constructor(
    readonly name: string,
    readonly config: UpstreamConfig,
    private readonly events: UpstreamEvents = {},
    private readonly routing: RoutingSettings & {
      readonly loadPollMs: number;
      /** This gateway's name in the adapter agents' placement books (the same across config reloads). */
      readonly placementGateway?: string;
    } = {
      policy: "least-outstanding",
      slots: 4,
      swapMs: 200,
      loadPollMs: 200,
    },
  ) {
    this.policy = makePolicy(routing);
    this.base = new URL(config.url);
    this.basePath = this.base.pathname.replace(/\/+$/, "");
    this.hostHeader = this.base.host;
    this.settings = {
      ejectAfterFailures: config.health?.ejectAfterFailures ?? DEFAULTS.ejectAfterFailures,
      ejectionMs: config.health?.ejectionMs ?? DEFAULTS.ejectionMs,
      maxEjectionMs: config.health?.maxEjectionMs ?? DEFAULTS.maxEjectionMs,
      probePath: config.health?.probePath ?? DEFAULTS.probePath,
      checkIntervalMs: config.health?.checkIntervalMs ?? DEFAULTS.checkIntervalMs,
      checkTimeoutMs: config.health?.checkTimeoutMs ?? DEFAULTS.checkTimeoutMs,
      ejectAfterFailedChecks: config.health?.ejectAfterFailedChecks ?? DEFAULTS.ejectAfterFailedChecks,
      maxRetries: config.maxRetries ?? DEFAULTS.maxRetries,
      dnsRefreshMs: config.dnsRefreshMs ?? DEFAULTS.dnsRefreshMs,
    };
    this.residency = config.residency ? new Residency({ pollMs: config.residency.pollMs }) : undefined;
    const placement = config.placement;
    // A policy that does not place (round-robin and the others) still publishes, every adapter on
    // every replica: the agents load what they would without placement, and their answers say which
    // adapters cannot load (503 adapter_failed rather than adapter_loading for ever).
    this.placement =
      placement !== undefined
        ? new PlacementPublisher({
            ...placement,
            upstream: name,
            gateway: routing.placementGateway,
            plan: (loras) => this.placementPlan(loras),
            onPublished: (upstream, origin, placed, error) => this.events.onPlacement?.(upstream, origin, placed, error),
          })
        : undefined;
  }

  /** The adapters each healthy replica keeps, as the policy places them (every one everywhere for a policy that does not place); undefined without a healthy replica. */
  placementPlan(loras: readonly string[], now = performance.now()): Map<string, string[]> | undefined {
    const replicas = this.replicas.filter((replica) => replica.healthy());
    if (replicas.length === 0) return undefined;
    const policy = this.policy;
    if (policy.plan === undefined) return new Map(replicas.map((replica) => [replica.origin, [...new Set(loras)]]));
    return policy.plan(loras, replicas, now, this.config.placement?.minReplicas ?? 1);
  }

  /** The LoRAs this upstream's adapters run on (the config's, at each reload): what placement places. */
  placeLoras(loras: readonly string[]): void {
    this.placement?.setLoras(loras);
  }

  /** Asks every replica what it holds, now and then every pollMs. */
  private async pollResidency(): Promise<void> {
    const residency = this.residency;
    if (residency === undefined || this.closed) return;
    residency.retain(new Set(this.replicas.map((replica) => replica.origin)));
    await Promise.all(
      this.replicas
        .filter((replica) => !replica.retired)
        .map((replica) => residency.poll(replica.origin, replica.pool, `${this.basePath}/v1/models`, this.hostHeader)),
    );
    if (this.closed) return;
    this.residencyTimer = setTimeout(() => void this.pollResidency(), residency.options.pollMs);
    this.residencyTimer.unref();
  }

  /** Reads each replica's load from its /metrics, every loadPollMs, while residency is on. */
  private async pollLoad(): Promise<void> {
    if (this.residency === undefined || this.closed) return;
    const timeout = Math.max(100, this.routing.loadPollMs);
    await Promise.all(
      this.replicas
        .filter((replica) => !replica.retired)
        .map(async (replica) => {
          const load = await scrapeEngineLoad(replica.pool, `${this.basePath}/metrics`, this.hostHeader, timeout);
          if (load === undefined) return;
          replica.engineLoad = load;
          replica.loadOutstanding = replica.outstanding;
        }),
    );
    if (this.closed) return;
    this.loadTimer = setTimeout(() => void this.pollLoad(), this.routing.loadPollMs);
    this.loadTimer.unref();
  }

  /** Finds the replicas; with DNS discovery, keeps finding them. */
  async start(): Promise<void> {
    if (this.config.discovery === "dns") {
      // A slow resolver must not hold up start-up: the refresh loop keeps trying, /readyz reports it.
      let timer: NodeJS.Timeout | undefined;
      await Promise.race([this.resolve(), new Promise<void>((resolve) => (timer = setTimeout(resolve, DEFAULTS.firstResolveMs)))]);
      clearTimeout(timer);
      const refresh = () => {
        this.dnsTimer = setTimeout(() => void this.resolve().finally(() => !this.closed && refresh()), this.settings.dnsRefreshMs);
        this.dnsTimer.unref();
      };
      refresh();
    } else {
      const origins = [this.base.origin, ...(this.config.replicas ?? []).map((url) => new URL(url).origin)];
      this.setOrigins([...new Set(origins)]);
    }
    // The first answers are awaited: requests then route by residency from the start.
    await Promise.all([this.pollResidency(), this.pollLoad()]);
    this.scheduleChecks();
  }

  private scheduleChecks(): void {
    if (this.closed || this.retired || this.settings.checkIntervalMs === 0) return;
    this.checkTimer = setTimeout(() => {
      const replicas = this.replicas.filter((replica) => replica.healthy() && !replica.retired);
      void Promise.all(replicas.map((replica) => this.check(replica))).finally(() => this.scheduleChecks());
    }, this.settings.checkIntervalMs);
    this.checkTimer.unref();
  }

  /**
   * The active health check of a replica in rotation: its health path must answer below 500 within
   * checkTimeoutMs. A timeout counts only if the replica answered no request meanwhile (busy, not
   * hung). It finds what passive health cannot: an engine that holds non-streamed requests, whose
   * headers come only when they are done, and never answers (frozen, or its node gone with the
   * connections open); they would wait out their total timeout. Ejected for that, the replica's
   * requests are taken back and retried elsewhere where nothing has come back yet, and cut off with
   * an error where an answer is under way (a stream ends with an error event a client can act on).
   */
  private async check(replica: Replica): Promise<void> {
    const activityBefore = replica.activity;
    const ejectionsBefore = replica.timesEjected;
    const failed = await this.askHealth(replica, this.settings.checkTimeoutMs);
    // Ejected (and maybe restored) while it waited: its answer is about a replica that is gone.
    if (this.closed || this.retired || replica.retired || !replica.healthy() || replica.timesEjected !== ejectionsBefore) return;
    // A timeout while something came back (an answer, a stream's tokens) is a busy replica: a pass.
    if (failed === undefined || (failed.timedOut && replica.activity !== activityBefore)) {
      replica.checkFailures = 0;
      return;
    }
    replica.checkFailures++;
    if (replica.checkFailures < this.settings.ejectAfterFailedChecks) return;
    const checks = replica.checkFailures;
    this.eject(replica, "health check failed");
    this.abandonRunning(replica, `${checks} health checks of ${this.settings.probePath} in a row failed (last: ${failed.why})`);
  }

  /** GET the health path within `timeoutMs`: undefined when it answers below 500, else why not. */
  private async askHealth(replica: Replica, timeoutMs: number): Promise<{ why: string; timedOut: boolean } | undefined> {
    try {
      const response = await replica.pool.request({
        method: "GET",
        path: this.basePath + this.settings.probePath,
        headers: { host: this.hostHeader },
        signal: AbortSignal.timeout(timeoutMs),
      });
      await response.body.dump();
      return response.statusCode >= 500 ? { why: `answered ${response.statusCode}`, timedOut: false } : undefined;
    } catch (error) {
      const timedOut = error instanceof Error && error.name === "TimeoutError";
      return { why: timedOut ? `no answer within ${timeoutMs} ms` : ((error as { code?: string }).code ?? String(error)), timedOut };
    }
  }

  /**
   * Takes back the requests running on a replica found hung: retried elsewhere where nothing has come
   * back yet, cut off with an error where an answer is under way.
   */
  private abandonRunning(replica: Replica, why: string): void {
    if (replica.running.length === 0) return;
    const error = Object.assign(new Error(`replica ${replica.origin} of upstream ${this.name} stopped answering: ${why}`), {
      code: STOPPED_ANSWERING,
    });
    // abandon() may finish an attempt at once, which untracks it: go over a copy.
    for (const attempt of [...replica.running]) attempt.abandon(error);
  }

  private async resolve(): Promise<void> {
    try {
      const addresses = await lookup(this.base.hostname, { all: true });
      const port = this.base.port || (this.base.protocol === "https:" ? "443" : "80");
      const origins = addresses.map(({ address, family }) => `${this.base.protocol}//${family === 6 ? `[${address}]` : address}:${port}`);
      this.setOrigins([...new Set(origins)].sort());
      this.lastResolveError = undefined;
    } catch (error) {
      // Keep the last known replicas: a DNS hiccup must not take a working upstream away.
      this.lastResolveError = (error as Error).message;
    }
  }

  private setOrigins(origins: readonly string[]): void {
    const wanted = new Set(origins);
    const kept = this.replicas.filter((replica) => {
      if (wanted.has(replica.origin)) return true;
      replica.retired = true;
      void replica.pool.close().catch(() => undefined);
      return false;
    });
    const known = new Set(kept.map((replica) => replica.origin));
    // A load report three polls old is stale: the replica stopped answering its /metrics.
    for (const origin of origins)
      if (!known.has(origin)) kept.push(new Replica(origin, this.config.connectTimeoutMs, 3 * this.routing.loadPollMs));
    this.replicas = kept;
  }

  /** Replicas that would take a request now. */
  healthyCount(): number {
    let count = 0;
    for (const replica of this.replicas) if (replica.healthy()) count++;
    return count;
  }

  describe(): { name: string; replicas: { origin: string; healthy: boolean; outstanding: number; loras?: string[] }[]; dnsError?: string } {
    return {
      name: this.name,
      replicas: this.replicas.map((replica) => {
        const loras = this.residency?.describe(replica.origin);
        return {
          origin: replica.origin,
          healthy: replica.healthy(),
          outstanding: replica.outstanding,
          ...(loras !== undefined ? { loras } : {}),
        };
      }),
      ...(this.lastResolveError ? { dnsError: this.lastResolveError } : {}),
    };
  }

  /**
   * The replica for a request: among the healthy ones not tried yet, and for a LoRA under residency
   * those that hold it (else those whose holdings are unknown, never one known not to), the routing
   * policy chooses. Undefined when none may take it.
   */
  private pick(
    exclude: ReadonlySet<Replica> | undefined,
    lora: string | undefined,
  ): { replica: Replica; hit: boolean; choice: Choice } | undefined {
    const now = performance.now();
    const residency = lora === undefined ? undefined : this.residency;
    let candidates: Replica[] = [];
    // Every healthy replica, for a policy that places adapters over them (only then: this is every request's path).
    const healthy: Replica[] | undefined = lora !== undefined && this.policy.plan !== undefined ? [] : undefined;
    let holders = 0;
    for (const replica of this.replicas) {
      if (!replica.healthy()) continue;
      healthy?.push(replica);
      if (exclude?.has(replica)) continue;
      const holds = residency === undefined || lora === undefined ? true : residency.holds(replica.origin, lora, now);
      if (holds === false) continue;
      if (holds === true) holders++;
      candidates.push(replica);
    }
    if (holders > 0 && holders < candidates.length && residency !== undefined && lora !== undefined)
      candidates = candidates.filter((replica) => residency.holds(replica.origin, lora, now) === true);
    if (candidates.length === 0) return undefined;
    const choice = this.policy.choose(candidates, healthy === undefined ? { lora, now } : { lora, now, replicas: healthy });
    const chosen = choice.candidate as Replica;
    if (lora === undefined) return { replica: chosen, hit: true, choice };
    const hit = isResident(chosen, lora, slotsOf(chosen, this.routing.slots));
    this.events.onRoute?.(this.name, this.policy.name, choice.reason, lora, hit);
    chosen.sent(lora);
    return { replica: chosen, hit, choice };
  }

  /** Sends a request, retrying on another replica only while nothing has come back yet. */
  send(request: UpstreamRequest): Promise<UpstreamResponse> {
    this.budget.deposit();
    // Attempts chain by callbacks: one promise per request however many attempts it takes (this is
    // on every request's path; an async retry loop cost a promise and a wait more).
    return new Promise((resolve, reject) => this.tryNext(request, 1, undefined, undefined, resolve, reject));
  }

  private tryNext(
    request: UpstreamRequest,
    attempt: number,
    tried: Set<Replica> | undefined, // made on the first retry only: most requests never need it
    lastError: GatewayError | undefined,
    resolve: (response: UpstreamResponse) => void,
    reject: (error: unknown) => void,
  ): void {
    let picked = this.pick(tried, request.lora);
    // With one replica, a retry goes back to it (a fresh connection after a stale keep-alive one).
    if (picked === undefined && tried !== undefined) picked = this.pick(undefined, request.lora);
    if (picked === undefined) {
      const loading = request.lora !== undefined && this.residency !== undefined && this.healthyCount() > 0;
      reject(loading ? this.notLoaded(request.lora ?? "") : (lastError ?? this.unavailable()));
      return;
    }
    const chosen = picked.replica;
    const swapped = !picked.hit;
    // A retry starts outside the callbacks of the attempt that failed (they run inside undici).
    const retry = (error: GatewayError) =>
      queueMicrotask(() => {
        try {
          this.tryNext(request, attempt + 1, (tried ?? new Set<Replica>()).add(chosen), error, resolve, reject);
        } catch (failure) {
          reject(failure);
        }
      });
    this.attempt(chosen, request, attempt, picked.choice, swapped, (outcome) => {
      if (
        !(outcome instanceof RetryableError) &&
        outcome.statusCode === 404 &&
        request.lora !== undefined &&
        this.residency !== undefined
      ) {
        // The replica does not hold the LoRA (unloaded since it last listed it): try one that does.
        this.residency.forget(chosen.origin, request.lora);
        const error = this.notLoaded(request.lora);
        void outcome.dump().then(() => (this.mayRetry(attempt, request.cancel, "adapter not on replica") ? retry(error) : reject(error)));
        return;
      }
      if (!(outcome instanceof RetryableError)) {
        if (!RETRYABLE_STATUS.has(outcome.statusCode) || !this.mayRetry(attempt, request.cancel, `status ${outcome.statusCode}`)) {
          resolve(outcome);
          return;
        }
        const error = new GatewayError(
          outcome.statusCode,
          ErrorType.upstream,
          `upstream ${this.name} answered ${outcome.statusCode}`,
          "upstream_error",
        );
        void outcome.dump().then(() => retry(error));
      } else if (!outcome.retryable || !this.mayRetry(attempt, request.cancel, outcome.code ?? "error")) {
        reject(outcome);
      } else {
        retry(outcome);
      }
    });
  }

  private unavailable(): GatewayError {
    const why =
      this.replicas.length === 0
        ? `no replica of upstream ${this.name} is known${this.lastResolveError ? ` (DNS: ${this.lastResolveError})` : ""}`
        : `no healthy replica of upstream ${this.name}: all ${this.replicas.length} are ejected after failures`;
    return new GatewayError(503, ErrorType.overloaded, why, "upstream_unavailable", null, {
      "retry-after": String(Math.max(1, Math.ceil(this.nextRestoreMs() / 1000))),
    });
  }

  /**
   * Why no healthy replica holds a LoRA, when their adapter agents say it cannot be loaded: every
   * healthy replica it is placed on reports it failed. Undefined while it may still be loading.
   */
  adapterFailure(lora: string): AdapterFailure | undefined {
    if (this.placement === undefined) return undefined;
    const healthy: string[] = [];
    for (const replica of this.replicas) if (replica.healthy()) healthy.push(replica.origin);
    return this.placement.failure(lora, healthy);
  }

  /**
   * No replica holds the LoRA: loading (503, retry shortly), or failed on every replica placed to
   * hold it (503 until its agents' next try; the reason is for operators, in the admin API and the
   * agents' status and logs, not for every caller).
   */
  private notLoaded(lora: string): GatewayError {
    const failure = this.adapterFailure(lora);
    if (failure === undefined) return this.loading(lora);
    const wait = failure.retryAt === undefined ? 30 : Math.ceil((failure.retryAt - Date.now()) / 1000);
    const seconds = Math.min(300, Math.max(2, wait));
    return new GatewayError(
      503,
      ErrorType.upstream,
      `the adapter ${lora} could not be loaded: the adapter agents of the ${failure.replicas.length === 1 ? "engine replica" : `${failure.replicas.length} engine replicas`} it is placed on report it failed, and try again in about ${seconds} s. An operator finds why in the console's Adapters page (GET /v1/admin/adapters) or in the agents' logs`,
      "adapter_failed",
      "model",
      { "retry-after": String(seconds) },
    );
  }

  /** No replica holds the LoRA yet: its agent is still fetching or loading it. */
  private loading(lora: string): GatewayError {
    return new GatewayError(
      503,
      ErrorType.overloaded,
      `the adapter ${lora} is loading: no engine replica has it loaded yet; retry shortly`,
      "adapter_loading",
      "model",
      { "retry-after": "2" },
    );
  }

  private mayRetry(attempt: number, cancel: Cancellation, reason: string): boolean {
    if (cancel.aborted || attempt > this.settings.maxRetries || !this.budget.tryWithdraw()) return false;
    this.events.onRetry?.(this.name, reason);
    return true;
  }

  private nextRestoreMs(): number {
    const now = performance.now();
    let soonest = this.settings.ejectionMs;
    for (const replica of this.replicas) soonest = Math.min(soonest, Math.max(0, replica.ejectedUntil - now));
    return soonest;
  }

  /** One attempt on one replica; `done` gets the response once its headers are in, or why there is none. */
  private attempt(
    replica: Replica,
    request: UpstreamRequest,
    attempt: number,
    choice: Choice,
    swapped: boolean,
    done: (outcome: UpstreamResponse | RetryableError) => void,
  ): void {
    replica.outstanding++;
    if (swapped) replica.outstandingSwaps++;
    const started = performance.now();
    const activityBefore = replica.activity;
    const wholeBody = request.wholeBody ?? false;
    const response = new UpstreamResponse(
      replica.origin,
      replica,
      attempt,
      request.cancel,
      wholeBody,
      (_started, error) => {
        if (error !== undefined) {
          done(this.classify(error, replica, request, replica.activity !== activityBefore));
          return;
        }
        if (response.statusCode >= 500) this.failure(replica);
        else this.success(replica);
        done(response);
      },
      (error) => {
        replica.untrack(response);
        replica.outstanding--;
        if (swapped) replica.outstandingSwaps--;
        // The policy learns service and swap times from answers the engine gave in full.
        if (error === undefined && response.statusCode === 200 && this.policy.observe !== undefined) {
          const now = performance.now();
          this.policy.observe(
            { lora: request.lora, now: started },
            { choice, swapped, firstByteMs: (response.firstDataAt || now) - started, totalMs: now - started },
          );
        }
        // A body that breaks off counts against the replica; one the client gave up on does not.
        if (error !== undefined && response.statusCode !== 0 && !request.cancel.aborted) this.failure(replica);
      },
    );
    replica.track(response);
    replica.pool.dispatch(
      {
        method: request.method,
        path: this.basePath + request.path,
        headers: request.headers,
        body: request.body ?? null,
        // The rest is bounded by the request's total timeout, through its cancellation: a whole-body
        // answer's headers come when it is done, and a stream pauses while the engine reads a long
        // prompt. An undici timer here would cut them off early, or race the total timeout with its code.
        headersTimeout: wholeBody ? 0 : request.firstByteTimeoutMs,
        bodyTimeout: 0,
      },
      response,
    );
  }

  /**
   * Why an attempt got no response, and whether it counts against the replica. A request called off
   * (the client left, the total timeout passed) does not: a long answer looks like a hung engine
   * until it is done. A streamed request's first-byte timeout counts only when the replica sent no
   * other response meanwhile: a hung engine answers nothing and is ejected, a busy one still answers.
   */
  private classify(error: unknown, replica: Replica, request: UpstreamRequest, answeredMeanwhile: boolean): RetryableError {
    const cancel = request.cancel;
    if (cancel.aborted) {
      const reason: unknown = cancel.reason;
      if (reason instanceof GatewayError) return new RetryableError(reason, false);
      return new RetryableError(new GatewayError(499, ErrorType.server, "client closed the request", "client_closed"), false);
    }
    const code = (error as { code?: string }).code ?? "";
    if (code === STOPPED_ANSWERING) {
      // Counted already: the replica is ejected. Nothing came back, so another replica may take it.
      return new RetryableError(
        new GatewayError(
          503,
          ErrorType.overloaded,
          `upstream ${this.name} is unavailable: ${(error as Error).message}`,
          "upstream_unreachable",
          null,
          {
            "retry-after": "1",
          },
        ),
        true,
      );
    }
    if (code === "UND_ERR_HEADERS_TIMEOUT") {
      if (!answeredMeanwhile) this.failure(replica);
      return new RetryableError(
        new GatewayError(
          504,
          ErrorType.timeout,
          `upstream ${this.name} did not start the stream within the first-byte timeout (${request.firstByteTimeoutMs} ms): ` +
            "the engine is busy or hung; add engine replicas or raise the adapter's limits.firstByteTimeoutSeconds",
          "upstream_timeout",
        ),
        false,
      );
    }
    this.failure(replica);
    if (code === "UND_ERR_CONNECT_TIMEOUT") {
      return new RetryableError(
        new GatewayError(
          504,
          ErrorType.timeout,
          `could not connect to upstream ${this.name} (${replica.origin}) in time`,
          "upstream_connect_timeout",
        ),
        true,
      );
    }
    const message = error instanceof Error ? error.message : String(error);
    if (UNAVAILABLE_CODES.has(code)) {
      return new RetryableError(
        new GatewayError(
          503,
          ErrorType.overloaded,
          `upstream ${this.name} is unavailable: ${code} from ${replica.origin}`,
          "upstream_unreachable",
          null,
          { "retry-after": "1" },
        ),
        true,
      );
    }
    return new RetryableError(
      new GatewayError(502, ErrorType.upstream, `upstream ${this.name} failed: ${code || message}`, "upstream_unreachable"),
      RETRYABLE_CODES.has(code),
    );
  }

  private success(replica: Replica): void {
    replica.failures = 0;
    replica.ejections = 0;
  }

  private failure(replica: Replica): void {
    replica.failures++;
    if (replica.failures >= this.settings.ejectAfterFailures && replica.healthy()) this.eject(replica, "requests failed");
  }

  private eject(replica: Replica, reason: EjectionReason): void {
    const forMs = Math.min(this.settings.maxEjectionMs, this.settings.ejectionMs * 2 ** replica.ejections);
    replica.ejections++;
    replica.failures = 0;
    replica.checkFailures = 0;
    replica.timesEjected++;
    replica.activityAtEjection = replica.activity;
    replica.ejected = true;
    replica.ejectedUntil = performance.now() + forMs;
    this.events.onEjection?.(this.name, replica.origin, forMs, reason);
    const timer = setTimeout(() => {
      this.probeTimers.delete(timer);
      void this.probe(replica, reason);
    }, forMs);
    timer.unref();
    this.probeTimers.add(timer);
  }

  /**
   * An ejected replica comes back only after it answers the health path. A probe that fails with
   * nothing back from the replica since its ejection (however it was ejected: a stream's first-byte
   * timeout or a connect timeout may come first) finds it hung: its running requests are taken back.
   */
  private async probe(replica: Replica, reason: EjectionReason): Promise<void> {
    if (this.closed || replica.retired) return;
    const failed = await this.askHealth(replica, Math.max(this.config.connectTimeoutMs, this.settings.checkTimeoutMs));
    if (this.closed || replica.retired) return;
    if (failed === undefined) {
      replica.failures = 0;
      replica.silentProbes = 0;
      replica.ejected = false;
      replica.ejectedUntil = 0;
      this.events.onRestore?.(this.name, replica.origin);
      return;
    }
    // As many silent probes in a row as failed checks eject a replica: a busy one (slow to answer
    // /health, its long answers not done yet) is not taken for hung on one slow probe.
    replica.silentProbes = replica.activity === replica.activityAtEjection ? replica.silentProbes + 1 : 0;
    if (replica.silentProbes === this.settings.ejectAfterFailedChecks)
      this.abandonRunning(
        replica,
        `ejected (${reason}), it answered nothing since, and ${replica.silentProbes} probes of its health path failed (last: ${failed.why})`,
      );
    this.eject(replica, reason);
  }

  /** Replaced by a new pool at a config reload: it stops placing at once (its requests still finish). */
  retire(): void {
    this.retired = true;
    clearTimeout(this.checkTimer);
    void this.placement?.close();
  }

  async close(): Promise<void> {
    this.closed = true;
    await this.placement?.close();
    clearTimeout(this.dnsTimer);
    clearTimeout(this.residencyTimer);
    clearTimeout(this.loadTimer);
    clearTimeout(this.checkTimer);
    for (const timer of this.probeTimers) clearTimeout(timer);
    await Promise.all(this.replicas.map((replica) => replica.pool.destroy().catch(() => undefined)));
  }
}

/** A GatewayError that also says whether another attempt may follow. */
class RetryableError extends GatewayError {
  constructor(
    error: GatewayError,
    readonly retryable: boolean,
  ) {
    super(error.status, error.type, error.message, error.code, error.param, error.headers);
  }
}
