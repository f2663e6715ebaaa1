import { randomUUID } from "node:crypto";
import { hostname } from "node:os";
import { lookup } from "node:dns/promises";
import type { Logger } from "pino";
import { admittedTenants, type KeyStore } from "./auth.ts";
import { MAX_TIMER_MS, type AdapterRoute, type GatewayConfig, type RoutingConfig, type UpstreamConfig } from "./config.ts";
import { ConcurrencyLimiter, RateLimiter } from "./limits.ts";
import type { GatewayMetrics } from "./metrics.ts";
import { UpstreamPool } from "./upstream.ts";
import { modelRename, type ModelRename } from "./sse.ts";

/** Where a model name leads: an adapter, or the base model itself. */
export interface ModelTarget {
  readonly name: string;
  readonly kind: "adapter" | "base";
  readonly adapter: AdapterRoute | undefined;
  readonly upstreamModel: string;
  /** The LoRA its requests run on (routed to replicas that hold it), or undefined for the base model's. */
  readonly lora: string | undefined;
  /** How the upstream's `model` in responses becomes this target's name; undefined when they are the same. */
  readonly rename: ModelRename | undefined;
  readonly upstream: UpstreamPool;
  readonly limiter: ConcurrencyLimiter;
  readonly timeoutMs: number;
  readonly firstByteTimeoutMs: number;
}

/** One loaded configuration: swapped whole on reload, so a request sees one consistent view. */
export interface Snapshot {
  readonly config: GatewayConfig;
  readonly keys: KeyStore;
  readonly models: ReadonlyMap<string, ModelTarget>;
  /** Path prefix (`/code`) → target. */
  readonly routes: ReadonlyMap<string, ModelTarget>;
  readonly embeddings: { readonly upstream: UpstreamPool; readonly model: string } | undefined;
  readonly loadedAt: Date;
}

/** Limits for the base model, which the spec does not give any. */
const BASE_MODEL_LIMITS = { concurrency: 64, queue: 256, timeoutMs: 300_000, firstByteTimeoutMs: 60_000 } as const;

/** How long a request started under `config` may run: its longest timeout, and a margin. */
function longestRequestMs(config: GatewayConfig): number {
  return Math.min(
    MAX_TIMER_MS,
    Math.max(BASE_MODEL_LIMITS.timeoutMs, ...config.adapters.map((adapter) => adapter.limits.timeoutMs)) + 10_000,
  );
}

/**
 * What outlives a reload: upstream pools (kept while their settings are unchanged, so keep-alive
 * connections and health state survive), concurrency limiters and rate-limit buckets.
 */
export class Runtime {
  private snapshot: Snapshot | undefined;
  private readonly pools = new Map<string, { key: string; pool: UpstreamPool }>();
  /** By key (`base:` + name for the base model); `adapter` is the metrics label. */
  private readonly limiters = new Map<string, { readonly limiter: ConcurrencyLimiter; readonly adapter: string }>();
  private readonly retired = new Set<UpstreamPool>();
  /** The tenants the current keys admit (their metric series are kept). */
  private tenants: ReadonlySet<string> = new Set();
  /** The longest any request started so far may run (see longestRequestMs), over every config applied. */
  private lingerMs = 0;
  readonly rateLimiter = new RateLimiter({ requestsPerMinute: 1, tokensPerMinute: 1 });
  /** Counts the gateway replicas that share the rate limits, while the config says they are shared. */
  private peers: { readonly key: string; timer: NodeJS.Timeout | undefined } | undefined;
  /** This gateway in the adapter agents' placement books: its host (pod) name and a suffix of this process. */
  private readonly placementName = `${hostname()}/${randomUUID().slice(0, 8)}`;
  /** The last placement error per upstream and replica, so that each is logged once. */
  private readonly placementErrors = new Map<string, string | undefined>();

  constructor(
    private readonly metrics: GatewayMetrics,
    private readonly log: Logger,
    /** How host names become addresses (the replica count behind the gateway's headless Service). */
    private readonly resolveHost: (host: string) => Promise<readonly string[]> = async (host) =>
      (await lookup(host, { all: true })).map((a) => a.address),
  ) {
    metrics.inFlightSource = () => [...this.limiters.values()].map(({ adapter, limiter }) => [adapter, limiter.inFlight] as const);
    metrics.healthySource = () => [...this.pools.values()].map(({ pool }) => [pool.name, pool.healthyCount()] as const);
  }

  get current(): Snapshot | undefined {
    return this.snapshot;
  }

  /** Builds a snapshot for a validated config and makes it current. */
  async apply(config: GatewayConfig, keys: KeyStore): Promise<Snapshot> {
    const pools = new Map<string, UpstreamPool>();
    const started: UpstreamPool[] = [];
    for (const [name, upstream] of Object.entries(config.upstreams)) {
      const key = JSON.stringify([upstream, config.routing]);
      const existing = this.pools.get(name);
      if (existing?.key === key) {
        pools.set(name, existing.pool);
      } else {
        const pool = this.newPool(name, upstream, config.routing);
        await pool.start();
        started.push(pool);
        pools.set(name, pool);
      }
    }
    const poolOf = (name: string): UpstreamPool => {
      const pool = pools.get(name);
      if (pool === undefined) throw new Error(`upstream ${name} missing after validation`);
      return pool;
    };
    const models = new Map<string, ModelTarget>();
    const routes = new Map<string, ModelTarget>();
    const base: ModelTarget = {
      name: config.baseModel.name,
      kind: "base",
      adapter: undefined,
      upstreamModel: config.baseModel.name,
      lora: undefined,
      rename: undefined,
      upstream: poolOf(config.baseModel.upstream),
      limiter: this.limiterFor(
        `base:${config.baseModel.name}`,
        config.baseModel.name,
        BASE_MODEL_LIMITS.concurrency,
        BASE_MODEL_LIMITS.queue,
      ),
      timeoutMs: BASE_MODEL_LIMITS.timeoutMs,
      firstByteTimeoutMs: BASE_MODEL_LIMITS.firstByteTimeoutMs,
    };
    models.set(base.name, base);
    for (const adapter of config.adapters) {
      const target: ModelTarget = {
        name: adapter.name,
        kind: "adapter",
        adapter,
        upstreamModel: adapter.upstreamModel,
        lora: adapter.upstreamModel !== config.baseModel.name ? adapter.upstreamModel : undefined,
        rename: modelRename(adapter.upstreamModel, adapter.name),
        upstream: poolOf(adapter.upstream),
        limiter: this.limiterFor(adapter.name, adapter.name, adapter.limits.concurrency, adapter.limits.queue),
        timeoutMs: adapter.limits.timeoutMs,
        firstByteTimeoutMs: adapter.limits.firstByteTimeoutMs,
      };
      models.set(adapter.name, target);
      routes.set(adapter.route, target);
    }
    // What each engine's placement places: the LoRAs of the adapters routed to it.
    for (const [name, pool] of pools)
      pool.placeLoras(
        config.adapters.filter((a) => a.upstream === name && a.upstreamModel !== config.baseModel.name).map((a) => a.upstreamModel),
      );
    this.rateLimiter.update(config.rateLimits);
    await this.countPeers(config.rateLimits.sharedBy);
    this.pruneLimiters(new Set([...models.values()].map((target) => target.limiter)));
    const snapshot: Snapshot = {
      config,
      keys,
      models,
      routes,
      embeddings: config.embeddings ? { upstream: poolOf(config.embeddings.upstream), model: config.embeddings.model } : undefined,
      loadedAt: new Date(),
    };
    const retired = [...this.pools].filter(([name, entry]) => pools.get(name) !== entry.pool);
    this.pools.clear();
    for (const [name, pool] of pools) this.pools.set(name, { key: JSON.stringify([config.upstreams[name], config.routing]), pool });
    this.snapshot = snapshot;
    // Requests already running on the old snapshot finish first: a retired pool is closed, and a
    // removed tenant's series (which such a request makes again) forgotten again, only after the
    // longest of them could have run.
    const lingerMs = (this.lingerMs = Math.max(this.lingerMs, longestRequestMs(config)));
    for (const [, entry] of retired) {
      entry.pool.retire();
      this.retired.add(entry.pool);
      setTimeout(() => {
        this.retired.delete(entry.pool);
        void entry.pool.close();
      }, lingerMs).unref();
    }
    const tenants = admittedTenants(config.auth.mode, keys);
    for (const tenant of this.tenants) {
      if (tenants.has(tenant)) continue;
      this.metrics.forgetTenant(tenant);
      setTimeout(() => {
        if (!this.tenants.has(tenant)) this.metrics.forgetTenant(tenant);
      }, lingerMs).unref();
    }
    this.tenants = tenants;
    return snapshot;
  }

  /**
   * Follows how many gateway replicas share the rate limits: the addresses behind `sharedBy.dns`. A
   * failed lookup keeps the last count (never 0: the limits would vanish, or every request be refused).
   */
  private async countPeers(sharedBy: GatewayConfig["rateLimits"]["sharedBy"]): Promise<void> {
    const key = JSON.stringify(sharedBy ?? null);
    if (this.peers?.key === key) return;
    clearTimeout(this.peers?.timer);
    this.peers = undefined;
    if (sharedBy === undefined) {
      this.rateLimiter.shareWith(1);
      return;
    }
    const peers: { readonly key: string; timer: NodeJS.Timeout | undefined } = { key, timer: undefined };
    this.peers = peers;
    const count = async (): Promise<void> => {
      try {
        const replicas = new Set(await this.resolveHost(sharedBy.dns)).size;
        if (replicas > 0 && replicas !== this.rateLimiter.sharedBy) {
          this.log.info({ replicas, dns: sharedBy.dns }, "rate limits shared by a new number of gateway replicas");
          this.rateLimiter.shareWith(replicas);
        }
      } catch (error) {
        this.log.warn(
          { dns: sharedBy.dns, err: { message: (error as Error).message } },
          "cannot count the gateway replicas; the rate limits keep the last share",
        );
      }
      if (this.peers !== peers) return;
      peers.timer = setTimeout(() => void count(), sharedBy.refreshMs);
      peers.timer.unref();
    };
    await count();
  }

  private newPool(name: string, upstream: UpstreamConfig, routing: RoutingConfig): UpstreamPool {
    return new UpstreamPool(
      name,
      upstream,
      {
        onRoute: (_upstream, policy, reason, lora, hit) => this.metrics.routed(policy, reason, lora, hit),
        onRetry: (upstreamName, reason) => this.metrics.retries.inc({ upstream: upstreamName, reason }),
        onEjection: (upstreamName, replica, forMs, reason) => {
          this.metrics.ejections.inc({ upstream: upstreamName });
          this.log.warn({ upstream: upstreamName, replica, forMs, reason }, "upstream replica ejected");
        },
        onRestore: (upstreamName, replica) => this.log.info({ upstream: upstreamName, replica }, "upstream replica restored"),
        onPlacement: (upstreamName, replica, placed, error) => {
          this.metrics.placementPublishes.inc({ upstream: upstreamName, result: error === undefined ? "ok" : "error" });
          if (error === undefined) this.metrics.placedAdapters.set({ upstream: upstreamName, replica }, placed);
          // Logged when it changes, not every publish.
          const key = `${upstreamName} ${replica}`;
          if (this.placementErrors.get(key) === error) return;
          if (error === undefined) {
            this.placementErrors.delete(key);
            this.log.info({ upstream: upstreamName, replica, placed }, "the replica's adapter agent takes the placement");
          } else {
            this.placementErrors.set(key, error);
            this.log.warn(
              { upstream: upstreamName, replica, error },
              "cannot tell the replica's adapter agent which adapters to keep; it loads every adapter once the last placement lapses",
            );
          }
        },
      },
      { ...routing, placementGateway: `${this.placementName}/${name}` },
    );
  }

  private limiterFor(key: string, adapter: string, concurrency: number, queue: number): ConcurrencyLimiter {
    const known = this.limiters.get(key);
    if (known !== undefined) {
      known.limiter.update(concurrency, queue);
      return known.limiter;
    }
    const limiter = new ConcurrencyLimiter(concurrency, queue, (depth) => this.metrics.queueDepth.set({ adapter }, depth));
    this.limiters.set(key, { limiter, adapter });
    return limiter;
  }

  /**
   * Drops the limiters of adapters the config no longer has, with all their metric series. One still
   * serving requests (they run on the old snapshot) is dropped at a later reload, once idle.
   */
  private pruneLimiters(inUse: ReadonlySet<ConcurrencyLimiter>): void {
    for (const [key, { limiter, adapter }] of this.limiters) {
      if (inUse.has(limiter) || limiter.inFlight > 0 || limiter.queued > 0) continue;
      this.limiters.delete(key);
      this.metrics.queueDepth.remove({ adapter });
      this.metrics.forgetAdapter(adapter);
    }
  }

  /**
   * Ready (to take traffic) once a config is loaded. An adapter with no healthy replica does not make
   * the gateway unready: every gateway replica sees the same engines, so that would take them all out
   * of the Service at once (one engine down, or loading for minutes, and the ingress would answer 503
   * for every adapter, the console included, and a gateway rollout could not finish). Those adapters
   * are `degraded`: their requests get 503 with Retry-After, and /readyz and the console list them.
   */
  readiness(): { ready: boolean; problems: string[]; degraded: string[] } {
    const snapshot = this.snapshot;
    if (snapshot === undefined) return { ready: false, problems: ["no configuration loaded"], degraded: [] };
    const degraded: string[] = [];
    for (const target of snapshot.models.values()) {
      if (target.upstream.healthyCount() === 0) degraded.push(`${target.name}: no healthy replica of upstream ${target.upstream.name}`);
    }
    const embeddings = snapshot.embeddings?.upstream;
    if (embeddings !== undefined && embeddings.healthyCount() === 0)
      degraded.push(`embeddings: no healthy replica of upstream ${embeddings.name} (RAG retrieval and ingest cannot embed)`);
    return { ready: true, problems: [], degraded };
  }

  upstreams(): ReturnType<UpstreamPool["describe"]>[] {
    return [...this.pools.values()].map((entry) => entry.pool.describe());
  }

  async close(): Promise<void> {
    clearTimeout(this.peers?.timer);
    this.peers = undefined;
    await Promise.all([...[...this.pools.values()].map((entry) => entry.pool), ...this.retired].map((pool) => pool.close()));
    this.retired.clear();
    this.pools.clear();
  }
}
