import { WorldError } from "../errors.ts";
import type { KubeObject } from "../render/context.ts";
import { resourceName, type KubeClient } from "./client.ts";
import { explain, labelSelector, podProblems, podsReason, workloadSelector, type PodLike } from "./evidence.ts";
import { evaluateReadiness, needsWaiting, type Readiness, type ReadinessContext } from "./readiness.ts";

export interface NotReady {
  readonly resource: string;
  readonly reason: string;
  readonly evidence: readonly string[];
}

/** Objects that did not become ready, each with the cluster's evidence of why. */
export class ReadinessError extends WorldError {
  constructor(
    readonly failure: "timeout" | "failed",
    readonly objects: readonly NotReady[],
    what: string,
    fix?: string,
  ) {
    super(
      `${what}:\n${objects.map((o) => `  ${o.resource}: ${o.reason}${o.evidence.map((e) => `\n    ${e.replace(/\n/g, "\n    ")}`).join("")}`).join("\n")}`,
      fix ??
        (failure === "timeout"
          ? "fix the cause above (or raise --timeout if it is only slow), then run apply again: it resumes where it stopped"
          : "fix the cause above, then run apply again: it resumes where it stopped"),
    );
  }
}

/** Whether a controller has written anything into the object's status yet. */
function hasStatus(object: KubeObject): boolean {
  const status = (object as { status?: unknown }).status;
  return typeof status === "object" && status !== null && Object.keys(status).length > 0;
}

/**
 * Objects whose controller may not run at all (cert-manager's, whose CRDs install apart from it):
 * when one still has no status `graceMs` after the wait began, `verdict` is asked whether the
 * controller runs. An answer fails the wait at once, with its fix; none waits another `graceMs`.
 */
export interface UnattendedCheck {
  readonly kinds: readonly string[];
  readonly graceMs: number;
  verdict(unattended: readonly KubeObject[]): Promise<{ readonly message: string; readonly fix: string } | undefined>;
}

export interface WaitOptions {
  readonly timeoutMs: number;
  readonly context?: ReadinessContext;
  /** Called whenever an object's readiness changes. */
  readonly onChange?: (object: KubeObject, readiness: Readiness) => void;
  /** What is being waited for, for messages ("phase engine"). */
  readonly label: string;
  /** Notice early that nothing acts on some kinds. @default no such check */
  readonly unattended?: UnattendedCheck;
}

const key = (o: Pick<KubeObject, "kind" | "metadata">) => resourceName(o);

/**
 * Waits until every object is ready, with watches (the server replays current state first, then
 * streams changes): no polling, no sleeps. Fails early when a pod is in a state that does not heal
 * (image pull errors, crash loops, bad config), and at the deadline with the evidence of what is stuck.
 */
export async function waitForReady(client: KubeClient, objects: readonly KubeObject[], options: WaitOptions): Promise<void> {
  const pending = objects.filter((o) => needsWaiting(o.kind));
  if (pending.length === 0) return;
  const latest = new Map<string, KubeObject>(pending.map((o) => [key(o), o]));
  const states = new Map<string, Readiness>();
  /** Per workload, its pods as last seen: what they say is shown with its readiness at once. */
  const pods = new Map<string, Map<string, PodLike>>();
  /** Per namespace, the claims that exist: a scheduler's word that one was missing is not shown once it is there. */
  const claims = new Map<string, Set<string>>();
  const reported = new Map<string, string>();
  const stops: (() => void)[] = [];
  let settled = false;
  /** Tells onChange the object's readiness, with its pods' reason while it waits, when either changed. */
  const notify = (resource: string) => {
    const object = latest.get(resource);
    const readiness = states.get(resource);
    if (object === undefined || readiness === undefined) return;
    const namespace = object.metadata.namespace ?? "";
    const why =
      readiness.state === "progressing" ? podsReason([...(pods.get(resource)?.values() ?? [])], claims.get(namespace)) : undefined;
    const shown: Readiness = why === undefined ? readiness : { state: readiness.state, reason: `${readiness.reason} — ${why.message}` };
    const fingerprint = `${shown.state}\u0000${shown.reason}`;
    if (reported.get(resource) === fingerprint) return;
    reported.set(resource, fingerprint);
    options.onChange?.(object, shown);
  };

  await new Promise<void>((resolve, reject) => {
    const finish = (error?: Error) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      for (const stop of stops) stop();
      if (error) reject(error);
      else resolve();
    };
    const failWith = (cause: "timeout" | "failed", resources: readonly string[], reasons: Map<string, string>, fix?: string) => {
      void Promise.all(
        resources.map(async (resource): Promise<NotReady> => {
          const object = latest.get(resource);
          const evidence = object
            ? await explain(client, object).catch((e: unknown) => [`(could not read evidence: ${(e as Error).message})`])
            : [];
          return { resource, reason: reasons.get(resource) ?? states.get(resource)?.reason ?? "not ready", evidence };
        }),
      ).then((notReady) =>
        finish(
          new ReadinessError(
            cause,
            notReady,
            cause === "timeout"
              ? `${options.label} did not become ready within ${Math.round(options.timeoutMs / 1000)}s`
              : `${options.label} failed`,
            fix,
          ),
        ),
      );
    };
    const check = () => {
      if (settled) return;
      const failed = [...states.entries()].filter(([, s]) => s.state === "failed");
      if (failed.length > 0) {
        failWith(
          "failed",
          failed.map(([k]) => k),
          new Map(failed.map(([k, s]) => [k, s.reason])),
        );
        return;
      }
      if (pending.every((o) => states.get(key(o))?.state === "ready")) finish();
    };
    const timer = setTimeout(() => {
      const stuck = pending.map(key).filter((k) => states.get(k)?.state !== "ready");
      failWith("timeout", stuck, new Map());
    }, options.timeoutMs);

    const unattended = options.unattended;
    const askVerdict = () => {
      if (settled || unattended === undefined) return;
      const waiting = pending.filter((o) => unattended.kinds.includes(o.kind) && !hasStatus(latest.get(key(o)) ?? o));
      if (waiting.length === 0) return;
      unattended
        .verdict(waiting.map((o) => latest.get(key(o)) ?? o))
        .then((verdict) => {
          if (settled) return;
          if (verdict === undefined) setTimeout(askVerdict, unattended.graceMs).unref();
          else failWith("failed", waiting.map(key), new Map(waiting.map((o) => [key(o), verdict.message])), verdict.fix);
        })
        // Cannot tell now (the API server restarting, say): ask again later; the timeout still bounds the wait.
        .catch(() => (settled ? undefined : setTimeout(askVerdict, unattended.graceMs).unref()));
    };
    if (unattended !== undefined) setTimeout(askVerdict, unattended.graceMs).unref();

    const watchObject = (object: KubeObject) => {
      client
        .watch(
          object.apiVersion,
          object.kind,
          { ...(object.metadata.namespace ? { namespace: object.metadata.namespace } : {}), name: object.metadata.name },
          (type, current) => {
            if (settled || type === "DELETED" || type === "BOOKMARK") return;
            latest.set(key(object), current);
            states.set(key(object), evaluateReadiness(current, options.context ?? {}));
            notify(key(object));
            check();
          },
          () => {
            // The server ends watches now and then; keep watching until the wait is over.
            if (!settled) setTimeout(() => watchObject(object), 200);
          },
        )
        .then((stop) => (settled ? stop() : stops.push(stop)))
        .catch((error: unknown) => finish(error as Error));
    };
    for (const object of pending) watchObject(object);

    // Pods of the workloads being waited for: a state that does not heal fails the wait at once.
    const workloads = pending.flatMap((o) => {
      const selector = workloadSelector(o);
      return selector && o.metadata.namespace ? [{ object: o, selector, namespace: o.metadata.namespace }] : [];
    });
    for (const workload of workloads) {
      const watchPods = () => {
        client
          .watch(
            "v1",
            "Pod",
            { namespace: workload.namespace, labelSelector: labelSelector(workload.selector) },
            (type, object) => {
              if (settled || type === "BOOKMARK") return;
              const pod = object as unknown as PodLike;
              const resource = key(workload.object);
              const mine = pods.get(resource) ?? new Map<string, PodLike>();
              pods.set(resource, mine);
              if (type === "DELETED") mine.delete(pod.metadata.name);
              else mine.set(pod.metadata.name, pod);
              const hard = type === "DELETED" ? undefined : podProblems(pod).find((p) => p.hard);
              if (hard) states.set(resource, { state: "failed", reason: `pod ${hard.pod}: ${hard.message}` });
              notify(resource);
              check();
            },
            () => {
              // The new watch replays every pod that still exists.
              pods.get(key(workload.object))?.clear();
              if (!settled) setTimeout(watchPods, 200);
            },
          )
          .then((stop) => (settled ? stop() : stops.push(stop)))
          .catch((error: unknown) => finish(error as Error));
      };
      watchPods();
    }
    for (const namespace of new Set(workloads.map((w) => w.namespace))) {
      const watchClaims = () => {
        client
          .watch(
            "v1",
            "PersistentVolumeClaim",
            { namespace },
            (type, object) => {
              if (settled || type === "BOOKMARK") return;
              const names = claims.get(namespace) ?? new Set<string>();
              claims.set(namespace, names);
              if (type === "DELETED") names.delete(object.metadata.name);
              else names.add(object.metadata.name);
              for (const workload of workloads) if (workload.namespace === namespace) notify(key(workload.object));
            },
            () => {
              claims.get(namespace)?.clear();
              if (!settled) setTimeout(watchClaims, 200);
            },
          )
          .then((stop) => (settled ? stop() : stops.push(stop)))
          // Only a nicer message rides on it: without it (credentials that may not watch claims) the scheduler's word stands.
          .catch(() => undefined);
      };
      watchClaims();
    }
  });
}
