// The read-only admin API the web console reads: who may call it (401 without a key, 403 without the
// admin scope), the shape of each answer, and that no answer ever carries a key, a key's hash or a prompt.
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { after, before, describe, it } from "node:test";
import type {
  AdapterList,
  MetricsHistoryView,
  OverviewView,
  RecentErrorList,
  SessionView,
  UsageView,
} from "../../src/gateway/admin-api.ts";
import { startFixedUpstream, type FixedUpstream } from "./support/fixed-upstream.ts";
import { eventually, KEYS, startTestGateway, testConfig, type TestGateway } from "./support/harness.ts";

const VIEWS = ["overview", "adapters", "metrics", "errors", "usage"] as const;

describe("the admin API", () => {
  let upstream: FixedUpstream;
  let gw: TestGateway;
  const get = (path: string, key?: string, init: RequestInit = {}) =>
    fetch(`${gw.gateway.url}${path}`, {
      ...init,
      headers: {
        ...(key !== undefined ? { authorization: `Bearer ${key}` } : {}),
        ...(init.headers as Record<string, string> | undefined),
      },
    });
  const json = async <T>(path: string, key: string = KEYS.noScope): Promise<T> => {
    const response = await get(path, key);
    assert.equal(response.status, 200, await response.clone().text());
    assert.equal(response.headers.get("cache-control"), "no-store");
    return (await response.json()) as T;
  };
  const chat = (key: string, body: unknown) =>
    fetch(`${gw.gateway.url}/v1/chat/completions`, {
      method: "POST",
      headers: { authorization: `Bearer ${key}`, "content-type": "application/json" },
      body: typeof body === "string" ? body : JSON.stringify(body),
    });

  before(async () => {
    upstream = await startFixedUpstream();
    const config = testConfig(upstream.url);
    gw = await startTestGateway(
      upstream.url,
      {
        environment: "staging",
        // "polled" asks the upstream which LoRAs it holds; the fixed upstream's /v1/models lists only
        // its base model, so an adapter with a LoRA there stays "loading". On "engine" nobody asks.
        upstreams: {
          engine: config.upstreams.engine as NonNullable<typeof config.upstreams.engine>,
          polled: { url: upstream.url, discovery: "static", connectTimeoutMs: 300, residency: { pollMs: 50 } },
        },
        rateLimits: { requestsPerMinute: 5, tokensPerMinute: 10_000_000 },
        adapters: [
          ...config.adapters.map((adapter) =>
            adapter.name === "code" ? { ...adapter, lora: { source: "huggingFace org/code-lora@v1", rank: 16 } } : adapter,
          ),
          {
            name: "tuned",
            route: "/tuned",
            upstreamModel: "tuned-lora",
            upstream: "polled",
            sampling: {},
            limits: { concurrency: 1, queue: 0, timeoutMs: 3000, firstByteTimeoutMs: 1000 },
          },
        ],
      },
      // Sampled by the test, not by the timer.
      { history: { intervalMs: 3_600_000, points: 4 } },
    );
  });
  after(async () => {
    await gw?.close();
    await upstream?.close();
  });

  it("answers 401 without a key, 403 for a key without the admin scope, 200 with it; 405 and 404 as the rest of the API does", async () => {
    for (const view of VIEWS) {
      const path = `/v1/admin/${view}`;
      const none = await get(path);
      assert.equal(none.status, 401, path);
      assert.equal(((await none.json()) as { error: { code: string } }).error.code, "missing_api_key");
      const wrong = await get(path, "sk-wrong");
      assert.equal(wrong.status, 401, path);
      assert.equal(((await wrong.json()) as { error: { code: string } }).error.code, "invalid_api_key");
      const inferenceOnly = await get(path, KEYS.all);
      assert.equal(inferenceOnly.status, 403, path);
      assert.equal(((await inferenceOnly.json()) as { error: { code: string } }).error.code, "missing_scope");
      assert.equal((await get(path, KEYS.noScope)).status, 200, path);
      assert.equal((await get(path, KEYS.noScope, { method: "HEAD" })).status, 200, `HEAD ${path}`);
      const post = await get(path, KEYS.noScope, { method: "POST", body: "{}" });
      assert.equal(post.status, 405, `POST ${path}`);
      assert.equal(post.headers.get("allow"), "GET, HEAD");
    }
    assert.equal((await get("/v1/admin/nope", KEYS.noScope)).status, 404);
    assert.equal((await get("/v1/admin/nope")).status, 401, "nothing about the API is told without a key");
    assert.equal((await get("/v1/admin/nope", KEYS.all)).status, 403);
  });

  it("session: answers without a key, and says what a key may do", async () => {
    const anonymous = (await (await get("/v1/admin/session")).json()) as SessionView;
    assert.deepEqual(anonymous, { object: "admin.session", auth: "required", signedIn: false, tenant: null, scopes: [] });
    assert.deepEqual(await json<SessionView>("/v1/admin/session", KEYS.all), {
      object: "admin.session",
      auth: "required",
      signedIn: true,
      tenant: "acme",
      scopes: ["inference"],
    });
    assert.deepEqual((await json<SessionView>("/v1/admin/session")).scopes, ["admin"]);
    assert.equal((await get("/v1/admin/session", "sk-wrong")).status, 401, "a key that is presented must be valid");
  });

  it("overview: the platform, its environment, the upstreams' replicas with the LoRAs each lists, and where each adapter runs", async () => {
    await eventually(
      async () =>
        (await json<OverviewView>("/v1/admin/overview")).upstreams.find((pool) => pool.name === "polled")?.replicas[0]?.loras !== undefined,
      5000,
      "residency polled",
    );
    const overview = await json<OverviewView>("/v1/admin/overview");
    assert.equal(overview.object, "admin.overview");
    assert.equal(overview.platform, "test");
    assert.equal(overview.environment, "staging");
    assert.equal(overview.gateway.auth, "required");
    assert.ok(!Number.isNaN(Date.parse(overview.gateway.startedAt)));
    assert.equal(typeof overview.gateway.replica, "string");
    assert.deepEqual(overview.baseModel, { name: "llama-base", upstream: "engine" });
    assert.equal(overview.ready, true);
    assert.deepEqual(overview.upstreams, [
      { name: "engine", replicas: [{ origin: upstream.url, healthy: true, outstanding: 0 }] },
      { name: "polled", replicas: [{ origin: upstream.url, healthy: true, outstanding: 0, loras: [] }] },
    ]);
    const byName = new Map(overview.adapters.map((adapter) => [adapter.name, adapter]));
    assert.deepEqual([...byName.keys()], ["code", "chatbot", "handbook", "strict", "narrow", "tuned"]);
    assert.deepEqual(byName.get("tuned"), { name: "tuned", lora: "tuned-lora", upstream: "polled", state: "loading", replicas: [] });
    assert.deepEqual(byName.get("code"), {
      name: "code",
      lora: "code-lora",
      upstream: "engine",
      state: "unknown",
      replicas: [upstream.url],
    });
    assert.deepEqual(byName.get("chatbot"), { name: "chatbot", lora: null, upstream: "engine", state: "base", replicas: [upstream.url] });
  });

  it("adapters: each adapter's configuration", async () => {
    const { object, data } = await json<AdapterList>("/v1/admin/adapters");
    assert.equal(object, "list");
    const code = data.find((adapter) => adapter.name === "code");
    assert.deepEqual(
      { ...code, replicas: undefined, state: undefined },
      {
        name: "code",
        lora: "code-lora",
        upstream: "engine",
        state: undefined,
        replicas: undefined,
        route: "/code",
        description: "",
        upstreamModel: "code-lora",
        loraSource: { source: "huggingFace org/code-lora@v1", rank: 16 },
        systemPrompt: "You write code.",
        sampling: { temperature: 0.2, maxTokens: 64 },
        rag: null,
        limits: { concurrency: 8, queue: 8, timeoutMs: 3000, firstByteTimeoutMs: 1000 },
      },
    );
    const handbook = data.find((adapter) => adapter.name === "handbook");
    assert.deepEqual(handbook?.rag, {
      collection: "handbook",
      topK: 4,
      scoreThreshold: 0,
      mode: "hybrid",
      onFailure: "answerWithoutContext",
    });
    assert.equal(handbook?.loraSource, null);
  });

  it("metrics, errors and usage: sampled request rates and latencies per adapter, the latest error responses, counts per tenant", async () => {
    for (let i = 0; i < 3; i++)
      assert.equal((await chat(KEYS.all, { model: "code", messages: [{ role: "user", content: "hello" }] })).status, 200);
    assert.equal((await chat(KEYS.all, { model: "nope", messages: [{ role: "user", content: "hello" }] })).status, 404);
    assert.equal((await chat(KEYS.all, '{"model": "code", "messages": [{"role": "user", "content": "my secret prompt')).status, 400);
    assert.equal((await chat("sk-not-a-key-at-all", { model: "code", messages: [{ role: "user", content: "hello" }] })).status, 401);
    // Beta's key is refused once its 5 requests a minute are used.
    const statuses: number[] = [];
    for (let i = 0; i < 6; i++)
      statuses.push((await chat(KEYS.code, { model: "code", messages: [{ role: "user", content: "hello" }] })).status);
    assert.deepEqual(statuses, [200, 200, 200, 200, 200, 429]);
    gw.gateway.history.sample();

    const history = await json<MetricsHistoryView>("/v1/admin/metrics");
    assert.equal(history.object, "admin.metrics");
    assert.equal(history.intervalSeconds, 3600);
    assert.equal(history.windowSeconds, 4 * 3600);
    assert.equal(history.times.length, 1);
    const code = history.adapters.code;
    assert.ok(code !== undefined, Object.keys(history.adapters).join(", "));
    assert.ok((code.requestsPerSecond[0] ?? 0) > 0);
    assert.ok((code.errorsPerSecond[0] ?? 0) > 0, "the 429 is an error of code's");
    assert.ok((code.tokensPerSecond[0] ?? 0) > 0);
    assert.ok((code.p50Seconds[0] ?? 0) > 0 && (code.p99Seconds[0] ?? 0) >= (code.p50Seconds[0] ?? 0));
    assert.equal(history.adapters["-"], undefined, "requests that named no adapter are not an adapter's");

    const errors = await json<RecentErrorList>("/v1/admin/errors");
    assert.equal(errors.capacity, 100);
    const codes = errors.data.map((error) => error.code);
    // Newest first; the admin API's own refusals from the first test are there too.
    assert.deepEqual(codes.slice(0, 4), ["rate_limit_requests", "invalid_api_key", "invalid_json", "model_not_found"]);
    const [limited, invalidKey, invalidJson, missing] = errors.data;
    assert.deepEqual(
      { ...limited, time: undefined, requestId: undefined },
      {
        time: undefined,
        requestId: undefined,
        method: "POST",
        path: "/v1/chat/completions",
        adapter: "code",
        tenant: "beta",
        status: 429,
        code: "rate_limit_requests",
        message: limited?.message,
      },
    );
    assert.match(limited?.message ?? "", /rate limit reached/);
    assert.equal(invalidKey?.status, 401);
    assert.equal(invalidKey?.tenant, null);
    assert.equal(invalidJson?.message, "request body is not valid JSON", "JSON.parse's message would quote the body");
    assert.equal(missing?.status, 404);
    assert.ok(!Number.isNaN(Date.parse(missing?.time ?? "")));

    const usage = await json<UsageView>("/v1/admin/usage");
    assert.equal(usage.object, "admin.usage");
    const tenants = new Map(usage.data.map((tenant) => [tenant.tenant, tenant]));
    assert.deepEqual(tenants.get("acme"), {
      tenant: "acme",
      requests: 5,
      errors: 2,
      tokensIn: 21,
      tokensOut: 18,
      rateLimited: { requests: 0, tokens: 0 },
    });
    assert.deepEqual(tenants.get("beta"), {
      tenant: "beta",
      requests: 6,
      errors: 1,
      tokensIn: 35,
      tokensOut: 30,
      rateLimited: { requests: 1, tokens: 0 },
    });
    assert.equal(tenants.get("ops"), undefined, "the admin API's own requests are not counted");

    const everything = JSON.stringify([await json("/v1/admin/overview"), await json("/v1/admin/adapters"), history, errors, usage]);
    for (const key of Object.values(KEYS)) {
      assert.ok(!everything.includes(key), "no key");
      const hash = createHash("sha256").update(key).digest("hex");
      assert.ok(!everything.includes(hash.slice(0, 12)), "no key hash, nor the key id made of it");
    }
    assert.ok(!everything.includes("sk-not-a-key-at-all"));
    assert.ok(!everything.includes("secret prompt"), "no prompt");
    assert.ok(!everything.includes(gw.dir), "no file paths of the keys");
  });
});
