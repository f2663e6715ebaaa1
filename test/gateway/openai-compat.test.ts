// Where the gateway answered otherwise than OpenAI does, as the official SDKs read it: engine errors
// in the engine's shape, null sampling values, stream_options without a stream, the embeddings model
// and dimensions, a stream the client leaves, and request ids on the gateway's own errors.
import assert from "node:assert/strict";
import { createServer } from "node:http";
import type { AddressInfo } from "node:net";
import { after, before, describe, it } from "node:test";
import { badRequest, sendError } from "../../src/gateway/errors.ts";
import { startFixedUpstream, type FixedUpstream } from "./support/fixed-upstream.ts";
import { apiError, eventually, KEYS, startTestGateway, type TestGateway } from "./support/harness.ts";

const hi = [{ role: "user" as const, content: "hi" }];

describe("engine errors in OpenAI's shape (fixed-upstream fake answering engines' refusals)", () => {
  let engine: FixedUpstream;
  let gw: TestGateway;
  before(async () => {
    engine = await startFixedUpstream();
    gw = await startTestGateway(engine.url);
  });
  after(async () => {
    await gw.close();
    await engine.close();
  });
  const refuse = (status: number, body: unknown, contentType = "application/json", headers?: Record<string, string>) => {
    engine.behaviour = {
      kind: "raw",
      status,
      contentType,
      body: typeof body === "string" ? body : JSON.stringify(body),
      ...(headers !== undefined ? { headers } : {}),
    };
  };
  const post = (model: string) =>
    fetch(`${gw.gateway.url}/v1/chat/completions`, {
      method: "POST",
      headers: { "content-type": "application/json", authorization: `Bearer ${KEYS.all}` },
      body: JSON.stringify({ model, messages: hi }),
    });

  it("a vLLM 400 (type a class name, code a number) reaches the SDK as invalid_request_error, message and param kept", async () => {
    refuse(400, { error: { message: "messages.1.content: bad value", type: "BadRequestError", param: "messages.1.content", code: 400 } });
    const error = await apiError(gw.client().chat.completions.create({ model: "code", messages: hi }));
    assert.equal(error.status, 400);
    assert.equal(error.type, "invalid_request_error");
    assert.equal(error.code, null);
    assert.equal(error.param, "messages.0.content", "named as the client numbered it (the adapter's system prompt came first)");
    assert.equal(error.message, "400 messages.0.content: bad value", "the SDK puts the status first");
    const raw = await post("chatbot");
    assert.match(raw.headers.get("content-type") ?? "", /^application\/json/);
    assert.deepEqual(await raw.json(), {
      error: { message: "messages.1.content: bad value", type: "invalid_request_error", param: "messages.1.content", code: null },
    });
  });

  it("each 4xx status gets OpenAI's type, and a string code is kept", async () => {
    const types: [number, string][] = [
      [401, "authentication_error"],
      [403, "permission_error"],
      [404, "not_found_error"],
      [409, "conflict_error"],
      [422, "unprocessable_entity_error"],
      [429, "rate_limit_error"],
      [413, "invalid_request_error"],
    ];
    for (const [status, type] of types) {
      refuse(status, { error: { message: `refused ${status}`, type: "SomeEngineError", param: null, code: "engine_said_no" } });
      const response = await post("chatbot");
      assert.equal(response.status, status);
      assert.deepEqual(await response.json(), { error: { message: `refused ${status}`, type, param: null, code: "engine_said_no" } });
    }
    refuse(429, { object: "error", message: "slow down", type: "TooManyRequests", param: null, code: 429 }, "application/json", {
      "retry-after": "3",
    });
    const limited = await apiError(gw.client().chat.completions.create({ model: "chatbot", messages: hi }));
    assert.deepEqual([limited.status, limited.type, limited.code, limited.message], [429, "rate_limit_error", null, "429 slow down"]);
    assert.equal(limited.headers?.get("retry-after"), "3");
  });

  it("FastAPI's validation detail and a non-JSON body become messages that say what the engine refused", async () => {
    refuse(422, { detail: [{ loc: ["body", "messages", 0, "role"], msg: "field required", type: "missing" }] });
    const invalid = await apiError(gw.client().chat.completions.create({ model: "chatbot", messages: hi }));
    assert.deepEqual([invalid.status, invalid.type, invalid.param], [422, "unprocessable_entity_error", "messages.0.role"]);
    assert.equal(invalid.message, "422 messages.0.role: field required");

    refuse(400, "<html><body><h1>400 Bad Request</h1></body></html>", "text/html");
    const html = await post("chatbot");
    assert.equal(html.status, 400);
    assert.match(html.headers.get("content-type") ?? "", /^application\/json/);
    assert.deepEqual(await html.json(), {
      error: {
        message: "the engine (upstream engine) refused the request with status 400",
        type: "invalid_request_error",
        param: null,
        code: null,
      },
    });
    refuse(403, "forbidden by policy", "text/plain");
    const text = await apiError(gw.client().chat.completions.create({ model: "chatbot", messages: hi }));
    assert.deepEqual([text.status, text.type], [403, "permission_error"]);
    assert.equal(text.message, "403 the engine (upstream engine) refused the request with status 403: forbidden by policy");
  });
});

describe("requests as OpenAI reads them (fixed-upstream fake)", () => {
  let upstream: FixedUpstream;
  let gw: TestGateway;
  before(async () => {
    upstream = await startFixedUpstream();
    gw = await startTestGateway(upstream.url);
  });
  after(async () => {
    await gw.close();
    await upstream.close();
  });
  const sent = () => upstream.requests.at(-1)?.body ?? {};

  it("an explicit null sampling value is the default: the adapter's applies", async () => {
    await gw.client().chat.completions.create({ model: "code", messages: hi, temperature: null, max_tokens: null, top_p: null });
    assert.equal(sent().temperature, 0.2, "the adapter's temperature");
    assert.equal(sent().max_tokens, 64, "the adapter's max_tokens");
    assert.ok(!("top_p" in sent()), "no null sent on to the engine");
    await gw.client().completions.create({ model: "code", prompt: "x", max_tokens: null, presence_penalty: null });
    assert.equal(sent().max_tokens, 64);
    assert.ok(!("presence_penalty" in sent()));
    await gw.client().chat.completions.create({ model: "code", messages: hi, max_tokens: null, max_completion_tokens: 9 });
    assert.deepEqual([sent().max_tokens, sent().max_completion_tokens], [undefined, 9], "the client's max_completion_tokens still wins");
  });

  it("stream_options without stream: true is a 400 naming stream_options and the fix", async () => {
    for (const stream of [undefined, false]) {
      const error = await apiError(
        gw.client().chat.completions.create({ model: "chatbot", messages: hi, stream, stream_options: { include_usage: true } }),
      );
      assert.equal(error.status, 400);
      assert.equal(error.type, "invalid_request_error");
      assert.equal(error.param, "stream_options");
      assert.match(error.message, /only allowed when `stream` is true: send "stream": true, or leave stream_options out/);
    }
    const completion = await gw.client().completions.create({ model: "chatbot", prompt: "x", stream_options: null });
    assert.equal(completion.object, "text_completion", "a null stream_options is no stream_options");
  });

  it("embeddings: a model other than the embeddings model is a 404 like chat's; its name or none answers", async () => {
    const error = await apiError(gw.client().embeddings.create({ model: "text-embedding-3-small", input: "x" }));
    assert.deepEqual([error.status, error.code, error.param], [404, "model_not_found", "model"]);
    assert.match(error.message, /^404 the model "text-embedding-3-small" does not exist: this platform's embeddings model is "llama-base"/);
    assert.equal((await gw.client().embeddings.create({ model: "llama-base", input: "x" })).data.length, 1);
    const unnamed = await fetch(`${gw.gateway.url}/v1/embeddings`, {
      method: "POST",
      headers: { "content-type": "application/json", authorization: `Bearer ${KEYS.all}` },
      body: JSON.stringify({ input: "x" }),
    });
    assert.equal(unnamed.status, 200);
  });

  it("embeddings: dimensions go upstream (a Matryoshka model shortens its vectors); an answer of another dimension is a 400 naming the one it has", async () => {
    const embed = (dimensions: number) =>
      gw.client().embeddings.create({ model: "llama-base", input: "x", dimensions, encoding_format: "float" });
    const first = await apiError(embed(256));
    assert.deepEqual([first.status, first.param, first.code], [400, "dimensions", "unsupported_dimensions"]);
    assert.match(first.message, /"llama-base" has 4 dimensions, not 256: set `dimensions` to 4 or leave it out/);
    assert.equal(sent()["dimensions"], 256, "sent as asked: the upstream decides");
    const own = await embed(4);
    assert.equal(own.data[0]?.embedding.length, 4);
    const bad = await apiError(embed(0));
    assert.deepEqual([bad.status, bad.param], [400, "dimensions"]);
  });

  it("x-request-id is on the gateway's own errors (bad input, no key, no route), the model list and proxied answers", async () => {
    const post = (body: string, headers: Record<string, string> = {}) =>
      fetch(`${gw.gateway.url}/v1/chat/completions`, {
        method: "POST",
        headers: { "content-type": "application/json", authorization: `Bearer ${KEYS.all}`, ...headers },
        body,
      });
    const badJson = await post("{nope", { "x-request-id": "trace-error-1" });
    assert.equal(badJson.status, 400);
    assert.equal(badJson.headers.get("x-request-id"), "trace-error-1");
    const cases: [number, string][] = [
      [404, JSON.stringify({ model: "nope", messages: hi })],
      [400, JSON.stringify({ model: "code", messages: hi, stream_options: {} })],
      [413, JSON.stringify({ model: "code", messages: [{ role: "user", content: "x".repeat(5000) }] })],
    ];
    for (const [status, body] of cases) {
      const response = await post(body);
      assert.equal(response.status, status);
      assert.match(response.headers.get("x-request-id") ?? "", /^[0-9a-f]{12}-[0-9a-z]+$/, `on the ${status}`);
    }
    // Refused before any inference: no key, an unknown route; and the model list.
    const anonymous = await fetch(`${gw.gateway.url}/v1/chat/completions`, {
      method: "POST",
      headers: { "x-request-id": "trace-401" },
      body: "{}",
    });
    assert.equal(anonymous.status, 401);
    assert.equal(anonymous.headers.get("x-request-id"), "trace-401");
    const nowhere = await fetch(`${gw.gateway.url}/nowhere/v1/models`, { headers: { "x-request-id": "trace-404" } });
    assert.equal(nowhere.status, 404);
    assert.equal(nowhere.headers.get("x-request-id"), "trace-404");
    const models = await fetch(`${gw.gateway.url}/v1/models`, {
      headers: { authorization: `Bearer ${KEYS.all}`, "x-request-id": "trace-models" },
    });
    assert.equal(models.status, 200);
    assert.equal(models.headers.get("x-request-id"), "trace-models");
    upstream.behaviour = { kind: "status", status: 500 };
    try {
      const failed = await post(JSON.stringify({ model: "code", messages: hi }));
      assert.equal(failed.status, 502);
      assert.match(failed.headers.get("x-request-id") ?? "", /^[0-9a-f]{12}-[0-9a-z]+$/);
    } finally {
      upstream.behaviour = { kind: "ok" };
    }
  });
});

describe("sendError", () => {
  it("writes x-request-id when given the request's id", async () => {
    const server = createServer((_req, res) => sendError(res, badRequest("no", "field"), "trace-7"));
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
    try {
      const response = await fetch(`http://127.0.0.1:${(server.address() as AddressInfo).port}/`);
      assert.equal(response.status, 400);
      assert.equal(response.headers.get("x-request-id"), "trace-7");
      assert.equal(((await response.json()) as { error: { param: string } }).error.param, "field");
    } finally {
      await new Promise((resolve) => server.close(resolve));
    }
  });
});

describe("a stream the client leaves (fixed-upstream fake, slow stream)", () => {
  it("counts the tokens relayed so far and charges them to the key's tokens/min", async () => {
    const upstream = await startFixedUpstream();
    const gw = await startTestGateway(upstream.url, { rateLimits: { requestsPerMinute: 10_000, tokensPerMinute: 5 } });
    try {
      upstream.behaviour = { kind: "slow-stream", delayMs: 5, chunks: 400 };
      const controller = new AbortController();
      const stream = await gw
        .client()
        .chat.completions.create({ model: "chatbot", messages: hi, stream: true }, { signal: controller.signal });
      let read = 0;
      for await (const chunk of stream) {
        if (chunk.choices[0]?.delta.content) read++;
        if (read === 8) break;
      }
      controller.abort();
      // Logged once the gateway has closed the request (its status is the server's to decide).
      await eventually(() => gw.logs.find("request").length > 0, 5000, "the stream to be logged");
      const line = gw.logs.find("request")[0];
      assert.ok(Number(line?.completionTokens) >= 8, `counted ${String(line?.completionTokens)} relayed tokens`);
      assert.equal(line?.usageEstimated, true);
      // The client left: 499 (the headers said 200 before it did), and no error of the platform's.
      assert.equal(line?.status, 499);
      const counted = await (await fetch(`${gw.gateway.url}/metrics`)).text();
      assert.match(counted, /diatonic_gateway_requests_total\{adapter="chatbot",status="499"\} 1\b/);
      assert.doesNotMatch(counted, /diatonic_gateway_requests_total\{adapter="chatbot",status="200"\} [1-9]/);
      const metrics = await (await fetch(`${gw.gateway.url}/metrics`)).text();
      assert.match(metrics, /diatonic_gateway_tokens_total\{adapter="chatbot",direction="out"\} ([89]|[1-9]\d+)\b/);
      upstream.behaviour = { kind: "ok" };
      const limited = await apiError(gw.client().chat.completions.create({ model: "chatbot", messages: hi }));
      assert.equal(limited.status, 429, "the relayed tokens were charged to the key's 5 tokens/min");
      assert.equal(limited.code, "rate_limit_tokens");
    } finally {
      await gw.close();
      await upstream.close();
    }
  });
});
