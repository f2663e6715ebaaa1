// Least outstanding requests: the replica this gateway has the fewest requests running on, ties
// broken by a moving start. The gateway's policy before residency: blind to what a replica holds.
import type { Candidate, Choice, RouteRequest, RoutingPolicy } from "./types.ts";

export class LeastOutstanding implements RoutingPolicy {
  readonly name = "least-outstanding" as const;
  private cursor = 0;

  choose(candidates: readonly Candidate[], _request: RouteRequest): Choice {
    this.cursor = (this.cursor + 1) % candidates.length;
    let best = candidates[this.cursor] as Candidate;
    for (let i = 1; i < candidates.length; i++) {
      const candidate = candidates[(this.cursor + i) % candidates.length] as Candidate;
      if (candidate.outstanding < best.outstanding) best = candidate;
    }
    return { candidate: best, reason: "least-outstanding" };
  }
}
