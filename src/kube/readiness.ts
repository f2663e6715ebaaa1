import type { KubeObject } from "../render/context.ts";

/** Where an object stands: done, still moving, or stuck for good. */
export type ReadinessState = "ready" | "progressing" | "failed";

export interface Readiness {
  readonly state: ReadinessState;
  readonly reason: string;
}

/** What a rule may need beyond the object: a storage class's binding mode, for PVCs. */
export interface ReadinessContext {
  readonly waitForFirstConsumer?: (storageClass: string | undefined) => boolean;
}

/** One kind's notion of "ready". Modelled on kstatus, stricter where it is lenient. */
export interface ReadinessRule {
  readonly kinds: readonly string[];
  evaluate(object: KubeObject, context: ReadinessContext): Readiness;
}

interface Condition {
  readonly type: string;
  readonly status: string;
  readonly reason?: string;
  readonly message?: string;
}

interface Live {
  readonly metadata: { readonly generation?: number; readonly deletionTimestamp?: string };
  readonly spec?: Record<string, unknown>;
  readonly status?: Record<string, unknown> & { readonly conditions?: readonly Condition[]; readonly observedGeneration?: number };
}

const ready = (reason: string): Readiness => ({ state: "ready", reason });
const progressing = (reason: string): Readiness => ({ state: "progressing", reason });
const failed = (reason: string): Readiness => ({ state: "failed", reason });

function live(object: KubeObject): Live {
  return object as unknown as Live;
}

function condition(object: KubeObject, type: string): Condition | undefined {
  return live(object).status?.conditions?.find((c) => c.type === type);
}

function num(value: unknown): number {
  return typeof value === "number" ? value : 0;
}

/** The controller has seen the latest spec; until then every status field is stale. */
function observed(object: KubeObject): boolean {
  const { metadata, status } = live(object);
  return metadata.generation === undefined || status?.observedGeneration === metadata.generation;
}

const deployment: ReadinessRule = {
  kinds: ["Deployment"],
  evaluate(object) {
    const { spec, status } = live(object);
    if (!observed(object)) return progressing("the controller has not observed the latest generation");
    const progress = condition(object, "Progressing");
    if (progress?.reason === "ProgressDeadlineExceeded")
      return failed(`rollout exceeded its progress deadline: ${progress.message ?? ""}`.trim());
    const want = typeof spec?.["replicas"] === "number" ? spec["replicas"] : 1;
    const updated = num(status?.["updatedReplicas"]);
    const available = num(status?.["availableReplicas"]);
    const readyReplicas = num(status?.["readyReplicas"]);
    const total = num(status?.["replicas"]);
    // The ReplicaSet cannot create pods (quota, Pod Security admission): the controller says so here.
    const replicaFailure = condition(object, "ReplicaFailure");
    const cannotCreate =
      replicaFailure?.status === "True" ? ` — ${replicaFailure.reason ?? "ReplicaFailure"}: ${replicaFailure.message ?? ""}`.trimEnd() : "";
    if (updated < want) return progressing(`${updated}/${want} replicas updated${cannotCreate}`);
    if (total > updated) return progressing(`${total - updated} old replica(s) still terminating`);
    if (available < want || readyReplicas < want)
      return progressing(`${Math.min(available, readyReplicas)}/${want} replicas available${cannotCreate}`);
    return ready(`${available}/${want} replicas available`);
  },
};

const statefulSet: ReadinessRule = {
  kinds: ["StatefulSet"],
  evaluate(object) {
    const { spec, status } = live(object);
    if (!observed(object)) return progressing("the controller has not observed the latest generation");
    const want = typeof spec?.["replicas"] === "number" ? spec["replicas"] : 1;
    const readyReplicas = num(status?.["readyReplicas"]);
    const updated = num(status?.["updatedReplicas"]);
    const current = status?.["currentRevision"];
    const update = status?.["updateRevision"];
    const strategy = (spec?.["updateStrategy"] as { type?: string } | undefined)?.type ?? "RollingUpdate";
    if (readyReplicas < want) return progressing(`${readyReplicas}/${want} replicas ready`);
    if (strategy === "RollingUpdate" && (updated < want || (update !== undefined && current !== update))) {
      return progressing(`${updated}/${want} replicas on revision ${String(update)}`);
    }
    return ready(`${readyReplicas}/${want} replicas ready on revision ${String(update ?? current ?? "?")}`);
  },
};

const daemonSet: ReadinessRule = {
  kinds: ["DaemonSet"],
  evaluate(object) {
    const { status } = live(object);
    if (!observed(object)) return progressing("the controller has not observed the latest generation");
    const desired = num(status?.["desiredNumberScheduled"]);
    const updated = num(status?.["updatedNumberScheduled"]);
    const available = num(status?.["numberAvailable"]);
    if (updated < desired) return progressing(`${updated}/${desired} nodes updated`);
    if (available < desired) return progressing(`${available}/${desired} nodes available`);
    return ready(desired === 0 ? "no node matches its selector yet" : `${available}/${desired} nodes available`);
  },
};

const job: ReadinessRule = {
  kinds: ["Job"],
  evaluate(object) {
    const failure = condition(object, "Failed");
    if (failure?.status === "True") return failed(`${failure.reason ?? "Failed"}: ${failure.message ?? ""}`.trim());
    const complete = condition(object, "Complete");
    if (complete?.status === "True") return ready("complete");
    const { status } = live(object);
    return progressing(`${num(status?.["active"])} active, ${num(status?.["succeeded"])} succeeded, ${num(status?.["failed"])} failed`);
  },
};

const claim: ReadinessRule = {
  kinds: ["PersistentVolumeClaim"],
  evaluate(object, context) {
    const { spec, status } = live(object);
    const phase = status?.["phase"];
    if (phase === "Bound") return ready("bound");
    if (phase === "Lost") return failed("its volume was lost");
    const storageClass = typeof spec?.["storageClassName"] === "string" ? spec["storageClassName"] : undefined;
    // With WaitForFirstConsumer the claim binds only once a pod uses it: the consumer is gated instead.
    if (context.waitForFirstConsumer?.(storageClass))
      return ready(`waits for its first consumer (storage class ${storageClass ?? "default"})`);
    return progressing(`phase ${String(phase ?? "Pending")}`);
  },
};

const crd: ReadinessRule = {
  kinds: ["CustomResourceDefinition"],
  evaluate(object) {
    const established = condition(object, "Established");
    return established?.status === "True" ? ready("established") : progressing("not established yet");
  },
};

/** cert-manager: Ready=True only. No status yet means the controller has not got to it: in progress. */
const certManager: ReadinessRule = {
  kinds: ["Certificate", "ClusterIssuer", "Issuer"],
  evaluate(object) {
    if (!observed(object) && live(object).status?.observedGeneration !== undefined)
      return progressing("cert-manager has not observed the latest generation");
    const readyCondition = condition(object, "Ready");
    if (!readyCondition) return progressing("no status from cert-manager yet");
    if (readyCondition.status === "True") {
      const notAfter = live(object).status?.["notAfter"];
      return ready(typeof notAfter === "string" ? `ready, expires ${notAfter}` : "ready");
    }
    const issuing = condition(object, "Issuing");
    return progressing(
      `${readyCondition.reason ?? "NotReady"}: ${readyCondition.message ?? ""}${issuing?.message ? ` (${issuing.message})` : ""}`.trim(),
    );
  },
};

const service: ReadinessRule = {
  kinds: ["Service"],
  evaluate(object) {
    const { spec, status } = live(object);
    if (spec?.["type"] !== "LoadBalancer") return ready("service");
    const ingress = (status?.["loadBalancer"] as { ingress?: { ip?: string; hostname?: string }[] } | undefined)?.ingress ?? [];
    return ingress.length > 0
      ? ready(`load balancer ${ingress[0]?.ip ?? ingress[0]?.hostname ?? ""}`)
      : progressing("waiting for a load balancer address");
  },
};

/** An Ingress is served once its controller admits it; an address is reported when there is one. */
const ingress: ReadinessRule = {
  kinds: ["Ingress"],
  evaluate(object) {
    const ingressList =
      (live(object).status?.["loadBalancer"] as { ingress?: { ip?: string; hostname?: string }[] } | undefined)?.ingress ?? [];
    return ready(
      ingressList.length > 0 ? `address ${ingressList[0]?.ip ?? ingressList[0]?.hostname ?? ""}` : "accepted (no address reported yet)",
    );
  },
};

/**
 * An HPA that cannot read its metrics (no metrics API registered, no such metric) is admitted and
 * reports ScalingActive=False: it never scales. Its conditions come at the controller's first sync.
 */
const autoscaler: ReadinessRule = {
  kinds: ["HorizontalPodAutoscaler"],
  evaluate(object) {
    const able = condition(object, "AbleToScale");
    const active = condition(object, "ScalingActive");
    const { spec, status } = live(object);
    if (able === undefined && active === undefined) return progressing("the HPA controller has not evaluated it yet");
    if (able?.status === "False") return failed(`not able to scale: ${able.reason ?? "AbleToScale=False"}: ${able.message ?? ""}`.trim());
    // ScalingDisabled: the target was scaled to zero on purpose.
    if (active?.status === "False" && active.reason !== "ScalingDisabled")
      return failed(`not scaling: ScalingActive=False ${active.reason ?? ""}: ${active.message ?? ""}`.trim());
    return ready(
      `scaling active: ${num(status?.["currentReplicas"])} replica(s), ${num(spec?.["minReplicas"]) || 1}–${num(spec?.["maxReplicas"])}`,
    );
  },
};

const accepted: ReadinessRule = {
  kinds: [],
  evaluate() {
    return ready("applied");
  },
};

const rules: readonly ReadinessRule[] = [deployment, statefulSet, daemonSet, job, claim, crd, certManager, service, ingress, autoscaler];

export function readinessRuleFor(kind: string): ReadinessRule {
  return rules.find((r) => r.kinds.includes(kind)) ?? accepted;
}

export function evaluateReadiness(object: KubeObject, context: ReadinessContext = {}): Readiness {
  if (live(object).metadata.deletionTimestamp) return progressing("being deleted");
  return readinessRuleFor(object.kind).evaluate(object, context);
}

/**
 * Kinds whose readiness depends on status; others are ready once the API server accepts them. An
 * HPA is not waited for: it does not stop serving, preflight checks its metrics APIs, and `status`
 * reports whether it scales.
 */
export function needsWaiting(kind: string): boolean {
  return readinessRuleFor(kind) !== accepted && kind !== "Ingress" && kind !== "HorizontalPodAutoscaler";
}
