// The engine's context pool on a real (tiny) model: who gets a sequence when LoRA slots are short.
import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import type { LlamaModel } from "node-llama-cpp";
import { ContextPool, type Lease, type Target } from "../../src/engine/context-pool.ts";
import { loadLlamaRuntime } from "../../src/engine/llama-runtime.ts";
import { writeTestModels, type TestModelFiles } from "../../src/engine/index.ts";

const dir = mkdtempSync(join(tmpdir(), "diatonic-context-pool-"));
let files: TestModelFiles;
let model: LlamaModel;
before(async () => {
  files = writeTestModels(dir);
  const llama = await loadLlamaRuntime({ threads: 1 });
  model = await llama.loadModel({ modelPath: files.model });
});
after(async () => {
  await model.dispose();
  rmSync(dir, { recursive: true, force: true });
});

describe("the engine's context pool", () => {
  it("passes over a request whose LoRA has no slot, at most parallel × max_loras times, then runs it (no starvation)", async () => {
    const parallel = 2;
    const maxLoras = 1;
    const swaps: boolean[] = [];
    const pool = new ContextPool({
      model,
      parallel,
      maxQueue: 100,
      maxLoras,
      contextSize: 128,
      threads: 1,
      onSwap: (evicted) => swaps.push(evicted),
    });
    try {
      const [loraA, loraB] = files.loras;
      assert.ok(loraA && loraB);
      const hot: Target = { name: "hot", adapter: { path: loraA.path } };
      const cold: Target = { name: "cold", adapter: { path: loraB.path } };
      /** Leases held, oldest first, and the order requests were admitted in. */
      const held: Lease[] = [];
      const admitted: string[] = [];
      const waiting = new Set<Promise<void>>();
      const request = (target: Target, label: string) => {
        const done: Promise<void> = pool.acquire(target).then((lease) => {
          waiting.delete(done);
          admitted.push(label);
          held.push(lease);
        });
        waiting.add(done);
        done.catch(() => undefined); // rejected only by close(), after a failed assertion
        return done;
      };

      // The hot adapter holds every sequence; a request for the cold one arrives and cannot get a slot
      // (its only one is the hot adapter's, and never idle while requests for it keep coming).
      await request(hot, "hot-0");
      await request(hot, "hot-1");
      const coldDone = request(cold, "cold");
      let coldIn = false;
      void coldDone.then(
        () => (coldIn = true),
        () => undefined,
      );
      // Each round another hot request arrives and the oldest running one ends, so the hot context
      // never empties by itself: without the bound the cold request would wait for ever.
      for (let round = 2; round < 40 && !coldIn; round++) {
        const next = request(hot, `hot-${round}`);
        const oldest = held.shift();
        assert.ok(oldest, `round ${round}: a request is running`);
        const before = pool.runningCount;
        void oldest.release();
        // release() admits synchronously: running is back up when a waiter took the freed sequence.
        if (pool.runningCount === before) await Promise.race([next, coldDone]);
      }
      assert.ok(coldIn, `the cold request never ran: admitted ${admitted.join(", ")}`);
      // Passed over by the hot requests that arrived after it (hot-2 on) and ran before it: as vLLM's
      // scheduler does, so a resident adapter's requests are not held up, but no more than the bound.
      const passes = admitted.slice(0, admitted.indexOf("cold")).filter((label) => !["hot-0", "hot-1"].includes(label)).length;
      assert.equal(
        passes,
        parallel * maxLoras,
        `the cold request was passed over ${passes} times, the bound is ${parallel * maxLoras}: admitted ${admitted.join(", ")}`,
      );
      assert.deepEqual(swaps, [false, true], "hot's slot made, then given to cold once hot's requests drained");

      // Everything still queued completes once the cold request ends.
      while (held.length > 0 || waiting.size > 0) {
        const lease = held.shift();
        if (lease) await lease.release();
        else await Promise.race(waiting);
      }
      assert.equal(pool.waitingCount, 0);
      assert.equal(pool.runningCount, 0);
    } finally {
      await pool.close();
    }
  });
});
