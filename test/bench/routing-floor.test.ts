import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { simulate } from "../../bench/routing-sim.ts";
import { fewestLoads, fixedSplitLoads, lruLoads, seeded, traffic } from "../../bench/routing-traffic.ts";

/** The fewest loads by trying every eviction: the reference MIN must equal. */
function exhaustive(sequence: readonly number[], slots: number): number {
  const best = (i: number, resident: readonly number[]): number => {
    if (i === sequence.length) return 0;
    const adapter = sequence[i] as number;
    if (resident.includes(adapter)) return best(i + 1, resident);
    if (resident.length < slots) return best(i + 1, [...resident, adapter]);
    return 1 + Math.min(...resident.map((victim) => best(i + 1, [...resident.filter((r) => r !== victim), adapter])));
  };
  return best(0, []);
}

describe("bench:routing's floor: the fewest LoRA loads (Belady's MIN)", () => {
  it("equals an exhaustive search over every eviction on random short sequences", () => {
    const random = seeded(7);
    for (let round = 0; round < 300; round++) {
      const length = 1 + Math.floor(random() * 11);
      const alphabet = 2 + Math.floor(random() * 4);
      const slots = 1 + Math.floor(random() * 3);
      const sequence = Array.from({ length }, () => Math.floor(random() * alphabet));
      assert.equal(fewestLoads(sequence, slots), exhaustive(sequence, slots), `${JSON.stringify(sequence)} with ${slots} slots`);
    }
  });

  it("evicts by next use, not by last use: fewer loads than LRU where LRU evicts what comes next", () => {
    // 2 slots, a b c a b c …: LRU always evicts the adapter asked for next; MIN keeps one of them.
    const sequence = [0, 1, 2, 0, 1, 2, 0, 1, 2];
    assert.equal(lruLoads(sequence, 2), 7);
    assert.equal(fewestLoads(sequence, 2), 4);
  });

  it("counts no loads while the slots hold every adapter, and never more than LRU on the bench's traffic", () => {
    assert.equal(fewestLoads([3, 1, 3, 2, 1, 2], 3), 0);
    const sequence = traffic({ count: 1000, rate: 50, adapters: 24, s: 1.1, seed: 20261206 }).map((a) => a.adapter);
    const min = fewestLoads(sequence, 6);
    assert.ok(min > 0 && min <= lruLoads(sequence, 6), `MIN ${min}, LRU ${lruLoads(sequence, 6)}`);
  });

  it("is a floor in the simulation, and a tight one at low load, where requests seldom queue", () => {
    const simulation = simulate({ swapMs: 4, serviceMs: 10, quick: true, replicas: 8, adapters: 100, slots: 4 });
    for (const scenario of simulation.scenarios) {
      assert.ok(scenario.p99TtftFloorMs > 0, `${scenario.name}: more than 1% of requests must load`);
      for (const policy of scenario.policies)
        assert.ok(
          policy.p99TtftMs >= scenario.p99TtftFloorMs,
          `${scenario.name} ${policy.policy}: p99 ${policy.p99TtftMs} < floor ${scenario.p99TtftFloorMs}`,
        );
    }
    const low = simulation.scenarios.find((scenario) => scenario.name === "low");
    assert.ok(low !== undefined);
    // Served in arrival order (little queueing at 30% load), no policy loads less than MIN...
    for (const policy of low.policies)
      assert.ok(policy.swaps >= low.fewestLoads, `low ${policy.policy}: ${policy.swaps} swaps < ${low.fewestLoads}`);
    // ...and least-outstanding's p99 is a swap with no wait: above 0.8× of it, the floor rules the goal out.
    const leastOutstanding = low.policies.find((policy) => policy.policy === "least-outstanding");
    assert.ok(leastOutstanding !== undefined && low.p99TtftFloorMs > 0.8 * leastOutstanding.p99TtftMs);
  });

  it("is no floor on loads where engines pass over queued requests whose LoRA has no slot (high load): requests for one LoRA then share a load", () => {
    const simulation = simulate({ swapMs: 4, serviceMs: 10, quick: true, replicas: 4, adapters: 60, slots: 2 });
    const high = simulation.scenarios.find((scenario) => scenario.name === "high");
    assert.ok(
      high !== undefined && high.policies.some((policy) => policy.swaps < high.fewestLoads),
      "at 80% load no policy loaded less than MIN: the simulated engines no longer group queued requests, and the docs say they do",
    );
  });
});

describe("bench:routing's fixed-split floor: the fewest loads when each adapter stays on its replicas (LRU slots)", () => {
  it("counts what each replica's LRU loads, with the hottest adapters on replicas of their own", () => {
    // 2 replicas × 1 slot: 0 (the hottest) alone on one, 1 and 2 take turns in the other's slot (3 loads after its first).
    assert.equal(fixedSplitLoads([0, 0, 0, 1, 2, 1, 2], 2, 1), 3);
    // 2 replicas × 2 slots, 5 adapters: 0 and 1 fill one replica; 2, 3, 4 churn through the other's 2 slots.
    const sequence = [0, 1, 0, 1, 2, 3, 4, 0, 1, 2, 3, 4, 0, 1];
    assert.equal(lruLoads([2, 3, 4, 2, 3, 4], 2), 4);
    assert.equal(fixedSplitLoads(sequence, 2, 2), 4);
    assert.equal(fixedSplitLoads([3, 1, 3, 2, 1, 2], 3, 1), 0, "every adapter has a slot");
  });

  it("pins where pinning pays: fewer loads than dealing every adapter out by its requests", () => {
    // 2 replicas × 2 slots. Dealt out by requests, 0 and 2 share a replica with 4, and 1 with 3: both
    // replicas churn. Pinning 0 and 1 together leaves 2, 3 and 4 to churn on one replica.
    const sequence = [0, 1, 2, 3, 4, 0, 1, 0, 1, 2, 3, 4, 0, 1, 0, 1, 2, 3, 4, 0, 1];
    const dealt = lruLoads([0, 2, 4, 0, 0, 2, 4, 0, 0, 2, 4, 0], 2) + lruLoads([1, 3, 1, 1, 3, 1, 1, 3, 1], 2);
    assert.equal(dealt, 8);
    assert.equal(fixedSplitLoads(sequence, 2, 2), lruLoads([2, 3, 4, 2, 3, 4, 2, 3, 4], 2));
    assert.equal(fixedSplitLoads(sequence, 2, 2), 7);
  });

  it("is never under MIN, on random sequences and on the bench's traffic", () => {
    const random = seeded(11);
    for (let round = 0; round < 200; round++) {
      const replicas = 1 + Math.floor(random() * 3);
      const slots = 1 + Math.floor(random() * 2);
      const sequence = Array.from({ length: 5 + Math.floor(random() * 30) }, () => Math.floor(random() * 8));
      assert.ok(
        fixedSplitLoads(sequence, replicas, slots) >= fewestLoads(sequence, replicas * slots),
        JSON.stringify({ sequence, replicas, slots }),
      );
    }
    const bench = traffic({ count: 1000, rate: 50, adapters: 24, s: 1.1, seed: 20261206 }).map((a) => a.adapter);
    assert.ok(fixedSplitLoads(bench, 3, 2) >= fewestLoads(bench, 6));
  });
});
