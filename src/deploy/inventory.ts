import type { KubeClient } from "../kube/client.ts";
import type { KubeObject } from "../render/context.ts";
import { applySetId, PART_OF, parentRef, readParent, type ParentState } from "./applyset.ts";

/** The live members of the platform's ApplySet, found through its parent's group-kinds. */
export async function liveMembers(client: KubeClient, namespace: string): Promise<KubeObject[]> {
  return (await liveSet(client, namespace)).members;
}

/** The platform's ApplySet: its parent's state (undefined without a parent) and its live members. */
export async function liveSet(
  client: KubeClient,
  namespace: string,
): Promise<{ readonly parent: ParentState | undefined; readonly members: KubeObject[] }> {
  const parent = await client.get(parentRef(namespace));
  if (!parent) return { parent: undefined, members: [] };
  const state = readParent(parent);
  const id = applySetId(namespace);
  const found: KubeObject[] = [];
  for (const gk of state.groupKinds) {
    const [kind, ...group] = gk.split(".");
    const groupName = group.join(".");
    const apiVersion = state.versions[gk] ?? (groupName === "" ? "v1" : `${groupName}/v1`);
    if (!kind) continue;
    const scope = await client.describe(apiVersion, kind);
    if (!scope) continue;
    const spaces = scope.namespaced ? [namespace, ...state.namespaces] : [undefined];
    for (const ns of spaces) found.push(...(await client.list(apiVersion, kind, ns, `${PART_OF}=${id}`)));
  }
  return { parent: state, members: found };
}

/** Delete order: the reverse of how a platform comes up. */
const TEARDOWN = [
  "Ingress",
  "HTTPProxy",
  "HorizontalPodAutoscaler",
  "PodDisruptionBudget",
  "ServiceMonitor",
  "PodMonitor",
  "PrometheusRule",
  "Deployment",
  "Job",
  "CronJob",
  "StatefulSet",
  "DaemonSet",
  "Service",
  "Certificate",
  "Issuer",
  "ClusterIssuer",
  "ConfigMap",
  "RoleBinding",
  "Role",
  "ServiceAccount",
  "NetworkPolicy",
  "PersistentVolumeClaim",
  "Namespace",
];

export function teardownOrder(objects: readonly KubeObject[]): KubeObject[] {
  const rank = (o: KubeObject) => {
    const i = TEARDOWN.indexOf(o.kind);
    return i < 0 ? TEARDOWN.indexOf("ConfigMap") : i;
  };
  return [...objects].sort((a, b) => rank(a) - rank(b));
}
