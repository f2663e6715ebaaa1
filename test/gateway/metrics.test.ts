// The gateway's per-request metrics: counters folded in at scrape time, histograms kept per series.
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { RATE_LIMIT_CODES } from "../../src/gateway/limits.ts";
import { GatewayMetrics } from "../../src/gateway/metrics.ts";

function sample(text: string, line: string): number | undefined {
  const found = text.split("\n").find((candidate) => candidate.startsWith(`${line} `));
  return found === undefined ? undefined : Number(found.slice(line.length + 1));
}

describe("gateway metrics", () => {
  it("counts requests and tokens once across scrapes, and keeps histograms cumulative with Prometheus' le buckets", async () => {
    const metrics = new GatewayMetrics({ defaultMetrics: false });
    metrics.countRequest("code", "team-a", 200, 0.001, undefined, { promptTokens: 3, completionTokens: 4 });
    metrics.countRequest("code", "team-a", 200, 0.003, 0.002, undefined);
    metrics.countRequest("code", "team-b", 429, 0.5, undefined, undefined);
    const first = (await metrics.render()).body;
    assert.equal(sample(first, 'diatonic_gateway_requests_total{adapter="code",tenant="team-a",status="200"}'), 2);
    assert.equal(sample(first, 'diatonic_gateway_tokens_total{adapter="code",tenant="team-a",direction="out"}'), 4);
    // 0.001 is in le="0.001" (le means less than or equal), 0.003 only from le="0.005" on.
    assert.equal(sample(first, 'diatonic_gateway_request_duration_seconds_bucket{adapter="code",tenant="team-a",le="0.001"}'), 1);
    assert.equal(sample(first, 'diatonic_gateway_request_duration_seconds_bucket{adapter="code",tenant="team-a",le="0.0025"}'), 1);
    assert.equal(sample(first, 'diatonic_gateway_request_duration_seconds_bucket{adapter="code",tenant="team-a",le="0.005"}'), 2);
    assert.equal(sample(first, 'diatonic_gateway_request_duration_seconds_bucket{adapter="code",tenant="team-a",le="+Inf"}'), 2);
    assert.equal(sample(first, 'diatonic_gateway_request_duration_seconds_count{adapter="code",tenant="team-b"}'), 1);
    assert.equal(sample(first, 'diatonic_gateway_time_to_first_token_seconds_count{adapter="code",tenant="team-a"}'), 1);
    assert.equal(sample(first, 'diatonic_gateway_time_to_first_token_seconds_count{adapter="code",tenant="team-b"}'), undefined);

    metrics.countRequest("code", "team-a", 200, 0.2, undefined, { promptTokens: 1, completionTokens: 1 });
    const second = (await metrics.render()).body;
    assert.equal(sample(second, 'diatonic_gateway_requests_total{adapter="code",tenant="team-a",status="200"}'), 3);
    assert.equal(sample(second, 'diatonic_gateway_tokens_total{adapter="code",tenant="team-a",direction="out"}'), 5);
    assert.equal(sample(second, 'diatonic_gateway_request_duration_seconds_count{adapter="code",tenant="team-a"}'), 3);
    assert.ok(Math.abs((sample(second, 'diatonic_gateway_request_duration_seconds_sum{adapter="code",tenant="team-a"}') ?? 0) - 0.204) < 1e-9);
    const third = (await metrics.render()).body;
    assert.equal(sample(third, 'diatonic_gateway_requests_total{adapter="code",tenant="team-a",status="200"}'), 3, "a scrape with nothing new adds nothing");
  });
  it("forgetTenant removes the tenant's series of every adapter, its rate-limit counts included, and nothing else", async () => {
    const metrics = new GatewayMetrics({ defaultMetrics: false });
    for (const adapter of ["code", "chat"]) {
      metrics.countRequest(adapter, "gone", 200, 0.01, 0.005, { promptTokens: 1, completionTokens: 2 });
      metrics.countRequest(adapter, "kept", 200, 0.01, undefined, undefined);
    }
    for (const limit of Object.values(RATE_LIMIT_CODES)) metrics.rateLimited.inc({ tenant: "gone", limit });
    metrics.rateLimited.inc({ tenant: "kept", limit: RATE_LIMIT_CODES.requests });
    const before = (await metrics.render()).body;
    assert.equal(before.match(/tenant="gone"/g)?.length, 2 * (1 + 2 + 2 * 20) + 2, "requests, tokens in and out, two histograms, two rate limits");
    metrics.forgetTenant("gone");
    const after = (await metrics.render()).body;
    assert.doesNotMatch(after, /tenant="gone"/);
    assert.equal(sample(after, 'diatonic_gateway_requests_total{adapter="chat",tenant="kept",status="200"}'), 1);
    assert.equal(sample(after, 'diatonic_gateway_rate_limited_total{tenant="kept",limit="rate_limit_requests"}'), 1);
  });
});
