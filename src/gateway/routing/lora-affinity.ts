// llm-d's endpoint picker, reimplemented from its description (gateway-api-inference-extension's
// lora-affinity and queue scorers, weights 1:1, the best total wins, ties at random): LoRA affinity
// scores 1.0 when the adapter is active on the replica (running or waiting there, from
// vllm:lora_requests_info), 0.8 when the replica has a free LoRA slot, 0.6 when the adapter is only
// waiting, 0 otherwise; the queue scorer maps each replica's waiting requests onto 1 (shortest) .. 0
// (longest). Like theirs it sees only adapters with requests in flight: an idle but resident adapter
// looks absent (llm-d-router#2605).
import type { Candidate, Choice, RouteRequest, RoutingPolicy } from "./types.ts";

export class LoraAffinity implements RoutingPolicy {
  readonly name = "lora-affinity" as const;

  constructor(
    private readonly defaultSlots: number,
    /** Ties are broken at random, as their max-score picker does; seeded for a repeatable benchmark. */
    private readonly random: () => number = Math.random,
  ) {}

  private loraScore(candidate: Candidate, lora: string): number {
    const load = candidate.load;
    const running = load?.runningLoras ?? new Set<string>();
    const waiting = load?.waitingLoras ?? new Set<string>();
    if (running.has(lora)) return 1;
    const union = new Set([...running, ...waiting]).size;
    if (union < (load?.maxLoras ?? this.defaultSlots)) return 0.8;
    if (waiting.has(lora)) return 0.6;
    return 0;
  }

  choose(candidates: readonly Candidate[], request: RouteRequest): Choice {
    const queue = (candidate: Candidate) => candidate.load?.waiting ?? candidate.outstanding;
    const queues = candidates.map(queue);
    const min = Math.min(...queues);
    const max = Math.max(...queues);
    let best: Candidate[] = [];
    let bestScore = -Infinity;
    for (const candidate of candidates) {
      const queueScore = max === min ? 1 : (max - queue(candidate)) / (max - min);
      const score = (request.lora === undefined ? 1 : this.loraScore(candidate, request.lora)) + queueScore;
      if (score > bestScore + 1e-9) {
        best = [candidate];
        bestScore = score;
      } else if (Math.abs(score - bestScore) <= 1e-9) best.push(candidate);
    }
    const candidate = best[Math.floor(this.random() * best.length)] as Candidate;
    const active =
      request.lora === undefined ||
      candidate.load?.runningLoras.has(request.lora) === true ||
      candidate.load?.waitingLoras.has(request.lora) === true;
    return { candidate, reason: active ? "active" : "scored" };
  }
}
