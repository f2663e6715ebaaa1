// The gateway's per-request metrics: counters folded in at scrape time, histograms kept per series,
// adapters and tenants counted apart so that /metrics stays bounded.
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { RATE_LIMIT_CODES } from "../../src/gateway/limits.ts";
import { GatewayMetrics, seriesPerAdapter } from "../../src/gateway/metrics.ts";

/** A sample line's name and labels in one order (exposition does not fix the labels' order). */
function normalized(series: string): string {
  const open = series.indexOf("{");
  if (open < 0) return series;
  const labels = series.slice(open + 1, -1).match(/[a-zA-Z_]\w*="(?:[^"\\]|\\.)*"/g) ?? [];
  return `${series.slice(0, open)}{${[...labels].sort().join(",")}}`;
}

function sample(text: string, series: string): number | undefined {
  const wanted = normalized(series);
  for (const line of text.split("\n")) {
    const space = line.lastIndexOf(" ");
    if (!line.startsWith("#") && space > 0 && normalized(line.slice(0, space)) === wanted) return Number(line.slice(space + 1));
  }
  return undefined;
}

/** Sample lines (not comments) of /metrics that carry `label`. */
function seriesWith(text: string, label: string): number {
  return text.split("\n").filter((line) => !line.startsWith("#") && line.includes(label)).length;
}

describe("gateway metrics", () => {
  it("counts requests and tokens once across scrapes, and keeps histograms cumulative with Prometheus' le buckets", async () => {
    const metrics = new GatewayMetrics({ defaultMetrics: false });
    metrics.countRequest("code", "team-a", 200, 0.001, undefined, { promptTokens: 3, completionTokens: 4 });
    metrics.countRequest("code", "team-a", 200, 0.003, 0.002, undefined);
    metrics.countRequest("code", "team-b", 429, 0.5, undefined, undefined);
    const first = (await metrics.render()).body;
    assert.equal(sample(first, 'diatonic_gateway_requests_total{adapter="code",status="200"}'), 2);
    assert.equal(sample(first, 'diatonic_gateway_requests_total{adapter="code",status="429"}'), 1);
    assert.equal(sample(first, 'diatonic_gateway_tokens_total{adapter="code",direction="out"}'), 4);
    assert.equal(sample(first, 'diatonic_gateway_tenant_requests_total{tenant="team-a",status="200"}'), 2);
    assert.equal(sample(first, 'diatonic_gateway_tenant_requests_total{tenant="team-b",status="429"}'), 1);
    assert.equal(sample(first, 'diatonic_gateway_tenant_tokens_total{tenant="team-a",direction="in"}'), 3);
    // 0.001 is in le="0.001" (le means less than or equal), 0.003 only from le="0.005" on.
    assert.equal(sample(first, 'diatonic_gateway_request_duration_seconds_bucket{adapter="code",le="0.001"}'), 1);
    assert.equal(sample(first, 'diatonic_gateway_request_duration_seconds_bucket{adapter="code",le="0.0025"}'), 1);
    assert.equal(sample(first, 'diatonic_gateway_request_duration_seconds_bucket{adapter="code",le="0.005"}'), 2);
    assert.equal(sample(first, 'diatonic_gateway_request_duration_seconds_bucket{adapter="code",le="+Inf"}'), 3);
    assert.equal(sample(first, 'diatonic_gateway_time_to_first_token_seconds_count{adapter="code"}'), 1);

    metrics.countRequest("code", "team-a", 200, 0.2, undefined, { promptTokens: 1, completionTokens: 1 });
    const second = (await metrics.render()).body;
    assert.equal(sample(second, 'diatonic_gateway_requests_total{adapter="code",status="200"}'), 3);
    assert.equal(sample(second, 'diatonic_gateway_tokens_total{adapter="code",direction="out"}'), 5);
    assert.equal(sample(second, 'diatonic_gateway_request_duration_seconds_count{adapter="code"}'), 4);
    assert.ok(Math.abs((sample(second, 'diatonic_gateway_request_duration_seconds_sum{adapter="code"}') ?? 0) - 0.704) < 1e-9);
    const third = (await metrics.render()).body;
    assert.equal(
      sample(third, 'diatonic_gateway_requests_total{adapter="code",status="200"}'),
      3,
      "a scrape with nothing new adds nothing",
    );
  });

  it("stays bounded: an adapter's series do not grow with tenants, and a tenant's do not grow with adapters", async () => {
    const metrics = new GatewayMetrics({ defaultMetrics: false });
    const adapters = Array.from({ length: 50 }, (_, i) => `adapter-${i}`);
    const tenants = Array.from({ length: 40 }, (_, i) => `tenant-${i}`);
    const statuses = [200, 429, 503];
    for (const adapter of adapters) {
      for (const tenant of tenants)
        for (const status of statuses) metrics.countRequest(adapter, tenant, status, 0.1, 0.05, { promptTokens: 1, completionTokens: 1 });
      metrics.retrievals.inc({ adapter, result: "ok" });
      metrics.queueDepth.set({ adapter }, 0);
    }
    const text = (await metrics.render()).body;
    const perAdapter = seriesWith(text, 'adapter="adapter-7"');
    assert.ok(
      perAdapter <= seriesPerAdapter(statuses.length),
      `${perAdapter} series for one adapter, bound ${seriesPerAdapter(statuses.length)}`,
    );
    assert.equal(seriesWith(text, 'tenant="tenant-3"'), statuses.length + 2, "a tenant: requests per status, tokens in and out");
    // 50 adapters × 40 tenants crossed would be 2,000 histograms; apart it is 50.
    assert.equal(seriesWith(text, "diatonic_gateway_request_duration_seconds_count"), adapters.length);
  });

  it("forgetTenant removes the tenant's series, its rate-limit counts included, and nothing else", async () => {
    const metrics = new GatewayMetrics({ defaultMetrics: false });
    for (const adapter of ["code", "chat"]) {
      metrics.countRequest(adapter, "gone", 200, 0.01, 0.005, { promptTokens: 1, completionTokens: 2 });
      metrics.countRequest(adapter, "kept", 200, 0.01, undefined, undefined);
    }
    for (const limit of Object.values(RATE_LIMIT_CODES)) metrics.rateLimited.inc({ tenant: "gone", limit });
    metrics.rateLimited.inc({ tenant: "kept", limit: RATE_LIMIT_CODES.requests });
    const before = (await metrics.render()).body;
    assert.equal(before.match(/tenant="gone"/g)?.length, 1 + 2 + 2, "requests, tokens in and out, two rate limits");
    metrics.forgetTenant("gone");
    const after = (await metrics.render()).body;
    assert.doesNotMatch(after, /tenant="gone"/);
    assert.equal(sample(after, 'diatonic_gateway_tenant_requests_total{tenant="kept",status="200"}'), 2);
    assert.equal(sample(after, 'diatonic_gateway_requests_total{adapter="chat",status="200"}'), 2, "the adapters' counts stay");
    assert.equal(sample(after, 'diatonic_gateway_rate_limited_total{tenant="kept",limit="rate_limit_requests"}'), 1);
  });
});
