// `bench:routing --simulate`: the four policies past what this machine can run (32 replicas × 1,000
// adapters), through the same RoutingPolicy classes the gateway uses, on a discrete-event model of
// the engines calibrated from the real run: each replica runs `parallel` sequences and holds `slots`
// LoRAs (least recently used evicted when idle); a request whose LoRA is not in a slot waits the
// measured swap time first. Engines admit requests in arrival order, skipping one whose LoRA cannot
// get a slot yet (as vLLM's scheduler does). Replicas report their load as vLLM does, every 200 ms.
import { isResident, makePolicy, POLICY_NAMES, type Candidate, type Choice, type RoutingPolicy } from "../src/gateway/routing/index.ts";
import type { EngineLoad } from "../src/gateway/engine-load.ts";
import { fewestLoads, fixedSplitLoads, p99TtftFloor, percentile, seeded, traffic, type PolicyRow } from "./routing-traffic.ts";

/** A request's service time is the calibrated one times SERVICE_LEAST to SERVICE_LEAST + SERVICE_SPREAD (±20%)... */
const SERVICE_LEAST = 0.8;
const SERVICE_SPREAD = 0.4;
/** ...and its first token comes this share of the way through it (after its swap, if it swaps). */
const FIRST_TOKEN_AT = 0.2;

export interface SimulationOptions {
  /** Measured swap time, ms. */
  readonly swapMs: number;
  /** Measured service time of a request on a warm slot, ms. */
  readonly serviceMs: number;
  readonly quick?: boolean;
  /** @default 32 */
  readonly replicas?: number;
  /** @default 1000 */
  readonly adapters?: number;
  /** @default 4 */
  readonly parallel?: number;
  /** @default 8 */
  readonly slots?: number;
}

interface SimRequest {
  readonly id: number;
  readonly lora: string;
  readonly arrivedAt: number;
  startedAt: number;
  firstTokenAt: number;
  finishedAt: number;
  swapped: boolean;
  /** What the gateway expected: the LoRA was not resident where it sent it. */
  readonly predictedSwap: boolean;
  readonly choice: Choice;
}

class SimReplica implements Candidate {
  outstanding = 0;
  outstandingSwaps = 0;
  loadOutstanding = 0;
  readonly recent: string[] = [];
  load: EngineLoad | undefined;
  readonly waiting: SimRequest[] = [];
  running = 0;
  /** Slot → when last used and requests running on it. */
  readonly slots = new Map<string, { lastUsed: number; running: number }>();
  constructor(readonly origin: string) {}
}

/** A min-heap of timed events. */
class Events {
  private readonly heap: { at: number; run: () => void }[] = [];
  push(at: number, run: () => void): void {
    const heap = this.heap;
    heap.push({ at, run });
    for (let i = heap.length - 1; i > 0;) {
      const parent = (i - 1) >> 1;
      if ((heap[parent] as { at: number }).at <= (heap[i] as { at: number }).at) break;
      [heap[parent], heap[i]] = [heap[i] as { at: number; run: () => void }, heap[parent] as { at: number; run: () => void }];
      i = parent;
    }
  }
  pop(): { at: number; run: () => void } | undefined {
    const heap = this.heap;
    const top = heap[0];
    const last = heap.pop();
    if (heap.length > 0 && last !== undefined) {
      heap[0] = last;
      for (let i = 0; ;) {
        const l = 2 * i + 1;
        const r = l + 1;
        let m = i;
        if (l < heap.length && (heap[l] as { at: number }).at < (heap[m] as { at: number }).at) m = l;
        if (r < heap.length && (heap[r] as { at: number }).at < (heap[m] as { at: number }).at) m = r;
        if (m === i) break;
        [heap[m], heap[i]] = [heap[i] as { at: number; run: () => void }, heap[m] as { at: number; run: () => void }];
        i = m;
      }
    }
    return top;
  }
}

export interface Simulation {
  readonly replicas: number;
  readonly adapters: number;
  readonly calibration: { readonly swapMs: number; readonly serviceMs: number; readonly parallel: number; readonly slots: number };
  readonly scenarios: {
    readonly name: "low" | "high";
    readonly rate: number;
    /** The fewest LoRA loads any router could make on this traffic in arrival order (Belady's MIN over every replica's slots; see fewestLoads). */
    readonly fewestLoads: number;
    /** The fewest a fixed split of the adapters over the replicas loads, LRU slots (see fixedSplitLoads): what a router that keeps adapters where they are placed can reach. */
    readonly fixedSplitLoads: number;
    /**
     * Where more than 1% of requests must load their LoRA, no policy's TTFT p99 is under the quickest
     * first token of a request that swaps in this model (the swap, then the shortest prompt); else 0.
     */
    readonly p99TtftFloorMs: number;
    readonly policies: PolicyRow[];
  }[];
}

export function simulate(options: SimulationOptions): Simulation {
  const replicaCount = options.replicas ?? 32;
  const adapterCount = options.adapters ?? 1000;
  const parallel = options.parallel ?? 4;
  const slotCount = options.slots ?? 8;
  const serviceMs = options.serviceMs;
  const capacity = (replicaCount * parallel * 1000) / serviceMs;
  const requests = options.quick === true ? 5000 : 30_000;
  const scenarios: Simulation["scenarios"] = [];
  for (const [name, share] of [
    ["low", 0.3],
    ["high", 0.8],
  ] as const) {
    const rate = capacity * share;
    const arrivals = traffic({ count: requests, rate, adapters: adapterCount, s: 1.1, seed: 7 });
    const policies = POLICY_NAMES.map((policy) =>
      runPolicy(policy, arrivals, { replicaCount, parallel, slotCount, serviceMs, swapMs: options.swapMs }),
    );
    const loads = fewestLoads(
      arrivals.map((a) => a.adapter),
      replicaCount * slotCount,
    );
    const p99TtftFloorMs = p99TtftFloor(loads, requests, options.swapMs + serviceMs * SERVICE_LEAST * FIRST_TOKEN_AT);
    const fixed = fixedSplitLoads(
      arrivals.map((a) => a.adapter),
      replicaCount,
      slotCount,
    );
    scenarios.push({ name, rate, fewestLoads: loads, fixedSplitLoads: fixed, p99TtftFloorMs, policies });
  }
  return {
    replicas: replicaCount,
    adapters: adapterCount,
    calibration: { swapMs: options.swapMs, serviceMs, parallel, slots: slotCount },
    scenarios,
  };
}

export function runPolicy(
  policyName: (typeof POLICY_NAMES)[number] | RoutingPolicy,
  arrivals: readonly { at: number; adapter: number }[],
  model: { replicaCount: number; parallel: number; slotCount: number; serviceMs: number; swapMs: number },
): PolicyRow {
  const policy =
    typeof policyName === "string"
      ? makePolicy({ policy: policyName, slots: model.slotCount, swapMs: model.swapMs }, seeded(11))
      : policyName;
  const jitter = seeded(13);
  const replicas = Array.from({ length: model.replicaCount }, (_, i) => new SimReplica(`http://10.1.${i >> 8}.${i & 255}:8000`));
  const events = new Events();
  const done: SimRequest[] = [];
  let swaps = 0;
  let policyMs = 0;
  let policyMaxMs = 0;
  let now = 0;
  const reasons: Record<string, number> = {};

  const report = (replica: SimReplica) => {
    const runningLoras = new Set([...replica.slots].filter(([, s]) => s.running > 0).map(([lora]) => lora));
    replica.load = {
      running: replica.running,
      waiting: replica.waiting.length,
      kvCache: undefined,
      maxLoras: model.slotCount,
      runningLoras,
      waitingLoras: new Set(replica.waiting.map((r) => r.lora)),
      at: now,
    };
    replica.loadOutstanding = replica.outstanding;
  };
  const scrape = () => {
    for (const replica of replicas) report(replica);
    if (done.length < arrivals.length) events.push(now + 200, scrape);
  };

  const admit = (replica: SimReplica) => {
    for (let i = 0; i < replica.waiting.length && replica.running < model.parallel;) {
      const request = replica.waiting[i] as SimRequest;
      let slot = replica.slots.get(request.lora);
      let swapMs = 0;
      if (slot === undefined) {
        if (replica.slots.size >= model.slotCount) {
          const idle = [...replica.slots].filter(([, s]) => s.running === 0).sort((a, b) => a[1].lastUsed - b[1].lastUsed)[0];
          if (idle === undefined) {
            i++; // no slot for this LoRA yet: the next request may run
            continue;
          }
          replica.slots.delete(idle[0]);
        }
        slot = { lastUsed: now, running: 0 };
        replica.slots.set(request.lora, slot);
        swapMs = model.swapMs;
        swaps++;
        request.swapped = true;
      }
      replica.waiting.splice(i, 1);
      slot.running++;
      slot.lastUsed = now;
      replica.running++;
      const service = model.serviceMs * (SERVICE_LEAST + SERVICE_SPREAD * jitter());
      request.startedAt = now;
      request.firstTokenAt = now + swapMs + service * FIRST_TOKEN_AT;
      const finishAt = now + swapMs + service;
      request.finishedAt = finishAt;
      const used = slot;
      events.push(finishAt, () => {
        used.running--;
        used.lastUsed = now;
        replica.running--;
        replica.outstanding--;
        if (request.predictedSwap) replica.outstandingSwaps--;
        done.push(request);
        policy.observe?.(
          { lora: request.lora, now: request.arrivedAt },
          {
            choice: request.choice,
            swapped: request.predictedSwap,
            firstByteMs: request.firstTokenAt - request.arrivedAt,
            totalMs: now - request.arrivedAt,
          },
        );
        admit(replica);
      });
    }
  };

  arrivals.forEach((arrival, id) =>
    events.push(arrival.at, () => {
      const lora = `adapter-${arrival.adapter}`;
      const started = performance.now();
      const choice = policy.choose(replicas, { lora, now });
      const spent = performance.now() - started;
      policyMs += spent;
      policyMaxMs = Math.max(policyMaxMs, spent);
      reasons[choice.reason] = (reasons[choice.reason] ?? 0) + 1;
      const chosen = choice.candidate as SimReplica;
      const predictedSwap = !isResident(chosen, lora, model.slotCount);
      chosen.outstanding++;
      if (predictedSwap) chosen.outstandingSwaps++;
      const at = chosen.recent.lastIndexOf(lora);
      if (at >= 0) chosen.recent.splice(at, 1);
      chosen.recent.push(lora);
      if (chosen.recent.length > 64) chosen.recent.shift();
      chosen.waiting.push({
        id,
        lora,
        arrivedAt: now,
        startedAt: 0,
        firstTokenAt: 0,
        finishedAt: 0,
        swapped: false,
        predictedSwap,
        choice,
      });
      admit(chosen);
    }),
  );
  events.push(0, scrape);
  for (let event = events.pop(); event !== undefined; event = events.pop()) {
    now = event.at;
    event.run();
  }
  const ttft = done.map((r) => r.firstTokenAt - r.arrivedAt);
  const e2e = done.map((r) => r.finishedAt - r.arrivedAt);
  const seconds = (arrivals.at(-1)?.at ?? 1) / 1000;
  return {
    policy: policy.name,
    swaps,
    p50TtftMs: percentile(ttft, 50),
    p99TtftMs: percentile(ttft, 99),
    p50E2eMs: percentile(e2e, 50),
    p99E2eMs: percentile(e2e, 99),
    rps: done.length / seconds,
    errors: arrivals.length - done.length,
    requests: arrivals.length,
    reasons,
    policyMeanUs: (policyMs * 1000) / arrivals.length,
    policyMaxMs,
  };
}
