// Ours: keep each adapter on a few "home" replicas so their LoRA slots stay warm, and go elsewhere
// only when waiting there costs more than a swap.
// - Residency is what the engine reports in flight (vllm:lora_requests_info) plus what this gateway
//   sent each replica last: an idle adapter still in its slot counts, where llm-d's scorer sees none.
// - Cost of a replica = the expected wait before the request runs there, plus the swap time where its
//   LoRA is not resident, plus one more swap where that also evicts a LoRA placed there (the replica
//   is not one of the adapter's homes). Such a spill's swaps also hold back the requests that queue
//   there: where requests would wait there with this one, they count once more for every `parallel`
//   of them (an overloaded platform stops spilling into queues, where each spill's swaps lengthened
//   the queues that made more spills; nothing changes where no request waits). The wait counts this
//   gateway's requests there now (exact, with no scrape delay) and other gateways' from the engine's
//   last report; each request beyond the replica's parallelism holds a sequence for the service time,
//   and for the swap time too if it loads its LoRA first; a request that gets a free sequence beside
//   others still shares the replica with them (on a CPU, or a GPU's batch), which costs it the
//   measured sharing time per request there. The parallelism is what a replica ran while it reported
//   requests waiting; until one has, one more than the most seen running (at low load that count says
//   little of how many it can run, but no bound at all piles requests on one replica between
//   scrapes). Among equal costs, the replica with fewer requests.
// - Swap time is learnt only from requests expected to run at once: the first byte of one that loaded
//   its LoRA minus that of one that did not (in one that queued, queueing would pass for swap time).
//   Service time = the time from first byte to end, which no queueing precedes, learnt from every
//   request, plus the first byte of one that ran at once where its LoRA was resident (the prompt).
//   Sharing time = what each request already running there added to the first byte of one that got
//   a free sequence beside them (0 until measured: then the policy sends such requests and learns).
// - Homes: every adapter's replicas are ranked by rendezvous hashing, the same ranking in every
//   gateway replica (no coordinator). Adapters are placed hottest first: the hottest each get a slot
//   on a "pinned" replica; the rest churn through the slots of as few "tail" replicas as their work
//   needs, counting the swap each of their requests costs. A replica's homes may fill a share of its
//   sequence time; an adapter hotter than that gets more homes. Hysteresis everywhere a placement
//   could thrash: home and tail counts narrow only after the lower demand has lasted, a pinned
//   adapter keeps its slot until another is clearly hotter, and homes are kept while they still fit.
import { hash } from "node:crypto";
import { isResident, slotsOf, type Candidate, type Choice, type RouteRequest, type Routed, type RoutingPolicy } from "./types.ts";

export interface DiatonicOptions {
  /** LoRA slots per replica when the engine does not say (its max_lora). */
  readonly defaultSlots: number;
  /** The swap cost before any is measured, in ms. */
  readonly swapMs: number;
  /** How long a narrower home set must be enough before it is taken. @default 15000 */
  readonly narrowAfterMs?: number;
  /**
   * LoRAs a replica keeps in host memory (vLLM's --max-cpu-loras): no replica is placed more adapters
   * than that while the replicas have room, since a swap of any other reads its weights from disk.
   * @default unbounded
   */
  readonly cpuSlots?: number | undefined;
}

/** An exponentially weighted mean that is undefined until its first sample. */
class Ewma {
  value: number | undefined;
  constructor(private readonly weight: number) {}
  add(sample: number): void {
    this.value = this.value === undefined ? sample : this.value + this.weight * (sample - this.value);
  }
}

/** Arrivals per second: a count that decays with a half-life, over its time constant. */
class Rate {
  private value = 0;
  private at = 0;
  constructor(private readonly halfLifeMs: number) {}
  hit(now: number): void {
    this.decay(now);
    this.value += 1;
  }
  read(now: number): number {
    this.decay(now);
    return (this.value * Math.LN2 * 1000) / this.halfLifeMs;
  }
  private decay(now: number): void {
    if (now > this.at) this.value *= 2 ** (-(now - this.at) / this.halfLifeMs);
    this.at = now;
  }
}

/** Rendezvous (highest random weight) score of a replica for an adapter. */
function weight(adapter: string, origin: string): number {
  // crypto.hash: the same SHA-1 as a Hash object's, without making one (~1.4 against ~2.3 µs).
  return hash("sha1", `${adapter}\0${origin}`, "buffer").readUInt32BE(0);
}

/** The share of a replica's sequence time its homes may fill... */
const TARGET_UTILIZATION = 0.7;
/** ...and how far past that an adapter already placed there may push it before it is moved. */
const STICKY_BOUND = 1.2;
/** How much hotter than a pinned adapter another must be to take its slot. */
const PIN_MARGIN = 1.5;
/** The name the replicas themselves are ranked under, for which are pinned and which take the tail. */
const REPLICA_ORDER = "\u0000replicas";
/** KV-cache use past which a replica is held to admit new requests late (vLLM queues or preempts them)... */
const KV_FULL_FROM = 0.9;
/** ...by up to one service time per request at 100% use. */
const KV_FULL_COST = 1;
/** Placements are worked out again this often (on the first request this long after the last). */
export const PLACE_EVERY_MS = 500;

/**
 * The least n in [least, most] for which `enough(n)` holds, given that it holds for every n above
 * the answer and for `most`: galloping from a guess (down while it holds, up while it does not), then
 * halving the gap. A guess that is the answer costs two calls.
 */
export function fewest(least: number, most: number, guess: number, enough: (n: number) => boolean): number {
  let n = Math.min(most, Math.max(least, guess));
  // `low` fails (or is below the range), `high` holds.
  let low: number;
  let high: number;
  if (enough(n)) {
    high = n;
    let step = 1;
    for (;;) {
      const next = high - step;
      if (next < least) {
        low = least - 1;
        break;
      }
      if (!enough(next)) {
        low = next;
        break;
      }
      high = next;
      step *= 2;
    }
  } else {
    low = n;
    let step = 1;
    for (;;) {
      n = Math.min(most, low + step);
      if (n === most || enough(n)) {
        high = n;
        break;
      }
      low = n;
      step *= 2;
    }
  }
  while (high - low > 1) {
    const middle = Math.floor((low + high) / 2);
    if (enough(middle)) high = middle;
    else low = middle;
  }
  return high;
}

interface Placement {
  readonly key: string;
  readonly at: number;
  readonly homes: ReadonlyMap<string, readonly string[]>;
  /** Adapters with a slot of their own on a pinned replica. */
  readonly pinned: ReadonlySet<string>;
  /** The replicas where adapters without a slot of their own churn. */
  readonly tail: readonly string[];
}

export class Diatonic implements RoutingPolicy {
  readonly name = "diatonic" as const;
  /** First byte to end, of every request. */
  private readonly afterFirstByteMs = new Ewma(0.1);
  /** Send to first byte of requests that ran at once, where their LoRA was resident and where it was loaded first. */
  private readonly hitFirstByte = new Ewma(0.1);
  private readonly missFirstByte = new Ewma(0.1);
  /** What each request already running on a replica added to the first byte of one that ran beside it, LoRA resident. */
  private readonly sharedFirstByte = new Ewma(0.1);
  private readonly demand = new Map<string, Rate>();
  private readonly counts = new Map<string, { k: number; lowerSince: number | undefined }>();
  private readonly rankings = new Map<string, { key: string; order: string[]; positions?: Int32Array }>();
  private placement: Placement = { key: "", at: -Infinity, homes: new Map(), pinned: new Set(), tail: [] };
  /** Where plan() last put each adapter with no demand (a home that holds, kept while it has room); under the replica set's key. */
  private cold: { key: string; homes: Map<string, string> } = { key: "", homes: new Map() };
  /** The most requests seen running on one replica while it had requests waiting: its parallelism. */
  private parallel: number | undefined;
  /** The most requests seen running on one replica at all: at least its parallelism. */
  private mostRunning = 1;
  private cursor = 0;

  constructor(private readonly options: DiatonicOptions) {}

  /** The learnt swap cost: first byte after a swap minus first byte on a resident replica, both run at once. */
  get swapMs(): number {
    const hit = this.hitFirstByte.value;
    const miss = this.missFirstByte.value;
    return hit === undefined || miss === undefined ? this.options.swapMs : Math.min(60_000, Math.max(0, miss - hit));
  }

  /** A request's time on a sequence where its LoRA is resident; until one is measured, four swaps' worth (the one figure configured). */
  get serviceEstimateMs(): number {
    const after = this.afterFirstByteMs.value;
    return after === undefined ? Math.max(1, this.options.swapMs * 4) : Math.max(1, after + (this.hitFirstByte.value ?? 0));
  }

  /** The measured cost, in ms of first byte, of each request already running where a request gets a free sequence; 0 until measured. */
  get sharingMs(): number {
    return this.sharedFirstByte.value ?? 0;
  }

  /** How many home replicas the adapter keeps, given how many its demand wants now: it widens at once and narrows only after the lower demand has lasted (hysteresis). */
  homeCount(lora: string, want: number, now: number): number {
    const entry = this.counts.get(lora) ?? { k: want, lowerSince: undefined };
    if (want >= entry.k) {
      entry.k = want;
      entry.lowerSince = undefined;
    } else if (entry.lowerSince === undefined) {
      entry.lowerSince = now;
    } else if (now - entry.lowerSince >= (this.options.narrowAfterMs ?? 15_000)) {
      entry.k = want;
      entry.lowerSince = undefined;
    }
    this.counts.set(lora, entry);
    return entry.k;
  }

  /** The replicas ranked for the adapter, best first (cached per replica set). */
  private ranking(lora: string, origins: readonly string[], key: string): string[] {
    const cached = this.rankings.get(lora);
    if (cached?.key === key) return cached.order;
    // One hash per replica, not two per comparison (a sort of 32 replicas compares ~160 times).
    const weights = new Map(origins.map((origin) => [origin, weight(lora, origin)]));
    const order = [...origins].sort((a, b) => (weights.get(b) as number) - (weights.get(a) as number));
    if (this.rankings.size > 20_000) this.rankings.clear();
    this.rankings.set(lora, { key, order });
    return order;
  }

  /** The same ranking as positions in `origins` (the sorted replica set of `key`), for placement's arrays. */
  private rankedPositions(lora: string, origins: readonly string[], key: string, position: ReadonlyMap<string, number>): Int32Array {
    const order = this.ranking(lora, origins, key);
    const entry = this.rankings.get(lora) as { key: string; order: string[]; positions?: Int32Array };
    return (entry.positions ??= Int32Array.from(order, (origin) => position.get(origin) as number));
  }

  /**
   * Each adapter's homes. The replicas are split: "pinned" ones whose LoRA slots hold the hottest
   * adapters, one slot each, and as few "tail" ones as the rest of the work needs, where the rarer
   * adapters churn (they never evict a hot adapter's slot). Work is sequence time a second: an
   * adapter's rate times the service time, plus the swap time for each request of one that churns.
   * Which replicas are pinned follows one rendezvous order of the replicas, and each adapter walks its
   * own rendezvous ranking: every gateway computes the same, with no coordinator.
   */
  private place(slots: ReadonlyMap<string, number>, key: string, now: number): Placement {
    const origins = [...slots.keys()];
    const previous = this.placement.key === key ? this.placement : undefined;
    const service = this.serviceEstimateMs;
    const swap = this.swapMs;
    const capacity = TARGET_UTILIZATION * (this.parallel ?? this.mostRunning) * 1000;
    const rank = (lora: string, rate: number) => (previous?.pinned.has(lora) === true ? rate * PIN_MARGIN : rate);
    const adapters = [...this.demand]
      .map(([lora, rate]) => ({ lora, rate: rate.read(now) }))
      .filter((entry) => entry.rate > 1e-6)
      .sort((a, b) => rank(b.lora, b.rate) - rank(a.lora, a.rate) || a.lora.localeCompare(b.lora))
      .map(({ lora, rate }) => ({
        lora,
        rate,
        k: this.homeCount(lora, Math.min(origins.length, Math.max(1, Math.ceil((rate * service) / capacity))), now),
      }));
    // Replicas by their position in `origins`, in typed arrays: each split places every adapter, and
    // maps of strings made a split of 32 replicas × 1,000 adapters several times slower.
    const n = origins.length;
    const position = new Map(origins.map((origin, i) => [origin, i]));
    const slotCount = Int32Array.from(origins, (origin) => slots.get(origin) ?? 1);
    const order = this.rankedPositions(REPLICA_ORDER, origins, key, position);
    const rankedOf = adapters.map(({ lora }) => this.rankedPositions(lora, origins, key, position));
    const previousHomes = adapters.map(({ lora }) => (previous?.homes.get(lora) ?? []).map((origin) => position.get(origin) as number));
    const split = (tails: number) => {
      /** 1 for a pinned replica, 0 for a tail one. */
      const pinnedAt = new Uint8Array(n);
      for (let r = 0; r < n - tails; r++) pinnedAt[order[r] as number] = 1;
      const tailAt = [...order].filter((i) => pinnedAt[i] === 0);
      const work = new Float64Array(n);
      const used = new Int32Array(n);
      /** Adapters placed on each replica, bounded by its host memory's LoRAs (cpuSlots). */
      const held = new Int32Array(n);
      const cpuSlots = this.options.cpuSlots ?? Infinity;
      /** Adapters that found no replica with room and were placed past a bound. */
      let overflow = 0;
      const homes = new Map<string, string[]>();
      const pinned = new Set<string>();
      let tailWork = 0;
      const hasSlot = (i: number) =>
        (pinnedAt[i] === 0 || (used[i] as number) < (slotCount[i] as number)) && (held[i] as number) < cpuSlots;
      for (const [a, { lora, rate, k: wanted }] of adapters.entries()) {
        const ranked = rankedOf[a] as Int32Array;
        // A slot of its own on a pinned replica if one has room; else it churns in the tail, a swap a request.
        let k = wanted;
        let share = (rate * service) / k;
        /** The group it is placed in: pinned replicas (1), tail ones (0), or any where there is no tail (-1). */
        let group = 1;
        let room = false;
        for (const i of ranked)
          if (pinnedAt[i] === 1 && hasSlot(i) && (work[i] as number) + share <= capacity) {
            room = true;
            break;
          }
        if (!room) {
          group = tailAt.length > 0 ? 0 : -1;
          k = Math.min(tailAt.length > 0 ? tailAt.length : n, Math.max(k, Math.ceil((rate * (service + swap)) / capacity)));
          share = (rate * (service + swap)) / k;
        }
        const inGroup = (i: number) => group === -1 || pinnedAt[i] === group;
        const fits = (i: number, bound: number) => hasSlot(i) && (work[i] as number) + share <= capacity * bound;
        const chosen: number[] = [];
        for (const i of previousHomes[a] as number[]) if (chosen.length < k && inGroup(i) && fits(i, STICKY_BOUND)) chosen.push(i);
        for (const i of ranked) {
          if (chosen.length >= k) break;
          if (inGroup(i) && !chosen.includes(i) && fits(i, 1)) chosen.push(i);
        }
        // Past every bound (more work than the replicas' share): the least loaded.
        while (chosen.length < k) {
          let least = -1;
          let leastWork = Infinity;
          for (const i of ranked) {
            if (!inGroup(i)) continue;
            const there = work[i] as number;
            if (there < leastWork && hasSlot(i) && !chosen.includes(i)) {
              least = i;
              leastWork = there;
            }
          }
          if (least < 0) break;
          chosen.push(least);
        }
        if (chosen.length === 0) {
          overflow++;
          chosen.push(tailAt[0] ?? (ranked[0] as number));
        }
        for (const i of chosen) {
          work[i] = (work[i] as number) + share;
          held[i] = (held[i] as number) + 1;
          if (pinnedAt[i] === 1) {
            used[i] = (used[i] as number) + 1;
            pinned.add(lora);
          } else tailWork += share;
        }
        homes.set(
          lora,
          chosen.map((i) => origins[i] as string),
        );
      }
      return {
        homes,
        pinned,
        tail: tailAt.map((i) => origins[i] as string),
        tailWork,
        overflow,
      };
    };
    // As few tail replicas as the tail's work needs (at least one while there are two replicas); a
    // tenth of a replica's share of slack keeps the count from following every wobble. Searched from
    // the count in force, which hysteresis keeps steady: mostly two splits, it and one fewer (each split
    // places every adapter; a search from one replica by doubling and halving took ten once the work
    // passed the replicas' share: bench:placement's median placement at 32 × 1,000 overloaded was
    // 108 ms then, 10 ms now).
    const splits = new Map<number, ReturnType<typeof split>>();
    const splitOnce = (tails: number) => {
      let result = splits.get(tails);
      if (result === undefined) splits.set(tails, (result = split(tails)));
      return result;
    };
    // ...and, with host memory bounded, enough room in the tail for its adapters.
    const enough = (tails: number) => {
      if (tails >= origins.length) return true;
      const tried = splitOnce(tails);
      return tried.tailWork <= tails * capacity * 1.1 && tried.overflow === 0;
    };
    const least = Math.min(origins.length, 1);
    const tails = fewest(least, origins.length, previous?.tail.length ?? least, enough);
    const result = splitOnce(this.homeCount(REPLICA_ORDER, tails, now));
    this.placement = { key, at: now, homes: result.homes, pinned: result.pinned, tail: result.tail };
    return this.placement;
  }

  /**
   * Every adapter's replicas to keep it loaded on (by origin): its homes, then for an adapter with no
   * demand the first replica of its ranking with room (a tail one where there is a tail), then copies
   * up to `atLeast` from its ranking (kept loaded for a replica's loss). "Room": fewer adapters there
   * than a replica keeps in host memory (cpuSlots), where any replica has it; an adapter's homes and
   * a first place for each come before copies. Every gateway plans the same (names in order).
   */
  plan(loras: readonly string[], replicas: readonly Candidate[], now: number, atLeast: number): Map<string, string[]> {
    const { origins, key } = this.replicaSet(replicas);
    const placement = this.homesPlacement(replicas, now);
    const cpuSlots = this.options.cpuSlots ?? Infinity;
    const plan = new Map(origins.map((origin) => [origin, [] as string[]]));
    const holders = new Map<string, string[]>();
    const put = (lora: string, origin: string) => {
      (plan.get(origin) as string[]).push(lora);
      const list = holders.get(lora);
      if (list === undefined) holders.set(lora, [origin]);
      else list.push(origin);
    };
    const hasRoom = (origin: string) => (plan.get(origin) as string[]).length < cpuSlots;
    const unique = [...new Set(loras)];
    const cold: string[] = [];
    for (const lora of unique) {
      const homes = placement.homes.get(lora);
      if (homes === undefined) cold.push(lora);
      else for (const origin of homes) put(lora, origin);
    }
    const previousCold = this.cold.key === key ? this.cold.homes : new Map<string, string>();
    const coldHomes = new Map<string, string>();
    const tail = new Set(placement.tail);
    for (const lora of cold.sort()) {
      const ranked = this.ranking(lora, origins, key);
      const kept = previousCold.get(lora);
      const keep = kept !== undefined && hasRoom(kept);
      // The first tail replica with room (where it was, if that still is one), else where it was, else
      // the first replica with room, else the first tail replica (past every bound).
      let tailRoom: string | undefined;
      let anyRoom: string | undefined;
      let firstTail: string | undefined;
      for (const origin of ranked) {
        const inTail = tail.has(origin);
        if (inTail) firstTail ??= origin;
        if (!hasRoom(origin)) continue;
        if (inTail) tailRoom ??= origin;
        anyRoom ??= origin;
      }
      const home =
        (keep && tail.has(kept) ? kept : undefined) ??
        tailRoom ??
        (keep ? kept : undefined) ??
        anyRoom ??
        firstTail ??
        (ranked[0] as string);
      coldHomes.set(lora, home);
      put(lora, home);
    }
    this.cold = { key, homes: coldHomes };
    const copies = Math.min(atLeast, origins.length);
    for (const lora of unique) {
      const has = holders.get(lora) as string[];
      if (has.length >= copies) continue;
      const ranked = this.ranking(lora, origins, key);
      // Its next-ranked replicas with room, then (past every bound) its next-ranked ones.
      for (const withRoom of [true, false])
        for (const origin of ranked) {
          if (has.length >= copies) break;
          if (hasRoom(origin) === withRoom && !has.includes(origin)) put(lora, origin);
        }
    }
    return plan;
  }

  /** The last replica set worked out: every request and every placement plan asks again, mostly with the same replicas. */
  private lastSet:
    | { of: readonly Candidate[]; slotsInOrder: readonly number[]; slots: ReadonlyMap<string, number>; origins: string[]; key: string }
    | undefined;

  /** The replicas' LoRA slots by origin (sorted), and the key placements are cached under; worked out again only when the replicas or their slots change. */
  private replicaSet(candidates: readonly Candidate[]): { slots: ReadonlyMap<string, number>; origins: string[]; key: string } {
    const last = this.lastSet;
    if (
      last !== undefined &&
      last.of.length === candidates.length &&
      candidates.every((c, i) => c === last.of[i] && slotsOf(c, this.options.defaultSlots) === last.slotsInOrder[i])
    )
      return last;
    const slotsInOrder = candidates.map((c) => slotsOf(c, this.options.defaultSlots));
    const slots = new Map(
      candidates.map((c, i) => [c.origin, slotsInOrder[i] as number] as const).sort((a, b) => a[0].localeCompare(b[0])),
    );
    const key = [...slots].map(([origin, n]) => `${origin}=${n}`).join(" ");
    this.lastSet = { of: [...candidates], slotsInOrder, slots, origins: [...slots.keys()], key };
    return this.lastSet;
  }

  /** The placement in force over these replicas: worked out again every PLACE_EVERY_MS. */
  private homesPlacement(candidates: readonly Candidate[], now: number): Placement {
    const { slots, key } = this.replicaSet(candidates);
    return this.placement.key === key && now - this.placement.at < PLACE_EVERY_MS ? this.placement : this.place(slots, key, now);
  }

  /** The adapter's home replicas among the candidates. */
  homesOf(lora: string, candidates: readonly Candidate[], now: number): readonly string[] {
    const { origins, key } = this.replicaSet(candidates);
    const placement = this.homesPlacement(candidates, now);
    const homes = placement.homes.get(lora);
    if (homes !== undefined) return homes;
    // An adapter with no demand yet (its first request) is cold: where the last plan put it, else the first of its ranking in the tail.
    const planned = this.cold.key === key ? this.cold.homes.get(lora) : undefined;
    if (planned !== undefined) return [planned];
    const ranked = this.ranking(lora, origins, key);
    return [ranked.find((origin) => placement.tail.includes(origin)) ?? (ranked[0] as string)];
  }

  /** Requests in the replica now: this gateway's (exact) and other gateways' (the engine's last count less what was this gateway's then). */
  private inReplica(candidate: Candidate): number {
    const load = candidate.load;
    return candidate.outstanding + (load === undefined ? 0 : Math.max(0, load.running + load.waiting - candidate.loadOutstanding));
  }

  private get parallelism(): number {
    return this.parallel ?? this.mostRunning + 1;
  }

  /**
   * Expected wait before a new request's first byte there, in ms: the requests ahead of it beyond the
   * replica's parallelism, each holding a sequence for the service time, and the swap time too where
   * it loads its LoRA; and the sharing time of each request it runs beside.
   */
  private waitMs(candidate: Candidate, requests: number, service: number, swap: number, sharing: number): number {
    const parallel = this.parallelism;
    const ahead = requests + 1 - parallel;
    const beside = Math.min(requests, parallel - 1) * sharing;
    if (ahead <= 0) return beside;
    const perRequest = service + (swap * candidate.outstandingSwaps) / Math.max(1, candidate.outstanding);
    return beside + (ahead * perRequest) / parallel;
  }

  /**
   * What loading a LoRA away from its homes costs on a replica with `requests` in it: its swap, and the
   * swap the LoRA it evicts will cost later; where requests would queue there with this one, both count
   * once more for every `parallel` of them (they wait behind the sequence the swaps hold). A swap at a
   * home is the churn the placement sized the tail for, and is not priced so: that pushed requests off
   * their homes into spills on three engines with a GPU-like swap (4 spills a run became 31).
   */
  spillCostMs(requests: number, swap: number): number {
    const parallel = this.parallelism;
    return 2 * swap * (1 + Math.max(0, requests + 1 - parallel) / parallel);
  }

  /**
   * What a nearly full KV cache adds to the wait: vLLM admits a new request only when its blocks fit,
   * and preempts running ones when they do not; from 90% use, up to a service time at 100%.
   */
  private kvWaitMs(candidate: Candidate, service: number): number {
    const kv = candidate.load?.kvCache;
    if (kv === undefined || kv <= KV_FULL_FROM) return 0;
    return ((Math.min(1, kv) - KV_FULL_FROM) / (1 - KV_FULL_FROM)) * KV_FULL_COST * service;
  }

  choose(candidates: readonly Candidate[], request: RouteRequest): Choice {
    const { lora, now } = request;
    if (lora !== undefined) {
      let rate = this.demand.get(lora);
      if (rate === undefined) this.demand.set(lora, (rate = new Rate(10_000)));
      rate.hit(now);
    }
    for (const { load } of candidates) {
      if (load === undefined) continue;
      this.mostRunning = Math.max(this.mostRunning, load.running);
      if (load.waiting > 0 && load.running > 0) this.parallel = Math.max(this.parallel ?? 0, load.running);
    }
    // Homes are placed over every healthy replica (where the adapter agents load them), not only over
    // those that hold the LoRA now: the same placement for every request, and the one published.
    const homes = lora === undefined ? undefined : new Set(this.homesOf(lora, request.replicas ?? candidates, now));
    const swap = this.swapMs;
    const service = this.serviceEstimateMs;
    const sharing = this.sharingMs;
    let best: { candidate: Candidate; cost: number; requests: number; wait: number; reason: string } | undefined;
    // Equal costs and loads (an idle platform, the base model) go round, from a start that moves.
    this.cursor = (this.cursor + 1) % candidates.length;
    for (let i = 0; i < candidates.length; i++) {
      const candidate = candidates[(this.cursor + i) % candidates.length] as Candidate;
      const resident = lora === undefined || isResident(candidate, lora, slotsOf(candidate, this.options.defaultSlots));
      const home = homes === undefined || homes.has(candidate.origin);
      const requests = this.inReplica(candidate);
      const wait = this.waitMs(candidate, requests, service, swap, sharing) + this.kvWaitMs(candidate, service);
      // Loading the LoRA costs a swap; away from its homes it also evicts a LoRA placed there, one more swap later.
      const cost = wait + (resident ? 0 : home ? swap : this.spillCostMs(requests, swap));
      const reason = resident ? (home ? "resident" : "resident-away") : home ? "home" : "spill";
      if (best === undefined || cost < best.cost || (cost === best.cost && requests < best.requests))
        best = { candidate, cost, requests, wait, reason };
    }
    const chosen = best as { candidate: Candidate; wait: number; reason: string; requests: number };
    return { candidate: chosen.candidate, reason: chosen.reason, expectedWaitMs: chosen.wait, requestsThere: chosen.requests };
  }

  observe(_request: RouteRequest, routed: Routed): void {
    this.afterFirstByteMs.add(routed.totalMs - routed.firstByteMs);
    const there = routed.choice.requestsThere ?? 0;
    const alone = this.hitFirstByte.value;
    // Resident and on a free sequence beside others: what they added to its first byte is sharing time.
    if (!routed.swapped && there > 0 && there < this.parallelism && alone !== undefined)
      this.sharedFirstByte.add(Math.max(0, (routed.firstByteMs - alone) / there));
    // First bytes only of requests that were to run at once: in any other, queueing would pass for swap or prompt time.
    if (routed.choice.expectedWaitMs !== 0 || there > 0) return;
    (routed.swapped ? this.missFirstByte : this.hitFirstByte).add(routed.firstByteMs);
  }
}
