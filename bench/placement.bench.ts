// `npm run bench:placement`: what the diatonic policy costs the gateway's one thread at 32 replicas
// × 1,000 adapters: its time per request, and the placement it works out again every 500 ms on the
// request that comes due (every stream in flight waits for it). Two loads: within the replicas'
// capacity, and past it (the tail then spans every replica, the case where a search from one replica
// took ten splits). Open-loop Poisson arrivals, Zipf(1.1) adapters, a fixed seed; replicas that report
// four requests running with one waiting (parallelism 4) and 8 LoRA slots; swap and service times
// taught as the gateway learns them. The policy is configured as rendered for vLLM: each replica keeps
// CPU_LORAS LoRAs in host memory (--max-cpu-loras), and every PUBLISH_MS the gateway plans every
// adapter's replicas for the adapter agents (two copies each, as rendered), which is timed apart with
// the most adapters a replica is given. Prints a table and writes bench/results/placement.json.
import { mkdirSync, writeFileSync } from "node:fs";
import { cpus, loadavg } from "node:os";
import type { EngineLoad } from "../src/gateway/engine-load.ts";
import { Diatonic, PLACE_EVERY_MS } from "../src/gateway/routing/diatonic.ts";
import type { Candidate } from "../src/gateway/routing/types.ts";
import { ADAPTER_COPIES, DEFAULT_MAX_CPU_LORAS } from "../src/spec/lora-cache.ts";
import { percentile, seeded, zipf } from "./routing-traffic.ts";

const REPLICAS = 32;
const ADAPTERS = 1000;
const PARALLEL = 4;
const SLOTS = 8;
const SWAP_MS = 3.6;
const SERVICE_MS = 9.3;
const CPU_LORAS = DEFAULT_MAX_CPU_LORAS;
/** The placement config's publishMs default: how often the agents are told, each time a plan of every adapter. */
const PUBLISH_MS = 2000;
const LORAS = Array.from({ length: ADAPTERS }, (_, i) => `adapter-${i}`);
const QUICK = process.env.BENCH_QUICK === "1";
const SECONDS = QUICK ? 10 : 30;

const capacityRps = (REPLICAS * PARALLEL * 1000) / SERVICE_MS;
const load: EngineLoad = {
  running: PARALLEL,
  waiting: 1,
  kvCache: undefined,
  maxLoras: SLOTS,
  runningLoras: new Set(),
  waitingLoras: new Set(),
  at: 0,
};

interface Row {
  readonly name: string;
  readonly rate: number;
  readonly requests: number;
  readonly meanUs: number;
  readonly placements: number;
  readonly placeMedianMs: number;
  readonly placeP90Ms: number;
  readonly placeMaxMs: number;
  readonly otherMaxMs: number;
  /** The plans for the agents (every PUBLISH_MS, off any request's path but on the same thread): time, and the most adapters one replica was given. */
  readonly plans: number;
  readonly planMedianMs: number;
  readonly planMaxMs: number;
  readonly mostOnAReplica: number;
}

function run(name: string, share: number): Row {
  const policy = new Diatonic({ defaultSlots: SLOTS, swapMs: SWAP_MS, cpuSlots: CPU_LORAS });
  // Taught as the gateway teaches it: requests that ran at once, LoRA resident or loaded first.
  const taught = {
    candidate: { origin: "z", outstanding: 0, outstandingSwaps: 0, load: undefined, loadOutstanding: 0, recent: [] },
    reason: "home",
    expectedWaitMs: 0,
  };
  for (let i = 0; i < 50; i++) {
    policy.observe({ lora: "z", now: 0 }, { choice: taught, swapped: false, firstByteMs: 2, totalMs: SERVICE_MS });
    policy.observe({ lora: "z", now: 0 }, { choice: taught, swapped: true, firstByteMs: 2 + SWAP_MS, totalMs: SERVICE_MS + SWAP_MS });
  }
  const replicas: Candidate[] = Array.from({ length: REPLICAS }, (_, i) => ({
    origin: `http://10.0.${i >> 8}.${i & 255}:8000`,
    outstanding: 0,
    outstandingSwaps: 0,
    load,
    loadOutstanding: 0,
    recent: [],
  }));
  const rate = capacityRps * share;
  // The arrivals of routing-traffic's traffic(), made one at a time: an array of them all would be the
  // heap's largest part, and its collection would be timed as the policy's.
  const random = seeded(20261207);
  const pick = zipf(ADAPTERS, 1.1, seeded(20261207 ^ 0x9e3779b9));
  const requests = Math.round(rate * SECONDS);
  const place: number[] = [];
  let otherMax = 0;
  let lastPlace = -Infinity;
  const plans: number[] = [];
  let lastPlan = -Infinity;
  let most = 0;
  let total = 0;
  let at = 0;
  for (let i = 0; i < requests; i++) {
    at += (-Math.log(1 - random()) / rate) * 1000;
    const lora = `adapter-${pick()}`;
    const started = performance.now();
    policy.choose(replicas, { lora, now: at });
    const took = performance.now() - started;
    total += took;
    if (at - lastPlace >= PLACE_EVERY_MS) {
      lastPlace = at;
      place.push(took);
    } else otherMax = Math.max(otherMax, took);
    if (at - lastPlan >= PUBLISH_MS) {
      lastPlan = at;
      const planning = performance.now();
      const plan = policy.plan(LORAS, replicas, at, ADAPTER_COPIES);
      plans.push(performance.now() - planning);
      for (const held of plan.values()) most = Math.max(most, held.length);
    }
  }
  // The first placement hashes every adapter over every replica (its rendezvous ranking, cached after).
  const steady = place.slice(1);
  return {
    name,
    rate,
    requests,
    meanUs: (total / requests) * 1000,
    placements: steady.length,
    placeMedianMs: percentile(steady, 50),
    placeP90Ms: percentile(steady, 90),
    placeMaxMs: steady.reduce((a, b) => Math.max(a, b), 0),
    otherMaxMs: otherMax,
    // The first plan ranks every adapter it had not seen, as the first placement does.
    plans: plans.length - 1,
    planMedianMs: percentile(plans.slice(1), 50),
    planMaxMs: plans.slice(1).reduce((a, b) => Math.max(a, b), 0),
    mostOnAReplica: most,
  };
}

const rows = [run("within capacity (30%)", 0.3), run("overloaded (150%)", 1.5)];
const pad = (value: string, width: number) => value.padStart(width);
console.log(
  `diatonic policy at ${REPLICAS} replicas × ${ADAPTERS} adapters, ${SECONDS} s of arrivals each (this host's CPU); ${CPU_LORAS} LoRAs in host memory a replica, ${ADAPTER_COPIES} copies each`,
);
console.log(
  `${"load".padEnd(22)}${pad("req/s", 8)}${pad("µs/req", 8)}${pad("places", 8)}${pad("place p50", 11)}${pad("p90", 8)}${pad("max", 8)}${pad("other max", 11)}${pad("plan p50", 10)}${pad("max", 8)}${pad("most held", 11)}`,
);
for (const row of rows)
  console.log(
    `${row.name.padEnd(22)}${pad(row.rate.toFixed(0), 8)}${pad(row.meanUs.toFixed(1), 8)}${pad(String(row.placements), 8)}${pad(row.placeMedianMs.toFixed(2), 11)}${pad(row.placeP90Ms.toFixed(2), 8)}${pad(row.placeMaxMs.toFixed(2), 8)}${pad(row.otherMaxMs.toFixed(2), 11)}${pad(row.planMedianMs.toFixed(2), 10)}${pad(row.planMaxMs.toFixed(2), 8)}${pad(String(row.mostOnAReplica), 11)}`,
  );
mkdirSync("bench/results", { recursive: true });
writeFileSync(
  "bench/results/placement.json",
  `${JSON.stringify({ date: new Date().toISOString(), cpus: cpus().length, loadAverage: loadavg(), replicas: REPLICAS, adapters: ADAPTERS, cpuLoras: CPU_LORAS, copies: ADAPTER_COPIES, quick: QUICK, rows }, null, 2)}\n`,
);
