import { collectDefaultMetrics, Counter, Gauge, Histogram, Registry } from "prom-client";
import { RATE_LIMIT_CODES } from "./limits.ts";
import type { Usage } from "./sse.ts";

/** Latency buckets in seconds: sub-millisecond for the gateway's own work, up to minutes for generation. */
export const LATENCY_BUCKETS: readonly number[] = [
  0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300,
];

type RequestLabels = { readonly adapter: string };

/** The LATENCY_BUCKETS bucket a value falls in (the last index is +Inf), as Prometheus counts `le`. */
function bucketOf(value: number): number {
  let index = 0;
  while (index < LATENCY_BUCKETS.length && value > (LATENCY_BUCKETS[index] as number)) index++;
  return index;
}

/** A gauge of one label read from `source` at each scrape (its series are exactly what the source gives then). */
function scrapedGauge<L extends string>(
  name: string,
  help: string,
  label: L,
  registers: Registry[],
  source: () => Iterable<readonly [string, number]>,
): Gauge<L> {
  return new Gauge({
    name,
    help,
    labelNames: [label],
    registers,
    collect() {
      this.reset();
      for (const [value, count] of source()) this.set({ [label]: value } as Record<L, string>, count);
    },
  });
}

/** Request and token counts since the last scrape, kept as plain numbers (see countRequest). */
interface Counts {
  /** Requests by status since the last scrape; a status once seen stays (at 0), for the forget methods. */
  readonly byStatus: Map<number, number>;
  /** Undefined until a response reports usage (since the last scrape). */
  tokensIn: number | undefined;
  tokensOut: number | undefined;
  /** Since the series was made, never reset: what the console's history and usage read. */
  requestsTotal: number;
  errorsTotal: number;
  tokensInTotal: number;
  tokensOutTotal: number;
}

/** An adapter's or a tenant's counts since its series was made (a forgotten series starts again at 0). */
export interface Totals {
  readonly requests: number;
  /** Responses with a status of 400 or more. */
  readonly errors: number;
  readonly tokensIn: number;
  readonly tokensOut: number;
}

export interface AdapterTotals extends Totals {
  readonly adapter: string;
  /** Requests per LATENCY_BUCKETS bucket, not cumulative; the last is +Inf. */
  readonly latencyCounts: readonly number[];
}

/** One adapter's per-request series: label objects made once. */
interface AdapterSeries extends Counts {
  readonly labels: RequestLabels;
  /** Requests per LATENCY_BUCKETS bucket, for the console (the histogram's own are read only by a scrape). */
  readonly latencyCounts: number[];
  /** Whether a stream has observed a time to first token (that series exists). */
  streamed: boolean;
}

const counts = (): Counts => ({
  byStatus: new Map(),
  tokensIn: undefined,
  tokensOut: undefined,
  requestsTotal: 0,
  errorsTotal: 0,
  tokensInTotal: 0,
  tokensOutTotal: 0,
});

function add(into: Counts, status: number, usage: Usage | undefined): void {
  into.byStatus.set(status, (into.byStatus.get(status) ?? 0) + 1);
  into.requestsTotal++;
  if (status >= 400) into.errorsTotal++;
  if (usage !== undefined) {
    into.tokensIn = (into.tokensIn ?? 0) + usage.promptTokens;
    into.tokensOut = (into.tokensOut ?? 0) + usage.completionTokens;
    into.tokensInTotal += usage.promptTokens;
    into.tokensOutTotal += usage.completionTokens;
  }
}

const totalsOf = (from: Counts): Totals => ({
  requests: from.requestsTotal,
  errors: from.errorsTotal,
  tokensIn: from.tokensInTotal,
  tokensOut: from.tokensOutTotal,
});

/**
 * The series one adapter adds to /metrics, at most: its share of requests_total (one per status it
 * answered), of tokens_total (in, out), two histograms (buckets, +Inf, sum, count), queue depth, in
 * flight, retrievals (ok, failed, skipped) and swaps. Tenants are counted apart, never crossed with adapters:
 * 1,000 adapters × 100 tenants would otherwise be a million histograms.
 */
export function seriesPerAdapter(statuses: number): number {
  return statuses + 2 + 2 * (LATENCY_BUCKETS.length + 3) + 2 + 3 + 1;
}

/** The gateway's Prometheus metrics, on a registry of its own so several gateways can share a process. */
export class GatewayMetrics {
  readonly registry = new Registry();
  readonly requests: Counter<"adapter" | "status">;
  readonly latency: Histogram<"adapter">;
  readonly timeToFirstToken: Histogram<"adapter">;
  readonly tokens: Counter<"adapter" | "direction">;
  readonly retries: Counter<"upstream" | "reason">;
  readonly ejections: Counter<"upstream">;
  readonly queueDepth: Gauge<"adapter">;
  readonly inFlight: Gauge<"adapter">;
  readonly healthyReplicas: Gauge<"upstream">;
  readonly rateLimited: Counter<"tenant" | "limit">;
  readonly configReloads: Counter<"result">;
  readonly routingDecisions: Counter<"policy" | "reason">;
  readonly residency: Counter<"result">;
  readonly swaps: Counter<"adapter">;
  readonly placementPublishes: Counter<"upstream" | "result">;
  readonly placedAdapters: Gauge<"upstream" | "replica">;
  readonly retrievals: Counter<"adapter" | "result">;
  /** Read at scrape time rather than counted per request: adapter → requests running upstream. */
  inFlightSource: () => Iterable<readonly [string, number]> = () => [];
  /** Read at scrape time: upstream → replicas taking requests (not ejected). */
  healthySource: () => Iterable<readonly [string, number]> = () => [];
  /** Counts since the last scrape, by adapter and by tenant apart; see `countRequest`. */
  private readonly adapters = new Map<string, AdapterSeries>();
  private readonly tenants = new Map<string, Counts>();
  readonly tenantRequests: Counter<"tenant" | "status">;
  readonly tenantTokens: Counter<"tenant" | "direction">;

  constructor(options: { readonly defaultMetrics?: boolean } = {}) {
    const registers = [this.registry];
    if (options.defaultMetrics ?? true) collectDefaultMetrics({ register: this.registry, prefix: "diatonic_gateway_" });
    const flush = () => this.flush();
    this.requests = new Counter({
      name: "diatonic_gateway_requests_total",
      help: "Requests by adapter and HTTP status.",
      labelNames: ["adapter", "status"],
      registers,
      collect: flush,
    });
    this.tenantRequests = new Counter({
      name: "diatonic_gateway_tenant_requests_total",
      help: "Requests by tenant (the API key's) and HTTP status.",
      labelNames: ["tenant", "status"],
      registers,
      collect: flush,
    });
    const buckets = [...LATENCY_BUCKETS];
    this.latency = new Histogram({
      name: "diatonic_gateway_request_duration_seconds",
      help: "Time from request to the last byte of the response.",
      labelNames: ["adapter"],
      buckets,
      registers,
    });
    this.timeToFirstToken = new Histogram({
      name: "diatonic_gateway_time_to_first_token_seconds",
      help: "Streams: time from request to the first event from upstream.",
      labelNames: ["adapter"],
      buckets,
      registers,
    });
    this.tokens = new Counter({
      name: "diatonic_gateway_tokens_total",
      help: "Tokens by adapter and direction (in = prompt, out = completion), counted from the upstream's usage.",
      labelNames: ["adapter", "direction"],
      registers,
      collect: flush,
    });
    this.tenantTokens = new Counter({
      name: "diatonic_gateway_tenant_tokens_total",
      help: "Tokens by tenant and direction (in = prompt, out = completion).",
      labelNames: ["tenant", "direction"],
      registers,
      collect: flush,
    });
    this.retries = new Counter({
      name: "diatonic_gateway_upstream_retries_total",
      help: "Upstream retries before the first byte.",
      labelNames: ["upstream", "reason"],
      registers,
    });
    // No replica label: pod addresses churn, and each would be a series forever (the log names the replica).
    this.ejections = new Counter({
      name: "diatonic_gateway_upstream_ejections_total",
      help: "Replicas ejected by health checking: requests that failed in a row (passive) or the health path that did not answer (active).",
      labelNames: ["upstream"],
      registers,
    });
    this.queueDepth = new Gauge({
      name: "diatonic_gateway_queue_depth",
      help: "Requests waiting for a concurrency slot.",
      labelNames: ["adapter"],
      registers,
    });
    this.inFlight = scrapedGauge(
      "diatonic_gateway_in_flight_requests",
      "Requests holding a concurrency slot (being served upstream).",
      "adapter",
      registers,
      () => this.inFlightSource(),
    );
    this.healthyReplicas = scrapedGauge(
      "diatonic_gateway_upstream_healthy_replicas",
      "Replicas of each upstream taking requests (known and not ejected after failures); 0 means its adapters get 503.",
      "upstream",
      registers,
      () => this.healthySource(),
    );
    this.rateLimited = new Counter({
      name: "diatonic_gateway_rate_limited_total",
      help: "Requests rejected by a per-key rate limit.",
      labelNames: ["tenant", "limit"],
      registers,
    });
    this.routingDecisions = new Counter({
      name: "diatonic_gateway_routing_decisions_total",
      help: "Replicas chosen for LoRA requests, by policy and reason (resident, home, spill, active, ...).",
      labelNames: ["policy", "reason"],
      registers,
    });
    this.residency = new Counter({
      name: "diatonic_gateway_residency_total",
      help: "LoRA requests sent where the LoRA was in the replica's slots (hit) or not (miss: a swap), as the gateway sees it.",
      labelNames: ["result"],
      registers,
    });
    this.swaps = new Counter({
      name: "diatonic_gateway_adapter_swaps_total",
      help: "LoRA requests sent to a replica whose slots did not hold the adapter (each one makes the engine swap it in).",
      labelNames: ["adapter"],
      registers,
    });
    this.placementPublishes = new Counter({
      name: "diatonic_gateway_placement_publishes_total",
      help: "Placements sent to the engine replicas' adapter agents (which adapters each keeps loaded), by result (ok, error).",
      labelNames: ["upstream", "result"],
      registers,
    });
    this.placedAdapters = new Gauge({
      name: "diatonic_gateway_placed_adapters",
      help: "Adapters this gateway last placed on each engine replica (hot ones are placed on several).",
      labelNames: ["upstream", "replica"],
      registers,
    });
    this.configReloads = new Counter({
      name: "diatonic_gateway_config_reloads_total",
      help: "Config reloads by result (ok, rejected).",
      labelNames: ["result"],
      registers,
    });
    this.retrievals = new Counter({
      name: "diatonic_gateway_retrievals_total",
      help: "RAG retrievals by result (ok, failed, skipped).",
      labelNames: ["adapter", "result"],
      registers,
    });
  }

  /**
   * One finished request. Counts are kept as plain numbers and added to the prom-client counters at
   * scrape time: a prom-client call (label checks, hashing) per request costs more than the rest of
   * the bookkeeping. The latency histograms are observed at once (prom-client's observe, about a
   * microsecond each), with label objects made once.
   */
  countRequest(
    adapter: string,
    tenant: string,
    status: number,
    seconds: number,
    firstTokenSeconds: number | undefined,
    usage: Usage | undefined,
  ): void {
    let series = this.adapters.get(adapter);
    if (series === undefined) {
      const labels = { adapter };
      series = { labels, ...counts(), latencyCounts: new Array<number>(LATENCY_BUCKETS.length + 1).fill(0), streamed: false };
      this.adapters.set(adapter, series);
    }
    add(series, status, usage);
    let byTenant = this.tenants.get(tenant);
    if (byTenant === undefined) this.tenants.set(tenant, (byTenant = counts()));
    add(byTenant, status, usage);
    this.latency.observe(series.labels, seconds);
    const bucket = bucketOf(seconds);
    series.latencyCounts[bucket] = (series.latencyCounts[bucket] as number) + 1;
    if (firstTokenSeconds !== undefined) {
      this.timeToFirstToken.observe(series.labels, firstTokenSeconds);
      series.streamed = true;
    }
  }

  /** Every adapter's counts so far, read without a scrape (the console's history). */
  *adapterTotals(): IterableIterator<AdapterTotals> {
    for (const [adapter, series] of this.adapters) yield { adapter, ...totalsOf(series), latencyCounts: series.latencyCounts };
  }

  /** Every tenant's counts so far (the console's usage view). */
  *tenantTotals(): IterableIterator<Totals & { readonly tenant: string }> {
    for (const [tenant, byTenant] of this.tenants) yield { tenant, ...totalsOf(byTenant) };
  }

  /** Rate-limit rejections so far, by tenant and limit (`rate_limit_requests`, `rate_limit_tokens`). */
  async rateLimitedByTenant(): Promise<Map<string, Record<string, number>>> {
    const byTenant = new Map<string, Record<string, number>>();
    for (const { labels, value } of (await this.rateLimited.get()).values) {
      const tenant = String(labels.tenant);
      const limits = byTenant.get(tenant) ?? {};
      limits[String(labels.limit)] = value;
      byTenant.set(tenant, limits);
    }
    return byTenant;
  }

  /** One routing decision for a LoRA request. */
  routed(policy: string, reason: string, lora: string | undefined, hit: boolean): void {
    this.routingDecisions.inc({ policy, reason });
    this.residency.inc({ result: hit ? "hit" : "miss" });
    if (!hit && lora !== undefined) this.swaps.inc({ adapter: lora });
  }

  /**
   * Removes every series of an adapter the config no longer has, so that adapter churn does not grow
   * /metrics without bound. Called once the adapter is idle (Runtime.pruneLimiters).
   */
  forgetAdapter(adapter: string): void {
    const series = this.adapters.get(adapter);
    this.adapters.delete(adapter);
    if (series !== undefined) {
      this.latency.remove(series.labels);
      if (series.streamed) this.timeToFirstToken.remove(series.labels);
      for (const status of series.byStatus.keys()) this.requests.remove({ adapter, status: String(status) });
    }
    for (const direction of ["in", "out"]) this.tokens.remove({ adapter, direction });
    for (const result of ["ok", "failed", "skipped"]) this.retrievals.remove({ adapter, result });
    this.swaps.remove({ adapter });
  }

  /**
   * Removes every series of a tenant no key belongs to any more (keys rotated out, a customer gone),
   * for the same reason. A request of that tenant still running makes its series again when it ends:
   * Runtime forgets the tenant once more after the longest request could have run.
   */
  forgetTenant(tenant: string): void {
    const byTenant = this.tenants.get(tenant);
    this.tenants.delete(tenant);
    for (const status of byTenant?.byStatus.keys() ?? []) this.tenantRequests.remove({ tenant, status: String(status) });
    for (const direction of ["in", "out"]) this.tenantTokens.remove({ tenant, direction });
    for (const limit of Object.values(RATE_LIMIT_CODES)) this.rateLimited.remove({ tenant, limit });
  }

  /** Adds the counts since the last scrape to the prom-client counters; the series stay (histograms are cumulative). */
  private flush(): void {
    for (const [adapter, series] of this.adapters)
      this.flushCounts(
        series,
        (status, n) => this.requests.inc({ adapter, status }, n),
        (direction, n) => this.tokens.inc({ adapter, direction }, n),
      );
    for (const [tenant, byTenant] of this.tenants)
      this.flushCounts(
        byTenant,
        (status, n) => this.tenantRequests.inc({ tenant, status }, n),
        (direction, n) => this.tenantTokens.inc({ tenant, direction }, n),
      );
  }

  private flushCounts(
    from: Counts,
    requests: (status: string, n: number) => void,
    tokens: (direction: "in" | "out", n: number) => void,
  ): void {
    for (const [status, count] of from.byStatus) {
      if (count === 0) continue;
      requests(String(status), count);
      from.byStatus.set(status, 0);
    }
    if (from.tokensIn !== undefined) tokens("in", from.tokensIn);
    if (from.tokensOut !== undefined) tokens("out", from.tokensOut);
    from.tokensIn = undefined;
    from.tokensOut = undefined;
  }

  async render(): Promise<{ body: string; contentType: string }> {
    return { body: await this.registry.metrics(), contentType: this.registry.contentType };
  }
}
