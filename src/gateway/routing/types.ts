// What a routing policy sees of each replica, and the one method it implements. Policies are small
// and swappable (config `routing.policy`), so the benchmark runs them side by side through the same
// gateway code: they differ only in how they choose.
import type { EngineLoad } from "../engine-load.ts";

export const POLICY_NAMES = ["diatonic", "least-outstanding", "round-robin", "lora-affinity"] as const;
export type PolicyName = (typeof POLICY_NAMES)[number];

/** One replica that may take the request: healthy, and holding the request's LoRA (or not known not to). */
export interface Candidate {
  readonly origin: string;
  /** Requests this gateway has running there, now. */
  readonly outstanding: number;
  /** Of those, the ones sent where their LoRA was not resident: each loads it before it runs. */
  readonly outstandingSwaps: number;
  /** The engine's own report, when fresh (a few scrapes old at most). */
  readonly load: EngineLoad | undefined;
  /** `outstanding` when `load` was read: what of the engine's count was this gateway's own then (the rest came from other gateways). */
  readonly loadOutstanding: number;
  /** LoRAs this gateway sent there most recently, newest last: what its GPU slots likely hold. */
  readonly recent: readonly string[];
}

export interface RouteRequest {
  /** The LoRA it runs on; undefined for the base model (every replica has it in memory). */
  readonly lora: string | undefined;
  /** performance.now() */
  readonly now: number;
  /** Every healthy replica (the candidates are those of them that may take this request): what placement is decided over. */
  readonly replicas?: readonly Candidate[];
}

export interface Choice {
  readonly candidate: Candidate;
  /** Why, for the decisions metric: resident, home, spill, free-slot, any, ... */
  readonly reason: string;
  /** The wait the policy expected there before the request runs, in ms (0: at once); undefined when it does not estimate one. */
  readonly expectedWaitMs?: number;
  /** Requests in the replica when it was chosen (the policy's count), for policies that learn what sharing a replica costs. */
  readonly requestsThere?: number;
}

/** What became of a routed request that the engine answered in full. */
export interface Routed {
  readonly choice: Choice;
  /** Its LoRA was not resident where it went: the replica loaded it first. */
  readonly swapped: boolean;
  /** From sending it to the first byte of the answer's body (in a stream, its first event), in ms. */
  readonly firstByteMs: number;
  /** From sending it to the end of the answer, in ms. */
  readonly totalMs: number;
}

export interface RoutingPolicy {
  readonly name: PolicyName;
  /** One of `candidates` (never empty) for the request. */
  choose(candidates: readonly Candidate[], request: RouteRequest): Choice;
  /** A request it routed was answered in full: for policies that learn service and swap times. */
  observe?(request: RouteRequest, routed: Routed): void;
  /**
   * The adapters each replica (by origin) should keep loaded, each adapter on at least `atLeast` of
   * them (as many as there are, if fewer), for policies that place adapters (src/gateway/placement.ts).
   */
  plan?(loras: readonly string[], replicas: readonly Candidate[], now: number, atLeast: number): Map<string, string[]>;
}

/** Whether the replica's GPU slots hold the LoRA now: it runs or waits there, or was sent there last. */
export function isResident(candidate: Candidate, lora: string, slots: number): boolean {
  if (candidate.load?.runningLoras.has(lora) === true || candidate.load?.waitingLoras.has(lora) === true) return true;
  const recent = candidate.recent;
  for (let i = recent.length - 1, seen = 0; i >= 0 && seen < slots; i--, seen++) if (recent[i] === lora) return true;
  return false;
}

/** The replica's LoRA slots: what it reports (max_lora), else the configured default. */
export function slotsOf(candidate: Candidate, fallback: number): number {
  return candidate.load?.maxLoras ?? fallback;
}
