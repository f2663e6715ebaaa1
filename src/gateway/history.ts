import type { AdapterHistory, MetricsHistoryView } from "./admin-api.ts";
import { LATENCY_BUCKETS, type AdapterTotals as AdapterTotalsOfMetrics, type GatewayMetrics } from "./metrics.ts";

export interface MetricsHistoryOptions {
  /** How often the gateway's counters are sampled. @default 5000 */
  readonly intervalMs?: number;
  /** How many intervals are kept (15 minutes of 5 s). @default 180 */
  readonly points?: number;
  /** This gateway replica's name, in the answers. @default "" */
  readonly replica?: string;
}

/** One adapter's counts, summed over its tenants. */
interface AdapterTotals {
  requests: number;
  errors: number;
  tokensOut: number;
  readonly latencyCounts: number[];
}

/** One interval of one adapter. */
interface Point {
  readonly requestsPerSecond: number;
  readonly errorsPerSecond: number;
  readonly p50: number | null;
  readonly p99: number | null;
  readonly tokensPerSecond: number;
}

interface Sample {
  /** Unix seconds at the end of the interval. */
  readonly time: number;
  readonly adapters: ReadonlyMap<string, Point>;
}

/**
 * The quantile of the requests counted in `counts` (per bucket, the last +Inf), interpolated inside
 * its bucket as Prometheus' histogram_quantile does; one in the +Inf bucket reads as the highest bound.
 */
export function bucketQuantile(q: number, counts: readonly number[], bounds: readonly number[] = LATENCY_BUCKETS): number | null {
  const total = counts.reduce((sum, count) => sum + count, 0);
  if (total === 0) return null;
  const rank = q * total;
  let below = 0;
  for (let index = 0; index < counts.length; index++) {
    const count = counts[index] as number;
    if (count > 0 && below + count >= rank) {
      if (index >= bounds.length) return bounds[bounds.length - 1] as number;
      const lower = index === 0 ? 0 : (bounds[index - 1] as number);
      const upper = bounds[index] as number;
      return lower + (upper - lower) * ((rank - below) / count);
    }
    below += count;
  }
  return bounds[bounds.length - 1] as number;
}

function byAdapter(totals: Iterable<AdapterTotalsOfMetrics>): Map<string, AdapterTotals> {
  const out = new Map<string, AdapterTotals>();
  // "-": requests that never named an adapter (a bad key, an unknown route, the admin API).
  for (const series of totals)
    if (series.adapter !== "-")
      out.set(series.adapter, {
        requests: series.requests,
        errors: series.errors,
        tokensOut: series.tokensOut,
        latencyCounts: [...series.latencyCounts],
      });
  return out;
}

/**
 * The gateway's own request metrics over the last minutes, per adapter, for the console's charts: its
 * counters sampled every few seconds into a fixed number of intervals (memory stays flat). Each
 * replica keeps its own; nothing is written anywhere.
 */
export class MetricsHistory {
  readonly intervalMs: number;
  readonly points: number;
  private readonly replica: string;
  private readonly samples: Sample[] = [];
  private previous: Map<string, AdapterTotals>;
  private previousAt: number;
  private timer: NodeJS.Timeout | undefined;

  constructor(
    private readonly metrics: GatewayMetrics,
    options: MetricsHistoryOptions = {},
  ) {
    this.intervalMs = options.intervalMs ?? 5000;
    this.points = options.points ?? 180;
    this.replica = options.replica ?? "";
    this.previous = byAdapter(metrics.adapterTotals());
    this.previousAt = Date.now();
  }

  start(): void {
    this.timer ??= setInterval(() => this.sample(), this.intervalMs).unref();
  }

  stop(): void {
    clearInterval(this.timer);
    this.timer = undefined;
  }

  /** Closes an interval: what each adapter served since the last sample. */
  sample(now = Date.now()): void {
    const current = byAdapter(this.metrics.adapterTotals());
    const seconds = Math.max(0.001, (now - this.previousAt) / 1000);
    const adapters = new Map<string, Point>();
    for (const [adapter, totals] of current) {
      const before = this.previous.get(adapter);
      // A series forgotten and made again (its tenant's keys rotated out) starts from 0: count it whole.
      const reset = before === undefined || totals.requests < before.requests;
      const delta = (value: number, then: number | undefined) => (reset ? value : value - (then ?? 0));
      const latency = totals.latencyCounts.map((count, index) => Math.max(0, delta(count, before?.latencyCounts[index])));
      adapters.set(adapter, {
        requestsPerSecond: Math.max(0, delta(totals.requests, before?.requests)) / seconds,
        errorsPerSecond: Math.max(0, delta(totals.errors, before?.errors)) / seconds,
        p50: bucketQuantile(0.5, latency),
        p99: bucketQuantile(0.99, latency),
        tokensPerSecond: Math.max(0, delta(totals.tokensOut, before?.tokensOut)) / seconds,
      });
    }
    this.samples.push({ time: Math.round(now / 1000), adapters });
    if (this.samples.length > this.points) this.samples.splice(0, this.samples.length - this.points);
    this.previous = current;
    this.previousAt = now;
  }

  /** The kept intervals as columns per adapter (an adapter missing from an interval reads 0 there). */
  view(): MetricsHistoryView {
    const names = new Set<string>();
    for (const sample of this.samples) for (const name of sample.adapters.keys()) names.add(name);
    const adapters: Record<string, AdapterHistory> = {};
    for (const name of [...names].sort()) {
      const points = this.samples.map((sample) => sample.adapters.get(name));
      adapters[name] = {
        requestsPerSecond: points.map((point) => round(point?.requestsPerSecond ?? 0)),
        errorsPerSecond: points.map((point) => round(point?.errorsPerSecond ?? 0)),
        p50Seconds: points.map((point) => (point === undefined || point.p50 === null ? null : round(point.p50))),
        p99Seconds: points.map((point) => (point === undefined || point.p99 === null ? null : round(point.p99))),
        tokensPerSecond: points.map((point) => round(point?.tokensPerSecond ?? 0)),
      };
    }
    return {
      object: "admin.metrics",
      replica: this.replica,
      intervalSeconds: this.intervalMs / 1000,
      windowSeconds: (this.intervalMs / 1000) * this.points,
      times: this.samples.map((sample) => sample.time),
      adapters,
    };
  }
}

/** Four significant digits are plenty for a chart, and keep the answer small. */
function round(value: number): number {
  return Number(value.toPrecision(4));
}
