// The official OpenAI SDK against the gateway against the fixed-completion upstream (a real HTTP server).
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { FIXED_TEXT, startFixedUpstream, type FixedUpstream } from "./support/fixed-upstream.ts";
import { apiError, KEYS, startTestGateway, type TestGateway } from "./support/harness.ts";

describe("gateway API with the OpenAI SDK", () => {
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
  const last = () => {
    const request = upstream.requests.at(-1);
    assert.ok(request, "the upstream got a request");
    return request;
  };

  it("chat: applies the adapter's system prompt and sampling defaults and sends the LoRA name upstream", async () => {
    const completion = await gw
      .client()
      .chat.completions.create({ model: "code", messages: [{ role: "user", content: "write fizzbuzz" }] });
    assert.equal(completion.choices[0]?.message.content, FIXED_TEXT);
    assert.equal(completion.usage?.total_tokens, 13);
    assert.equal(completion.model, "code", "the response names the adapter, not the LoRA module");
    const sent = last();
    assert.equal(sent.path, "/v1/chat/completions");
    assert.equal(sent.body?.model, "code-lora");
    assert.deepEqual(sent.body?.messages, [
      { role: "system", content: "You write code." },
      { role: "user", content: "write fizzbuzz" },
    ]);
    assert.equal(sent.body?.temperature, 0.2);
    assert.equal(sent.body?.max_tokens, 64);
    assert.equal(sent.headers.authorization, undefined, "the client's key is not forwarded");
  });

  it("chat: the client's sampling values win over the adapter's defaults", async () => {
    await gw
      .client()
      .chat.completions.create({ model: "code", messages: [{ role: "user", content: "hi" }], temperature: 1.1, max_completion_tokens: 5 });
    const sent = last();
    assert.equal(sent.body?.temperature, 1.1);
    assert.equal(sent.body?.max_completion_tokens, 5);
    assert.equal(sent.body?.max_tokens, undefined);
  });

  it("path prefix /<adapter>/v1 is the same as model=<adapter>", async () => {
    const completion = await gw
      .client(KEYS.all, "/code")
      .chat.completions.create({ model: "ignored", messages: [{ role: "user", content: "hi" }] });
    assert.equal(completion.choices[0]?.message.content, FIXED_TEXT);
    assert.equal(last().body?.model, "code-lora");
  });

  it("stream: chunks arrive through the SDK; the usage chunk is only there when asked for", async () => {
    const stream = await gw
      .client()
      .chat.completions.create({ model: "chatbot", messages: [{ role: "user", content: "hi" }], stream: true });
    let text = "";
    let usageChunks = 0;
    for await (const chunk of stream) {
      assert.equal(chunk.model, "chatbot");
      text += chunk.choices[0]?.delta.content ?? "";
      if (chunk.usage) usageChunks++;
    }
    assert.equal(text, FIXED_TEXT);
    assert.equal(usageChunks, 0);
    assert.deepEqual(last().body?.stream_options, { include_usage: true }, "the gateway asks upstream for usage to count tokens");
    const raw = await fetch(`${gw.gateway.url}/v1/chat/completions`, {
      method: "POST",
      headers: { "content-type": "application/json", authorization: `Bearer ${KEYS.all}` },
      body: JSON.stringify({ model: "chatbot", messages: [{ role: "user", content: "hi" }], stream: true }),
    });
    const rawText = await raw.text();
    assert.ok(rawText.endsWith("data: [DONE]\n\n"));
    assert.doesNotMatch(rawText, /"usage"/, "no usage field at all (not even null) for a client that did not ask");

    const withUsage = await gw.client().chat.completions.create({
      model: "chatbot",
      messages: [{ role: "user", content: "hi" }],
      stream: true,
      stream_options: { include_usage: true },
    });
    let usage: number | undefined;
    for await (const chunk of withUsage) usage = chunk.usage?.total_tokens ?? usage;
    assert.equal(usage, 13);
  });

  it("completions and embeddings", async () => {
    const completion = await gw.client().completions.create({ model: "code", prompt: "def fib(n):" });
    assert.equal(completion.choices[0]?.text, FIXED_TEXT);
    assert.equal(last().body?.model, "code-lora");
    assert.equal(last().body?.max_tokens, 64);

    const embeddings = await gw.client().embeddings.create({ model: "llama-base", input: ["a", "b"] });
    assert.equal(embeddings.data.length, 2);
    assert.equal(last().path, "/v1/embeddings");
    assert.equal(last().body?.model, "llama-base");
  });

  it("models: the adapters the key may use, plus the base model, with parent and owned_by", async () => {
    const all = [];
    for await (const model of gw.client().models.list()) all.push(model);
    assert.deepEqual(all.map((m) => m.id).sort(), ["chatbot", "code", "handbook", "llama-base", "narrow", "strict"]);
    const code = all.find((m) => m.id === "code") as unknown as Record<string, unknown>;
    assert.equal(code.parent, "llama-base");
    assert.equal(code.owned_by, "test");

    const narrow = [];
    for await (const model of gw.client(KEYS.code).models.list()) narrow.push(model.id);
    assert.deepEqual(narrow, ["code"]);
    assert.equal((await gw.client().models.retrieve("code")).id, "code");
  });

  it("400: bad JSON and bad fields, in OpenAI's error shape", async () => {
    const response = await fetch(`${gw.gateway.url}/v1/chat/completions`, {
      method: "POST",
      headers: { authorization: `Bearer ${KEYS.all}`, "content-type": "application/json" },
      body: "{nope",
    });
    assert.equal(response.status, 400);
    const body = (await response.json()) as { error: Record<string, unknown> };
    assert.deepEqual(Object.keys(body.error).sort(), ["code", "message", "param", "type"]);
    assert.equal(body.error.code, "invalid_json");

    const noMessages = await apiError(gw.client().chat.completions.create({ model: "code", messages: [] }));
    assert.equal(noMessages.status, 400);
    assert.equal(noMessages.param, "messages");
    const noModel = await apiError(gw.client().chat.completions.create({ model: "", messages: [{ role: "user", content: "x" }] }));
    assert.equal(noModel.status, 400);
    assert.equal(noModel.param, "model");
  });

  it("401: missing and wrong keys", async () => {
    const response = await fetch(`${gw.gateway.url}/v1/models`);
    assert.equal(response.status, 401);
    const wrong = await apiError(
      gw.client("sk-wrong").chat.completions.create({ model: "code", messages: [{ role: "user", content: "x" }] }),
    );
    assert.equal(wrong.status, 401);
    assert.equal(wrong.code, "invalid_api_key");
  });

  it("403: an adapter the key may not use, or a key without the inference scope", async () => {
    const denied = await apiError(
      gw.client(KEYS.code).chat.completions.create({ model: "chatbot", messages: [{ role: "user", content: "x" }] }),
    );
    assert.equal(denied.status, 403);
    assert.equal(denied.code, "adapter_not_allowed");
    const scope = await apiError(
      gw.client(KEYS.noScope).chat.completions.create({ model: "code", messages: [{ role: "user", content: "x" }] }),
    );
    assert.equal(scope.status, 403);
  });

  it("404: unknown adapter by name and by path", async () => {
    const byName = await apiError(gw.client().chat.completions.create({ model: "nope", messages: [{ role: "user", content: "x" }] }));
    assert.equal(byName.status, 404);
    assert.equal(byName.code, "model_not_found");
    const byPath = await apiError(
      gw.client(KEYS.all, "/nope").chat.completions.create({ model: "code", messages: [{ role: "user", content: "x" }] }),
    );
    assert.equal(byPath.status, 404);
  });

  it("404 for made-up adapters adds no metric series: a caller cannot grow /metrics without bound", async () => {
    const before = await (await fetch(`${gw.gateway.url}/metrics`)).text();
    for (let i = 0; i < 5; i++) {
      const answer = await fetch(`${gw.gateway.url}/v1/adapters/made-up-${i}/documents`, {
        headers: { authorization: `Bearer ${KEYS.noScope}` },
      });
      assert.equal(answer.status, 404);
      assert.equal(((await answer.json()) as { error: { code: string } }).error.code, "adapter_not_found");
    }
    const metrics = await (await fetch(`${gw.gateway.url}/metrics`)).text();
    assert.doesNotMatch(metrics, /made-up-/);
    // Counted all the same, under "-" as an unknown chat model is.
    const notFound = (text: string) => Number(/diatonic_gateway_requests_total\{adapter="-",status="404"\} (\d+)/.exec(text)?.[1] ?? 0);
    assert.equal(notFound(metrics) - notFound(before), 5);
  });

  it("413: a body over server.maxBodyBytes", async () => {
    const tooBig = await apiError(
      gw.client().chat.completions.create({ model: "code", messages: [{ role: "user", content: "x".repeat(5000) }] }),
    );
    assert.equal(tooBig.status, 413);
    assert.equal(tooBig.code, "request_too_large");
  });

  it("415: a compressed body is refused by name, and the connection serves the next request", async () => {
    const { gzipSync } = await import("node:zlib");
    const body = JSON.stringify({ model: "code", messages: [{ role: "user", content: "hi" }] });
    const headers = { authorization: `Bearer ${KEYS.all}`, "content-type": "application/json" };
    const compressed = await fetch(`${gw.gateway.url}/v1/chat/completions`, {
      method: "POST",
      headers: { ...headers, "content-encoding": "gzip" },
      body: gzipSync(body),
    });
    assert.equal(compressed.status, 415);
    const error = ((await compressed.json()) as { error: { code: string; message: string } }).error;
    assert.equal(error.code, "unsupported_content_encoding");
    assert.match(error.message, /"gzip" is not accepted: send the JSON uncompressed/);
    const plain = await fetch(`${gw.gateway.url}/v1/chat/completions`, {
      method: "POST",
      headers: { ...headers, "content-encoding": "identity" },
      body,
    });
    assert.equal(plain.status, 200);
    assert.equal(((await plain.json()) as { model: string }).model, "code");
  });

  it("upstream 4xx answers keep their status and message, in OpenAI's error shape", async () => {
    upstream.behaviour = { kind: "status", status: 422 };
    try {
      const error = await apiError(gw.client().chat.completions.create({ model: "code", messages: [{ role: "user", content: "x" }] }));
      assert.equal(error.status, 422);
      assert.equal(error.type, "unprocessable_entity_error");
      assert.match(error.message, /fixed upstream failing with 422/);
    } finally {
      upstream.behaviour = { kind: "ok" };
    }
  });

  it("/healthz, /readyz and /metrics", async () => {
    assert.equal((await fetch(`${gw.gateway.url}/healthz`)).status, 200);
    const ready = await fetch(`${gw.gateway.url}/readyz`);
    assert.equal(ready.status, 200);
    assert.deepEqual(((await ready.json()) as { status: string; degraded: string[] }).degraded, []);
    const metrics = await (await fetch(`${gw.gateway.url}/metrics`)).text();
    assert.match(metrics, /^diatonic_gateway_upstream_healthy_replicas\{upstream="\S+"\} [1-9]\d*$/m);
    assert.match(metrics, /diatonic_gateway_requests_total\{adapter="code",status="200"\} \d+/);
    assert.match(metrics, /diatonic_gateway_tenant_requests_total\{tenant="acme",status="200"\} \d+/);
    assert.match(metrics, /diatonic_gateway_tokens_total\{adapter="code",direction="out"\} \d+/);
    assert.match(metrics, /diatonic_gateway_time_to_first_token_seconds_bucket/);
  });

  it("methods and paths: HEAD reads like GET, a wrong method is 405 with Allow, malformed percent-encoding is 400", async () => {
    const call = (path: string, method: string) =>
      fetch(`${gw.gateway.url}${path}`, { method, headers: { authorization: `Bearer ${KEYS.all}` } });
    for (const path of ["/healthz", "/readyz", "/metrics", "/v1/models", "/v1/models/code", "/code/v1/models"]) {
      const head = await call(path, "HEAD");
      assert.equal(head.status, 200, `HEAD ${path}`);
      assert.equal(await head.text(), "", `HEAD ${path} has no body`);
    }
    const wrong: [string, string, string][] = [
      ["/healthz", "POST", "GET, HEAD"],
      ["/metrics", "DELETE", "GET, HEAD"],
      ["/v1/models", "POST", "GET, HEAD"],
      ["/v1/models/code", "POST", "GET, HEAD"],
      ["/v1/chat/completions", "GET", "POST"],
      ["/code/v1/completions", "PUT", "POST"],
    ];
    for (const [path, method, allow] of wrong) {
      const response = await call(path, method);
      assert.equal(response.status, 405, `${method} ${path}`);
      assert.equal(response.headers.get("allow"), allow, `${method} ${path}`);
      const body = (await response.json()) as { error: { type: string; code: string } };
      assert.deepEqual([body.error.type, body.error.code], ["invalid_request_error", "method_not_allowed"]);
    }
    const bugsBefore = gw.logs.find("gateway bug").length;
    for (const path of ["/v1/models/%E0%A4%A", "/v1/adapters/%zz/documents"]) {
      const response = await call(path, "GET");
      assert.equal(response.status, 400, path);
      const body = (await response.json()) as { error: { code: string; message: string } };
      assert.equal(body.error.code, "invalid_path");
      assert.match(body.error.message, /percent-encoding/);
    }
    assert.equal(gw.logs.find("gateway bug").length, bugsBefore, "a malformed path is not logged as a gateway bug");
  });

  it("logs one JSON line per request, without the prompt", async () => {
    await gw.client().chat.completions.create({ model: "code", messages: [{ role: "user", content: "secret prompt text" }] });
    const line = gw.logs.find("request").at(-1);
    assert.equal(line?.adapter, "code");
    assert.equal(line?.tenant, "acme");
    assert.equal(line?.status, 200);
    assert.ok(!JSON.stringify(gw.logs.lines).includes("secret prompt text"));
  });

  it("request ids: a caller's plain x-request-id is kept end to end; otherwise each request gets a new one", async () => {
    const post = (headers: Record<string, string>) =>
      fetch(`${gw.gateway.url}/v1/chat/completions`, {
        method: "POST",
        headers: { authorization: `Bearer ${KEYS.all}`, "content-type": "application/json", ...headers },
        body: JSON.stringify({ model: "code", messages: [{ role: "user", content: "hi" }] }),
      });
    const traced = await post({ "x-request-id": "trace-42.a:b" });
    assert.equal(traced.headers.get("x-request-id"), "trace-42.a:b");
    assert.equal(last().headers["x-request-id"], "trace-42.a:b", "sent upstream");
    assert.equal(gw.logs.find("request").at(-1)?.requestId, "trace-42.a:b", "and logged");
    const made = new Set<string>();
    const variants: Record<string, string>[] = [{}, {}, { "x-request-id": 'not "plain"' }];
    for (const headers of variants) {
      const response = await post(headers);
      await response.text();
      const id = response.headers.get("x-request-id") ?? "";
      assert.match(id, /^[0-9a-f]{12}-[0-9a-z]+$/);
      assert.equal(last().headers["x-request-id"], id);
      made.add(id);
    }
    assert.equal(made.size, 3, "every made id is new");
  });
});

describe("logPrompts", () => {
  it("puts the prompt in the request log only when server.logPrompts is set", async () => {
    const upstream = await startFixedUpstream();
    const gw = await startTestGateway(upstream.url, { server: { port: 8080, maxBodyBytes: 4096, logPrompts: true } });
    try {
      await gw.client().chat.completions.create({ model: "code", messages: [{ role: "user", content: "log me" }] });
      assert.deepEqual(gw.logs.find("request").at(-1)?.prompt, [{ role: "user", content: "log me" }]);
    } finally {
      await gw.close();
      await upstream.close();
    }
  });

  it("an upstream written as an OpenAI base URL (…/v1), as in an SDK, gets its requests below its root, not at /v1/v1/…", async () => {
    const up = await startFixedUpstream();
    const other = await startTestGateway(`${up.url}/v1/`, {
      upstreams: { engine: { url: `${up.url}/v1/`, replicas: [`${up.url}/v1`], residency: { pollMs: 100 } } },
    });
    try {
      const completion = await other.client().chat.completions.create({ model: "chatbot", messages: [{ role: "user", content: "hi" }] });
      assert.equal(completion.choices[0]?.message.content, FIXED_TEXT);
      const embedded = await other.client().embeddings.create({ model: "llama-base", input: "hi" });
      assert.equal(embedded.data.length, 1);
      const paths = new Set(up.requests.map((request) => request.path));
      assert.ok(paths.has("/v1/chat/completions") && paths.has("/v1/embeddings") && paths.has("/v1/models"), [...paths].join(", "));
      assert.ok(![...paths].some((path) => path.startsWith("/v1/v1")), [...paths].join(", "));
    } finally {
      await other.close();
      await up.close();
    }
  });
});
