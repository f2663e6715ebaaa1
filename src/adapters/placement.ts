// Placement: which of the adapter set's LoRAs this engine replica keeps loaded, as the gateways
// decide it (src/gateway/placement.ts). Each gateway replica sends, every few seconds, the adapters it
// places here (PUT /v1/placement); the agent keeps the union of what the gateways whose word is still
// fresh have placed. While no gateway has spoken (none runs placement, or they all went quiet past
// their TTL) every adapter of the set is loaded, as before placement: a silent gateway never empties a
// replica. An adapter that is no longer placed here stays loaded for a grace period, so that requests
// keep a home while its new replica loads it and placements that flicker do not reload it.
import { z } from "zod";

export const PLACEMENT_PATH = "/v1/placement";

/** PUT /v1/placement's body. */
export const PlacementMessage = z.strictObject({
  /** The gateway replica that decided it (its pod name): the agent keeps one placement per gateway. */
  gateway: z.string().min(1).max(253),
  /** The adapters it places on this replica (names of the adapter set; others are ignored). */
  adapters: z.array(z.string().min(1).max(253)).max(100_000),
  /** How long this word holds without being repeated. */
  ttlMs: z.number().int().min(1000).max(600_000),
});
export type PlacementMessage = z.infer<typeof PlacementMessage>;

/** An adapter placed here that this agent could not load, as PUT /v1/placement answers it. */
export interface PlacementFailure {
  readonly name: string;
  /** Why, as the agent's GET /status says it (a source is shown without credentials). */
  readonly reason: string;
  /** Failed tries in a row. */
  readonly attempts: number;
  /** When the agent tries again (ISO 8601). */
  readonly retryAt: string;
}

/**
 * PUT /v1/placement's answer: the adapters of the word that are in this agent's adapter set, those
 * it does not know (its mounted set may be older than the gateway's config), and those of the word
 * it tried and failed to load here, so that the gateway can tell "loading" from "cannot load".
 */
export interface PlacementAnswer {
  readonly placed: readonly string[];
  readonly unknown: readonly string[];
  readonly failed: readonly PlacementFailure[];
}

interface Word {
  readonly adapters: ReadonlySet<string>;
  readonly expires: number;
}

/** What GET /status says of placement. */
export interface PlacementStatus {
  /** The adapters placed here now (the union of the gateways' fresh words), or null: no gateway places, every adapter is loaded. */
  readonly placed: readonly string[] | null;
  readonly gateways: readonly { readonly gateway: string; readonly adapters: number; readonly expires: string }[];
}

export class PlacementBook {
  private readonly words = new Map<string, Word>();

  /** Takes a gateway's placement; it replaces that gateway's last one. */
  record(message: PlacementMessage, now = Date.now()): void {
    this.words.set(message.gateway, { adapters: new Set(message.adapters), expires: now + message.ttlMs });
  }

  /** The adapters placed here by any gateway whose word is fresh; undefined while none is (load every adapter). */
  placed(now = Date.now()): ReadonlySet<string> | undefined {
    let union: Set<string> | undefined;
    for (const [gateway, word] of this.words) {
      if (word.expires <= now) {
        this.words.delete(gateway);
        continue;
      }
      union ??= new Set();
      for (const name of word.adapters) union.add(name);
    }
    return union;
  }

  /** When the freshest word runs out (the agent passes again then), or undefined. */
  nextExpiry(now = Date.now()): number | undefined {
    let next: number | undefined;
    for (const word of this.words.values()) if (word.expires > now && (next === undefined || word.expires < next)) next = word.expires;
    return next;
  }

  describe(now = Date.now()): PlacementStatus {
    const placed = this.placed(now);
    return {
      placed: placed === undefined ? null : [...placed].sort(),
      gateways: [...this.words]
        .sort(([a], [b]) => a.localeCompare(b))
        .map(([gateway, word]) => ({ gateway, adapters: word.adapters.size, expires: new Date(word.expires).toISOString() })),
    };
  }
}
