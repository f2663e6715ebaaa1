import { collectDefaultMetrics, Counter, Gauge, Histogram, Registry } from "prom-client";
import type { Usage } from "./sse.ts";

/** Latency buckets in seconds: sub-millisecond for the gateway's own work, up to minutes for generation. */
const LATENCY_BUCKETS = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300];

type RequestLabels = { readonly adapter: string; readonly tenant: string };

/** One adapter and tenant's per-request series: label objects made once, counts kept as plain numbers. */
interface RequestSeries {
  readonly labels: RequestLabels;
  readonly byStatus: Map<number, number>;
  /** Undefined until a response reports usage. */
  tokensIn: number | undefined;
  tokensOut: number | undefined;
}

/** The gateway's Prometheus metrics, on a registry of its own so several gateways can share a process. */
export class GatewayMetrics {
  readonly registry = new Registry();
  readonly requests: Counter<"adapter" | "tenant" | "status">;
  readonly latency: Histogram<"adapter" | "tenant">;
  readonly timeToFirstToken: Histogram<"adapter" | "tenant">;
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
  private readonly series = new Map<string, RequestSeries>();

  constructor(options: { readonly defaultMetrics?: boolean } = {}) {
    const registers = [this.registry];
    if (options.defaultMetrics ?? true) collectDefaultMetrics({ register: this.registry, prefix: "diatonic_gateway_" });
    const flush = () => this.flush();
    this.requests = new Counter({ name: "diatonic_gateway_requests_total", help: "Requests by adapter, tenant and HTTP status.", labelNames: ["adapter", "tenant", "status"], registers, collect: flush });
    this.latency = new Histogram({ name: "diatonic_gateway_request_duration_seconds", help: "Time from request to the last byte of the response.", labelNames: ["adapter", "tenant"], buckets: LATENCY_BUCKETS, registers });
    this.timeToFirstToken = new Histogram({ name: "diatonic_gateway_time_to_first_token_seconds", help: "Streams: time from request to the first event from upstream.", labelNames: ["adapter", "tenant"], buckets: LATENCY_BUCKETS, registers });
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
    const key = `${adapter}\u0000${tenant}`;
    let series = this.series.get(key);
    if (series === undefined) {
      series = { labels: { adapter, tenant }, byStatus: new Map(), tokensIn: undefined, tokensOut: undefined };
      this.series.set(key, series);
    }
    series.byStatus.set(status, (series.byStatus.get(status) ?? 0) + 1);
    if (usage !== undefined) {
      series.tokensIn = (series.tokensIn ?? 0) + usage.promptTokens;
      series.tokensOut = (series.tokensOut ?? 0) + usage.completionTokens;
    }
    this.latency.observe(series.labels, seconds);
    if (firstTokenSeconds !== undefined) this.timeToFirstToken.observe(series.labels, firstTokenSeconds);
  }

  private flush(): void {
    for (const { labels, byStatus, tokensIn, tokensOut } of this.series.values()) {
      for (const [status, count] of byStatus) this.requests.inc({ adapter: labels.adapter, tenant: labels.tenant, status: String(status) }, count);
      if (tokensIn !== undefined) this.tokens.inc({ adapter: labels.adapter, tenant: labels.tenant, direction: "in" }, tokensIn);
      if (tokensOut !== undefined) this.tokens.inc({ adapter: labels.adapter, tenant: labels.tenant, direction: "out" }, tokensOut);
    }
    this.series.clear();
  }

  async render(): Promise<{ body: string; contentType: string }> {
    return { body: await this.registry.metrics(), contentType: this.registry.contentType };
  }
}
