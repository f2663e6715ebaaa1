import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { fewestLoads, seeded, traffic } from "../../bench/routing-traffic.ts";

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

/** What an LRU cache of the same size loads: a policy without foresight, which MIN must never exceed. */
function lruLoads(sequence: readonly number[], slots: number): number {
  const order: number[] = [];
  let loads = 0;
  for (const adapter of sequence) {
    const at = order.indexOf(adapter);
    if (at >= 0) order.splice(at, 1);
    else if (order.length >= slots) {
      order.shift();
      loads++;
    }
    order.push(adapter);
  }
  return loads;
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
});
