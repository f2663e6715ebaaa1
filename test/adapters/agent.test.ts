// The adapter agent against the real local engine (llama.cpp, tiny generated model) and a local Hub
// mirror: adapters come, change and go at runtime while requests to other adapters keep flowing.
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import type { PlacementAnswer } from "../../src/adapters/index.ts";
import { chat, hubSource, startRig, type Rig } from "./support.ts";

let rig: Rig;
before(async () => {
  rig = await startRig();
});
after(() => rig.close());

async function models(): Promise<string[]> {
  const body = (await (await fetch(`${rig.engine.url}/v1/models`)).json()) as { data: { id: string }[] };
  return body.data.map((m) => m.id).sort();
}

describe("adapter agent: runtime adapters on the real local engine", () => {
  it("loads the set, then follows adds, changes and removals while other adapters serve without a failed request", async () => {
    rig.publish("a", "v1", 11);
    rig.publish("b", "v1", 12);
    rig.publish("b", "v2", 13);
    const cSha = rig.publish("c", "v1", 14);
    rig.setAdapters([
      { name: "alpha", source: hubSource("a", "v1"), rank: 4 },
      { name: "beta", source: hubSource("b", "v1"), rank: 4 },
    ]);
    await rig.until("alpha and beta loaded", (s) => s.get("alpha")?.state === "loaded" && s.get("beta")?.state === "loaded");
    assert.deepEqual(await models(), ["alpha", "beta", "tiny"], "the engine says so, not only the agent");
    const betaV1 = await chat(rig.engine.url, "beta");
    assert.equal(betaV1.status, 200);

    // A client keeps streaming to alpha while the set changes around it.
    let stop = false;
    const results: number[] = [];
    const client = (async () => {
      while (!stop) results.push((await chat(rig.engine.url, "alpha", { stream: true, maxTokens: 4 })).status);
    })();
    rig.setAdapters([
      { name: "alpha", source: hubSource("a", "v1"), rank: 4 },
      { name: "beta", source: hubSource("b", "v2"), rank: 4 },
      { name: "gamma", source: { url: { url: `${rig.hub.url}/org/c/resolve/v1/lora.gguf`, sha256: cSha } }, rank: 4 },
    ]);
    const changed = await rig.until(
      "gamma added and beta at v2",
      (s) => s.get("gamma")?.state === "loaded" && s.get("beta")?.state === "loaded" && s.get("beta")?.source === "org/b@v2#lora.gguf",
    );
    assert.ok(changed.get("gamma")?.since);
    const betaV2 = await chat(rig.engine.url, "beta");
    assert.equal(betaV2.status, 200);
    assert.notEqual(
      betaV2.text.replace(/"(id|created)":[^,]+,/g, ""),
      betaV1.text.replace(/"(id|created)":[^,]+,/g, ""),
      "beta answers with its new revision's weights",
    );

    rig.setAdapters([{ name: "alpha", source: hubSource("a", "v1"), rank: 4 }]);
    const removed = await rig.until(
      "beta and gamma unloaded",
      (s) => s.get("beta")?.state === "unloaded" && s.get("gamma")?.state === "unloaded",
    );
    assert.equal(removed.get("beta")?.reason, "removed from the adapter set");
    assert.deepEqual(await models(), ["alpha", "tiny"]);
    assert.equal((await chat(rig.engine.url, "beta")).status, 404);
    stop = true;
    await client;
    assert.ok(results.length > 0);
    assert.deepEqual(
      results.filter((status) => status !== 200),
      [],
      `${results.length} requests to alpha, none failed`,
    );
  });

  it("a removed adapter's requests in flight finish", async () => {
    rig.publish("d", "v1", 21);
    rig.setAdapters([
      { name: "alpha", source: hubSource("a", "v1"), rank: 4 },
      { name: "delta", source: hubSource("d", "v1"), rank: 4 },
    ]);
    await rig.until("delta loaded", (s) => s.get("delta")?.state === "loaded");
    const response = await fetch(`${rig.engine.url}/v1/chat/completions`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ model: "delta", messages: [{ role: "user", content: "what is a pod" }], max_tokens: 300, stream: true }),
    });
    assert.equal(response.status, 200);
    const reader = response.body?.getReader();
    assert.ok(reader);
    const decoder = new TextDecoder();
    let text = decoder.decode((await reader.read()).value);
    // The stream has started: now the adapter is removed under it.
    rig.setAdapters([{ name: "alpha", source: hubSource("a", "v1"), rank: 4 }]);
    await rig.until("delta unloaded", (s) => s.get("delta")?.state === "unloaded");
    assert.equal((await chat(rig.engine.url, "delta")).status, 404, "new requests for it are refused");
    for (let chunk = await reader.read(); !chunk.done; chunk = await reader.read()) text += decoder.decode(chunk.value);
    assert.match(text, /"finish_reason":"(length|stop)"/, "the request in flight ran to its end");
    assert.match(text, /data: \[DONE\]\n\n$/);
  });

  it("a download that fails shows why and is retried: a missing revision, then a checksum mismatch", async () => {
    rig.setAdapters([
      { name: "alpha", source: hubSource("a", "v1"), rank: 4 },
      { name: "epsilon", source: hubSource("e", "v7"), rank: 4 },
      { name: "zeta", source: { url: { url: `${rig.hub.url}/org/a/resolve/v1/lora.gguf`, sha256: "0".repeat(64) } }, rank: 4 },
    ]);
    const failed = await rig.until("epsilon and zeta failed twice", (s) =>
      ["epsilon", "zeta"].every((name) => s.get(name)?.state === "failed" && (s.get(name)?.attempts ?? 0) >= 2),
    );
    assert.equal(failed.get("epsilon")?.state, "failed");
    assert.match(failed.get("epsilon")?.reason ?? "", /org\/e@v7.*not found \(HTTP 404\)/);
    assert.match(failed.get("zeta")?.reason ?? "", /sha256 is [0-9a-f]{64}, but the source publishes 0{64}/);
    assert.ok(failed.get("epsilon")?.retryAt, "says when it tries again");
    assert.equal(failed.get("alpha")?.state, "loaded", "the others are unaffected");
    // The revision appears at the source: the next retry loads it, without a restart.
    rig.publish("e", "v7", 31);
    await rig.until("epsilon loaded once published", (s) => s.get("epsilon")?.state === "loaded");
    assert.equal((await chat(rig.engine.url, "epsilon")).status, 200);
  });

  it("files that are not a LoRA for this model, or of too high a rank, fail with the engine's reason, and the engine serves on", async () => {
    rig.publish("wide", "v1", 41, { embedding: 96 });
    rig.publish("big", "v1", 42, { rank: 16 });
    const base = await chat(rig.engine.url, "tiny");
    rig.setAdapters([
      { name: "alpha", source: hubSource("a", "v1"), rank: 4 },
      { name: "wide", source: hubSource("wide", "v1"), rank: 4 },
      { name: "big", source: hubSource("big", "v1"), rank: 16 },
    ]);
    const failed = await rig.until("wide and big failed", (s) => s.get("wide")?.state === "failed" && s.get("big")?.state === "failed");
    assert.match(failed.get("wide")?.reason ?? "", /the engine refused it \(HTTP 400\).*LoRA for another model/);
    assert.match(failed.get("big")?.reason ?? "", /the engine refused it \(HTTP 400\): LoRA rank 16 is greater than max_lora_rank 8/);
    assert.equal(
      (await chat(rig.engine.url, "tiny")).text.replace(/"(id|created)":[^,]+,/g, ""),
      base.text.replace(/"(id|created)":[^,]+,/g, ""),
    );
    assert.deepEqual(await models(), ["alpha", "tiny"]);
  });

  it("answers a placement with the placed adapters it failed to load, and tries a changed source at once, not after the backoff", async () => {
    // Its own agent, whose backoff (two minutes) is longer than any wait below.
    const slow = await startRig({ backoffMs: 120_000 });
    try {
      slow.setAdapters([
        { name: "alpha", source: hubSource("a", "v1"), rank: 4 },
        { name: "eta", source: hubSource("eta", "v1"), rank: 4 },
      ]);
      slow.publish("a", "v1", 11);
      await slow.until("eta failed, alpha loaded", (s) => s.get("eta")?.state === "failed" && s.get("alpha")?.state === "loaded");
      const place = async (adapters: string[]) =>
        (await (
          await fetch(`${slow.agent.url}/v1/placement`, {
            method: "PUT",
            headers: { "content-type": "application/json" },
            body: JSON.stringify({ gateway: "g1", adapters, ttlMs: 30_000 }),
          })
        ).json()) as PlacementAnswer;
      const answer = await place(["alpha", "eta", "nobody"]);
      assert.deepEqual(answer.placed, ["alpha", "eta"]);
      assert.deepEqual(answer.unknown, ["nobody"]);
      assert.deepEqual(
        answer.failed.map((f) => f.name),
        ["eta"],
      );
      assert.match(answer.failed[0]?.reason ?? "", /org\/eta@v1.*not found \(HTTP 404\)/);
      assert.equal(answer.failed[0]?.attempts, 1);
      assert.ok(Date.parse(answer.failed[0]?.retryAt ?? "") > Date.now() + 60_000, "the next try is two minutes off");
      // Placed elsewhere, it is unloaded here and its failure forgotten: placed here again, it is
      // tried afresh at once, not reported failed before that try.
      await place(["alpha"]);
      await slow.until("eta unloaded once placed elsewhere", (s) => s.get("eta")?.state === "unloaded");
      assert.deepEqual((await place(["alpha", "eta"])).failed, [], "no stale failure");
      await slow.until("eta tried again at once, and failed again", (s) => s.get("eta")?.state === "failed");
      assert.deepEqual(
        (await place(["alpha", "eta"])).failed.map((f) => [f.name, f.attempts]),
        [["eta", 1]],
      );
      // Someone points it at a revision that exists: tried now, not in two minutes.
      slow.publish("eta", "v2", 12);
      slow.setAdapters([
        { name: "alpha", source: hubSource("a", "v1"), rank: 4 },
        { name: "eta", source: hubSource("eta", "v2"), rank: 4 },
      ]);
      const loaded = await slow.until("eta loaded from its new source", (s) => s.get("eta")?.state === "loaded");
      assert.equal(loaded.get("eta")?.attempts, 0);
      assert.deepEqual((await place(["alpha", "eta"])).failed, []);
    } finally {
      await slow.close();
    }
  });

  it("loads everything again when the engine restarts and loses its runtime adapters", async () => {
    rig.setAdapters([
      { name: "alpha", source: hubSource("a", "v1"), rank: 4 },
      { name: "beta", source: hubSource("b", "v2"), rank: 4 },
    ]);
    await rig.until("both loaded", (s) => s.get("alpha")?.state === "loaded" && s.get("beta")?.state === "loaded");
    await rig.restartEngine();
    assert.deepEqual(await models(), ["tiny"], "a fresh engine has no runtime adapters");
    // The agent notices at its next resync and loads them again from its cache.
    const deadline = Date.now() + 30_000;
    while ((await models()).join() !== "alpha,beta,tiny") {
      assert.ok(
        Date.now() < deadline,
        `not reloaded: the engine lists ${(await models()).join()}; the agent says ${JSON.stringify(await rig.status())}`,
      );
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
    const status = await rig.until("both loaded again", (s) => s.get("alpha")?.state === "loaded" && s.get("beta")?.state === "loaded");
    assert.equal(status.get("alpha")?.attempts, 0);
  });
});
