// The whole serving path with real parts: the OpenAI SDK → the gateway → the local engine
// (llama.cpp through node-llama-cpp) running a tiny generated Llama with two LoRA adapters.
import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { pino } from "pino";
import { startEngine, writeTestModels, type RunningEngine } from "../../src/engine/index.ts";
import { KEYS, startTestGateway, type TestGateway } from "./support/harness.ts";

describe("gateway in front of the real local engine", () => {
  let engine: RunningEngine;
  let gw: TestGateway;
  let dir: string;
  before(async () => {
    dir = mkdtempSync(join(tmpdir(), "diatonic-gateway-engine-"));
    const files = writeTestModels(dir);
    engine = await startEngine({
      modelPath: files.model,
      servedModelName: "tiny",
      loras: files.loras,
      port: 0,
      threads: 1,
      logger: pino({ level: "silent" }),
    });
    const limits = { concurrency: 2, queue: 8, timeoutMs: 20_000, firstByteTimeoutMs: 10_000 };
    gw = await startTestGateway(engine.url, {
      baseModel: { name: "tiny", upstream: "engine" },
      embeddings: { upstream: "engine", model: "tiny" },
      adapters: [
        {
          name: "alpha",
          route: "/alpha",
          upstreamModel: "lora-a",
          upstream: "engine",
          systemPrompt: "Be brief.",
          sampling: { temperature: 0, maxTokens: 6 },
          limits,
        },
        { name: "beta", route: "/beta", upstreamModel: "lora-b", upstream: "engine", sampling: { temperature: 0, maxTokens: 6 }, limits },
      ],
    });
  });
  after(async () => {
    await gw?.close();
    await engine?.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it("chat through an adapter runs its LoRA on the engine, with usage", async () => {
    const completion = await gw.client().chat.completions.create({ model: "alpha", messages: [{ role: "user", content: "hello" }] });
    assert.equal(completion.model, "alpha", "the client sees the adapter it asked for");
    // Greedy decoding is deterministic: the same answer as asking the engine for the LoRA directly.
    const viaGateway = await gw.client().chat.completions.create({ model: "beta", messages: [{ role: "user", content: "hello" }] });
    const direct = (await (
      await fetch(`${engine.url}/v1/chat/completions`, {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify({ model: "lora-b", messages: [{ role: "user", content: "hello" }], temperature: 0, max_tokens: 6 }),
      })
    ).json()) as { model: string; choices: { message: { content: string } }[] };
    assert.equal(direct.model, "lora-b");
    assert.equal(viaGateway.choices[0]?.message.content, direct.choices[0]?.message.content, "the engine ran the adapter's LoRA");
    assert.ok((completion.usage?.completion_tokens ?? 0) > 0);
    assert.ok((completion.usage?.completion_tokens ?? 0) <= 6, "the adapter's maxTokens default applied");
  });

  it("streams from the engine arrive chunk by chunk, and tokens are counted", async () => {
    const stream = await gw
      .client(undefined, "/beta")
      .chat.completions.create({ model: "x", messages: [{ role: "user", content: "hello" }], stream: true });
    let chunks = 0;
    for await (const chunk of stream) if (chunk.choices.length > 0) chunks++;
    assert.ok(chunks >= 2, `got ${chunks} chunks`);
    const metrics = await (await fetch(`${gw.gateway.url}/metrics`)).text();
    assert.match(metrics, /diatonic_gateway_tokens_total\{adapter="beta",direction="out"\} [1-9]/);
  });

  it("completions, embeddings and readiness against the engine", async () => {
    const completion = await gw.client().completions.create({ model: "alpha", prompt: "one two" });
    assert.equal(typeof completion.choices[0]?.text, "string");
    const embeddings = await gw.client().embeddings.create({ model: "tiny", input: "hello" });
    assert.ok((embeddings.data[0]?.embedding.length ?? 0) > 0);
    assert.equal((await fetch(`${gw.gateway.url}/readyz`)).status, 200);
  });

  it("an engine's error about a message names it as the client numbered it, not after the injected system prompt", async () => {
    const response = await fetch(`${gw.gateway.url}/v1/chat/completions`, {
      method: "POST",
      headers: { "content-type": "application/json", authorization: `Bearer ${KEYS.all}` },
      body: JSON.stringify({ model: "alpha", messages: [{ role: "robot", content: "hi" }] }),
    });
    assert.equal(response.status, 400);
    const body = (await response.json()) as { error: { message: string; param: string } };
    assert.equal(body.error.param, "messages.0.role", JSON.stringify(body));
    assert.match(body.error.message, /^messages\.0\.role/);
  });

  it("a number JSON cannot represent (1e999) is a 400 naming the field, not silently null", async () => {
    const response = await fetch(`${gw.gateway.url}/v1/chat/completions`, {
      method: "POST",
      headers: { "content-type": "application/json", authorization: `Bearer ${KEYS.all}` },
      body: '{"model":"alpha","messages":[{"role":"user","content":"hi"}],"top_p":1e999}',
    });
    assert.equal(response.status, 400);
    const body = (await response.json()) as { error: { code: string; param: string } };
    assert.deepEqual([body.error.code, body.error.param], ["invalid_number", "top_p"]);
  });
});
