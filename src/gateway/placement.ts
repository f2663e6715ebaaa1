// Placement through the adapter agents: the routing policy decides each adapter's home replicas
// (src/gateway/routing/diatonic.ts: rendezvous hashing widened by demand, with hysteresis), and this
// tells each replica's adapter agent which adapters to keep loaded there (PUT /v1/placement): at once
// when what a replica keeps changes (checked every CHECK_MS), and again every publishMs, with a TTL a
// few times longer. Hot adapters are then loaded on several replicas before
// their requests need them, cold ones on one, and no replica holds LoRAs it is not sent.
// Every gateway replica computes the same homes from the same ranking and publishes its own word; the
// agent keeps the union of the fresh ones (src/adapters/placement.ts): no coordinator. A gateway that
// goes quiet lets its word lapse, and an agent with no fresh word loads every adapter again.
import { randomUUID } from "node:crypto";
import { hostname } from "node:os";
import { PLACEMENT_PATH, type PlacementAnswer } from "../adapters/placement.ts";
import { isRecord } from "./residency.ts";

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

/** Why the replicas an adapter is placed on cannot load it, as their agents answered the last placement. */
export interface AdapterFailure {
  /** The agent's reason (of the first such replica, in origin order). */
  readonly reason: string;
  /** The replicas placed to hold it whose agents all report it failed. */
  readonly replicas: readonly string[];
  /** The soonest an agent tries again (epoch ms), if it said. */
  readonly retryAt: number | undefined;
}

/** What a replica's agent was last told and answered. */
interface Told {
  /** The adapters told (sorted, joined). */
  readonly key: string;
  readonly at: number;
  /** The agent did not answer (or refused): tried again after publishMs, not at every check. */
  readonly unanswered: boolean;
  readonly placed: ReadonlySet<string>;
  /** Of those, the ones the agent reported it could not load: reason and retry time. */
  readonly failed: ReadonlyMap<string, { readonly reason: string; readonly retryAt: number | undefined }>;
}

/** The `failed` list of an agent's answer; an agent from before it had none (nothing is failed). */
function failuresOf(body: unknown): Map<string, { reason: string; retryAt: number | undefined }> {
  const failed = new Map<string, { reason: string; retryAt: number | undefined }>();
  const list: unknown = isRecord(body) ? (body as Partial<Record<keyof PlacementAnswer, unknown>>).failed : undefined;
  if (!Array.isArray(list)) return failed;
  for (const entry of list) {
    if (!isRecord(entry) || typeof entry.name !== "string") continue;
    const retryAt = typeof entry.retryAt === "string" ? Date.parse(entry.retryAt) : NaN;
    failed.set(entry.name, {
      reason: typeof entry.reason === "string" ? entry.reason.slice(0, 1000) : "its adapter agent reports it failed",
      retryAt: Number.isFinite(retryAt) ? retryAt : undefined,
    });
  }
  return failed;
}

/** How often the plan is worked out to see whether a replica's adapters changed (sent at once if so). */
const CHECK_MS = 250;

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
  /** Per replica: what it was last told, when, and what its agent answered. */
  private readonly told = new Map<string, Told>();
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
      this.timer = setTimeout(
        () => {
          this.timer = undefined;
          this.loop();
        },
        Math.min(CHECK_MS, this.options.publishMs),
      );
      this.timer.unref();
    });
  }

  /**
   * Sends each healthy replica's agent what it keeps now, where that changed or publishMs has passed
   * since it was last told (`all`: every replica); resolves when each has answered or failed.
   */
  async publish(all = false): Promise<void> {
    const plan = this.options.plan(this.loras);
    if (plan === undefined) return;
    const now = performance.now();
    for (const origin of this.told.keys()) if (!plan.has(origin)) this.told.delete(origin);
    const due = [...plan].filter(([origin, adapters]) => {
      const last = this.told.get(origin);
      if (all || last === undefined || now - last.at >= this.options.publishMs) return true;
      // A replica that did not answer is tried again after publishMs, not at every check.
      return !last.unanswered && last.key !== adapters.join("\n");
    });
    await Promise.all(
      due.map(async ([origin, adapters]) => {
        let error: string | undefined;
        let failed: Told["failed"] | undefined;
        try {
          const response = await fetch(agentUrl(origin, this.options.agentPort), {
            method: "PUT",
            headers: { "content-type": "application/json" },
            body: JSON.stringify({ gateway: this.gateway, adapters, ttlMs: this.options.ttlMs }),
            signal: AbortSignal.timeout(Math.max(500, Math.min(5000, this.options.publishMs))),
          });
          const text = await response.text();
          if (!response.ok) error = `HTTP ${response.status}: ${text.slice(0, 300)}`;
          else failed = failuresOf(JSON.parse(text) as unknown);
        } catch (caught) {
          const cause = (caught as { cause?: { message?: string } }).cause?.message;
          error = `${(caught as Error).message}${cause !== undefined ? ` (${cause})` : ""}`;
        }
        // Without an answer, what the agent last said it could not load still stands (its health is the pool's to judge).
        const last = this.told.get(origin);
        this.told.set(origin, {
          key: adapters.join("\n"),
          at: now,
          unanswered: error !== undefined,
          placed: new Set(adapters),
          failed: failed ?? last?.failed ?? new Map(),
        });
        this.options.onPublished?.(this.options.upstream, origin, adapters.length, error);
      }),
    );
  }

  /**
   * Why an adapter cannot be loaded: when each of the given replicas (the healthy ones) that it is
   * placed on reports it failed. Undefined while any of them may still load it, or none is placed.
   */
  failure(lora: string, origins: readonly string[]): AdapterFailure | undefined {
    let first: { reason: string; retryAt: number | undefined } | undefined;
    let retryAt: number | undefined;
    const replicas: string[] = [];
    for (const origin of origins) {
      const told = this.told.get(origin);
      if (told === undefined || !told.placed.has(lora)) continue;
      const failed = told.failed.get(lora);
      if (failed === undefined) return undefined;
      first ??= failed;
      if (failed.retryAt !== undefined) retryAt = Math.min(retryAt ?? Infinity, failed.retryAt);
      replicas.push(origin);
    }
    return first === undefined ? undefined : { reason: first.reason, replicas, retryAt };
  }

  async close(): Promise<void> {
    this.closed = true;
    clearTimeout(this.timer);
    await this.running;
  }
}
