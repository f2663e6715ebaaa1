// The console's numbers, kept by the gateway itself: its request metrics sampled into a fixed window
// of intervals per adapter, and a ring of the latest error responses.
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { bucketQuantile, MetricsHistory } from "../../src/gateway/history.ts";
import { GatewayMetrics, LATENCY_BUCKETS } from "../../src/gateway/metrics.ts";
import { RecentErrors } from "../../src/gateway/recent-errors.ts";

describe("latency quantiles from histogram buckets", () => {
  it("interpolates inside the bucket as Prometheus' histogram_quantile does", () => {
    // Bounds 0.1, 0.2, 0.4 (+Inf): 10 requests in (0.1, 0.2], 10 in (0.2, 0.4].
    const bounds = [0.1, 0.2, 0.4];
    assert.equal(bucketQuantile(0.5, [0, 10, 10, 0], bounds), 0.2);
    assert.ok(Math.abs((bucketQuantile(0.25, [0, 10, 10, 0], bounds) ?? 0) - 0.15) < 1e-12);
    assert.ok(Math.abs((bucketQuantile(0.99, [0, 10, 10, 0], bounds) ?? 0) - 0.396) < 1e-12);
    assert.equal(bucketQuantile(0.5, [4, 0, 0, 0], bounds), 0.05, "the first bucket starts at 0");
    assert.equal(bucketQuantile(0.99, [0, 0, 0, 3], bounds), 0.4, "the +Inf bucket reads as the highest bound");
    assert.equal(bucketQuantile(0.5, [0, 0, 0, 0], bounds), null, "no requests, no latency");
  });
});

describe("the metrics history", () => {
  it("turns counters into per-second rates, p50, p99 and tokens per interval, per adapter", () => {
    const metrics = new GatewayMetrics({ defaultMetrics: false });
    const history = new MetricsHistory(metrics, { intervalMs: 5000, points: 3, replica: "gw-0" });
    const start = Date.now();
    for (let i = 0; i < 10; i++) metrics.countRequest("code", "a", 200, 0.03, undefined, { promptTokens: 5, completionTokens: 10 });
    metrics.countRequest("code", "b", 503, 2, undefined, undefined);
    metrics.countRequest("-", "-", 401, 0.001, undefined, undefined);
    history.sample(start + 5000);
    history.sample(start + 10_000);
    metrics.countRequest("chat", "a", 200, 0.2, undefined, { promptTokens: 1, completionTokens: 50 });
    history.sample(start + 15_000);

    const view = history.view();
    assert.equal(view.replica, "gw-0");
    assert.equal(view.intervalSeconds, 5);
    assert.equal(view.windowSeconds, 15);
    assert.deepEqual(
      view.times,
      [5000, 10_000, 15_000].map((ms) => Math.round((start + ms) / 1000)),
    );
    assert.deepEqual(Object.keys(view.adapters), ["chat", "code"], "not `-`, the requests that named no adapter");
    const code = view.adapters.code;
    assert.deepEqual(code?.requestsPerSecond, [2.2, 0, 0]);
    assert.deepEqual(code?.errorsPerSecond, [0.2, 0, 0]);
    assert.deepEqual(code?.tokensPerSecond, [20, 0, 0]);
    // 10 of 11 in (0.025, 0.05]: p50 inside it; p99 in the (1, 2.5] bucket of the slow 503.
    assert.ok((code?.p50Seconds[0] ?? 0) > 0.025 && (code?.p50Seconds[0] ?? 1) <= 0.05, String(code?.p50Seconds[0]));
    assert.ok((code?.p99Seconds[0] ?? 0) > 1 && (code?.p99Seconds[0] ?? 3) <= 2.5, String(code?.p99Seconds[0]));
    assert.deepEqual(code?.p50Seconds.slice(1), [null, null], "an interval without requests has no latency");
    assert.deepEqual(view.adapters.chat?.requestsPerSecond, [0, 0, 0.2], "an adapter that came later reads 0 before");

    history.sample(start + 20_000);
    assert.equal(history.view().times.length, 3, "only `points` intervals are kept");
    assert.deepEqual(history.view().adapters.code?.requestsPerSecond, [0, 0, 0]);
  });

  it("counts a series that was forgotten and made again from 0, never as a negative rate", () => {
    const metrics = new GatewayMetrics({ defaultMetrics: false });
    const history = new MetricsHistory(metrics, { intervalMs: 1000, points: 10 });
    const start = Date.now();
    for (let i = 0; i < 5; i++) metrics.countRequest("code", "gone", 200, 0.01, undefined, undefined);
    history.sample(start + 1000);
    metrics.forgetTenant("gone");
    metrics.countRequest("code", "gone", 200, 0.01, undefined, undefined);
    history.sample(start + 2000);
    assert.deepEqual(history.view().adapters.code?.requestsPerSecond, [5, 1]);
  });
});

describe("the latest errors", () => {
  const entry = (n: number, code: string | null = "upstream_error", message: string | undefined = `failure ${n}`) => ({
    requestId: `r${n}`,
    method: "POST",
    path: "/v1/chat/completions",
    adapter: "code",
    tenant: "a",
    status: 502,
    code,
    message,
  });

  it("keeps the newest ones, newest first, up to its capacity", () => {
    const errors = new RecentErrors(3);
    for (let n = 1; n <= 5; n++) errors.add(entry(n));
    assert.deepEqual(
      errors.list().map((error) => error.requestId),
      ["r5", "r4", "r3"],
    );
    assert.ok(!Number.isNaN(Date.parse(errors.list()[0]?.time ?? "")));
  });

  it("never keeps what a message may quote of a request, and cuts long messages", () => {
    const errors = new RecentErrors(5);
    errors.add(entry(1, "invalid_json", `request body is not valid JSON: Unexpected token in "my secret prompt"`));
    errors.add(entry(2, "upstream_error", "x".repeat(1000)));
    errors.add({ ...entry(3, null), message: undefined });
    const [unknown, long, quoted] = errors.list();
    assert.equal(quoted?.message, "request body is not valid JSON");
    assert.equal(long?.message.length, 301);
    assert.equal(unknown?.message, "answered 502");
  });
});

it("LATENCY_BUCKETS stay sorted (the quantiles rely on it)", () => {
  assert.deepEqual(
    [...LATENCY_BUCKETS].sort((a, b) => a - b),
    [...LATENCY_BUCKETS],
  );
});
