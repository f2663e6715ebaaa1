import { collectDefaultMetrics, Counter, Gauge, Registry } from "prom-client";
import { RATE_LIMIT_CODES } from "./limits.ts";
import type { Usage } from "./sse.ts";

/** Latency buckets in seconds: sub-millisecond for the gateway's own work, up to minutes for generation. */
export const LATENCY_BUCKETS: readonly number[] = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300];

type RequestLabels = { readonly adapter: string; readonly tenant: string };

/** One label set's buckets: counts per bucket (not cumulative; the last is +Inf), sum, count. */
interface HistogramSeries {
  readonly labels: RequestLabels;
  readonly counts: number[];
  sum: number;
  count: number;
}

/**
 * A Prometheus histogram over series the caller holds on to, registered with prom-client (which
 * renders it through get(), in the shape its own histograms produce). prom-client's observe()
 * validates and hashes the labels on every call; here an observation is a bucket scan and three
 * additions, which matters at one or two observations per request.
 */
class SeriesHistogram {
  readonly type = "histogram";
  readonly aggregator = "sum";
  private readonly all: HistogramSeries[] = [];

  constructor(
    readonly name: string,
    readonly help: string,
    private readonly buckets: readonly number[],
    registry: Registry,
  ) {
    registry.registerMetric(this as unknown as Parameters<Registry["registerMetric"]>[0]);
  }

  series(labels: RequestLabels): HistogramSeries {
    const series: HistogramSeries = { labels, counts: new Array<number>(this.buckets.length + 1).fill(0), sum: 0, count: 0 };
    this.all.push(series);
    return series;
  }

  /** Stops rendering a series (its adapter is gone). */
  drop(series: HistogramSeries): void {
    const at = this.all.indexOf(series);
    if (at >= 0) this.all.splice(at, 1);
  }

  observe(series: HistogramSeries, value: number): void {
    const { buckets } = this;
    let index = 0;
    while (index < buckets.length && value > (buckets[index] as number)) index++;
    series.counts[index] = (series.counts[index] as number) + 1;
    series.sum += value;
    series.count++;
  }

  get(): { name: string; help: string; type: string; aggregator: string; values: { value: number; labels: Record<string, string | number>; metricName: string }[] } {
    const values: { value: number; labels: Record<string, string | number>; metricName: string }[] = [];
    const bucketName = `${this.name}_bucket`;
    for (const { labels, counts, sum, count } of this.all) {
      let cumulative = 0;
      this.buckets.forEach((bound, index) => {
        cumulative += counts[index] as number;
        values.push({ value: cumulative, labels: { ...labels, le: bound }, metricName: bucketName });
      });
      values.push({ value: count, labels: { ...labels, le: "+Inf" }, metricName: bucketName });
      values.push({ value: sum, labels: { ...labels }, metricName: `${this.name}_sum` });
      values.push({ value: count, labels: { ...labels }, metricName: `${this.name}_count` });
    }
    return { name: this.name, help: this.help, type: this.type, aggregator: this.aggregator, values };
  }
}

/** One adapter and tenant's per-request series: label objects made once, counts kept as plain numbers. */
interface RequestSeries {
  readonly labels: RequestLabels;
  /** Requests by status since the last scrape; a status once seen stays (at 0), for forgetAdapter. */
  readonly byStatus: Map<number, number>;
  readonly latency: HistogramSeries;
  /** Made on the first stream. */
  timeToFirstToken: HistogramSeries | undefined;
  /** Undefined until a response reports usage (since the last scrape). */
  tokensIn: number | undefined;
  tokensOut: number | undefined;
  /** Since the series was made, never reset: what the console's history and usage read. */
  errorsTotal: number;
  tokensInTotal: number;
  tokensOutTotal: number;
}

/** One adapter and tenant's counts since its series was made (a forgotten series starts again at 0). */
export interface SeriesTotals {
  readonly adapter: string;
  readonly tenant: string;
  readonly requests: number;
  /** Responses with a status of 400 or more. */
  readonly errors: number;
  readonly tokensIn: number;
  readonly tokensOut: number;
  /** Requests per LATENCY_BUCKETS bucket, not cumulative; the last is +Inf. */
  readonly latencyCounts: readonly number[];
}

/** The gateway's Prometheus metrics, on a registry of its own so several gateways can share a process. */
export class GatewayMetrics {
  readonly registry = new Registry();
  readonly requests: Counter<"adapter" | "tenant" | "status">;
  readonly latency: SeriesHistogram;
  readonly timeToFirstToken: SeriesHistogram;
  readonly tokens: Counter<"adapter" | "tenant" | "direction">;
  readonly retries: Counter<"upstream" | "reason">;
  readonly ejections: Counter<"upstream" | "replica">;
  readonly queueDepth: Gauge<"adapter">;
  readonly inFlight: Gauge<"adapter">;
  readonly rateLimited: Counter<"tenant" | "limit">;
  readonly configReloads: Counter<"result">;
  readonly retrievals: Counter<"adapter" | "result">;
  /** Read at scrape time rather than counted per request: adapter → requests running upstream. */
  inFlightSource: () => Iterable<readonly [string, number]> = () => [];
  /** Request and token counts since the last scrape, by adapter and tenant; see `countRequest`. */
  private readonly series = new Map<string, Map<string, RequestSeries>>();

  constructor(options: { readonly defaultMetrics?: boolean } = {}) {
    const registers = [this.registry];
    if (options.defaultMetrics ?? true) collectDefaultMetrics({ register: this.registry, prefix: "diatonic_gateway_" });
    const flush = () => this.flush();
    this.requests = new Counter({ name: "diatonic_gateway_requests_total", help: "Requests by adapter, tenant and HTTP status.", labelNames: ["adapter", "tenant", "status"], registers, collect: flush });
    this.latency = new SeriesHistogram("diatonic_gateway_request_duration_seconds", "Time from request to the last byte of the response.", LATENCY_BUCKETS, this.registry);
    this.timeToFirstToken = new SeriesHistogram("diatonic_gateway_time_to_first_token_seconds", "Streams: time from request to the first event from upstream.", LATENCY_BUCKETS, this.registry);
    this.tokens = new Counter({ name: "diatonic_gateway_tokens_total", help: "Tokens by direction (in = prompt, out = completion), counted from the upstream's usage.", labelNames: ["adapter", "tenant", "direction"], registers, collect: flush });
    this.retries = new Counter({ name: "diatonic_gateway_upstream_retries_total", help: "Upstream retries before the first byte.", labelNames: ["upstream", "reason"], registers });
    this.ejections = new Counter({ name: "diatonic_gateway_upstream_ejections_total", help: "Replicas ejected by passive health checking.", labelNames: ["upstream", "replica"], registers });
    this.queueDepth = new Gauge({ name: "diatonic_gateway_queue_depth", help: "Requests waiting for a concurrency slot.", labelNames: ["adapter"], registers });
    const source = () => this.inFlightSource();
    this.inFlight = new Gauge({
      name: "diatonic_gateway_in_flight_requests",
      help: "Requests holding a concurrency slot (being served upstream).",
      labelNames: ["adapter"],
      registers,
      collect() {
        this.reset();
        for (const [adapter, count] of source()) this.set({ adapter }, count);
      },
    });
    this.rateLimited = new Counter({ name: "diatonic_gateway_rate_limited_total", help: "Requests rejected by a per-key rate limit.", labelNames: ["tenant", "limit"], registers });
    this.configReloads = new Counter({ name: "diatonic_gateway_config_reloads_total", help: "Config reloads by result (ok, rejected).", labelNames: ["result"], registers });
    this.retrievals = new Counter({ name: "diatonic_gateway_retrievals_total", help: "RAG retrievals by result (ok, failed, skipped).", labelNames: ["adapter", "result"], registers });
  }

  /**
   * One finished request. Counts are kept as plain numbers and added to the prom-client counters at
   * scrape time: a prom-client call (label checks, hashing) per request costs more than the rest of
   * the bookkeeping. The latency histograms are observed at once, with label objects made once.
   */
  countRequest(adapter: string, tenant: string, status: number, seconds: number, firstTokenSeconds: number | undefined, usage: Usage | undefined): void {
    // Adapter, then tenant: the config's own strings, whose hashes are cached (a joined key is not).
    let byTenant = this.series.get(adapter);
    if (byTenant === undefined) this.series.set(adapter, (byTenant = new Map()));
    let series = byTenant.get(tenant);
    if (series === undefined) {
      const labels = { adapter, tenant };
      series = { labels, byStatus: new Map(), tokensIn: undefined, tokensOut: undefined, latency: this.latency.series(labels), timeToFirstToken: undefined, errorsTotal: 0, tokensInTotal: 0, tokensOutTotal: 0 };
      byTenant.set(tenant, series);
    }
    series.byStatus.set(status, (series.byStatus.get(status) ?? 0) + 1);
    if (status >= 400) series.errorsTotal++;
    if (usage !== undefined) {
      series.tokensIn = (series.tokensIn ?? 0) + usage.promptTokens;
      series.tokensOut = (series.tokensOut ?? 0) + usage.completionTokens;
      series.tokensInTotal += usage.promptTokens;
      series.tokensOutTotal += usage.completionTokens;
    }
    this.latency.observe(series.latency, seconds);
    if (firstTokenSeconds !== undefined) this.timeToFirstToken.observe((series.timeToFirstToken ??= this.timeToFirstToken.series(series.labels)), firstTokenSeconds);
  }

  /** Every adapter and tenant's counts so far, read without a scrape (the console's history and usage). */
  *totals(): IterableIterator<SeriesTotals> {
    for (const byTenant of this.series.values()) {
      for (const series of byTenant.values()) {
        const { labels, latency } = series;
        yield { adapter: labels.adapter, tenant: labels.tenant, requests: latency.count, errors: series.errorsTotal, tokensIn: series.tokensInTotal, tokensOut: series.tokensOutTotal, latencyCounts: latency.counts };
      }
    }
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

  /**
   * Removes every series of an adapter the config no longer has, so that adapter churn does not grow
   * /metrics without bound. Called once the adapter is idle (Runtime.pruneLimiters).
   */
  forgetAdapter(adapter: string): void {
    const byTenant = this.series.get(adapter);
    this.series.delete(adapter);
    for (const series of byTenant?.values() ?? []) this.drop(series);
    for (const result of ["ok", "failed", "skipped"]) this.retrievals.remove({ adapter, result });
  }

  /**
   * Removes every series of a tenant no key belongs to any more (keys rotated out, a customer gone),
   * for the same reason. A request of that tenant still running makes its series again when it ends:
   * Runtime forgets the tenant once more after the longest request could have run.
   */
  forgetTenant(tenant: string): void {
    for (const byTenant of this.series.values()) {
      const series = byTenant.get(tenant);
      if (series === undefined) continue;
      byTenant.delete(tenant);
      this.drop(series);
    }
    for (const limit of Object.values(RATE_LIMIT_CODES)) this.rateLimited.remove({ tenant, limit });
  }

  private drop(series: RequestSeries): void {
    const { adapter, tenant } = series.labels;
    this.latency.drop(series.latency);
    if (series.timeToFirstToken !== undefined) this.timeToFirstToken.drop(series.timeToFirstToken);
    for (const status of series.byStatus.keys()) this.requests.remove({ adapter, tenant, status: String(status) });
    for (const direction of ["in", "out"]) this.tokens.remove({ adapter, tenant, direction });
  }

  /** Adds the counts since the last scrape to the prom-client counters; the series stay (histograms are cumulative). */
  private flush(): void {
    for (const byTenant of this.series.values()) {
      for (const series of byTenant.values()) {
        const { labels, byStatus, tokensIn, tokensOut } = series;
        for (const [status, count] of byStatus) {
          if (count === 0) continue;
          this.requests.inc({ adapter: labels.adapter, tenant: labels.tenant, status: String(status) }, count);
          byStatus.set(status, 0);
        }
        if (tokensIn !== undefined) this.tokens.inc({ adapter: labels.adapter, tenant: labels.tenant, direction: "in" }, tokensIn);
        if (tokensOut !== undefined) this.tokens.inc({ adapter: labels.adapter, tenant: labels.tenant, direction: "out" }, tokensOut);
        series.tokensIn = undefined;
        series.tokensOut = undefined;
      }
    }
  }

  async render(): Promise<{ body: string; contentType: string }> {
    return { body: await this.registry.metrics(), contentType: this.registry.contentType };
  }
}
