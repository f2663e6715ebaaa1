// The diatonic policy in bench:routing's simulation (simulated time: no timing on this host), where
// the real benchmark cannot go: a platform loaded past what it serves once swaps are counted.
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { simulate } from "../../bench/routing-sim.ts";

describe("diatonic in the simulation", () => {
  it("does not spill its way into round-robin's swaps when overloaded: fewer swaps than lora-affinity, and a p99 TTFT under half the best other's", () => {
    // 3 replicas × 2 slots and 2 sequences, 24 adapters (bench:routing's engines); "high" is 80% of what
    // they serve with no swap at all, past what they serve with the swaps any policy makes. Spills there
    // once made swaps that lengthened the queues that made more spills: 3,634 swaps where lora-affinity
    // made 3,190, and a p99 of 513 ms against its 585 (swap 5.2 ms, service 16.8 ms).
    for (const [swapMs, serviceMs] of [
      [5.2, 16.8],
      [3.6, 9.3],
      [4, 10],
    ] as const) {
      const simulation = simulate({ swapMs, serviceMs, quick: true, replicas: 3, adapters: 24, parallel: 2, slots: 2 });
      const high = simulation.scenarios.find((s) => s.name === "high");
      assert.ok(high);
      const row = (policy: string) => high.policies.find((p) => p.policy === policy) as (typeof high.policies)[number];
      const ours = row("diatonic");
      const others = high.policies.filter((p) => p.policy !== "diatonic");
      const bestOtherP99 = Math.min(...others.map((p) => p.p99TtftMs));
      const at = `swap ${swapMs} ms, service ${serviceMs} ms`;
      assert.ok(ours.swaps < row("lora-affinity").swaps, `${at}: ${ours.swaps} swaps, lora-affinity ${row("lora-affinity").swaps}`);
      assert.ok(
        ours.p99TtftMs <= bestOtherP99 / 2,
        `${at}: p99 TTFT ${ours.p99TtftMs.toFixed(1)} ms, the best other's ${bestOtherP99.toFixed(1)}`,
      );
      assert.equal(ours.errors, 0);
    }
  });
});
