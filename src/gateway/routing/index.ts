// The routing policies by name (config `routing.policy`); the gateway and the benchmark make them here.
import { Diatonic } from "./diatonic.ts";
import { LeastOutstanding } from "./least-outstanding.ts";
import { LoraAffinity } from "./lora-affinity.ts";
import { RoundRobin } from "./round-robin.ts";
import type { PolicyName, RoutingPolicy } from "./types.ts";

export {
  POLICY_NAMES,
  isResident,
  slotsOf,
  type Candidate,
  type Choice,
  type PolicyName,
  type RouteRequest,
  type Routed,
  type RoutingPolicy,
} from "./types.ts";

export interface RoutingSettings {
  readonly policy: PolicyName;
  /** LoRA slots per replica when an engine does not report them (vLLM's --max-loras). */
  readonly slots: number;
  /** The swap cost assumed until one is measured, in ms. */
  readonly swapMs: number;
  /** LoRAs a replica keeps in host memory (vLLM's --max-cpu-loras), for placement; unbounded if undefined. */
  readonly cpuLoras?: number | undefined;
}

export function makePolicy(settings: RoutingSettings, random: () => number = Math.random): RoutingPolicy {
  switch (settings.policy) {
    case "round-robin":
      return new RoundRobin();
    case "least-outstanding":
      return new LeastOutstanding();
    case "lora-affinity":
      return new LoraAffinity(settings.slots, random);
    case "diatonic":
      return new Diatonic({ defaultSlots: settings.slots, swapMs: settings.swapMs, cpuSlots: settings.cpuLoras });
  }
}
