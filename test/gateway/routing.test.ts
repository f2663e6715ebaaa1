// The routing policies on their own: what each chooses from the same replicas, and the engine load
// they read from vLLM's /metrics.
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { parseEngineLoad, type EngineLoad } from "../../src/gateway/engine-load.ts";
import { Diatonic, fewest } from "../../src/gateway/routing/diatonic.ts";
import { makePolicy, type Candidate } from "../../src/gateway/routing/index.ts";
import { LoraAffinity } from "../../src/gateway/routing/lora-affinity.ts";

function load(partial: Partial<EngineLoad> = {}): EngineLoad {
  return { running: 0, waiting: 0, kvCache: undefined, maxLoras: 2, runningLoras: new Set(), waitingLoras: new Set(), at: 0, ...partial };
}

function replica(
  origin: string,
  options: { outstanding?: number; outstandingSwaps?: number; load?: EngineLoad; loadOutstanding?: number; recent?: string[] } = {},
): Candidate {
  return {
    origin,
    outstanding: options.outstanding ?? 0,
    outstandingSwaps: options.outstandingSwaps ?? 0,
    load: options.load,
    loadOutstanding: options.loadOutstanding ?? options.outstanding ?? 0,
    recent: options.recent ?? [],
  };
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
    assert.deepEqual(
      { ...parsed, runningLoras: [...parsed.runningLoras], waitingLoras: [...parsed.waitingLoras] },
      { running: 4, waiting: 2, kvCache: 0.42, maxLoras: 4, runningLoras: ["code", "chat"], waitingLoras: ["rag"], at: 5 },
    );
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

/** The replicas (origins) a placement plan keeps the adapter on. */
function holdersIn(plan: ReadonlyMap<string, readonly string[]>, lora: string): string[] {
  return [...plan].filter(([, held]) => held.includes(lora)).map(([origin]) => origin);
}

describe("diatonic", () => {
  const options = { defaultSlots: 2, swapMs: 50, narrowAfterMs: 1000 };

  it("goes where the adapter's slot is warm, even when idle, and elsewhere only when the queue there costs more than a swap", () => {
    const policy = new Diatonic(options);
    const warm = replica("a", { recent: ["x"] });
    const cold = replica("b");
    assert.equal(policy.choose([cold, warm], { lora: "x", now: 0 }).reason, "resident");
    assert.equal(policy.choose([cold, warm], { lora: "x", now: 0 }).candidate.origin, "a");
    // Service time learnt: 40 ms a request, one at a time. Six queued at the warm replica: 240 ms > a 50 ms swap.
    for (let i = 0; i < 20; i++)
      policy.observe(
        { lora: "x", now: 0 },
        { choice: { candidate: warm, reason: "resident", expectedWaitMs: 0 }, swapped: false, firstByteMs: 5, totalMs: 40 },
      );
    const busy = replica("a", { recent: ["x"], outstanding: 6, load: load({ running: 1, waiting: 5 }) });
    const idle = replica("b", { load: load() });
    const spilled = policy.choose([busy, idle], { lora: "x", now: 0 });
    assert.equal(spilled.candidate.origin, "b");
    assert.notEqual(spilled.reason, "resident");
  });

  it("places adapters the same way in every gateway (rendezvous hashing), over the replicas, and widens a hot adapter's homes", () => {
    const replicas = ["a", "b", "c", "d"].map((o) => replica(`http://10.0.0.${o.charCodeAt(0)}:8000`));
    const one = new Diatonic(options);
    const two = new Diatonic(options);
    // The same skewed demand seen by both: adapter r about 1/(r+1) as often as the hottest.
    const loras = Array.from({ length: 24 }, (_, i) => `adapter-${i}`);
    const traffic = loras
      .flatMap((lora, r) =>
        Array.from({ length: Math.ceil(24 / (r + 1)) }, (_, n) => ({ lora, order: (n + 0.5) / Math.ceil(24 / (r + 1)) })),
      )
      .sort((x, y) => x.order - y.order);
    traffic.forEach(({ lora }, i) => {
      one.choose(replicas, { lora, now: i * 20 });
      two.choose(replicas, { lora, now: i * 20 });
    });
    const now = traffic.length * 20;
    assert.deepEqual(
      loras.map((l) => one.homesOf(l, replicas, now)),
      loras.map((l) => two.homesOf(l, replicas, now)),
      "two gateways agree without talking",
    );
    const hottest = new Set(loras.slice(0, 6).flatMap((l) => one.homesOf(l, replicas, now)));
    assert.ok(hottest.size >= 3, `the hottest adapters are spread over the replicas: ${[...hottest].join(", ")}`);

    // One adapter with all the traffic, faster than one replica serves: it gets several homes.
    const hot = new Diatonic(options);
    for (let i = 0; i < 200; i++) hot.choose(replicas, { lora: "hot", now: i * 5 });
    assert.ok(hot.homesOf("hot", replicas, 1000).length > 1, `homes: ${hot.homesOf("hot", replicas, 1000).join(", ")}`);
  });

  it("places over every healthy replica, not only those that hold the LoRA now, and keeps at least minReplicas copies (placement)", () => {
    const replicas = ["a", "b", "c", "d"].map((o) => replica(`http://10.0.0.${o.charCodeAt(0)}:8000`));
    const policy = new Diatonic(options);
    const homes = holdersIn(policy.plan(["cold"], replicas, 0, 1), "cold");
    assert.equal(homes.length, 1, "a cold adapter has one home");
    // Routed among the one replica that holds it, it is placed as over all four: the same home.
    const holder = replicas.find((r) => r.origin === homes[0]) as Candidate;
    policy.choose([holder], { lora: "cold", now: 1, replicas });
    assert.deepEqual(holdersIn(policy.plan(["cold"], replicas, 2, 1), "cold"), homes);
    const two = policy.plan(["cold"], replicas, 2, 2);
    assert.equal(holdersIn(two, "cold").length, 2);
    assert.ok(holdersIn(two, "cold").includes(homes[0] as string), "its home, then its next-ranked replica");
    assert.deepEqual(new Diatonic(options).plan(["cold"], replicas, 0, 2), two, "the same second copy in another gateway");
    assert.equal(holdersIn(policy.plan(["cold"], replicas.slice(0, 1), 3, 2), "cold").length, 1, "no more copies than replicas");
  });

  it("keeps no more adapters on a replica than it holds in host memory (cpuSlots, vLLM's --max-cpu-loras) while the replicas have room, and routes to where it placed them", () => {
    const replicas = ["a", "b", "c"].map((o) => replica(`http://10.0.0.${o.charCodeAt(0)}:8000`));
    const loras = Array.from({ length: 14 }, (_, i) => `adapter-${i}`);
    const placed = (cpuSlots: number | undefined, atLeast: number) => {
      const policy = measured(5, 30, cpuSlots);
      // Four hot adapters (they fill two pinned replicas' slots); the other ten have no demand yet.
      for (let i = 0; i < 400; i++) policy.choose(replicas, { lora: loras[i % 4] as string, now: i * 25 });
      const plan = policy.plan(loras, replicas, 10_000, atLeast);
      return { policy, plan, most: Math.max(...[...plan.values()].map((held) => held.length)) };
    };
    // Unbounded, the tail replica holds the ten cold adapters.
    assert.ok(placed(undefined, 1).most >= 10, "without the bound one replica holds most adapters");
    const { policy, plan, most } = placed(6, 1);
    assert.ok(most <= 6, `at most six a replica: ${JSON.stringify([...plan])}`);
    for (const lora of loras) {
      assert.equal(holdersIn(plan, lora).length, 1, `${lora} is placed once`);
      assert.deepEqual(policy.homesOf(lora, replicas, 10_000), holdersIn(plan, lora), `${lora} is routed where it is placed`);
    }
    // Two copies of fourteen adapters fill the three replicas' 3 × 10 places without passing them.
    const copies = placed(10, 2);
    assert.ok(copies.most <= 10, JSON.stringify([...copies.plan]));
    for (const lora of loras) assert.equal(holdersIn(copies.plan, lora).length, 2, `${lora}: two copies`);
    // Past the replicas' room every adapter is still placed: serving from disk beats not serving.
    const tight = placed(2, 1);
    for (const lora of loras) assert.ok(holdersIn(tight.plan, lora).length >= 1, `${lora} is placed`);
  });

  /** A policy that has measured a `serviceMs` service and a `swapMs` swap (on requests that ran at once) and seen a replica run two requests with more waiting (its parallelism). */
  function measured(swapMs = 10, serviceMs = 40, cpuSlots?: number): Diatonic {
    const policy = new Diatonic({ ...options, cpuSlots });
    const choice = { candidate: replica("z"), reason: "home", expectedWaitMs: 0 };
    for (let i = 0; i < 50; i++) {
      policy.observe({ lora: "z", now: 0 }, { choice, swapped: false, firstByteMs: 5, totalMs: serviceMs });
      policy.observe({ lora: "z", now: 0 }, { choice, swapped: true, firstByteMs: 5 + swapMs, totalMs: serviceMs + swapMs });
    }
    policy.choose([replica("z", { load: load({ running: 2, waiting: 1 }) })], { lora: undefined, now: 0 });
    return policy;
  }

  /** Of two replicas, the one x is placed on and the other. */
  function homeAndAway(policy: Diatonic): { home: string; away: string } {
    const origins = ["http://10.0.0.1:8000", "http://10.0.0.2:8000"];
    const home = policy.homesOf(
      "x",
      origins.map((o) => replica(o)),
      0,
    )[0] as string;
    return { home, away: origins.find((o) => o !== home) as string };
  }

  it("weighs a nearly full KV cache (vLLM admits late or preempts there): a warm slot loses to a swap when its replica's cache is full", () => {
    const policy = measured(10, 40);
    const warm = (kvCache: number) => replica("a", { recent: ["x"], load: load({ kvCache }) });
    const other = replica("b", { load: load({ kvCache: 0.2 }) });
    assert.equal(policy.choose([warm(0.5), other], { lora: "x", now: 0 }).candidate.origin, "a", "half full: the warm slot");
    assert.equal(policy.choose([warm(0.9), other], { lora: "x", now: 0 }).candidate.origin, "a", "90%: not yet");
    assert.equal(policy.choose([warm(0.99), other], { lora: "x", now: 0 }).candidate.origin, "b", "99%: a swap costs less");
  });

  it("learns swap and service times only from requests that ran at once, not from ones that queued", () => {
    const policy = new Diatonic(options);
    const atOnce = { candidate: replica("a"), reason: "home", expectedWaitMs: 0 };
    const queued = { candidate: replica("a"), reason: "home", expectedWaitMs: 300 };
    for (let i = 0; i < 50; i++) {
      policy.observe({ lora: "x", now: 0 }, { choice: atOnce, swapped: false, firstByteMs: 5, totalMs: 30 });
      policy.observe({ lora: "x", now: 0 }, { choice: atOnce, swapped: true, firstByteMs: 25, totalMs: 50 });
      // Queued behind others: their waits come before the first byte and say nothing of the swap (here they would make it negative) or of the service.
      policy.observe({ lora: "x", now: 0 }, { choice: queued, swapped: true, firstByteMs: 200, totalMs: 225 });
      policy.observe({ lora: "x", now: 0 }, { choice: queued, swapped: false, firstByteMs: 400, totalMs: 425 });
    }
    assert.equal(Math.round(policy.swapMs), 20);
    // 25 ms from first byte to end, and 5 ms to the first byte when it runs at once.
    assert.equal(Math.round(policy.serviceEstimateMs), 30);
  });

  it("counts its own requests on a replica as they are now, not as the last scrape saw them", () => {
    const policy = measured();
    // The scrape (up to 200 ms old) saw 4 requests there, all this gateway's; they have finished since.
    const warm = replica("a", { recent: ["x"], outstanding: 0, load: load({ running: 2, waiting: 2 }), loadOutstanding: 4 });
    const cold = replica("b", { load: load() });
    for (const order of [
      [warm, cold],
      [cold, warm],
    ]) {
      const choice = policy.choose(order, { lora: "x", now: 0 });
      assert.equal(choice.candidate.origin, "a");
      assert.equal(choice.expectedWaitMs, 0);
    }
    // Requests of other gateways (in the engine's count, not this gateway's) do count.
    const shared = replica("a", { recent: ["x"], outstanding: 0, load: load({ running: 2, waiting: 4 }), loadOutstanding: 0 });
    assert.equal(policy.choose([shared, cold], { lora: "x", now: 0 }).candidate.origin, "b");
  });

  it("takes a replica to run more requests at once until one reports requests waiting", () => {
    const policy = new Diatonic(options);
    const choice = { candidate: replica("z"), reason: "home", expectedWaitMs: 0 };
    for (let i = 0; i < 50; i++) {
      policy.observe({ lora: "z", now: 0 }, { choice, swapped: false, firstByteMs: 5, totalMs: 25 });
      policy.observe({ lora: "z", now: 0 }, { choice, swapped: true, firstByteMs: 8, totalMs: 28 });
    }
    // At low load a replica is seen running one request at most: that is not its limit.
    const warm = replica("a", { recent: ["x"], outstanding: 1, load: load({ running: 1 }) });
    const cold = replica("b", { load: load() });
    for (const order of [
      [warm, cold],
      [cold, warm],
    ])
      assert.equal(policy.choose(order, { lora: "x", now: 0 }).reason, "resident");
    // Once a replica has run one with others waiting, one request is its limit: 25 ms of wait costs more than a 3 ms swap.
    policy.choose([replica("c", { load: load({ running: 1, waiting: 2 }) })], { lora: undefined, now: 0 });
    for (const order of [
      [warm, cold],
      [cold, warm],
    ])
      assert.equal(policy.choose(order, { lora: "x", now: 0 }).candidate.origin, "b");
  });

  it("takes an idle replica over a busy one where the adapter is resident when sharing a replica costs more than a swap (both measured)", () => {
    const sharingCosts = (sharingMs: number) => {
      const policy = measured(5, 40);
      const warm = replica("a", { recent: ["x"], outstanding: 1, load: load({ running: 1 }) });
      const idle = replica("b", { load: load() });
      // Resident, on a free sequence beside one request: its first byte came sharingMs later than alone (5 ms).
      const beside = { candidate: warm, reason: "resident", expectedWaitMs: 0, requestsThere: 1 };
      for (let i = 0; i < 50; i++)
        policy.observe({ lora: "x", now: 0 }, { choice: beside, swapped: false, firstByteMs: 5 + sharingMs, totalMs: 40 + sharingMs });
      assert.equal(Math.round(policy.sharingMs), sharingMs);
      return [
        [warm, idle],
        [idle, warm],
      ].map((order) => policy.choose(order, { lora: "x", now: 0 }).candidate.origin);
    };
    // A CPU engine: the request beside it slows its first byte by 20 ms, more than a 5 ms swap (or two, away from its homes).
    assert.deepEqual(sharingCosts(20), ["b", "b"]);
    // A GPU's batch: 1 ms beside another, less than a swap: the warm slot wins.
    assert.deepEqual(sharingCosts(1), ["a", "a"]);
  });

  it("counts the swap of each request ahead that loads its LoRA first", () => {
    const policy = measured(30);
    // Four requests ahead on each, and x resident on both (so only the wait differs); at one they all load
    // their LoRA first (30 ms more each on a sequence).
    const swapping = replica("a", { recent: ["x"], outstanding: 4, outstandingSwaps: 4, load: load({ running: 2, waiting: 2 }) });
    const steady = replica("b", { recent: ["x"], outstanding: 4, outstandingSwaps: 0, load: load({ running: 2, waiting: 2 }) });
    // Each order twice: ties go round from a start that moves, so a tie would show as an "a".
    for (const order of [
      [swapping, steady],
      [swapping, steady],
      [steady, swapping],
      [steady, swapping],
    ])
      assert.equal(policy.choose(order, { lora: "x", now: 0 }).candidate.origin, "b");
  });

  it("where requests queue, prices a spill's swaps by those they hold back: an overloaded platform stays home instead of spilling into another queue", () => {
    // Two sequences a replica, 40 ms a request (20 ms of wait per request ahead), 12 ms a swap.
    const policy = measured(12, 40);
    const { home, away } = homeAndAway(policy);
    // x is resident at home, behind five requests: 80 ms of wait.
    const atHome = replica(home, { recent: ["x"], outstanding: 5, load: load({ running: 2, waiting: 3 }) });
    const choose = (elsewhere: Candidate) =>
      [
        [atHome, elsewhere],
        [elsewhere, atHome],
      ].map((order) => policy.choose(order, { lora: "x", now: 0 }).reason);
    // Elsewhere, behind three requests (40 ms), x would swap and evict a LoRA placed there: two swaps, and two
    // requests (this one and one ahead) wait there, a sequence's worth each, so each swap counts twice:
    // 40 + 2 × 24 = 88 ms against 80 (as one swap each, 64 ms: it spilled, and its swaps lengthened that queue).
    assert.deepEqual(choose(replica(away, { outstanding: 3, load: load({ running: 2, waiting: 1 }) })), ["resident", "resident"]);
    assert.equal(policy.spillCostMs(3, 12), 48);
    // Nothing queues on an idle replica: the swaps cost their own time, 24 ms against 80, and it goes there.
    assert.deepEqual(choose(replica(away, { load: load() })), ["spill", "spill"]);
    assert.equal(policy.spillCostMs(1, 12), 24);
  });

  it("among replicas where the adapter is resident, takes the least loaded, home or not (no swap, nothing evicted)", () => {
    const policy = measured(30);
    const { home, away } = homeAndAway(policy);
    // Both hold x; its home has one request more (still under its two sequences, then one ahead).
    for (const outstanding of [1, 2]) {
      const atHome = replica(home, { recent: ["x"], outstanding, load: load({ running: outstanding }) });
      const elsewhere = replica(away, { recent: ["x"], load: load() });
      for (const order of [
        [atHome, elsewhere],
        [elsewhere, atHome],
      ]) {
        const choice = policy.choose(order, { lora: "x", now: 0 });
        assert.equal(choice.candidate.origin, away);
        assert.equal(choice.reason, "resident-away");
      }
    }
  });

  it("sends an adapter's first request to a tail replica, where it evicts no hot adapter's slot", () => {
    const policy = measured(5, 30);
    const replicas = ["a", "b", "c"].map((o) => replica(`http://10.0.0.${o.charCodeAt(0)}:8000`));
    // Four hot adapters fill the two slots of two pinned replicas; the third is the tail.
    for (let i = 0; i < 400; i++) policy.choose(replicas, { lora: `hot-${i % 4}`, now: i * 25 });
    const pinned = new Set(["hot-0", "hot-1", "hot-2", "hot-3"].flatMap((l) => policy.homesOf(l, replicas, 10_000)));
    assert.equal(pinned.size, 2, `hot homes: ${[...pinned].join(", ")}`);
    for (let i = 0; i < 12; i++) {
      const choice = policy.choose(replicas, { lora: `new-${i}`, now: 10_000 });
      assert.ok(!pinned.has(choice.candidate.origin), `new-${i} went to ${choice.candidate.origin}`);
    }
  });

  it("counts the swap each request of a churning adapter costs when it sizes the tail", () => {
    const replicas = ["a", "b", "c"].map((o) => replica(`http://10.0.0.${o.charCodeAt(0)}:8000`));
    const tailOf = (swapMs: number) => {
      const policy = measured(swapMs, 27);
      // Four hot adapters at 5 req/s each (they fill the slots of two pinned replicas) and 25 req/s over twenty rare ones, for thirty seconds (demand is a decaying count: it takes that long to near the rate).
      for (let t = 0; t < 30_000; t += 10) {
        if (t % 50 === 0) policy.choose(replicas, { lora: `hot-${(t / 50) % 4}`, now: t });
        if (t % 40 === 0) policy.choose(replicas, { lora: `rare-${(t / 40) % 20}`, now: t });
      }
      return new Set(Array.from({ length: 20 }, (_, i) => policy.homesOf(`rare-${i}`, replicas, 30_000)).flat());
    };
    // 25 req/s × (27 + 2) ms fits one tail replica's share (70% of two sequences); with a 50 ms swap a request it does not.
    assert.equal(tailOf(2).size, 1);
    assert.equal(tailOf(50).size, 2);
  });

  it("widens a home set at once and narrows it only after the lower demand has lasted (hysteresis)", () => {
    const policy = new Diatonic(options);
    assert.equal(policy.homeCount("x", 4, 0), 4);
    assert.equal(policy.homeCount("x", 1, 500), 4, "lower for a moment: kept");
    assert.equal(policy.homeCount("x", 2, 900), 4, "still lower, not yet long enough");
    assert.equal(policy.homeCount("x", 1, 1600), 1, "lower for longer than narrowAfterMs: narrowed");
    assert.equal(policy.homeCount("x", 3, 1700), 3, "higher again: widened at once");
  });

  it("finds the fewest tail replicas from the count in force: the least that is enough, with two splits when the guess is right", () => {
    for (let most = 0; most <= 40; most++)
      for (let answer = Math.min(most, 1); answer <= most; answer++)
        for (const guess of [0, 1, answer - 1, answer, answer + 1, most, most + 3]) {
          const asked: number[] = [];
          const enough = (n: number) => {
            asked.push(n);
            return n >= answer;
          };
          assert.equal(fewest(Math.min(most, 1), most, guess, enough), answer, `most ${most}, answer ${answer}, guess ${guess}`);
          assert.ok(asked.length <= 2 * Math.ceil(Math.log2(most + 2)) + 2, `${asked.length} calls for most ${most}: ${asked.join(",")}`);
          if (guess === answer) assert.ok(asked.length <= 2, `a right guess costs two calls, not ${asked.length}`);
        }
  });

  it("is made by its config name, as are the others", () => {
    for (const policy of ["diatonic", "least-outstanding", "round-robin", "lora-affinity"] as const)
      assert.equal(makePolicy({ policy, slots: 2, swapMs: 50 }).name, policy);
  });
});
