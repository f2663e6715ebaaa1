import type { RecentError } from "./admin-api.ts";

/** Codes whose messages may quote what the caller sent (JSON.parse quotes the body it failed on). */
const QUOTING_CODES: ReadonlyMap<string, string> = new Map([["invalid_json", "request body is not valid JSON"]]);
const MAX_MESSAGE = 300;

/**
 * The latest error responses, for the console: a fixed-size ring, oldest overwritten. It keeps the
 * gateway's own messages (which name adapters, limits, upstreams), never a request body or a key.
 */
export class RecentErrors {
  private readonly ring: (RecentError | undefined)[];
  private next = 0;

  constructor(readonly capacity = 100) {
    this.ring = new Array<RecentError | undefined>(capacity).fill(undefined);
  }

  add(error: Omit<RecentError, "message" | "time"> & { readonly message: string | undefined; readonly at?: Date }): void {
    const { at, ...rest } = error;
    const quoted = error.code === null ? undefined : QUOTING_CODES.get(error.code);
    const message = quoted ?? error.message ?? `answered ${error.status}`;
    this.ring[this.next] = {
      ...rest,
      time: (at ?? new Date()).toISOString(),
      message: message.length > MAX_MESSAGE ? `${message.slice(0, MAX_MESSAGE)}…` : message,
    };
    this.next = (this.next + 1) % this.capacity;
  }

  /** Newest first. */
  list(): RecentError[] {
    const out: RecentError[] = [];
    for (let i = 1; i <= this.capacity; i++) {
      const entry = this.ring[(this.next - i + this.capacity) % this.capacity];
      if (entry !== undefined) out.push(entry);
    }
    return out;
  }
}
