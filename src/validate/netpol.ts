import type { KubeObject } from "../render/context.ts";
import type { Inventory } from "./inventory.ts";

/** One side of a connection: pods with known labels, or something outside known only by namespace. */
export type Endpoint =
  | { readonly kind: "pods"; readonly namespace: string; readonly labels: Readonly<Record<string, string>>; readonly name: string }
  | { readonly kind: "namespace"; readonly namespace: string; readonly labels?: Readonly<Record<string, string>>; readonly name: string }
  | { readonly kind: "address"; readonly name: string };

interface LabelSelector {
  readonly matchLabels?: Readonly<Record<string, string>>;
  readonly matchExpressions?: readonly { readonly key: string; readonly operator: string; readonly values?: readonly string[] }[];
}

interface PolicyPeer {
  readonly podSelector?: LabelSelector;
  readonly namespaceSelector?: LabelSelector;
  readonly ipBlock?: { readonly cidr: string; readonly except?: readonly string[] };
}

interface PolicyPort {
  readonly port?: number | string;
  readonly protocol?: string;
  readonly endPort?: number;
}

interface PolicySpec {
  readonly podSelector?: LabelSelector;
  readonly policyTypes?: readonly string[];
  readonly ingress?: readonly { readonly from?: readonly PolicyPeer[]; readonly ports?: readonly PolicyPort[] }[];
  readonly egress?: readonly { readonly to?: readonly PolicyPeer[]; readonly ports?: readonly PolicyPort[] }[];
}

export function selectorMatches(selector: LabelSelector | undefined, labels: Readonly<Record<string, string>>): boolean {
  if (!selector) return true;
  const byLabels = Object.entries(selector.matchLabels ?? {}).every(([k, v]) => labels[k] === v);
  const byExpressions = (selector.matchExpressions ?? []).every((e) => {
    const value = labels[e.key];
    switch (e.operator) {
      case "In":
        return value !== undefined && (e.values ?? []).includes(value);
      case "NotIn":
        return value === undefined || !(e.values ?? []).includes(value);
      case "Exists":
        return value !== undefined;
      case "DoesNotExist":
        return value === undefined;
      default:
        return false;
    }
  });
  return byLabels && byExpressions;
}

function spec(policy: KubeObject): PolicySpec {
  return (policy as unknown as { spec?: PolicySpec }).spec ?? {};
}

function types(policy: KubeObject): string[] {
  const s = spec(policy);
  if (s.policyTypes && s.policyTypes.length > 0) return [...s.policyTypes];
  return s.egress ? ["Ingress", "Egress"] : ["Ingress"];
}

/** Evaluates NetworkPolicies the way the network plugin would, for the endpoints the platform knows. */
export class PolicyEvaluator {
  private readonly policies: KubeObject[];
  constructor(private readonly inventory: Inventory) {
    this.policies = inventory.ofKind("NetworkPolicy");
  }

  private namespaceLabels(namespace: string, given?: Readonly<Record<string, string>>): Record<string, string> {
    const object = this.inventory.get("Namespace", undefined, namespace);
    return { ...(given ?? {}), ...(object?.metadata.labels ?? {}), "kubernetes.io/metadata.name": namespace };
  }

  /** Policies that select these pods for a direction. */
  selecting(pods: Extract<Endpoint, { kind: "pods" }>, direction: "Ingress" | "Egress"): KubeObject[] {
    return this.policies.filter(
      (p) =>
        (p.metadata.namespace ?? "default") === pods.namespace &&
        types(p).includes(direction) &&
        selectorMatches(spec(p).podSelector, pods.labels),
    );
  }

  isolated(pods: Extract<Endpoint, { kind: "pods" }>, direction: "Ingress" | "Egress"): boolean {
    return this.selecting(pods, direction).length > 0;
  }

  private peerMatches(peer: PolicyPeer, policyNamespace: string, other: Endpoint): boolean {
    // An address outside the cluster (the API server, the internet) is unknown here: any ipBlock may
    // hold it. In-cluster endpoints are taken to match only an ipBlock of everything.
    if (peer.ipBlock) return other.kind === "address" || (peer.ipBlock.cidr === "0.0.0.0/0" && (peer.ipBlock.except ?? []).length === 0);
    if (other.kind === "address") return false;
    const namespaceOk = peer.namespaceSelector
      ? selectorMatches(
          peer.namespaceSelector,
          this.namespaceLabels(other.namespace, other.kind === "namespace" ? other.labels : undefined),
        )
      : other.namespace === policyNamespace;
    if (!namespaceOk) return false;
    if (!peer.podSelector) return true;
    if (other.kind === "namespace")
      return Object.keys(peer.podSelector.matchLabels ?? {}).length === 0 && (peer.podSelector.matchExpressions ?? []).length === 0
        ? true
        : other.labels !== undefined && selectorMatches(peer.podSelector, other.labels);
    return selectorMatches(peer.podSelector, other.labels);
  }

  private portMatches(
    ports: readonly PolicyPort[] | undefined,
    port: number,
    protocol: string,
    pods?: Extract<Endpoint, { kind: "pods" }>,
  ): boolean {
    if (!ports || ports.length === 0) return true;
    return ports.some((p) => {
      if ((p.protocol ?? "TCP") !== protocol) return false;
      if (p.port === undefined) return true;
      if (typeof p.port === "number") return p.endPort ? port >= p.port && port <= p.endPort : p.port === port;
      const named = pods
        ? this.inventory
            .podsMatching(pods.namespace, pods.labels)
            .flatMap((t) => t.spec.containers.flatMap((c) => c.ports ?? []))
            .find((cp) => cp.name === p.port)
        : undefined;
      return named?.containerPort === port;
    });
  }

  /** Whether `from` may open a connection to `to` on `port` (both the sender's egress and the receiver's ingress). */
  allows(from: Endpoint, to: Endpoint, port: number, protocol: string): { allowed: boolean; blockedBy?: "egress" | "ingress" } {
    if (from.kind === "pods") {
      const egress = this.selecting(from, "Egress");
      const ok =
        egress.length === 0 ||
        egress.some((p) =>
          (spec(p).egress ?? []).some(
            (rule) =>
              (rule.to === undefined || rule.to.length === 0 || rule.to.some((peer) => this.peerMatches(peer, from.namespace, to))) &&
              this.portMatches(rule.ports, port, protocol, to.kind === "pods" ? to : undefined),
          ),
        );
      if (!ok) return { allowed: false, blockedBy: "egress" };
    }
    if (to.kind === "pods") {
      const ingress = this.selecting(to, "Ingress");
      const ok =
        ingress.length === 0 ||
        ingress.some((p) =>
          (spec(p).ingress ?? []).some(
            (rule) =>
              (rule.from === undefined || rule.from.length === 0 || rule.from.some((peer) => this.peerMatches(peer, to.namespace, from))) &&
              this.portMatches(rule.ports, port, protocol, to),
          ),
        );
      if (!ok) return { allowed: false, blockedBy: "ingress" };
    }
    return { allowed: true };
  }
}
