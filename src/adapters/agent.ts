// The adapter agent's reconciler: keeps the engine's loaded LoRAs equal to the adapter set. Each
// adapter that needs work gets its own job (fetch, then load), so a slow download never holds up
// another adapter's load or a removal; loads into the engine go one at a time. An adapter is
// "loaded" only once the engine lists it from the path the agent gave.
import type { Logger } from "pino";
import type { HubOptions } from "../model/hub.ts";
import { EngineRefusal, EngineUnavailable, type EngineClient } from "./engine-client.ts";
import { adapterDir, fetchAdapter, pruneAdapterCache, staleCacheEntries } from "./fetch.ts";
import { PlacementBook, type PlacementAnswer, type PlacementMessage, type PlacementStatus } from "./placement.ts";
import { describeSource, sourceDigest, type AdapterSet, type AdapterSetEntry } from "./set.ts";

/** Why an adapter of the set is not loaded on this replica while gateways place it elsewhere. */
export const PLACED_ELSEWHERE = "not placed on this replica: the gateways' placement keeps it on other replicas";
const REMOVED = "removed from the adapter set";

export const ADAPTER_STATES = ["loaded", "loading", "failed", "unloaded"] as const;
export type AdapterState = (typeof ADAPTER_STATES)[number];

/** One adapter as GET /status reports it. */
export interface AdapterStatus {
  readonly name: string;
  readonly state: AdapterState;
  readonly reason?: string;
  /** When it entered this state (ISO 8601). */
  readonly since: string;
  readonly source?: string;
  /** Failed tries in a row. */
  readonly attempts: number;
  /** When a failed adapter is tried again (ISO 8601). */
  readonly retryAt?: string;
}

/** What the agent reports to its metrics. */
export interface AgentEvents {
  onState?(name: string, state: AdapterState | undefined): void;
  onLoaded?(name: string, fetchSeconds: number, loadSeconds: number): void;
  onFailure?(name: string, stage: "fetch" | "load"): void;
}

export interface AdapterAgentOptions {
  readonly engine: EngineClient;
  /** The pod's adapter cache. */
  readonly cacheDir: string;
  /** Where `path` sources are relative to. @default process.cwd() */
  readonly baseDir?: string;
  readonly hub?: HubOptions;
  readonly log: Logger;
  readonly events?: AgentEvents;
  /** How often the engine is asked what it holds (it may have restarted and lost its LoRAs). @default 5000 */
  readonly resyncMs?: number;
  /** The first retry after a failure; each further one waits twice as long, up to maxBackoffMs. @default 2000 */
  readonly backoffMs?: number;
  /** @default 300000 */
  readonly maxBackoffMs?: number;
  /** A removed adapter stays listed as unloaded this long. @default 600000 */
  readonly unloadedTtlMs?: number;
  /** An adapter no longer placed on this replica stays loaded this long (see placement.ts). @default 60000 */
  readonly placementGraceMs?: number;
}

interface Record {
  readonly name: string;
  state: AdapterState;
  reason: string | undefined;
  since: number;
  source: string | undefined;
  /** The digest and path of what the engine holds for it, once loaded. */
  loadedDigest: string | undefined;
  loadedPath: string | undefined;
  attempts: number;
  retryAt: number;
  /** Why the last try failed, until a try succeeds (the state may be "loading" again meanwhile, for the retry). */
  lastFailure: string | undefined;
  /** The digest of the source that failed: a new source is tried at once, not after the backoff. */
  failedDigest: string | undefined;
  /** The digest the running job works on, and how to call it off. */
  job: { readonly digest: string; readonly abort: AbortController; readonly done: Promise<void> } | undefined;
}

function errorText(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

export class AdapterAgent {
  private set: AdapterSet | undefined;
  private readonly records = new Map<string, Record>();
  private passing: Promise<void> | undefined;
  private passAgain = false;
  private readonly resync: NodeJS.Timeout;
  private loadQueue: Promise<unknown> = Promise.resolve();
  private closed = false;
  private engineProblem: string | undefined;
  private readonly placement = new PlacementBook();
  /** Adapters of the set that the placement left off this replica, and since when. */
  private readonly unplacedSince = new Map<string, number>();

  constructor(private readonly options: AdapterAgentOptions) {
    this.resync = setInterval(() => this.wake(), options.resyncMs ?? 5000);
    this.resync.unref();
  }

  /** The set to serve from now on (a new ConfigMap version); work starts at once. */
  update(set: AdapterSet): void {
    this.set = set;
    const names = new Set(set.adapters.map((adapter) => adapter.name));
    for (const stale of staleCacheEntries(this.options.cacheDir, names)) {
      if (!this.records.get(stale)?.job) pruneAdapterCache(this.options.cacheDir, stale);
    }
    this.wake();
  }

  get adapterSet(): AdapterSet | undefined {
    return this.set;
  }

  /** A gateway's word on which adapters this replica keeps loaded (PUT /v1/placement); work starts at once. */
  place(message: PlacementMessage): PlacementAnswer {
    this.placement.record(message);
    const names = new Set((this.set?.adapters ?? []).map((adapter) => adapter.name));
    this.wake();
    const placed = message.adapters.filter((name) => names.has(name));
    return {
      placed,
      unknown: message.adapters.filter((name) => !names.has(name)),
      // Failed, or trying again after a failure: until it loads, the last failure is the news.
      failed: placed.flatMap((name) => {
        const record = this.records.get(name);
        if (record === undefined || record.state === "loaded" || record.lastFailure === undefined) return [];
        return [{ name, reason: record.lastFailure, attempts: record.attempts, retryAt: new Date(record.retryAt).toISOString() }];
      }),
    };
  }

  placementStatus(): PlacementStatus {
    return this.placement.describe();
  }

  /** Every adapter of the set, then the removed ones still remembered. */
  status(): AdapterStatus[] {
    const order = new Map((this.set?.adapters ?? []).map((adapter, index) => [adapter.name, index]));
    return [...this.records.values()]
      .sort((a, b) => (order.get(a.name) ?? Infinity) - (order.get(b.name) ?? Infinity) || a.name.localeCompare(b.name))
      .map((record) => ({
        name: record.name,
        state: record.state,
        ...(record.reason !== undefined ? { reason: record.reason } : {}),
        since: new Date(record.since).toISOString(),
        ...(record.source !== undefined ? { source: record.source } : {}),
        attempts: record.attempts,
        ...(record.state === "failed" ? { retryAt: new Date(record.retryAt).toISOString() } : {}),
      }));
  }

  /** Why the engine cannot be worked with now, or undefined. */
  get engineStatus(): string | undefined {
    return this.engineProblem;
  }

  /** Resolves when no pass and no job is running (tests, and shutdown). */
  async idle(): Promise<void> {
    for (;;) {
      const jobs = [...this.records.values()].flatMap((record) => (record.job ? [record.job.done] : []));
      const pass = this.passing;
      if (pass === undefined && jobs.length === 0) return;
      await Promise.allSettled([pass, ...jobs]);
    }
  }

  async close(): Promise<void> {
    this.closed = true;
    clearInterval(this.resync);
    for (const record of this.records.values()) record.job?.abort.abort(new Error("the agent is stopping"));
    await this.idle();
  }

  /** Runs a pass now, or right after the one in progress. */
  wake(): void {
    if (this.closed) return;
    if (this.passing !== undefined) {
      this.passAgain = true;
      return;
    }
    this.passing = this.pass()
      .catch((error: unknown) => this.options.log.error({ err: error }, "adapter pass failed"))
      .finally(() => {
        this.passing = undefined;
        if (this.passAgain) {
          this.passAgain = false;
          this.wake();
        }
      });
  }

  private record(name: string, initial: { state: AdapterState; reason?: string } = { state: "loading" }): Record {
    let record = this.records.get(name);
    if (record === undefined) {
      record = {
        name,
        state: initial.state,
        reason: initial.reason,
        since: Date.now(),
        source: undefined,
        loadedDigest: undefined,
        loadedPath: undefined,
        attempts: 0,
        retryAt: 0,
        lastFailure: undefined,
        failedDigest: undefined,
        job: undefined,
      };
      this.records.set(name, record);
      this.options.events?.onState?.(name, initial.state);
    }
    return record;
  }

  /** A fresh start: no failure to report, no backoff to wait out. */
  private forgetFailure(record: Record): void {
    record.lastFailure = undefined;
    record.failedDigest = undefined;
    record.attempts = 0;
  }

  private setState(record: Record, state: AdapterState, reason: string | undefined): void {
    // Loaded, or no longer wanted here: an earlier failure is no news any more (if placed here again, it starts afresh).
    if (state === "loaded" || state === "unloaded") this.forgetFailure(record);
    if (record.state !== state) {
      record.since = Date.now();
      this.options.log.info(
        { adapter: record.name, state, ...(reason !== undefined ? { reason } : {}) },
        `adapter ${record.name}: ${state}`,
      );
      this.options.events?.onState?.(record.name, state);
    }
    record.state = state;
    record.reason = reason;
  }

  private async pass(): Promise<void> {
    const set = this.set;
    if (set === undefined) return;
    this.forgetOldUnloaded();
    let loaded: Map<string, string>;
    try {
      loaded = await this.options.engine.loras();
      this.engineProblem = undefined;
    } catch (error) {
      const desired = this.desired(set, new Map());
      this.engineProblem = errorText(error);
      for (const entry of desired.values()) {
        const record = this.record(entry.name);
        record.source = describeSource(entry.source);
        if (record.job === undefined && record.state !== "failed")
          this.setState(record, "loading", `waiting for the engine: ${this.engineProblem}`);
      }
      return;
    }

    const desired = this.desired(set, loaded);
    const inSet = new Set(set.adapters.map((adapter) => adapter.name));
    // Placed elsewhere, its files stay in the cache: the placement may bring it back.
    const why = (name: string) => (inSet.has(name) ? PLACED_ELSEWHERE : REMOVED);
    for (const [name, record] of this.records) {
      if (desired.has(name)) continue;
      record.job?.abort.abort(new Error(`${name}: ${why(name)}`));
    }
    for (const name of loaded.keys()) {
      if (desired.has(name)) continue;
      const record = this.record(name);
      try {
        await this.inEngine(() => this.options.engine.unload(name));
        record.loadedDigest = undefined;
        record.loadedPath = undefined;
        this.setState(record, "unloaded", why(name));
        if (!inSet.has(name)) pruneAdapterCache(this.options.cacheDir, name);
      } catch (error) {
        this.setState(record, "failed", `could not unload it: ${errorText(error)}`);
      }
    }
    for (const name of inSet) if (!desired.has(name)) this.record(name, { state: "unloaded", reason: PLACED_ELSEWHERE });
    for (const [name, record] of this.records) {
      if (desired.has(name) || loaded.has(name) || record.job) continue;
      if (record.state === "unloaded" && record.reason === why(name)) continue;
      this.setState(record, "unloaded", why(name));
      record.loadedDigest = undefined;
      if (!inSet.has(name)) pruneAdapterCache(this.options.cacheDir, name);
    }

    const now = Date.now();
    for (const entry of desired.values()) {
      const record = this.record(entry.name);
      record.source = describeSource(entry.source);
      const digest = sourceDigest(entry.source);
      const enginePath = loaded.get(entry.name);
      if (record.job !== undefined) {
        if (record.job.digest !== digest) record.job.abort.abort(new Error("the adapter's source changed"));
        continue;
      }
      if (enginePath !== undefined && record.loadedDigest === undefined && this.isOurs(entry, enginePath)) {
        // Loaded before this agent started (it restarted, the engine did not): adopt it.
        record.loadedDigest = digest;
        record.loadedPath = enginePath;
      }
      if (enginePath !== undefined && record.loadedDigest === digest && enginePath === record.loadedPath) {
        this.setState(record, "loaded", undefined);
        continue;
      }
      if (record.failedDigest !== undefined && record.failedDigest !== digest) {
        // The source changed since it failed (someone fixed it): a fresh start, not the old backoff.
        this.forgetFailure(record);
      } else if (record.state === "failed" && now < record.retryAt && record.loadedDigest !== digest) continue;
      if (record.state === "loaded" && enginePath === undefined) {
        this.setState(record, "loading", "the engine no longer lists it (it restarted?): loading it again");
      }
      this.startJob(entry, record, digest, enginePath !== undefined);
    }
  }

  /**
   * The adapters to keep loaded: the whole set while no gateway places; else those placed here, and
   * those placed elsewhere for less than the grace period that are loaded or loading here now.
   */
  private desired(set: AdapterSet, loaded: ReadonlyMap<string, string>): Map<string, AdapterSetEntry> {
    const now = Date.now();
    const placed = this.placement.placed(now);
    const grace = this.options.placementGraceMs ?? 60_000;
    const desired = new Map<string, AdapterSetEntry>();
    for (const entry of set.adapters) {
      if (placed === undefined || placed.has(entry.name)) {
        this.unplacedSince.delete(entry.name);
        desired.set(entry.name, entry);
        continue;
      }
      const since = this.unplacedSince.get(entry.name) ?? now;
      this.unplacedSince.set(entry.name, since);
      const record = this.records.get(entry.name);
      const here = loaded.has(entry.name) || record?.job !== undefined || record?.state === "loaded";
      if (here && now - since < grace) desired.set(entry.name, entry);
    }
    const names = new Set(set.adapters.map((adapter) => adapter.name));
    for (const name of this.unplacedSince.keys()) if (!names.has(name)) this.unplacedSince.delete(name);
    return desired;
  }

  /** True when the engine's path for an adapter is this agent's file for its current source. */
  private isOurs(entry: AdapterSetEntry, enginePath: string): boolean {
    return "path" in entry.source
      ? enginePath.endsWith(entry.source.path)
      : enginePath.startsWith(adapterDir(this.options.cacheDir, entry));
  }

  private startJob(entry: AdapterSetEntry, record: Record, digest: string, replacing: boolean): void {
    const abort = new AbortController();
    const done = this.runJob(entry, record, digest, replacing, abort.signal).finally(() => {
      record.job = undefined;
      this.wake();
    });
    record.job = { digest, abort, done };
  }

  private async runJob(entry: AdapterSetEntry, record: Record, digest: string, replacing: boolean, signal: AbortSignal): Promise<void> {
    const { log } = this.options;
    const source = describeSource(entry.source);
    this.setState(record, "loading", `fetching ${source}`);
    const fetchStarted = performance.now();
    let path: string;
    try {
      path = await fetchAdapter(entry, {
        cacheDir: this.options.cacheDir,
        baseDir: this.options.baseDir ?? process.cwd(),
        hub: this.options.hub,
        signal,
        progress: (received, total) => {
          const reason = `fetching ${source}: ${(received / 1e6).toFixed(1)}${total ? ` of ${(total / 1e6).toFixed(1)}` : ""} MB`;
          record.reason = reason;
          log.info({ adapter: entry.name, received, total }, reason);
        },
      });
    } catch (error) {
      if (signal.aborted) return;
      this.fail(record, digest, `fetching ${source} failed: ${errorText(error)}`, "fetch");
      return;
    }
    if (signal.aborted) return;
    const fetchSeconds = (performance.now() - fetchStarted) / 1000;
    this.setState(record, "loading", "loading into the engine");
    const loadStarted = performance.now();
    try {
      await this.inEngine(() => this.options.engine.load(entry.name, path, replacing));
      // Loaded means the engine says so: it lists the adapter from this path.
      const listed = (await this.options.engine.loras()).get(entry.name);
      if (listed !== path)
        throw new EngineRefusal(
          200,
          `the engine accepted the load but lists ${entry.name} ${listed === undefined ? "nowhere" : `from ${listed}`}`,
        );
    } catch (error) {
      if (error instanceof EngineUnavailable) {
        this.setState(record, "loading", `waiting for the engine: ${error.message}`);
        return;
      }
      const reason = error instanceof EngineRefusal ? `the engine refused it (HTTP ${error.status}): ${error.message}` : errorText(error);
      this.fail(record, digest, reason, "load");
      return;
    }
    record.loadedDigest = digest;
    record.loadedPath = path;
    this.setState(record, "loaded", undefined);
    this.options.events?.onLoaded?.(entry.name, fetchSeconds, (performance.now() - loadStarted) / 1000);
    if (!("path" in entry.source)) pruneAdapterCache(this.options.cacheDir, entry.name, digest);
  }

  private fail(record: Record, digest: string, reason: string, stage: "fetch" | "load"): void {
    record.attempts++;
    record.failedDigest = digest;
    const wait = Math.min(this.options.maxBackoffMs ?? 300_000, (this.options.backoffMs ?? 2000) * 2 ** (record.attempts - 1));
    record.retryAt = Date.now() + wait;
    record.lastFailure = record.loadedPath !== undefined ? `${reason}; the engine still serves the version before` : reason;
    this.setState(record, "failed", record.lastFailure);
    this.options.log.warn(
      { adapter: record.name, reason, attempts: record.attempts, retryInMs: wait },
      `adapter ${record.name} failed; retrying in ${Math.round(wait / 1000)} s`,
    );
    this.options.events?.onFailure?.(record.name, stage);
    const timer = setTimeout(() => this.wake(), wait);
    timer.unref();
  }

  /** Loads and unloads go to the engine one at a time. */
  private inEngine<T>(call: () => Promise<T>): Promise<T> {
    const next = this.loadQueue.then(call, call);
    this.loadQueue = next.catch(() => undefined);
    return next;
  }

  private forgetOldUnloaded(): void {
    const ttl = this.options.unloadedTtlMs ?? 600_000;
    const now = Date.now();
    // Adapters still in the set (placed elsewhere) stay listed.
    const inSet = new Set((this.set?.adapters ?? []).map((adapter) => adapter.name));
    for (const [name, record] of this.records) {
      if (record.state === "unloaded" && record.job === undefined && !inSet.has(name) && now - record.since > ttl) {
        this.records.delete(name);
        this.options.events?.onState?.(name, undefined);
      }
    }
  }
}
