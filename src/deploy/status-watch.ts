// `status --watch`: refresh on every change of the platform's workloads, for as long as the user
// wants. Watches end on their own (an API server restart, its watch timeout of 30–60 minutes); each is
// re-established with backoff, and the screen says so. Nothing here ends the loop but the signal.
import type { KubeClient } from "../kube/client.ts";

export interface StatusWatchOptions {
  readonly client: KubeClient;
  readonly namespace: string;
  /** Redraws the status; called after changes (debounced) and after a watch comes back. Its errors are shown, not thrown. */
  readonly refresh: () => Promise<void>;
  /** One line for the screen: a watch ended, comes back, or a refresh failed. */
  readonly notice: (message: string) => void;
  /** Ends the watch (Ctrl-C). */
  readonly signal: AbortSignal;
  /** Changes within this window make one refresh. @default 500 */
  readonly debounceMs?: number;
  /** The first wait before re-establishing a watch; it doubles after each failed try. @default 1000 */
  readonly initialBackoffMs?: number;
  /** @default 30000 */
  readonly maxBackoffMs?: number;
}

/** What changes what status shows, in the platform's namespace. */
export const WATCHED = [
  { apiVersion: "v1", kind: "Pod", plural: "pods" },
  { apiVersion: "apps/v1", kind: "Deployment", plural: "deployments" },
  { apiVersion: "apps/v1", kind: "StatefulSet", plural: "statefulsets" },
  { apiVersion: "batch/v1", kind: "Job", plural: "jobs" },
  { apiVersion: "autoscaling/v2", kind: "HorizontalPodAutoscaler", plural: "horizontalpodautoscalers" },
] as const;

/** A watch that stayed up this long is healthy again: the next loss starts from the first backoff. */
const HEALTHY_AFTER_MS = 10_000;

/** Why a watch ended, without the URL each kind's request names (so that one line covers all of them). */
function message(error: unknown): string {
  if (error === undefined || error === null) return "closed by the server";
  const text = (error instanceof Error ? error.message : String(error)).split("\n")[0] ?? "";
  return text.replace(/^request to \S+ failed, reason: /, "").replace(/^Failed to fetch resource metadata for \S+: /, "");
}

/** Notices of the same kind that come together (every watch ends at once when the server goes) make one line. */
function batched(notice: (line: string) => void): (event: string, plural: string) => void {
  const pending = new Map<string, string[]>();
  return (event, plural) => {
    const kinds = pending.get(event);
    if (kinds !== undefined) {
      kinds.push(plural);
      return;
    }
    pending.set(event, [plural]);
    setTimeout(() => {
      const all = pending.get(event) ?? [];
      pending.delete(event);
      notice(
        event
          .replace("{watches}", all.length === 1 ? `the watch of ${all[0] ?? ""}` : `the watches of ${all.join(", ")}`)
          .replace("{is}", all.length === 1 ? "is" : "are"),
      );
    }, 50);
  };
}

/** Watches until `signal` aborts, refreshing on changes and re-establishing every watch that ends. */
export async function watchStatus(options: StatusWatchOptions): Promise<void> {
  const { client, namespace, signal } = options;
  const debounceMs = options.debounceMs ?? 500;
  const initial = options.initialBackoffMs ?? 1000;
  const max = options.maxBackoffMs ?? 30_000;
  if (signal.aborted) return;

  let timer: NodeJS.Timeout | undefined;
  let running = false;
  let again = false;
  const refresh = () => {
    if (signal.aborted || timer !== undefined) return;
    timer = setTimeout(() => {
      timer = undefined;
      if (running) {
        again = true;
        return;
      }
      running = true;
      options
        .refresh()
        .catch((error: unknown) =>
          options.notice(`cannot read the status: ${message(error)}; trying again on the next change or reconnect`),
        )
        .finally(() => {
          running = false;
          if (again) {
            again = false;
            refresh();
          }
        });
    }, debounceMs);
  };

  const say = batched(options.notice);
  const stops = new Map<string, () => void>();
  const retries = new Set<NodeJS.Timeout>();
  const watch = (target: (typeof WATCHED)[number], failures: number, lost: boolean): void => {
    if (signal.aborted) return;
    const started = Date.now();
    let ended = false;
    const retry = (why: unknown, failed: boolean) => {
      if (ended || signal.aborted) return;
      ended = true;
      stops.delete(target.kind);
      const next = failed && Date.now() - started < HEALTHY_AFTER_MS ? failures + 1 : 0;
      const delay = Math.min(max, initial * 2 ** next);
      say(`{watches} ended (${message(why)}); re-establishing in ${(delay / 1000).toFixed(1)} s`, target.plural);
      const handle = setTimeout(() => {
        retries.delete(handle);
        watch(target, next, true);
      }, delay);
      retries.add(handle);
    };
    client
      .watch(
        target.apiVersion,
        target.kind,
        { namespace },
        (type) => (type === "ERROR" ? undefined : refresh()),
        (error) => retry(error, error !== undefined && error !== null),
      )
      .then((stop) => {
        if (signal.aborted || ended) {
          stop();
          return;
        }
        stops.set(target.kind, stop);
        if (lost) {
          say("{watches} {is} re-established", target.plural);
          // What changed while it was down: one refresh catches up.
          refresh();
        }
      })
      .catch((error: unknown) => retry(error, true));
  };
  for (const target of WATCHED) watch(target, 0, false);

  // Held until the signal: the process lives while every watch is down and waiting to come back.
  const alive = setInterval(() => undefined, 60_000);
  await new Promise<void>((resolve) => signal.addEventListener("abort", () => resolve(), { once: true }));
  clearInterval(alive);
  if (timer !== undefined) clearTimeout(timer);
  for (const handle of retries) clearTimeout(handle);
  for (const stop of stops.values()) stop();
}
