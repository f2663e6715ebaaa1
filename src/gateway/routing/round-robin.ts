// Round-robin: each request to the next replica in turn, whatever it holds or carries. A baseline.
import type { Candidate, Choice, RouteRequest, RoutingPolicy } from "./types.ts";

export class RoundRobin implements RoutingPolicy {
  readonly name = "round-robin" as const;
  private next = 0;

  choose(candidates: readonly Candidate[], _request: RouteRequest): Choice {
    const candidate = candidates[this.next++ % candidates.length] as Candidate;
    return { candidate, reason: "turn" };
  }
}
