import type { KubeObject } from "../../render/context.ts";
import { defineRule } from "../finding.ts";
import type { Finding } from "../types.ts";

interface ClaimSpec {
  readonly storageClassName?: string;
}

function claimsOf(object: KubeObject): { spec: ClaimSpec; path: string; name: string }[] {
  if (object.kind === "PersistentVolumeClaim")
    return [{ spec: (object as unknown as { spec?: ClaimSpec }).spec ?? {}, path: "spec.storageClassName", name: object.metadata.name }];
  if (object.kind === "StatefulSet") {
    const templates =
      (object as unknown as { spec?: { volumeClaimTemplates?: { metadata?: { name?: string }; spec?: ClaimSpec }[] } }).spec
        ?.volumeClaimTemplates ?? [];
    return templates.map((t, i) => ({
      spec: t.spec ?? {},
      path: `spec.volumeClaimTemplates[${i}].spec.storageClassName`,
      name: t.metadata?.name ?? `#${i}`,
    }));
  }
  return [];
}

interface PdbLike {
  readonly spec?: {
    readonly minAvailable?: number | string;
    readonly maxUnavailable?: number | string;
    readonly selector?: { readonly matchLabels?: Record<string, string> };
  };
}
interface HpaLike {
  readonly spec?: {
    readonly scaleTargetRef?: { readonly kind: string; readonly name: string };
    readonly minReplicas?: number;
    readonly maxReplicas?: number;
  };
}

interface ClaimAccess {
  readonly spec?: { readonly accessModes?: readonly string[] };
}

/** True for claims a volume attaches to one node at a time: ReadWriteOnce (or ReadWriteOncePod) only. */
function oneNodeOnly(claim: KubeObject): boolean {
  const modes = (claim as unknown as ClaimAccess).spec?.accessModes ?? [];
  return modes.length > 0 && modes.every((mode) => mode === "ReadWriteOnce" || mode === "ReadWriteOncePod");
}

interface Strategy {
  readonly spec?: { readonly strategy?: { readonly type?: string; readonly rollingUpdate?: { readonly maxSurge?: number | string } } };
}

/** A Deployment whose rollout starts the new pod before the old one is gone (RollingUpdate with a surge, the default). */
function surges(owner: KubeObject): boolean {
  if (owner.kind !== "Deployment") return false;
  const strategy = (owner as unknown as Strategy).spec?.strategy;
  if (strategy?.type === "Recreate") return false;
  const surge = strategy?.rollingUpdate?.maxSurge;
  return surge === undefined || (surge !== 0 && surge !== "0%");
}

export const storageScalingRules = [
  defineRule("storage/rwo-shared", "error", "a ReadWriteOnce claim is mounted by one pod at a time", ({ inventory }, report) =>
    inventory.ofKind("PersistentVolumeClaim").flatMap((claim): Finding[] => {
      if (!oneNodeOnly(claim)) return [];
      const namespace = claim.metadata.namespace ?? "default";
      const users = inventory.templates.filter(
        (t) => t.namespace === namespace && (t.spec.volumes ?? []).some((v) => v.persistentVolumeClaim?.claimName === claim.metadata.name),
      );
      const fix =
        "give each pod its own volume (a StatefulSet's volumeClaimTemplates, or a generic ephemeral volume), or use a ReadWriteMany storage class";
      const names = users.map((t) => t.resource).join(", ");
      if (users.length > 1) {
        return [
          report(
            claim,
            "spec.accessModes",
            `claim ${claim.metadata.name} is ReadWriteOnce but mounted by ${users.length} workloads (${names}): once they land on different nodes, the later pods fail with a Multi-Attach error`,
            fix,
          ),
        ];
      }
      const user = users[0];
      if (user === undefined) return [];
      if (user.owner.kind === "DaemonSet" || user.replicas > 1) {
        return [
          report(
            claim,
            "spec.accessModes",
            `claim ${claim.metadata.name} is ReadWriteOnce but ${user.resource} runs ${user.owner.kind === "DaemonSet" ? "a pod per node" : `${user.replicas} replicas`} that mount it: pods on a second node fail with a Multi-Attach error`,
            fix,
          ),
        ];
      }
      if (user.longRunning && surges(user.owner)) {
        return [
          report(
            user.owner,
            "spec.strategy",
            `${user.resource} mounts ReadWriteOnce claim ${claim.metadata.name} and rolls out with a surge: the new pod, if scheduled on another node, waits on a Multi-Attach error until the old one is gone`,
            "use strategy Recreate (or maxSurge: 0), or give each pod its own volume",
            "warning",
          ),
        ];
      }
      return [];
    }),
  ),
  defineRule("storage/storage-class", "error", "claims use a storage class the environment has", ({ inventory, env }, report) => {
    const known = env.storageClasses;
    return inventory.objects.flatMap((object) =>
      claimsOf(object).flatMap(({ spec, path, name }): Finding[] => {
        if (!spec.storageClassName)
          return [
            report(
              object,
              path,
              `claim ${name} names no storage class, so it depends on the cluster's default`,
              "set storageClassName explicitly",
              "warning",
            ),
          ];
        if (!known || known.includes(spec.storageClassName)) return [];
        return [
          report(
            object,
            path,
            `claim ${name} asks for storage class ${spec.storageClassName}, which this environment does not have (${known.join(", ")}): it stays Pending`,
            `use ${known.join(" or ")}, or set storageClass for this environment in the spec`,
          ),
        ];
      }),
    );
  }),
  defineRule("storage/retain-data", "warning", "StatefulSets keep their data claims when deleted or scaled down", ({ inventory }, report) =>
    inventory.ofKind("StatefulSet").flatMap((set): Finding[] => {
      const policy = (set as unknown as { spec?: { persistentVolumeClaimRetentionPolicy?: { whenDeleted?: string; whenScaled?: string } } })
        .spec?.persistentVolumeClaimRetentionPolicy;
      return policy?.whenDeleted === "Delete" || policy?.whenScaled === "Delete"
        ? [
            report(
              set,
              "spec.persistentVolumeClaimRetentionPolicy",
              "deleting or scaling the set deletes its data volumes",
              "set whenDeleted and whenScaled to Retain",
            ),
          ]
        : [];
    }),
  ),
  defineRule("scaling/hpa-target", "error", "an HPA targets an existing workload that leaves replicas to it", ({ inventory }, report) =>
    inventory.ofKind("HorizontalPodAutoscaler").flatMap((hpa): Finding[] => {
      const ref = (hpa as unknown as HpaLike).spec?.scaleTargetRef;
      if (!ref) return [];
      const target = inventory.get(ref.kind, hpa.metadata.namespace, ref.name);
      if (!target)
        return [
          report(
            hpa,
            "spec.scaleTargetRef",
            `${ref.kind} ${ref.name} does not exist: the HPA scales nothing`,
            "point scaleTargetRef at the workload",
          ),
        ];
      const replicas = (target as unknown as { spec?: { replicas?: number } }).spec?.replicas;
      return replicas !== undefined
        ? [
            report(
              target,
              "spec.replicas",
              `replicas is set while HPA ${hpa.metadata.name} manages this ${ref.kind}: every apply resets the HPA's choice`,
              "remove spec.replicas; the HPA's minReplicas sets the floor",
              "warning",
            ),
          ]
        : [];
    }),
  ),
  defineRule("scaling/pdb", "error", "PodDisruptionBudgets select pods and can ever allow a disruption", ({ inventory }, report) =>
    inventory.ofKind("PodDisruptionBudget").flatMap((pdb): Finding[] => {
      const spec = (pdb as unknown as PdbLike).spec;
      const pods = inventory.podsMatching(pdb.metadata.namespace ?? "default", spec?.selector?.matchLabels);
      if (pods.length === 0)
        return [report(pdb, "spec.selector", "selects no pods: it protects nothing", "match the workload's pod labels")];
      const replicas = pods.reduce((n, t) => n + t.replicas, 0);
      const hpa = inventory
        .ofKind("HorizontalPodAutoscaler")
        .find((h) => pods.some((t) => t.owner.metadata.name === (h as unknown as HpaLike).spec?.scaleTargetRef?.name));
      const floor = hpa ? ((hpa as unknown as HpaLike).spec?.minReplicas ?? 1) : replicas;
      if (spec?.maxUnavailable === 0 || spec?.maxUnavailable === "0%")
        return [report(pdb, "spec.maxUnavailable", "maxUnavailable 0 blocks every node drain forever", "use maxUnavailable: 1")];
      if (typeof spec?.minAvailable === "number" && spec.minAvailable >= floor) {
        return [
          report(
            pdb,
            "spec.minAvailable",
            `minAvailable ${spec.minAvailable} with ${floor} replica(s)${hpa ? ` (HPA ${hpa.metadata.name} minReplicas)` : ""}: no pod may ever be evicted, so node drains hang`,
            `use minAvailable ≤ ${Math.max(0, floor - 1)} or maxUnavailable: 1${hpa ? ", or raise the HPA's minReplicas" : ""}`,
          ),
        ];
      }
      return [];
    }),
  ),
];
