// Routing by residency with real parts: two local engines (llama.cpp, tiny generated model) behind
// one gateway; LoRAs are loaded on one of them at run time, as the adapter agent would.
import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { pino } from "pino";
import { startEngine, writeTestModels, type RunningEngine, type TestModelFiles } from "../../src/engine/index.ts";
import { apiError, eventually, startTestGateway, type TestGateway } from "./support/harness.ts";

const limits = { concurrency: 4, queue: 8, timeoutMs: 20_000, firstByteTimeoutMs: 10_000 };

async function load(engine: RunningEngine, name: string, path: string): Promise<void> {
  const response = await fetch(`${engine.url}/v1/load_lora_adapter`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ lora_name: name, lora_path: path }),
  });
  assert.equal(response.status, 200, await response.text());
}

async function unload(engine: RunningEngine, name: string): Promise<void> {
  const response = await fetch(`${engine.url}/v1/unload_lora_adapter`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ lora_name: name }),
  });
  assert.equal(response.status, 200, await response.text());
}

describe("the gateway routes an adapter only to engine replicas that hold its LoRA", () => {
  let dir: string;
  let files: TestModelFiles;
  let one: RunningEngine;
  let two: RunningEngine;
  const gateways: TestGateway[] = [];
  const gatewayFor = async (pollMs: number): Promise<TestGateway> => {
    const gw = await startTestGateway(one.url, {
      upstreams: { engine: { url: one.url, replicas: [two.url], discovery: "static", connectTimeoutMs: 1000, residency: { pollMs } } },
      baseModel: { name: "tiny", upstream: "engine" },
      embeddings: { upstream: "engine", model: "tiny" },
      adapters: [
        { name: "alpha", route: "/alpha", upstreamModel: "alpha", upstream: "engine", sampling: { temperature: 0, maxTokens: 4 }, limits },
        { name: "plain", route: "/plain", upstreamModel: "tiny", upstream: "engine", sampling: { temperature: 0, maxTokens: 4 }, limits },
      ],
    });
    gateways.push(gw);
    return gw;
  };
  const ask = (gw: TestGateway, model: string) =>
    gw.client().chat.completions.create({ model, messages: [{ role: "user", content: "hello" }] });
  const replicasOf = (gw: TestGateway, adapter: string) =>
    gw.logs
      .find("request")
      .filter((line) => line.adapter === adapter && line.status === 200)
      .map((line) => String(line.replica));

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), "diatonic-residency-"));
    files = writeTestModels(dir);
    const options = { modelPath: files.model, servedModelName: "tiny", port: 0, threads: 1, logger: pino({ level: "silent" }) };
    one = await startEngine(options);
    two = await startEngine(options);
  });
  after(async () => {
    for (const gw of gateways) await gw.close();
    await one?.close();
    await two?.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it("answers 503 with Retry-After while no replica has the adapter, then only ever uses the one that has it", async () => {
    const gw = await gatewayFor(50);
    const loading = await apiError(ask(gw, "alpha"));
    assert.equal(loading.status, 503);
    assert.equal(loading.code, "adapter_loading");
    assert.match(loading.message, /the adapter alpha is loading/);
    assert.equal(loading.headers?.get("retry-after"), "2");

    await load(two, "alpha", files.loras[0]?.path ?? "");
    await eventually(
      async () =>
        await ask(gw, "alpha").then(
          () => true,
          () => false,
        ),
      10_000,
      "alpha served once loaded",
    );
    for (let i = 0; i < 6; i++) await ask(gw, "alpha");
    const origin = new URL(two.url).origin;
    assert.deepEqual([...new Set(replicasOf(gw, "alpha"))], [origin], "every alpha request went to the replica holding it");
    assert.ok(
      gw.logs
        .find("request")
        .filter((line) => line.adapter === "alpha" && line.status === 200)
        .every((line) => line.attempts === 1),
      "none needed a retry",
    );

    // The base model is on every replica: its requests spread over both.
    await Promise.all(Array.from({ length: 8 }, () => ask(gw, "plain")));
    assert.equal(new Set(replicasOf(gw, "plain")).size, 2);
  });

  it("a replica that lost the adapter since it last listed it gets no second request, and the caller never sees the engine's 404", async () => {
    await load(one, "beta", files.loras[1]?.path ?? "");
    // It polls once at start, then not for a minute: its view goes stale on purpose.
    const fresh = await startTestGateway(one.url, {
      upstreams: {
        engine: { url: one.url, replicas: [two.url], discovery: "static", connectTimeoutMs: 1000, residency: { pollMs: 60_000 } },
      },
      baseModel: { name: "tiny", upstream: "engine" },
      adapters: [
        { name: "beta", route: "/beta", upstreamModel: "beta", upstream: "engine", sampling: { temperature: 0, maxTokens: 4 }, limits },
      ],
    });
    gateways.push(fresh);
    await ask(fresh, "beta");
    await unload(one, "beta");
    const gone = await apiError(ask(fresh, "beta"));
    assert.equal(gone.status, 503, "the engine's 404 becomes the gateway's 'loading'");
    assert.equal(gone.code, "adapter_loading");
    // It learnt from the 404: the next request does not go to that replica again.
    const requestsToOne = fresh.logs.find("request").length;
    await apiError(ask(fresh, "beta"));
    const last = fresh.logs.find("request").slice(requestsToOne);
    assert.ok(
      last.every((line) => line.replica === undefined || line.replica === null),
      `no replica was tried: ${JSON.stringify(last)}`,
    );
  });
});
