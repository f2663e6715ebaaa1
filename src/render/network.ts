import type { INetworkPolicy } from "kubernetes-models/networking.k8s.io/v1/NetworkPolicy";
import type { IIoK8sApiNetworkingV1NetworkPolicyPeer as NetworkPolicyPeer } from "kubernetes-models/networking.k8s.io/v1/NetworkPolicyPeer";
import type { KubeObject, Placed, RenderContext } from "./context.ts";
import { ACME_SOLVER, trafficGraph, type Flow, type Peer } from "./traffic.ts";

const NS_LABEL = "kubernetes.io/metadata.name";

function peerSelector(ctx: RenderContext, peer: Peer): NetworkPolicyPeer[] {
  switch (peer.kind) {
    case "workload":
      return [{ podSelector: { matchLabels: ctx.selector(peer.name) } }];
    case "acme-solver":
      return [{ podSelector: { matchLabels: { ...ACME_SOLVER.labels } } }];
    case "ingress-controller":
    case "monitoring":
      return [{ namespaceSelector: { matchLabels: { [NS_LABEL]: peer.namespace } } }];
    case "dns":
      return [
        { namespaceSelector: { matchLabels: { [NS_LABEL]: "kube-system" } }, podSelector: { matchLabels: { "k8s-app": "kube-dns" } } },
      ];
    case "internet":
      // Their addresses are cluster- and world-specific; the port is what narrows these flows.
      return [{ ipBlock: { cidr: "0.0.0.0/0" } }];
  }
}

function describePeer(peer: Peer): string {
  switch (peer.kind) {
    case "workload":
      return peer.name;
    case "acme-solver":
      return "cert-manager's HTTP-01 solver";
    case "ingress-controller":
      return `the ingress controller (${peer.namespace})`;
    case "monitoring":
      return `monitoring (${peer.namespace})`;
    case "dns":
      return "cluster DNS";
    case "internet":
      return `the internet (${peer.reason})`;
  }
}

function group(flows: readonly Flow[], key: (flow: Flow) => string | undefined): Map<string, Flow[]> {
  const out = new Map<string, Flow[]>();
  for (const flow of flows) {
    const k = key(flow);
    if (k === undefined) continue;
    out.set(k, [...(out.get(k) ?? []), flow]);
  }
  return out;
}

/**
 * Default deny for every pod in the namespace, DNS for all, then one ingress and one egress policy per
 * workload holding exactly the flows of the traffic graph. No flow is written by hand here.
 */
export function renderNetworkPolicies(ctx: RenderContext): Placed[] {
  const flows = trafficGraph(ctx);
  const policy = (name: string, spec: INetworkPolicy["spec"], purpose: string): INetworkPolicy => ({
    apiVersion: "networking.k8s.io/v1",
    kind: "NetworkPolicy",
    metadata: ctx.meta(name, "network-policy", { annotations: { "diatonic.ai/purpose": purpose } }),
    spec,
  });
  const policies: INetworkPolicy[] = [
    policy("default-deny", { podSelector: {}, policyTypes: ["Ingress", "Egress"] }, "every pod starts isolated in both directions"),
    policy(
      "allow-dns",
      {
        podSelector: {},
        policyTypes: ["Egress"],
        egress: [
          {
            to: peerSelector(ctx, { kind: "dns" }),
            ports: [
              { protocol: "UDP", port: 53 },
              { protocol: "TCP", port: 53 },
            ],
          },
        ],
      },
      "every pod resolves names through cluster DNS",
    ),
  ];
  const inbound = group(flows, (f) => (f.to.kind === "workload" ? f.to.name : f.to.kind === "acme-solver" ? ACME_SOLVER.name : undefined));
  for (const [workload, list] of [...inbound.entries()].sort(([a], [b]) => a.localeCompare(b))) {
    policies.push(
      policy(
        `${workload}-ingress`,
        {
          podSelector: { matchLabels: workload === ACME_SOLVER.name ? { ...ACME_SOLVER.labels } : ctx.selector(workload) },
          policyTypes: ["Ingress"],
          ingress: list.map((f) => ({ from: peerSelector(ctx, f.from), ports: [{ protocol: f.protocol, port: f.port }] })),
        },
        list.map((f) => `${describePeer(f.from)} → ${workload}:${f.port} (${f.purpose})`).join("; "),
      ),
    );
  }
  const outbound = group(flows, (f) => (f.from.kind === "workload" ? f.from.name : undefined));
  for (const [workload, list] of [...outbound.entries()].sort(([a], [b]) => a.localeCompare(b))) {
    policies.push(
      policy(
        `${workload}-egress`,
        {
          podSelector: { matchLabels: ctx.selector(workload) },
          policyTypes: ["Egress"],
          egress: list.map((f) => ({ to: peerSelector(ctx, f.to), ports: [{ protocol: f.protocol, port: f.port }] })),
        },
        list.map((f) => `${workload} → ${describePeer(f.to)}:${f.port} (${f.purpose})`).join("; "),
      ),
    );
  }
  return policies.map((object) => ({ object: object as KubeObject, component: "network" }));
}
