import type { Cancellation } from "./upstream.ts";

/**
 * Calls a request off (client gone, total timeout) without an AbortController per request: the
 * upstream call binds its own abort; an AbortSignal is made only for those that need one (a queued
 * request, a retriever).
 */
export class RequestCancel implements Cancellation {
  aborted = false;
  reason: unknown = undefined;
  private call: { abort(reason: Error): void } | undefined;
  private controller: AbortController | undefined;

  get signal(): AbortSignal {
    if (this.controller === undefined) {
      this.controller = new AbortController();
      if (this.aborted) this.controller.abort(this.reason);
    }
    return this.controller.signal;
  }

  bind(call: { abort(reason: Error): void } | undefined): void {
    this.call = call;
    if (call !== undefined && this.aborted) call.abort(this.reason as Error);
  }

  abort(reason: Error): void {
    if (this.aborted) return;
    this.aborted = true;
    this.reason = reason;
    this.call?.abort(reason);
    this.controller?.abort(reason);
  }
}
