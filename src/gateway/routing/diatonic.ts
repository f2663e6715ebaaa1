// Ours: keep each adapter on a few "home" replicas so their LoRA slots stay warm, and go elsewhere
// only when waiting at home costs more than a swap.
// - Residency is what the engine reports in flight (vllm:lora_requests_info) plus what this gateway
//   sent each replica last: an idle adapter still in its slot counts, where llm-d's scorer sees none.
// - Homes: every adapter's replicas are ranked by rendezvous hashing, the same ranking in every
//   gateway replica (no coordinator). Adapters are placed hottest first, each on the first replicas
//   of its ranking whose share of the demand stays within a bound (consistent hashing with bounded
//   loads): few distinct adapters per replica, demand balanced; the hottest get a LoRA slot each. A hot adapter gets as many homes as
//   its share of the demand needs; a placement is kept while it stays within a looser bound, and a
//   home set narrows only after the lower demand has lasted (hysteresis: no thrashing).
// - Cost of a replica = its expected queueing (requests beyond its parallelism × service time),
//   plus the swap time where the adapter is not resident, plus the swap it will cause later when it
//   is not a home (it evicts a home adapter's slot); swap and service times are learnt as it goes.
import { createHash } from "node:crypto";
import { isResident, slotsOf, type Candidate, type Choice, type RouteRequest, type RoutingPolicy } from "./types.ts";

export interface DiatonicOptions {
  /** LoRA slots per replica when the engine does not say (its max_lora). */
  readonly defaultSlots: number;
  /** The swap cost before any is measured, in ms. */
  readonly swapMs: number;
  /** How long a narrower home set must be enough before it is taken. @default 15000 */
  readonly narrowAfterMs?: number;
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
  return createHash("sha1").update(adapter).update("\0").update(origin).digest().readUInt32BE(0);
}

/** The busiest a replica's homes may keep it, as a share of its capacity... */
const TARGET_UTILIZATION = 0.7;
/** ...and how far past that an adapter already placed there may push it before it is moved. */
const STICKY_BOUND = 1.2;
/** The name the replicas themselves are ranked under, for which are pinned and which take the tail. */
const REPLICA_ORDER = "\u0000replicas";
/** Placements are worked out again this often. */
const PLACE_EVERY_MS = 500;

export class Diatonic implements RoutingPolicy {
  readonly name = "diatonic" as const;
  private readonly serviceMs = new Ewma(0.1);
  private readonly decodeMs = new Ewma(0.1);
  private readonly hitFirstByte = new Ewma(0.1);
  private readonly missFirstByte = new Ewma(0.1);
  private readonly demand = new Map<string, Rate>();
  private readonly counts = new Map<string, { k: number; lowerSince: number | undefined }>();
  private readonly rankings = new Map<string, { key: string; order: string[] }>();
  private placement: { readonly key: string; readonly at: number; readonly homes: ReadonlyMap<string, readonly string[]> } = { key: "", at: -Infinity, homes: new Map() };
  /** The most requests seen running on one replica: its parallelism, as far as this gateway knows. */
  private parallel = 1;
  private cursor = 0;

  constructor(private readonly options: DiatonicOptions) {}

  /** The learnt swap cost (first byte after a swap minus first byte on a resident replica). */
  get swapMs(): number {
    const hit = this.hitFirstByte.value;
    const miss = this.missFirstByte.value;
    return hit === undefined || miss === undefined ? this.options.swapMs : Math.min(10_000, Math.max(1, miss - hit));
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
    const order = [...origins].sort((a, b) => weight(lora, b) - weight(lora, a));
    if (this.rankings.size > 20_000) this.rankings.clear();
    this.rankings.set(lora, { key, order });
    return order;
  }

  /** Requests a second one replica should take at most, from its parallelism and the service time. */
  private budget(): number {
    return (TARGET_UTILIZATION * this.parallel * 1000) / this.serviceEstimate();
  }

  /**
   * A request's time on a replica, queueing left out: its decoding (first byte to end) and a fifth
   * more for the prompt. Not the first byte itself, which waits in the engine's queue under load.
   */
  private serviceEstimate(): number {
    return Math.max(1, (this.decodeMs.value ?? this.options.swapMs * 4) * 1.2);
  }

  /**
   * Each adapter's homes. The replicas are split: "pinned" ones whose LoRA slots hold the hottest
   * adapters, one slot each, and as few "tail" ones as the rest of the demand needs at the target
   * utilization, where the rarer adapters churn (they never evict a hot adapter's slot). Which
   * replicas are pinned follows one rendezvous order of the replicas, and each adapter walks its own
   * rendezvous ranking: every gateway computes the same, with no coordinator. An adapter hotter than
   * one replica's budget gets as many homes as it needs. The tail's size narrows only after the lower
   * demand has lasted (hysteresis), and adapters keep their homes while those still fit.
   */
  private place(slots: ReadonlyMap<string, number>, key: string, now: number): ReadonlyMap<string, readonly string[]> {
    const origins = [...slots.keys()];
    const previous = this.placement.key === key ? this.placement.homes : new Map<string, readonly string[]>();
    const rates = [...this.demand]
      .map(([lora, rate]) => ({ lora, rate: rate.read(now) }))
      .filter((entry) => entry.rate > 1e-6)
      .sort((a, b) => b.rate - a.rate || a.lora.localeCompare(b.lora));
    const budget = this.budget();
    const order = this.ranking(REPLICA_ORDER, origins, key);
    const split = (tails: number) => {
      const pinned = new Set(order.slice(0, origins.length - tails));
      const tail = order.filter((origin) => !pinned.has(origin));
      const assigned = new Map(origins.map((origin) => [origin, 0]));
      const used = new Map(origins.map((origin) => [origin, 0]));
      const homes = new Map<string, string[]>();
      let tailDemand = 0;
      for (const { lora, rate } of rates) {
        const k = Math.min(origins.length, Math.max(1, Math.ceil(rate / budget)));
        const share = rate / k;
        const fits = (origin: string, bound: number) => (assigned.get(origin) ?? 0) + share <= budget * bound && (!pinned.has(origin) || (used.get(origin) ?? 0) < (slots.get(origin) ?? 1));
        const ranked = this.ranking(lora, origins, key);
        const chosen: string[] = [];
        const before = previous.get(lora) ?? [];
        // Hot: a slot on a pinned replica, if one has room; else the tail.
        const group = ranked.some((origin) => pinned.has(origin) && fits(origin, 1)) ? ranked.filter((origin) => pinned.has(origin)) : tail.length > 0 ? ranked.filter((origin) => !pinned.has(origin)) : ranked;
        for (const origin of before) if (chosen.length < k && group.includes(origin) && fits(origin, STICKY_BOUND)) chosen.push(origin);
        for (const origin of group) if (chosen.length < k && !chosen.includes(origin) && fits(origin, 1)) chosen.push(origin);
        for (const origin of [...group].sort((a, b) => (assigned.get(a) ?? 0) - (assigned.get(b) ?? 0))) if (chosen.length < k && !chosen.includes(origin)) chosen.push(origin);
        for (const origin of chosen) {
          assigned.set(origin, (assigned.get(origin) ?? 0) + share);
          if (pinned.has(origin)) used.set(origin, (used.get(origin) ?? 0) + 1);
          else tailDemand += share;
        }
        homes.set(lora, chosen);
      }
      return { homes, tailDemand };
    };
    // As few tail replicas as the tail's demand needs (at least one while there are two replicas);
    // a tenth of a replica's budget of slack keeps the count from following every wobble.
    let tails = Math.min(origins.length, 1);
    let result = split(tails);
    while (tails < origins.length && result.tailDemand > tails * budget * 1.1) result = split(++tails);
    const kept = this.homeCount(REPLICA_ORDER, tails, now);
    if (kept !== tails) result = split(kept);
    this.placement = { key, at: now, homes: result.homes };
    return result.homes;
  }

  /** The adapter's home replicas among the candidates. */
  homesOf(lora: string, candidates: readonly Candidate[], now: number): readonly string[] {
    const slots = new Map([...candidates].sort((a, b) => a.origin.localeCompare(b.origin)).map((c) => [c.origin, slotsOf(c, this.options.defaultSlots)]));
    const key = [...slots].map(([origin, n]) => `${origin}=${n}`).join(" ");
    const placement = this.placement.key === key && now - this.placement.at < PLACE_EVERY_MS ? this.placement.homes : this.place(slots, key, now);
    // An adapter not placed yet (its first request): the first of its ranking.
    return placement.get(lora) ?? this.ranking(lora, [...slots.keys()], key).slice(0, 1);
  }

  /** Expected wait before a new request starts there, in ms: the requests ahead of it beyond the replica's parallelism. */
  private queueMs(candidate: Candidate): number {
    if (candidate.load !== undefined) this.parallel = Math.max(this.parallel, candidate.load.running);
    const inEngine = candidate.load === undefined ? candidate.outstanding : Math.max(candidate.outstanding, candidate.load.running + candidate.load.waiting);
    const ahead = Math.max(0, inEngine + 1 - this.parallel);
    return (ahead * this.serviceEstimate()) / this.parallel;
  }

  choose(candidates: readonly Candidate[], request: RouteRequest): Choice {
    const { lora, now } = request;
    if (lora !== undefined) {
      let rate = this.demand.get(lora);
      if (rate === undefined) this.demand.set(lora, (rate = new Rate(10_000)));
      rate.hit(now);
    }
    const homes = lora === undefined ? undefined : new Set(this.homesOf(lora, candidates, now));
    const swap = this.swapMs;
    let best: { candidate: Candidate; cost: number; reason: string } | undefined;
    // Equal costs (an idle platform, the base model) go round, from a start that moves.
    this.cursor = (this.cursor + 1) % candidates.length;
    for (let i = 0; i < candidates.length; i++) {
      const candidate = candidates[(this.cursor + i) % candidates.length] as Candidate;
      const resident = lora === undefined || isResident(candidate, lora, slotsOf(candidate, this.options.defaultSlots));
      const home = homes === undefined || homes.has(candidate.origin);
      // Away from home, the swap now also evicts a home adapter there: one more swap later.
      const cost = this.queueMs(candidate) + (resident ? 0 : swap) + (home ? 0 : swap);
      const reason = resident ? (home ? "resident" : "resident-away") : home ? "home" : "spill";
      if (best === undefined || cost < best.cost) best = { candidate, cost, reason };
    }
    const chosen = best as { candidate: Candidate; reason: string };
    return { candidate: chosen.candidate, reason: chosen.reason };
  }

  observe(_request: RouteRequest, timing: { readonly firstByteMs: number; readonly totalMs: number }, swapped: boolean): void {
    this.serviceMs.add(timing.totalMs);
    this.decodeMs.add(timing.totalMs - timing.firstByteMs);
    (swapped ? this.missFirstByte : this.hitFirstByte).add(timing.firstByteMs);
  }
}
