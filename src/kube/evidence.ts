import { CoreV1Api } from "@kubernetes/client-node";
import type { KubeObject } from "../render/context.ts";
import type { KubeClient } from "./client.ts";

export interface PodLike {
  readonly metadata: {
    readonly name: string;
    readonly namespace?: string;
    readonly labels?: Record<string, string>;
    readonly deletionTimestamp?: string;
  };
  readonly spec?: {
    readonly nodeName?: string;
    readonly volumes?: readonly {
      readonly name: string;
      readonly persistentVolumeClaim?: { readonly claimName: string };
      readonly ephemeral?: unknown;
    }[];
  };
  readonly status?: {
    readonly phase?: string;
    readonly conditions?: readonly {
      readonly type: string;
      readonly status: string;
      readonly reason?: string;
      readonly message?: string;
    }[];
    readonly containerStatuses?: readonly ContainerStatus[];
    readonly initContainerStatuses?: readonly ContainerStatus[];
  };
}

interface ContainerStatus {
  readonly name: string;
  readonly restartCount?: number;
  readonly state?: {
    readonly waiting?: { readonly reason?: string; readonly message?: string };
    readonly terminated?: { readonly reason?: string; readonly exitCode?: number; readonly message?: string };
  };
  readonly lastState?: { readonly terminated?: { readonly reason?: string; readonly exitCode?: number } };
}

/** Container states that do not heal by waiting: the phase fails at once with this evidence. */
const HARD_FAILURES = new Set([
  "ImagePullBackOff",
  "ErrImagePull",
  "InvalidImageName",
  "CreateContainerConfigError",
  "CreateContainerError",
  "CrashLoopBackOff",
  "RunContainerError",
]);

/**
 * What a kubelet says while its own watch of Secrets or ConfigMaps has not caught up (after an API
 * server restart, say): CreateContainerConfigError, but it retries on its own and the pod starts.
 */
const KUBELET_CATCHING_UP = /failed to sync (secret|configmap) cache/i;

export interface PodProblem {
  readonly pod: string;
  readonly hard: boolean;
  readonly message: string;
  readonly container?: string;
  readonly crashLoop?: boolean;
}

/**
 * The claim a scheduler's message says is missing: a persistentVolumeClaim volume not found, one its
 * own cache has not seen yet (a SchedulerError), or an ephemeral one its controller has not created
 * yet. Undefined for any other message.
 */
function claimTheSchedulerMissed(message: string | undefined): string | undefined {
  return /persistentvolumeclaim "([^"]+)" not found|could not find v1\.PersistentVolumeClaim "(?:[^"/]+\/)?([^"]+)"|create the persistentvolumeclaim "([^"]+)"/
    .exec(message ?? "")
    ?.slice(1)
    .find(Boolean);
}

/**
 * The scheduler's last word on a pod, when it is out of date: it said a claim was missing, and that
 * claim exists now (a StatefulSet's or an ephemeral volume's controller creates it just after the
 * pod, and the scheduler, which tries again once it exists, keeps its old condition while it waits
 * for the volume). What to say instead; undefined when the word still holds or no claims are known.
 */
function staleSchedulerWord(message: string | undefined, claims: ReadonlySet<string> | undefined): string | undefined {
  const claim = claimTheSchedulerMissed(message);
  if (claim === undefined || claims?.has(claim) !== true) return undefined;
  return `not scheduled yet: the scheduler's last word predates its claim ${claim}, which exists now (the scheduler tries again once it does)`;
}

/**
 * What is wrong with one pod, from its own status (scheduling, container states). `claims`, the
 * names of the claims that exist in its namespace, lets a scheduler's "claim not found" that no
 * longer holds be left out (podProgress says where the pod is instead).
 */
export function podProblems(pod: PodLike, claims?: ReadonlySet<string>): PodProblem[] {
  const problems: PodProblem[] = [];
  const name = pod.metadata.name;
  const scheduled = pod.status?.conditions?.find((c) => c.type === "PodScheduled");
  if (scheduled?.status === "False" && staleSchedulerWord(scheduled.message, claims) === undefined) {
    problems.push({
      pod: name,
      hard: false,
      message: `${scheduled.reason ?? "Unschedulable"}: ${scheduled.message ?? "the scheduler found no node"}`,
    });
  }
  for (const status of [...(pod.status?.initContainerStatuses ?? []), ...(pod.status?.containerStatuses ?? [])]) {
    const waiting = status.state?.waiting;
    if (waiting?.reason && waiting.reason !== "ContainerCreating" && waiting.reason !== "PodInitializing") {
      const crashLoop = waiting.reason === "CrashLoopBackOff";
      const last = status.lastState?.terminated;
      problems.push({
        pod: name,
        container: status.name,
        crashLoop,
        hard:
          HARD_FAILURES.has(waiting.reason) &&
          !KUBELET_CATCHING_UP.test(waiting.message ?? "") &&
          (!crashLoop || (status.restartCount ?? 0) >= 2),
        message: `container ${status.name}: ${waiting.reason}${waiting.message ? ` (${waiting.message})` : ""}${last ? `; last exit ${last.exitCode ?? "?"} ${last.reason ?? ""}`.trimEnd() : ""}${status.restartCount ? `; ${status.restartCount} restarts` : ""}`,
      });
    }
  }
  return problems;
}

/**
 * Where a pod with no problem to report has got to, when it is not Ready: not placed yet, placed and
 * starting, or running but failing its readiness; undefined once Ready, while terminating, or when it
 * has a problem (podProblems says that). Shown while apply and status wait, and at a deadline, so
 * that "0/1 ready" is never all they say.
 */
export function podProgress(pod: PodLike, claims?: ReadonlySet<string>): string | undefined {
  const conditions = pod.status?.conditions ?? [];
  const ready = conditions.find((c) => c.type === "Ready");
  // A terminating pod (an old replica going) is not what a rollout waits for.
  if (ready?.status === "True" || pod.metadata.deletionTimestamp !== undefined || podProblems(pod, claims).length > 0) return undefined;
  const phase = pod.status?.phase ?? "Pending";
  if (phase === "Succeeded" || phase === "Failed") return `${phase.toLowerCase()}, will not become ready`;
  const node = pod.spec?.nodeName;
  if (node === undefined || node === "") {
    const scheduled = conditions.find((c) => c.type === "PodScheduled");
    if (scheduled === undefined)
      return "not scheduled yet: the scheduler has given no decision (it holds a pod here while its claims get volumes)";
    return staleSchedulerWord(scheduled.message, claims) ?? "not on a node yet";
  }
  if (phase === "Pending") {
    const waiting = [...(pod.status?.initContainerStatuses ?? []), ...(pod.status?.containerStatuses ?? [])].flatMap((c) =>
      c.state?.waiting?.reason ? [`container ${c.name}: ${c.state.waiting.reason}`] : [],
    );
    return `on node ${node}, not started: ${waiting.length > 0 ? waiting.join(", ") : "its kubelet has not reported starting it"}`;
  }
  const why = ready?.message ?? ready?.reason ?? "no Ready condition from its kubelet yet";
  return `running on node ${node}, not ready: ${why}`;
}

/** The claims a pod mounts: its persistentVolumeClaim volumes and its generic ephemeral ones (named pod-volume). */
export function claimsOf(pod: PodLike): string[] {
  return (pod.spec?.volumes ?? []).flatMap((volume) => {
    if (volume.persistentVolumeClaim) return [volume.persistentVolumeClaim.claimName];
    return volume.ephemeral === undefined ? [] : [`${pod.metadata.name}-${volume.name}`];
  });
}

function selectorOf(object: KubeObject): Record<string, string> | undefined {
  const spec = (object as unknown as { spec?: { selector?: { matchLabels?: Record<string, string> } | Record<string, string> } }).spec;
  const selector = spec?.selector;
  if (!selector) return undefined;
  return "matchLabels" in selector ? (selector.matchLabels as Record<string, string>) : (selector as Record<string, string>);
}

/** The labels that pick a workload's pods (Deployment, StatefulSet, DaemonSet, Job); undefined for other kinds. */
export function workloadSelector(object: KubeObject): Record<string, string> | undefined {
  if (object.kind === "Job") return { "batch.kubernetes.io/job-name": object.metadata.name };
  if (!["Deployment", "StatefulSet", "DaemonSet"].includes(object.kind)) return undefined;
  return selectorOf(object);
}

/** Whether `pod` is one of the workload's pods. */
export function isPodOf(object: KubeObject, pod: PodLike): boolean {
  const selector = workloadSelector(object);
  if (selector === undefined || pod.metadata.namespace !== object.metadata.namespace) return false;
  return Object.entries(selector).every(([key, value]) => pod.metadata.labels?.[key] === value);
}

/**
 * Why a workload that is not ready yet is waiting, in its pods' words, as soon as they say it: the
 * scheduler's message, an image pull, a crash loop, a bad config: the first problem found (a hard one
 * first). With none, where the first pod not ready has got to (never hard); else undefined. `claims`
 * (the claims that exist in the pods' namespace) leaves out a scheduler's "claim not found" that no
 * longer holds.
 */
export function podsReason(
  pods: readonly PodLike[],
  claims?: ReadonlySet<string>,
): { readonly hard: boolean; readonly message: string } | undefined {
  const problems = pods.flatMap((pod) => podProblems(pod, claims));
  const first = problems.find((p) => p.hard) ?? problems[0];
  if (first !== undefined)
    return {
      hard: first.hard,
      message: `pod ${first.pod}: ${first.message}${problems.length > 1 ? ` (and ${problems.length - 1} more)` : ""}`,
    };
  // No problem: where the pods not ready yet have got to (scheduled, starting, running but not ready), as progress.
  const progress = pods.flatMap((pod) => {
    const where = podProgress(pod, claims);
    return where === undefined ? [] : [`pod ${pod.metadata.name}: ${where}`];
  });
  return progress[0] === undefined
    ? undefined
    : { hard: false, message: `${progress[0]}${progress.length > 1 ? ` (and ${progress.length - 1} more)` : ""}` };
}

export function labelSelector(labels: Record<string, string>): string {
  return Object.entries(labels)
    .map(([k, v]) => `${k}=${v}`)
    .join(",");
}

/** The pods of a workload (Deployment, StatefulSet, DaemonSet, Job). */
export async function podsOf(client: KubeClient, object: KubeObject): Promise<PodLike[]> {
  const selector = workloadSelector(object);
  if (!selector || !object.metadata.namespace) return [];
  return (await client.list("v1", "Pod", object.metadata.namespace, labelSelector(selector))) as unknown as PodLike[];
}

async function lastLogLines(client: KubeClient, namespace: string, pod: string, container: string): Promise<string | undefined> {
  try {
    const log = await client.config
      .makeApiClient(CoreV1Api)
      .readNamespacedPodLog({ name: pod, namespace, container, previous: true, tailLines: 8 });
    return log.trim() === "" ? undefined : log.trim();
  } catch {
    return undefined;
  }
}

/** The object's last three events, oldest first: warnings only, or of every type. */
async function events(
  client: KubeClient,
  object: { kind: string; metadata: { name: string; namespace?: string } },
  warningsOnly = true,
): Promise<string[]> {
  if (!object.metadata.namespace) return [];
  const found = await client.list<
    KubeObject & { reason?: string; message?: string; type?: string; lastTimestamp?: string; eventTime?: string }
  >(
    "v1",
    "Event",
    object.metadata.namespace,
    undefined,
    `involvedObject.name=${object.metadata.name},involvedObject.kind=${object.kind}${warningsOnly ? ",type=Warning" : ""}`,
  );
  const at = (e: (typeof found)[number]) => e.lastTimestamp ?? e.eventTime ?? e.metadata.creationTimestamp ?? "";
  return found
    .sort((a, b) => at(a).localeCompare(at(b)))
    .slice(-3)
    .map((e) => `${e.reason ?? e.type ?? "Event"}: ${e.message ?? ""}`.trim());
}

/**
 * The pod's claims: those that exist, and a line for each that is not bound to a volume yet, with
 * the last word on it (a provisioner waited for, say).
 */
async function podClaims(client: KubeClient, pod: PodLike): Promise<{ existing: Set<string>; unbound: string[] }> {
  const existing = new Set<string>();
  const unbound: string[] = [];
  const namespace = pod.metadata.namespace;
  if (namespace === undefined) return { existing, unbound };
  for (const name of claimsOf(pod)) {
    const claim = await client.get<KubeObject & { status?: { phase?: string } }>({
      apiVersion: "v1",
      kind: "PersistentVolumeClaim",
      metadata: { name, namespace },
    });
    if (claim === undefined) {
      unbound.push(`claim ${name}: not created yet`);
      continue;
    }
    existing.add(name);
    const phase = claim.status?.phase ?? "Pending";
    if (phase === "Bound") continue;
    const last = (await events(client, claim, false)).at(-1);
    unbound.push(`claim ${name}: ${phase}, no volume bound yet${last === undefined ? "" : ` (${last})`}`);
  }
  return { existing, unbound };
}

/**
 * Why an object is not ready, in the cluster's own words: its pods' scheduling and container states
 * (with the last log lines of a crash loop), where a pod with no problem has got to, its claims not
 * bound yet, and the warning events on it and its pods.
 */
export async function explain(client: KubeClient, object: KubeObject): Promise<string[]> {
  const lines: string[] = [];
  if (["Deployment", "StatefulSet", "DaemonSet", "Job"].includes(object.kind)) {
    const pods = await podsOf(client, object);
    if (pods.length === 0) lines.push("no pods were created");
    for (const pod of pods) {
      const claims = await podClaims(client, pod);
      const progress = podProgress(pod, claims.existing);
      if (progress !== undefined) lines.push(`pod ${pod.metadata.name}: ${progress}`);
      for (const claim of claims.unbound) lines.push(`pod ${pod.metadata.name}: ${claim}`);
      for (const problem of podProblems(pod, claims.existing)) {
        lines.push(`pod ${problem.pod}: ${problem.message}`);
        if (problem.crashLoop && problem.container && pod.metadata.namespace) {
          const log = await lastLogLines(client, pod.metadata.namespace, pod.metadata.name, problem.container);
          if (log)
            lines.push(
              `  last log lines:\n${log
                .split("\n")
                .map((l) => `    ${l}`)
                .join("\n")}`,
            );
        }
      }
      // A scheduler's event that a claim was missing, once it exists, says what podProgress said (and is dropped as a repeat).
      for (const event of await events(client, { kind: "Pod", metadata: pod.metadata }))
        lines.push(`pod ${pod.metadata.name}: ${staleSchedulerWord(event, claims.existing) ?? event}`);
    }
  }
  for (const event of await events(client, object)) lines.push(event);
  return [...new Set(lines)];
}
