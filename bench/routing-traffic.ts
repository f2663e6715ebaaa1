// The traffic bench:routing sends, the same for every policy: open-loop Poisson arrivals, adapters
// drawn from a Zipf distribution, from a fixed seed. Also the table and the percentiles.

/** A small, fast, seedable generator (mulberry32): the same seed gives the same traffic. */
export function seeded(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** Zipf over `n` ranks with exponent `s`: rank r (0-based) has weight 1/(r+1)^s. */
export function zipf(n: number, s: number, random: () => number): () => number {
  const weights = Array.from({ length: n }, (_, r) => 1 / (r + 1) ** s);
  const total = weights.reduce((a, b) => a + b, 0);
  const cumulative: number[] = [];
  let sum = 0;
  for (const w of weights) cumulative.push((sum += w / total));
  return () => {
    const u = random();
    let lo = 0;
    let hi = n - 1;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      if ((cumulative[mid] as number) < u) lo = mid + 1;
      else hi = mid;
    }
    return lo;
  };
}

export interface Arrival {
  /** ms from the start. */
  readonly at: number;
  readonly adapter: number;
}

/** `count` arrivals at `rate` per second (exponential gaps), adapters Zipf(s) over `adapters`. */
export function traffic(options: {
  readonly count: number;
  readonly rate: number;
  readonly adapters: number;
  readonly s: number;
  readonly seed: number;
}): Arrival[] {
  const random = seeded(options.seed);
  const pick = zipf(options.adapters, options.s, seeded(options.seed ^ 0x9e3779b9));
  const arrivals: Arrival[] = [];
  let at = 0;
  for (let i = 0; i < options.count; i++) {
    at += (-Math.log(1 - random()) / options.rate) * 1000;
    arrivals.push({ at, adapter: pick() });
  }
  return arrivals;
}

export function percentile(values: readonly number[], p: number): number {
  if (values.length === 0) return Number.NaN;
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1))] as number;
}

/** One policy's row, in the shape bench/results/routing.json keeps (more fields are welcome). */
export interface PolicyRow {
  readonly policy: string;
  readonly swaps: number;
  readonly p50TtftMs: number;
  readonly p99TtftMs: number;
  readonly p50E2eMs: number;
  readonly p99E2eMs: number;
  readonly rps: number;
  readonly errors: number;
  readonly requests: number;
  /** The gateway's own view: requests it sent where the adapter's slot was warm. */
  readonly residencyHits?: number;
  /** Routing decisions by reason (the gateway's diatonic_gateway_routing_decisions_total). */
  readonly reasons?: Readonly<Record<string, number>>;
  /** Simulated runs: the policy's own time choosing, per request on average (µs), and the longest single choice (ms: a request held up by a placement worked out on its path). */
  readonly policyMeanUs?: number;
  readonly policyMaxMs?: number;
}

export function table(title: string, rows: readonly PolicyRow[]): string {
  const head = ["policy", "swaps", "TTFT p50", "TTFT p99", "e2e p50", "e2e p99", "req/s", "errors"];
  const cells = rows.map((r) => [
    r.policy,
    String(r.swaps),
    r.p50TtftMs.toFixed(1),
    r.p99TtftMs.toFixed(1),
    r.p50E2eMs.toFixed(1),
    r.p99E2eMs.toFixed(1),
    r.rps.toFixed(1),
    String(r.errors),
  ]);
  const widths = head.map((h, i) => Math.max(h.length, ...cells.map((c) => (c[i] ?? "").length)));
  const line = (c: readonly string[]) => c.map((v, i) => (i === 0 ? v.padEnd(widths[i] ?? 0) : v.padStart(widths[i] ?? 0))).join("  ");
  return [title, line(head), ...cells.map(line)].join("\n");
}

/**
 * The fewest LoRA loads any router can make for a sequence of adapters served in arrival order, each
 * LoRA loaded when its request comes, with `slots` LoRA slots over all replicas (replicas ×
 * --max-loras): Belady's MIN, which on a miss evicts the resident adapter used again furthest ahead.
 * Routing is left free (a request may go to whichever replica holds its adapter, whatever the queues),
 * so the replicas' slots act as one cache: no router loads less in arrival order. Engines that hold
 * queued requests back and serve those for one LoRA together (at high load), or a router that loads a
 * LoRA before its request comes, can. Loads into a still empty slot are not counted, since a run may
 * start with them loaded.
 */
export function fewestLoads(sequence: readonly number[], slots: number): number {
  // Where each request's adapter is next asked for (Infinity: never again).
  const nextUse = new Array<number>(sequence.length);
  const ahead = new Map<number, number>();
  for (let i = sequence.length - 1; i >= 0; i--) {
    const adapter = sequence[i] as number;
    nextUse[i] = ahead.get(adapter) ?? Number.POSITIVE_INFINITY;
    ahead.set(adapter, i);
  }
  const resident = new Map<number, number>();
  let loads = 0;
  sequence.forEach((adapter, i) => {
    if (!resident.has(adapter) && resident.size >= slots) {
      let victim: number | undefined;
      let furthest = -1;
      for (const [candidate, next] of resident)
        if (next > furthest) {
          furthest = next;
          victim = candidate;
        }
      resident.delete(victim as number);
      loads++;
    }
    resident.set(adapter, nextUse[i] as number);
  });
  return loads;
}

/** What slots that evict the least recently used LoRA load for a sequence (loads into a still empty slot not counted, as in fewestLoads). */
export function lruLoads(sequence: readonly number[], slots: number): number {
  const held: number[] = [];
  let loads = 0;
  for (const adapter of sequence) {
    const at = held.indexOf(adapter);
    if (at !== -1) held.splice(at, 1);
    else if (held.length >= slots) {
      held.shift();
      loads++;
    }
    held.push(adapter);
  }
  return loads;
}

/**
 * The fewest LoRA loads of a fixed split of the adapters over the replicas, each replica's slots
 * evicting the least recently used LoRA, as vLLM's and the local engine's do. The splits tried: the
 * hottest adapters (by their count in `sequence`, hindsight as MIN's) fill every slot of some replicas,
 * where they never swap, and the rest are dealt hottest first to the replica with the fewest requests
 * so far among the others; every count of such "pinned" replicas is tried. A pinned adapter cannot
 * share a replica with churning ones: under LRU it is evicted like them. This is what a router that
 * keeps each adapter on the same replicas (diatonic's placement) can reach; only one that moves
 * adapters with the traffic gets nearer MIN (fewestLoads). Queues are left out, as in MIN: the best
 * split may give one engine more requests than it can serve (at 32 × 1,000 it churns 752 adapters on
 * one replica), so it is a floor, not a plan. Loads into a still empty slot are not counted, as in
 * fewestLoads.
 */
export function fixedSplitLoads(sequence: readonly number[], replicas: number, slotsPerReplica: number): number {
  const counts = new Map<number, number>();
  for (const adapter of sequence) counts.set(adapter, (counts.get(adapter) ?? 0) + 1);
  const hottest = [...counts].sort((a, b) => b[1] - a[1] || a[0] - b[0]).map(([adapter]) => adapter);
  if (hottest.length <= replicas * slotsPerReplica) return 0;
  let best = Number.POSITIVE_INFINITY;
  for (let pinnedReplicas = 0; pinnedReplicas < replicas; pinnedReplicas++) {
    const pinned = pinnedReplicas * slotsPerReplica;
    const groups = replicas - pinnedReplicas;
    const groupOf = new Map<number, number>();
    const requests = new Array<number>(groups).fill(0);
    for (const adapter of hottest.slice(pinned)) {
      const group = requests.indexOf(Math.min(...requests));
      groupOf.set(adapter, group);
      requests[group] = (requests[group] as number) + (counts.get(adapter) as number);
    }
    // Each replica's own requests, in arrival order, through its LRU slots.
    const perReplica = Array.from({ length: groups }, () => [] as number[]);
    for (const adapter of sequence) {
      const group = groupOf.get(adapter);
      if (group !== undefined) (perReplica[group] as number[]).push(adapter);
    }
    const loads = perReplica.reduce((sum, own) => sum + lruLoads(own, slotsPerReplica), 0);
    best = Math.min(best, loads);
  }
  return best;
}

/** The lowest TTFT p99 among the policies other than diatonic: what the p99 goal compares with. */
export function bestOtherP99(policies: readonly PolicyRow[]): number {
  return Math.min(...policies.filter((p) => p.policy !== "diatonic").map((p) => p.p99TtftMs));
}

/**
 * The TTFT p99 no policy gets under: where more than 1% of requests must load their LoRA in arrival
 * order (fewestLoads), the quickest first token a request that swaps can have; 0 (no floor) otherwise.
 */
export function p99TtftFloor(mustLoad: number, requests: number, quickestSwappedFirstTokenMs: number): number {
  return mustLoad / requests > 0.01 ? quickestSwappedFirstTokenMs : 0;
}

/** The floor line printed under a load's results; `quickest` says what the floor's time is. */
export function floorLine(floor: {
  readonly mustLoadShare: number;
  readonly slots: number;
  readonly floorMs: number;
  readonly floorVsBestOther: number;
  readonly quickest: string;
}): string {
  const verdict = floor.floorVsBestOther > 0.8 ? "out of reach on this layout, for any policy" : "not ruled out by this floor";
  return `floor: ${(floor.mustLoadShare * 100).toFixed(1)}% of requests must load their LoRA under any router, in arrival order (Belady's MIN, ${floor.slots} slots), so no policy's TTFT p99 is under ~${floor.floorMs.toFixed(1)} ms (${floor.quickest}) = ${floor.floorVsBestOther.toFixed(2)}× the best other's: the 0.80 goal is ${verdict}`;
}
