import type { Placed } from "../render/context.ts";

/**
 * The order a platform comes up in. NetworkPolicies go with the namespace, not at the end: pods
 * then never run a moment without them, and every flow they need is allowed by its own policy.
 */
export const PHASES = [
  { name: "foundation", title: "namespace, RBAC, config, network policies, GPU device plugin", timeoutShare: 0.1 },
  { name: "certificates", title: "issuers and certificates", timeoutShare: 0.2 },
  { name: "storage", title: "storage and Qdrant", timeoutShare: 0.3 },
  { name: "engine", title: "engine (model download, vLLM or llama.cpp)", timeoutShare: 1 },
  { name: "gateway", title: "gateway and adapters", timeoutShare: 0.2 },
  { name: "edge", title: "ingress, autoscaling, monitoring", timeoutShare: 0.1 },
] as const;

export type PhaseName = (typeof PHASES)[number]["name"];

const BY_COMPONENT: Record<string, PhaseName> = {
  namespace: "foundation",
  rbac: "foundation",
  network: "foundation",
  gpu: "foundation",
  certificates: "certificates",
  qdrant: "storage",
  embeddings: "engine",
  engine: "engine",
  gateway: "gateway",
  ingress: "edge",
  scaling: "edge",
  observability: "edge",
};

/** The phase an object belongs to, from the component that rendered it (or its kind, for raw objects). */
export function phaseOf(placed: Pick<Placed, "component" | "object">): PhaseName {
  if (placed.component.startsWith("adapters/")) return "gateway";
  const byComponent = BY_COMPONENT[placed.component];
  if (byComponent) return byComponent;
  switch (placed.object.kind) {
    case "Namespace":
    case "ServiceAccount":
    case "Role":
    case "RoleBinding":
    case "ClusterRole":
    case "ClusterRoleBinding":
    case "NetworkPolicy":
    case "CustomResourceDefinition":
      return "foundation";
    case "Certificate":
    case "ClusterIssuer":
    case "Issuer":
      return "certificates";
    case "PersistentVolumeClaim":
    case "StatefulSet":
      return "storage";
    default:
      return "edge";
  }
}

export function groupByPhase<T extends Pick<Placed, "component" | "object">>(placed: readonly T[]): Map<PhaseName, T[]> {
  const groups = new Map<PhaseName, T[]>(PHASES.map((p) => [p.name, []]));
  for (const p of placed) groups.get(phaseOf(p))?.push(p);
  return groups;
}
