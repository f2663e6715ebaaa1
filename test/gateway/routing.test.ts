// The routing policies on their own: what each chooses from the same replicas, and the engine load
// they read from vLLM's /metrics.
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { parseEngineLoad, type EngineLoad } from "../../src/gateway/engine-load.ts";
import { Diatonic } from "../../src/gateway/routing/diatonic.ts";
import { makePolicy, type Candidate } from "../../src/gateway/routing/index.ts";
import { LoraAffinity } from "../../src/gateway/routing/lora-affinity.ts";

function load(partial: Partial<EngineLoad> = {}): EngineLoad {
  return { running: 0, waiting: 0, kvCache: undefined, maxLoras: 2, runningLoras: new Set(), waitingLoras: new Set(), at: 0, ...partial };
}

function replica(origin: string, options: { outstanding?: number; load?: EngineLoad; recent?: string[] } = {}): Candidate {
  return { origin, outstanding: options.outstanding ?? 0, load: options.load, recent: options.recent ?? [] };
}

describe("engine load from vLLM's /metrics", () => {
  it("reads queue, KV cache and the LoRAs in flight as vLLM 0.34 exports them (one series per engine core)", () => {
    const text = [
      "# HELP vllm:num_requests_running Number of requests in model execution batches.",
      "# TYPE vllm:num_requests_running gauge",
      'vllm:num_requests_running{engine="0",model_name="llama"} 3.0',
      'vllm:num_requests_running{engine="1",model_name="llama"} 1.0',
      'vllm:num_requests_waiting{engine="0",model_name="llama"} 2.0',
      'vllm:kv_cache_usage_perc{engine="0",model_name="llama"} 0.42',
      'vllm:lora_requests_info{max_lora="4",running_lora_adapters="code,chat",waiting_lora_adapters="rag"} 1.7650e+09',
      'vllm:lora_requests_info{max_lora="4",running_lora_adapters="old",waiting_lora_adapters=""} 1.7649e+09',
    ].join("\n");
    const parsed = parseEngineLoad(text, 5);
    assert.deepEqual({ ...parsed, runningLoras: [...parsed.runningLoras], waitingLoras: [...parsed.waitingLoras] }, { running: 4, waiting: 2, kvCache: 0.42, maxLoras: 4, runningLoras: ["code", "chat"], waitingLoras: ["rag"], at: 5 });
  });
});

describe("lora-affinity (llm-d's scorers, reimplemented)", () => {
  it("scores active 1.0, a free slot 0.8, waiting 0.6, otherwise 0, plus the queue score", () => {
    const policy = new LoraAffinity(2, () => 0);
    const active = replica("a", { load: load({ runningLoras: new Set(["x", "y"]), waiting: 4 }) });
    const free = replica("b", { load: load({ runningLoras: new Set(["y"]), waiting: 4 }) });
    const full = replica("c", { load: load({ runningLoras: new Set(["y", "z"]), waiting: 4 }) });
    assert.equal(policy.choose([full, free, active], { lora: "x", now: 0 }).candidate.origin, "a", "active wins");
    assert.equal(policy.choose([full, free], { lora: "x", now: 0 }).candidate.origin, "b", "a free slot beats a full replica");
    // A much shorter queue outweighs affinity: 0.8 + 1 (shortest) beats 1.0 + 0 (longest).
    const busyActive = replica("a", { load: load({ runningLoras: new Set(["x"]), waiting: 10 }) });
    const idleFree = replica("b", { load: load({ waiting: 0 }) });
    assert.equal(policy.choose([busyActive, idleFree], { lora: "x", now: 0 }).candidate.origin, "b");
  });

  it("sees an idle but resident adapter as absent (llm-d-router#2605): no in-flight request, no affinity", () => {
    const policy = new LoraAffinity(2, () => 0.99);
    const warm = replica("a", { load: load(), recent: ["x"] });
    const cold = replica("b", { load: load() });
    const picks = new Set(Array.from({ length: 4 }, () => policy.choose([warm, cold], { lora: "x", now: 0 }).candidate.origin));
    assert.deepEqual(picks, new Set(["b"]), "a tie, broken at random: the warm replica is not preferred");
  });
});

describe("diatonic", () => {
  const options = { defaultSlots: 2, swapMs: 50, narrowAfterMs: 1000 };

  it("goes where the adapter's slot is warm, even when idle, and elsewhere only when the queue there costs more than a swap", () => {
    const policy = new Diatonic(options);
    const warm = replica("a", { recent: ["x"] });
    const cold = replica("b");
    assert.equal(policy.choose([cold, warm], { lora: "x", now: 0 }).reason, "resident");
    assert.equal(policy.choose([cold, warm], { lora: "x", now: 0 }).candidate.origin, "a");
    // Service time learnt: 40 ms a request, one at a time. Six queued at the warm replica: 240 ms > a 50 ms swap.
    for (let i = 0; i < 20; i++) policy.observe({ lora: "x", now: 0 }, { firstByteMs: 5, totalMs: 40 }, false);
    const busy = replica("a", { recent: ["x"], outstanding: 6, load: load({ running: 1, waiting: 5 }) });
    const idle = replica("b", { load: load() });
    const spilled = policy.choose([busy, idle], { lora: "x", now: 0 });
    assert.equal(spilled.candidate.origin, "b");
    assert.notEqual(spilled.reason, "resident");
  });

  it("gives a cold adapter the same home replica in every gateway (rendezvous hashing), and widens a hot adapter's homes", () => {
    const replicas = ["a", "b", "c", "d"].map((o) => replica(`http://10.0.0.${o.charCodeAt(0)}:8000`));
    const homeOf = (policy: Diatonic, lora: string) => policy.choose(replicas, { lora, now: 0 }).candidate.origin;
    const one = new Diatonic(options);
    const two = new Diatonic(options);
    const loras = Array.from({ length: 24 }, (_, i) => `adapter-${i}`);
    assert.deepEqual(loras.map((l) => homeOf(one, l)), loras.map((l) => homeOf(two, l)), "two gateways agree without talking");
    assert.ok(new Set(loras.map((l) => homeOf(one, l))).size >= 3, "adapters spread over the replicas");

    // One adapter with all the traffic, faster than one replica serves: it gets several homes.
    const hot = new Diatonic(options);
    for (let i = 0; i < 200; i++) hot.choose(replicas, { lora: "hot", now: i * 5 });
    assert.ok(hot.homesOf("hot", replicas, 1000).length > 1, `homes: ${hot.homesOf("hot", replicas, 1000).join(", ")}`);
  });

  it("widens a home set at once and narrows it only after the lower demand has lasted (hysteresis)", () => {
    const policy = new Diatonic(options);
    assert.equal(policy.homeCount("x", 4, 0), 4);
    assert.equal(policy.homeCount("x", 1, 500), 4, "lower for a moment: kept");
    assert.equal(policy.homeCount("x", 2, 900), 4, "still lower, not yet long enough");
    assert.equal(policy.homeCount("x", 1, 1600), 1, "lower for longer than narrowAfterMs: narrowed");
    assert.equal(policy.homeCount("x", 3, 1700), 3, "higher again: widened at once");
  });

  it("is made by its config name, as are the others", () => {
    for (const policy of ["diatonic", "least-outstanding", "round-robin", "lora-affinity"] as const) assert.equal(makePolicy({ policy, slots: 2, swapMs: 50 }).name, policy);
  });
});
