// Per-key rate limits and per-adapter concurrency, through the gateway to the fixed-completion upstream.
import assert from "node:assert/strict";
import { afterEach, describe, it } from "node:test";
import { ConcurrencyLimiter, TokenBucket } from "../../src/gateway/limits.ts";
import { startFixedUpstream, type FixedUpstream } from "./support/fixed-upstream.ts";
import { apiError, adaptersWith, eventually, KEYS, startTestGateway, type TestGateway } from "./support/harness.ts";

const chat = { model: "chatbot", messages: [{ role: "user" as const, content: "hi" }] };

describe("token bucket and concurrency limiter", () => {
  it("a bucket refills continuously and says how long to wait", () => {
    const bucket = new TokenBucket(2, 1 / 1000, 0);
    assert.equal(bucket.take(1, 0), 0);
    assert.equal(bucket.take(1, 0), 0);
    assert.equal(bucket.take(1, 0), 1000);
    assert.equal(bucket.take(1, 1000), 0);
  });

  it("charging after the fact puts the bucket in debt, capped at its capacity", () => {
    const bucket = new TokenBucket(10, 10 / 60_000, 0);
    bucket.charge(100, 0);
    assert.equal(bucket.waitForPositive(0), Math.ceil(11 / (10 / 60_000)));
  });

  it("the limiter queues in order and refuses beyond the queue", async () => {
    const limiter = new ConcurrencyLimiter(1, 1);
    assert.equal(limiter.acquire(), undefined);
    const queued = limiter.acquire();
    assert.ok(queued instanceof Promise);
    assert.throws(() => limiter.acquire(), /at capacity/);
    limiter.release();
    await queued;
    assert.equal(limiter.inFlight, 1);
    assert.equal(limiter.queued, 0);
  });
});

describe("concurrency limiter and client aborts", () => {
  it("a queued request whose client goes away leaves the queue", async () => {
    const limiter = new ConcurrencyLimiter(1, 2);
    limiter.acquire();
    const controller = new AbortController();
    const queued = limiter.acquire(controller.signal);
    assert.equal(limiter.queued, 1);
    controller.abort();
    await assert.rejects(queued as Promise<void>, /client went away while queued/);
    assert.equal(limiter.queued, 0);
  });
});

describe("gateway limits", () => {
  const cleanup: (() => Promise<void>)[] = [];
  afterEach(async () => {
    for (const close of cleanup.splice(0).reverse()) await close();
  });
  async function setup(
    overrides: Parameters<typeof startTestGateway>[1] = {},
    upstreamUrl?: (up: FixedUpstream) => Parameters<typeof startTestGateway>[1],
  ): Promise<{ up: FixedUpstream; gw: TestGateway }> {
    const up = await startFixedUpstream();
    cleanup.push(() => up.close());
    const gw = await startTestGateway(up.url, { ...overrides, ...(upstreamUrl ? upstreamUrl(up) : {}) });
    cleanup.push(() => gw.close());
    return { up, gw };
  }

  it("429 with Retry-After past the key's requests per minute; other keys are not affected", async () => {
    const { gw } = await setup({ rateLimits: { requestsPerMinute: 2, tokensPerMinute: 1_000_000 } });
    await gw.client().chat.completions.create(chat);
    await gw.client().chat.completions.create(chat);
    const limited = await apiError(gw.client().chat.completions.create(chat));
    assert.equal(limited.status, 429);
    assert.equal(limited.code, "rate_limit_requests");
    assert.equal(limited.headers?.get("retry-after"), "30");
    await gw.client(KEYS.code).chat.completions.create({ ...chat, model: "code" });
    const metrics = await (await fetch(`${gw.gateway.url}/metrics`)).text();
    assert.match(metrics, /diatonic_gateway_rate_limited_total\{tenant="acme",limit="rate_limit_requests"\} 1/);
  });

  it("three gateway replicas hold the platform's limit between them, not three times it (replicas counted from a stand-in DNS answer)", async () => {
    const up = await startFixedUpstream();
    cleanup.push(() => up.close());
    // What the gateway's headless Service answers with three ready pods; no cluster DNS runs here.
    let addresses = ["10.0.0.1", "10.0.0.2", "10.0.0.3"];
    const resolveHost = async (host: string) => (host === "gateway-headless.test.svc" ? addresses : []);
    const gateways: TestGateway[] = [];
    for (let i = 0; i < 3; i++) {
      const gw = await startTestGateway(
        up.url,
        {
          rateLimits: { requestsPerMinute: 3, tokensPerMinute: 1_000_000, sharedBy: { dns: "gateway-headless.test.svc", refreshMs: 100 } },
        },
        { resolveHost },
      );
      cleanup.push(() => gw.close());
      gateways.push(gw);
    }
    // Round robin, as the ingress spreads one key's requests: 3 a minute for the platform, 1 per replica.
    const outcomes: number[] = [];
    for (let i = 0; i < 6; i++) {
      const gw = gateways[i % 3] as TestGateway;
      outcomes.push(
        await gw
          .client()
          .chat.completions.create(chat)
          .then(
            () => 200,
            (error: unknown) => (error as { status: number }).status,
          ),
      );
    }
    assert.deepEqual(outcomes, [200, 200, 200, 429, 429, 429]);
    const limited = await apiError((gateways[0] as TestGateway).client().chat.completions.create(chat));
    assert.match(limited.message, /3 for the platform, 1 on each of 3 gateway replicas/);

    // Scaled down to one replica: it takes the whole limit.
    addresses = ["10.0.0.1"];
    await eventually(
      async () =>
        /requests per minute \(3\)/.test((await apiError((gateways[1] as TestGateway).client().chat.completions.create(chat))).message),
      3000,
      "the share to follow the replica count",
    );
  });

  it("429 once the tokens a key used (counted from usage, streams included) pass its tokens per minute", async () => {
    const { gw } = await setup({ rateLimits: { requestsPerMinute: 1000, tokensPerMinute: 20 } });
    const stream = await gw.client().chat.completions.create({ ...chat, stream: true });
    for await (const _chunk of stream) {
      // drain: the stream's usage (13 tokens) is charged when it ends
    }
    await gw.client().chat.completions.create(chat);
    const limited = await apiError(gw.client().chat.completions.create(chat));
    assert.equal(limited.status, 429);
    assert.equal(limited.code, "rate_limit_tokens");
    assert.ok(Number(limited.headers?.get("retry-after")) >= 1);
  });

  it("503 when an adapter's concurrency and queue are full; a queued request waits its turn", async () => {
    const { up, gw } = await setup({}, (server) => ({ adapters: adaptersWith(server.url, { concurrency: 1, queue: 1 }) }));
    up.behaviour = { kind: "slow-stream", delayMs: 30, chunks: 5 };
    const first = gw.client().chat.completions.create({ ...chat, stream: true });
    await eventually(() => up.requests.length === 1, 3000, "the first request to reach upstream");
    const second = gw.client().chat.completions.create(chat);
    await eventually(
      async () => /diatonic_gateway_queue_depth\{adapter="chatbot"\} 1/.test(await (await fetch(`${gw.gateway.url}/metrics`)).text()),
      3000,
      "the queue depth metric",
    );
    const refused = await apiError(gw.client().chat.completions.create(chat));
    assert.equal(refused.status, 503);
    assert.equal(refused.code, "adapter_overloaded");
    assert.equal(refused.headers?.get("retry-after"), "1");
    for await (const _chunk of await first) {
      // read the slow stream to its end, freeing the slot
    }
    up.behaviour = { kind: "ok" };
    const answer = await second;
    assert.equal(answer.object, "chat.completion");
  });
});
