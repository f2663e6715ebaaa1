// Placement through the adapter agents: the routing policy decides each adapter's home replicas
// (src/gateway/routing/diatonic.ts: rendezvous hashing widened by demand, with hysteresis), and this
// tells each replica's adapter agent which adapters to keep loaded there (PUT /v1/placement, every
// publishMs, with a TTL a few times longer). Hot adapters are then loaded on several replicas before
// their requests need them, cold ones on one, and no replica holds LoRAs it is not sent.
// Every gateway replica computes the same homes from the same ranking and publishes its own word; the
// agent keeps the union of the fresh ones (src/adapters/placement.ts): no coordinator. A gateway that
// goes quiet lets its word lapse, and an agent with no fresh word loads every adapter again.
import { randomUUID } from "node:crypto";
import { hostname } from "node:os";
import { PLACEMENT_PATH } from "../adapters/placement.ts";

export interface PlacementSettings {
  /** The adapter agent's port on each engine replica's address. */
  readonly agentPort: number;
  readonly publishMs: number;
  readonly ttlMs: number;
}

export interface PlacementPublisherOptions extends PlacementSettings {
  /** The upstream's name, for events. */
  readonly upstream: string;
  /** The adapters each healthy replica keeps, by origin; undefined when there is nothing to say (no healthy replica). */
  readonly plan: (loras: readonly string[]) => ReadonlyMap<string, readonly string[]> | undefined;
  /** Told after each replica's answer: how many adapters were placed there, or why it failed. */
  readonly onPublished?: (upstream: string, origin: string, placed: number, error: string | undefined) => void;
  /** This gateway's name in the agents' books. @default the host name (the pod's) and a random suffix */
  readonly gateway?: string;
}

/** The agent's URL for a replica: the replica's address, the agent's port. */
export function agentUrl(origin: string, agentPort: number): string {
  const url = new URL(origin);
  url.protocol = "http:";
  url.port = String(agentPort);
  url.pathname = PLACEMENT_PATH;
  return url.href;
}

export class PlacementPublisher {
  private loras: readonly string[] = [];
  private timer: NodeJS.Timeout | undefined;
  private closed = false;
  private running: Promise<void> | undefined;
  readonly gateway: string;

  constructor(private readonly options: PlacementPublisherOptions) {
    this.gateway = options.gateway ?? `${hostname()}/${randomUUID().slice(0, 8)}`;
  }

  /** The LoRAs of this upstream's adapters (the config's); placement starts with the first call. */
  setLoras(loras: readonly string[]): void {
    this.loras = [...new Set(loras)].sort();
    if (this.timer === undefined && this.running === undefined && !this.closed) this.loop();
  }

  private loop(): void {
    this.running = this.publish().finally(() => {
      this.running = undefined;
      if (this.closed) return;
      this.timer = setTimeout(() => {
        this.timer = undefined;
        this.loop();
      }, this.options.publishMs);
      this.timer.unref();
    });
  }

  /** Sends every healthy replica's agent what it keeps now; resolves when each has answered or failed. */
  async publish(): Promise<void> {
    const plan = this.options.plan(this.loras);
    if (plan === undefined) return;
    await Promise.all(
      [...plan].map(async ([origin, adapters]) => {
        let error: string | undefined;
        try {
          const response = await fetch(agentUrl(origin, this.options.agentPort), {
            method: "PUT",
            headers: { "content-type": "application/json" },
            body: JSON.stringify({ gateway: this.gateway, adapters, ttlMs: this.options.ttlMs }),
            signal: AbortSignal.timeout(Math.max(500, Math.min(5000, this.options.publishMs))),
          });
          if (!response.ok) error = `HTTP ${response.status}: ${(await response.text()).slice(0, 300)}`;
          else await response.body?.cancel();
        } catch (caught) {
          const cause = (caught as { cause?: { message?: string } }).cause?.message;
          error = `${(caught as Error).message}${cause !== undefined ? ` (${cause})` : ""}`;
        }
        this.options.onPublished?.(this.options.upstream, origin, adapters.length, error);
      }),
    );
  }

  async close(): Promise<void> {
    this.closed = true;
    clearTimeout(this.timer);
    await this.running;
  }
}
