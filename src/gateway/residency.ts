// Which LoRA adapters each engine replica holds, from the replica itself: its /v1/models lists the
// LoRAs it serves (vLLM and the local engine alike), and the adapter agent beside it keeps that list
// equal to the adapter set. Polled often and cheaply; data older than a few polls counts as unknown,
// and a 404 from a replica for an adapter takes it off that replica at once.
import type { Dispatcher } from "undici";

/** Per replica: the LoRAs it listed last, and when. */
interface Known {
  loras: ReadonlySet<string>;
  at: number;
}

export interface ResidencyOptions {
  /** @default 1000 */
  readonly pollMs: number;
  /** Answers older than this many polls are unknown (the replica stopped answering). @default 3 */
  readonly staleAfterPolls?: number;
}

/** Whether a replica holds an adapter: yes, no, or unknown (never asked, or no recent answer). */
export type Holding = boolean | undefined;

export function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null;
}

/** The LoRA names of a /v1/models body (the cards with a `parent`). */
export function lorasOf(body: unknown): Set<string> {
  const loras = new Set<string>();
  const data = isRecord(body) && Array.isArray(body.data) ? body.data : [];
  for (const card of data)
    if (isRecord(card) && typeof card.id === "string" && typeof card.parent === "string" && card.parent !== "") loras.add(card.id);
  return loras;
}

export class Residency {
  private readonly known = new Map<string, Known>();

  constructor(readonly options: ResidencyOptions) {}

  holds(origin: string, lora: string, now = performance.now()): Holding {
    const known = this.known.get(origin);
    if (known === undefined || now - known.at > this.options.pollMs * (this.options.staleAfterPolls ?? 3)) return undefined;
    return known.loras.has(lora);
  }

  /** The replica answered 404 for it: it does not hold it, whatever it listed before. */
  forget(origin: string, lora: string): void {
    const known = this.known.get(origin);
    if (known === undefined || !known.loras.has(lora)) return;
    const loras = new Set(known.loras);
    loras.delete(lora);
    this.known.set(origin, { loras, at: known.at });
  }

  /** What each replica holds, for /readyz and the admin API. */
  describe(origin: string): string[] | undefined {
    const known = this.known.get(origin);
    return known === undefined ? undefined : [...known.loras].sort();
  }

  /** Asks one replica; a failed ask leaves the last answer to go stale. */
  async poll(origin: string, pool: Dispatcher, path: string, host: string): Promise<void> {
    try {
      const timeout = Math.max(500, this.options.pollMs);
      const response = await pool.request({ method: "GET", path, headers: { host }, headersTimeout: timeout, bodyTimeout: timeout });
      const text = await response.body.text();
      if (response.statusCode !== 200) return;
      this.known.set(origin, { loras: lorasOf(JSON.parse(text) as unknown), at: performance.now() });
    } catch {
      // Unreachable or not JSON: the replica's passive health handles the first, staleness both.
    }
  }

  /** Drops replicas that are gone. */
  retain(origins: ReadonlySet<string>): void {
    for (const origin of this.known.keys()) if (!origins.has(origin)) this.known.delete(origin);
  }
}
