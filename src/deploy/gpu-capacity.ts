// Preflight's GPU capacity: what the platform's pods ask for against what the nodes advertise
// minus what running pods of other workloads already hold. Counting only what is advertised said
// "8 visible, 1 needed" while another tenant's pod held all 8, and the apply then waited it out.
import { unlessForbidden, type KubeClient } from "../kube/client.ts";
import { gpuPodsOf, isGpuResource } from "../plan/gpu-pods.ts";
import type { KubeObject } from "../render/context.ts";
import { Inventory } from "../validate/inventory.ts";
import type { PreflightCheck } from "./preflight.ts";

interface NodeLike extends KubeObject {
  readonly status?: { readonly allocatable?: Record<string, string> };
}

interface PodLike extends KubeObject {
  readonly spec?: {
    readonly nodeName?: string;
    readonly containers?: readonly {
      readonly resources?: { readonly requests?: Record<string, string>; readonly limits?: Record<string, string> };
    }[];
  };
  readonly status?: { readonly phase?: string };
}

/** One pod's hold on a GPU resource on a node. */
export interface GpuHold {
  readonly pod: string;
  readonly node: string;
  readonly resource: string;
  readonly count: number;
}

/**
 * What scheduled pods that have not finished hold of each GPU resource, as the scheduler counts it
 * (requests, which for extended resources equal limits), leaving out pods in `ownNamespaces`: the
 * platform's own pods hold what a re-apply reuses.
 */
export function gpuHolds(pods: readonly PodLike[], ownNamespaces: ReadonlySet<string>): GpuHold[] {
  const holds: GpuHold[] = [];
  for (const pod of pods) {
    const node = pod.spec?.nodeName;
    if (
      node === undefined ||
      node === "" ||
      pod.status?.phase === "Succeeded" ||
      pod.status?.phase === "Failed" ||
      ownNamespaces.has(pod.metadata.namespace ?? "")
    )
      continue;
    const held = new Map<string, number>();
    for (const container of pod.spec?.containers ?? []) {
      for (const [resource, count] of Object.entries(container.resources?.requests ?? container.resources?.limits ?? {})) {
        if (isGpuResource(resource)) held.set(resource, (held.get(resource) ?? 0) + Number(count));
      }
    }
    for (const [resource, count] of held)
      holds.push({ pod: `${pod.metadata.namespace ?? ""}/${pod.metadata.name}`, node, resource, count });
  }
  return holds;
}

/**
 * The GPU resources the platform asks for against what the nodes advertise and running pods of
 * other workloads do not hold, resource by resource: `nvidia.com/gpu`, or under MIG's mixed strategy
 * `nvidia.com/mig-<profile>`. When these credentials may not list pods cluster-wide, only what the
 * nodes advertise is counted, and the check says so.
 */
export async function gpuChecks(client: KubeClient, objects: readonly KubeObject[]): Promise<PreflightCheck[]> {
  const requested = new Map<string, number>();
  for (const pod of gpuPodsOf(new Inventory(objects))) requested.set(pod.gpuResource, (requested.get(pod.gpuResource) ?? 0) + pod.slices);
  if (requested.size === 0) return [];
  const nodes = await client.list<NodeLike>("v1", "Node");
  const own = new Set(
    objects.flatMap((o) => (o.kind === "Namespace" ? [o.metadata.name] : o.metadata.namespace !== undefined ? [o.metadata.namespace] : [])),
  );
  const pods = await unlessForbidden(
    client.list<PodLike>("v1", "Pod", undefined, undefined, "status.phase!=Succeeded,status.phase!=Failed"),
  );
  const holds = gpuHolds(pods ?? [], own);
  return [...requested.entries()].sort().map(([resource, needed]): PreflightCheck => {
    const visible = nodes
      .map((n) => ({ name: n.metadata.name, count: Number(n.status?.allocatable?.[resource] ?? 0) }))
      .filter((n) => n.count > 0);
    const total = visible.reduce((n, v) => n + v.count, 0);
    const where = visible.map((v) => `${v.name}: ${v.count}`).join(", ");
    const unknown = pods === undefined ? " (these credentials may not list pods, so what running pods hold is not counted)" : "";
    if (total < needed)
      return {
        check: "gpu",
        ok: false,
        message: `the platform needs ${needed} ${resource}, the nodes advertise ${total}${where ? ` (${where})` : ""}`,
        fix: gpuFix(resource, total, nodes),
      };
    const taken = holds.filter((h) => h.resource === resource && visible.some((v) => v.name === h.node));
    const held = taken.reduce((n, h) => n + h.count, 0);
    if (held === 0) return { check: "gpu", ok: true, message: `${total} ${resource} visible (${where}), ${needed} needed${unknown}` };
    const holders = `${taken
      .slice(0, 3)
      .map((h) => `${h.pod} on ${h.node}: ${h.count}`)
      .join(", ")}${taken.length > 3 ? `, and ${taken.length - 3} more` : ""}`;
    const free = total - held;
    if (free >= needed)
      return {
        check: "gpu",
        ok: true,
        message: `${free} of ${total} ${resource} free (${where}; running pods of other workloads hold ${held}: ${holders}), ${needed} needed`,
      };
    return {
      check: "gpu",
      ok: false,
      message: `the platform needs ${needed} ${resource}, and ${free} of the ${total} the nodes advertise (${where}) are free: running pods of other workloads hold ${held} (${holders})`,
      fix: "free GPU slices (the pods above hold them), raise gpu.sharing.replicas, lower gpuSlices/replicas, or add GPU nodes",
    };
  });
}

/** What to do when the nodes advertise too little of `resource` (`total` of it). */
function gpuFix(resource: string, total: number, nodes: readonly { status?: { allocatable?: Record<string, string> } }[]): string {
  if (total > 0) return "raise gpu.sharing.replicas, lower gpuSlices/replicas, or add GPU nodes";
  // The same GPUs under the other name: the plugin renames time-slices (.shared) or does not.
  const otherName = resource.endsWith(".shared") ? resource.slice(0, -".shared".length) : `${resource}.shared`;
  if (nodes.some((n) => Number(n.status?.allocatable?.[otherName] ?? 0) > 0)) {
    return `the nodes advertise ${otherName} instead: set gpu.sharing.renameByDefault to ${String(otherName.endsWith(".shared"))}, as their device plugin is configured`;
  }
  if (resource.startsWith("nvidia.com/mig-")) {
    return `label the GPU nodes that should hold them nvidia.com/mig.config=diatonic (diatonic-<name> for those of gpu.sharingConfigs.<name>, as render's note says) so the MIG manager creates the ${resource.slice("nvidia.com/mig-".length)} devices, and check the device plugin runs with migStrategy mixed`;
  }
  return "install the NVIDIA device plugin (gpu.devicePlugin.managedBy: diatonic renders it) or the GPU Operator, and check the GPU nodes are Ready";
}
