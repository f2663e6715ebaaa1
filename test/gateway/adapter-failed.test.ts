// A runtime LoRA that cannot load, with real parts: a local engine (llama.cpp, tiny generated model),
// its adapter agent, and a gateway that places adapters through the agent. The agent fails the LoRA
// (its file is not a GGUF) and says so in its answer to the gateway's placement; the gateway then
// tells callers the adapter cannot be loaded (not "loading, retry in 2 s" for ever) and its admin API
// says why. Once the file is mended, the agent's next try loads it and the gateway serves it.
import assert from "node:assert/strict";
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { freePort } from "../../scripts/cluster/processes.ts";
import type { RunningAdapterAgent } from "../../src/adapters/index.ts";
import { writeGgufFile } from "../../src/engine/gguf/writer.ts";
import type { RunningEngine } from "../../src/engine/index.ts";
import { tinyLoraAdapter, writeTestModels } from "../../src/engine/tiny/model.ts";
import type { AdapterList } from "../../src/gateway/admin-api.ts";
import { apiError, eventually, KEYS, placementConfig, startTestGateway, type TestGateway } from "./support/harness.ts";
import { startAgentReplica, tinyAdapterSetYaml } from "../support/agent-replica.ts";

const limits = { concurrency: 4, queue: 8, timeoutMs: 20_000, firstByteTimeoutMs: 10_000 };

// Under the placing policy, and under one that does not place (it publishes every adapter on every replica).
for (const policy of ["diatonic", "least-outstanding"] as const)
  describe(`an adapter that cannot load (routing policy ${policy}): the agent's failure reaches the gateway's callers and admin API`, () => {
    let dir: string;
    let engine: RunningEngine;
    let agent: RunningAdapterAgent;
    let gw: TestGateway;
    let brokenPath: string;

    before(async () => {
      dir = mkdtempSync(join(tmpdir(), "diatonic-adapter-failed-"));
      const models = writeTestModels(join(dir, "model"));
      mkdirSync(join(dir, "loras"));
      const goodPath = join(dir, "loras", "good.gguf");
      writeGgufFile(goodPath, tinyLoraAdapter({ seed: 7, rank: 4 }));
      brokenPath = join(dir, "loras", "broken.gguf");
      writeFileSync(brokenPath, "this is not a GGUF file");
      const setFile = join(dir, "adapters.yaml");
      writeFileSync(
        setFile,
        tinyAdapterSetYaml([
          { name: "good", source: { path: goodPath }, rank: 4 },
          { name: "broken", source: { path: brokenPath }, rank: 4 },
        ]),
      );
      const agentPort = await freePort();
      ({ engine, agent } = await startAgentReplica({
        modelPath: models.model,
        host: "127.0.0.1",
        setFile,
        cacheDir: join(dir, "cache"),
        agentPort,
        agent: { backoffMs: 200 },
      }));
      const config = placementConfig([engine.url], agentPort, ["good", "broken"], limits);
      gw = await startTestGateway(engine.url, { ...config, routing: { ...config.routing, policy } });
    });
    after(async () => {
      await gw?.close();
      await agent?.close();
      await engine?.close();
      rmSync(dir, { recursive: true, force: true });
    });

    const ask = (model: string) => gw.client().chat.completions.create({ model, messages: [{ role: "user", content: "hello" }] });
    /** Whether the adapter answers a chat now (an error is "not yet"). */
    const serves = async (model: string) => {
      try {
        return (await ask(model)).object === "chat.completion";
      } catch {
        return false;
      }
    };
    const adminAdapters = async () =>
      (await (
        await fetch(`${gw.gateway.url}/v1/admin/adapters`, { headers: { authorization: `Bearer ${KEYS.noScope}` } })
      ).json()) as AdapterList;

    it("answers 503 adapter_failed with a retry time, not adapter_loading, and the admin API says why", async () => {
      await eventually(() => serves("good"), 30_000, "the good adapter serving");
      let error: Awaited<ReturnType<typeof apiError>> | undefined;
      // The agent fails it at its first try; the gateway hears so at its next placement (every 200 ms).
      await eventually(
        async () => {
          error = await apiError(ask("broken"));
          return error.code === "adapter_failed";
        },
        20_000,
        "503 adapter_failed for the broken adapter",
      );
      assert.ok(error);
      assert.equal(error.status, 503);
      assert.match(error.message, /could not be loaded.*report it failed.*GET \/v1\/admin\/adapters/);
      // Callers are told where to look, not the operator's details (the file's path).
      assert.doesNotMatch(error.message, new RegExp(dir.replace(/[.*+?^${}()|[\]\\]/g, "\\$&")));
      const retryAfter = Number(error.headers?.get("retry-after"));
      assert.ok(retryAfter >= 2 && retryAfter <= 300, `retry-after ${String(retryAfter)}`);

      const view = await adminAdapters();
      const broken = view.data.find((adapter) => adapter.name === "broken");
      assert.equal(broken?.state, "failed", JSON.stringify(broken));
      assert.match(broken.failure?.reason ?? "", /the engine refused it/);
      assert.deepEqual(broken.failure?.replicas, [new URL(engine.url).origin]);
      assert.equal(view.data.find((adapter) => adapter.name === "good")?.state, "loaded");
    });

    it("serves the adapter once its file is mended: the agent's next try loads it", async () => {
      writeGgufFile(brokenPath, tinyLoraAdapter({ seed: 8, rank: 4 }));
      await eventually(() => serves("broken"), 30_000, "the mended adapter serving");
      const broken = (await adminAdapters()).data.find((adapter) => adapter.name === "broken");
      assert.equal(broken?.state, "loaded");
      assert.equal(broken.failure, undefined);
    });
  });
