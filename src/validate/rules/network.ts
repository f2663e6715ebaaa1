import type { KubeObject } from "../../render/context.ts";
import { ACME_SOLVER, type Flow, type Peer } from "../../render/traffic.ts";
import { fromYaml } from "../../write/yaml.ts";
import { defineRule } from "../finding.ts";
import type { Inventory, PodTemplate } from "../inventory.ts";
import { PolicyEvaluator, selectorMatches, type Endpoint } from "../netpol.ts";
import type { Finding, RuleContext } from "../types.ts";

interface NeededFlow {
  readonly from: Endpoint;
  readonly to: Endpoint;
  readonly port: number;
  readonly protocol: string;
  readonly purpose: string;
  readonly owner: KubeObject;
}

const podsOf = (t: PodTemplate): Endpoint => ({ kind: "pods", namespace: t.namespace, labels: t.labels, name: t.resource });

function endpointOf(inventory: Inventory, peer: Peer, namespace: string, instance: string): Endpoint | undefined {
  switch (peer.kind) {
    case "workload": {
      const template = inventory.podsMatching(namespace, {
        "app.kubernetes.io/name": peer.name,
        "app.kubernetes.io/instance": instance,
      })[0];
      return template ? podsOf(template) : undefined;
    }
    case "acme-solver":
      return { kind: "pods", namespace, labels: ACME_SOLVER.labels, name: "cert-manager's HTTP-01 solver" };
    case "ingress-controller":
      return { kind: "namespace", namespace: peer.namespace, name: `the ingress controller in ${peer.namespace}` };
    case "monitoring":
      return { kind: "namespace", namespace: peer.namespace, name: `Prometheus in ${peer.namespace}` };
    case "dns":
      return { kind: "namespace", namespace: "kube-system", labels: { "k8s-app": "kube-dns" }, name: "cluster DNS" };
    case "internet":
      return { kind: "address", name: `the internet (${peer.reason})` };
  }
}

/** Flows from the spec's traffic graph, resolved to the pods in the objects. */
function flowsFromGraph(inventory: Inventory, flows: readonly Flow[], namespace: string, instance: string): NeededFlow[] {
  return flows.flatMap((flow) => {
    const from = endpointOf(inventory, flow.from, namespace, instance);
    const to = endpointOf(inventory, flow.to, namespace, instance);
    const ownerTemplate = [from, to].find((e): e is Extract<Endpoint, { kind: "pods" }> => e?.kind === "pods");
    // Solver pods exist only while cert-manager solves a challenge: the Certificate stands for them.
    const owner = ownerTemplate
      ? (inventory.podsMatching(ownerTemplate.namespace, ownerTemplate.labels)[0]?.owner ??
        (flow.to.kind === "acme-solver" ? inventory.ofKind("Certificate").find((c) => c.metadata.namespace === namespace) : undefined))
      : undefined;
    return from && to && owner ? [{ from, to, port: flow.port, protocol: flow.protocol, purpose: flow.purpose, owner }] : [];
  });
}

/** Without a spec: flows read from the objects (ingress backends, the gateway's upstreams, DNS). */
function flowsFromObjects(inventory: Inventory): NeededFlow[] {
  const flows: NeededFlow[] = [];
  const toService = (
    namespace: string,
    name: string,
    port: number | string | undefined,
  ): { pods: PodTemplate[]; port: number | undefined } => {
    const service = inventory.get("Service", namespace, name) as unknown as
      { spec?: { selector?: Record<string, string>; ports?: { name?: string; port: number; targetPort?: number | string }[] } } | undefined;
    const servicePort =
      service?.spec?.ports?.find((p) => (typeof port === "string" ? p.name === port : p.port === port)) ?? service?.spec?.ports?.[0];
    const pods = service?.spec?.selector ? inventory.podsMatching(namespace, service.spec.selector) : [];
    const target = servicePort?.targetPort ?? servicePort?.port;
    const number =
      typeof target === "number"
        ? target
        : pods.flatMap((t) => t.spec.containers.flatMap((c) => c.ports ?? [])).find((p) => p.name === target)?.containerPort;
    return { pods, port: number };
  };
  for (const ingress of inventory.ofKind("Ingress")) {
    const spec = (
      ingress as unknown as {
        spec?: {
          ingressClassName?: string;
          rules?: { http?: { paths: { backend: { service?: { name: string; port?: { name?: string; number?: number } } } }[] } }[];
        };
      }
    ).spec;
    const controller = spec?.ingressClassName === "nginx" ? "ingress-nginx" : undefined;
    if (!controller) continue;
    for (const rule of spec?.rules ?? []) {
      for (const path of rule.http?.paths ?? []) {
        const backend = path.backend.service;
        if (!backend) continue;
        const target = toService(ingress.metadata.namespace ?? "default", backend.name, backend.port?.name ?? backend.port?.number);
        for (const t of target.pods) {
          if (target.port)
            flows.push({
              from: { kind: "namespace", namespace: controller, name: "the ingress controller" },
              to: podsOf(t),
              port: target.port,
              protocol: "TCP",
              purpose: "clients reach the backend through the ingress",
              owner: ingress,
            });
        }
      }
    }
  }
  // A Certificate from an ACME issuer that solves HTTP-01 through nginx: its solver pods must be reachable.
  for (const certificate of inventory.ofKind("Certificate")) {
    const issuerRef = (certificate as unknown as { spec?: { issuerRef?: { kind?: string; name?: string } } }).spec?.issuerRef;
    const namespace = certificate.metadata.namespace ?? "default";
    const issuer =
      issuerRef?.name === undefined
        ? undefined
        : issuerRef.kind === "ClusterIssuer"
          ? inventory.get("ClusterIssuer", undefined, issuerRef.name)
          : inventory.get("Issuer", namespace, issuerRef.name);
    const solvers =
      (
        issuer as unknown as
          { spec?: { acme?: { solvers?: { http01?: { ingress?: { class?: string; ingressClassName?: string } } }[] } } } | undefined
      )?.spec?.acme?.solvers ?? [];
    if (!solvers.some((s) => (s.http01?.ingress?.class ?? s.http01?.ingress?.ingressClassName) === "nginx")) continue;
    flows.push({
      from: { kind: "namespace", namespace: "ingress-nginx", name: "the ingress controller in ingress-nginx" },
      to: { kind: "pods", namespace, labels: ACME_SOLVER.labels, name: "cert-manager's HTTP-01 solver" },
      port: ACME_SOLVER.port,
      protocol: "TCP",
      purpose: "the ACME server's HTTP-01 challenge reaches cert-manager's solver through the ingress",
      owner: certificate,
    });
  }
  for (const configMap of inventory.ofKind("ConfigMap")) {
    const text = (configMap as unknown as { data?: Record<string, string> }).data?.["config.yaml"];
    if (!text?.includes("kind: GatewayConfig")) continue;
    const config = fromYaml(text) as { upstreams?: Record<string, { url?: string }>; vectorStore?: { url?: string } };
    const namespace = configMap.metadata.namespace ?? "default";
    const gateways = inventory.templates.filter(
      (t) => t.namespace === namespace && (t.spec.volumes ?? []).some((v) => v.configMap?.name === configMap.metadata.name),
    );
    const urls = [...Object.values(config.upstreams ?? {}).map((u) => u.url), config.vectorStore?.url].filter(
      (u): u is string => typeof u === "string",
    );
    for (const url of urls) {
      const parsed = new URL(url);
      const [service, ns] = parsed.hostname.split(".");
      if (!service) continue;
      const name = service.endsWith("-headless") ? service : service;
      const target = toService(ns ?? namespace, name, Number(parsed.port) || 80);
      for (const gateway of gateways) {
        for (const t of target.pods) {
          if (target.port)
            flows.push({
              from: podsOf(gateway),
              to: podsOf(t),
              port: target.port,
              protocol: "TCP",
              purpose: `the gateway calls ${parsed.host}`,
              owner: gateway.owner,
            });
        }
      }
    }
  }
  return flows;
}

function neededFlows({ inventory, env }: RuleContext): NeededFlow[] {
  const platform = env.platform;
  const dns: NeededFlow[] = inventory.templates
    .filter((t) => t.longRunning)
    .map((t) => ({
      from: podsOf(t),
      to: { kind: "namespace", namespace: "kube-system", labels: { "k8s-app": "kube-dns" }, name: "cluster DNS" },
      port: 53,
      protocol: "UDP",
      purpose: "name resolution",
      owner: t.owner,
    }));
  // The spec's graph covers the platform's own pods; the objects' wiring covers hand-written ones.
  const graph = env.flows && platform ? flowsFromGraph(inventory, env.flows, platform.spec.namespace, platform.name) : [];
  const seen = new Set<string>();
  return [...dns, ...graph, ...flowsFromObjects(inventory)].filter((flow) => {
    const key = `${flow.from.name}|${flow.to.name}|${flow.port}|${flow.protocol}`;
    if (seen.has(key)) return false;
    seen.add(key);
    return true;
  });
}

function namespacesWithPods(inventory: Inventory): string[] {
  return [...new Set(inventory.templates.map((t) => t.namespace))].sort();
}

export const networkRules = [
  defineRule("network/default-deny", "error", "every pod is isolated by a NetworkPolicy in both directions", ({ inventory }, report) => {
    const evaluator = new PolicyEvaluator(inventory);
    return namespacesWithPods(inventory).flatMap((namespace) => {
      if (inventory.podSecurityLevel(namespace) === "privileged") return [];
      const open = inventory.templates
        .filter((t) => t.namespace === namespace)
        .flatMap((t) =>
          (["Ingress", "Egress"] as const)
            .filter((d) => !evaluator.isolated({ kind: "pods", namespace, labels: t.labels, name: t.resource }, d))
            .map((d) => `${t.resource} (${d.toLowerCase()})`),
        );
      return open.length > 0
        ? [
            report(
              `Namespace/${namespace}`,
              "NetworkPolicy",
              `pods are not isolated: ${open.join(", ")}: any pod in the cluster can reach them, or they can reach anything`,
              "add a default-deny NetworkPolicy (podSelector: {}, policyTypes: [Ingress, Egress]) and allow the needed flows",
            ),
          ]
        : [];
    });
  }),
  defineRule("network/selects-nothing", "warning", "a NetworkPolicy selects some pod", ({ inventory }, report) =>
    inventory.ofKind("NetworkPolicy").flatMap((policy): Finding[] => {
      const selector = (policy as unknown as { spec?: { podSelector?: { matchLabels?: Record<string, string> } } }).spec?.podSelector;
      const namespace = policy.metadata.namespace ?? "default";
      if (!inventory.templates.some((t) => t.namespace === namespace)) return [];
      // cert-manager's solver pods come and go with ACME orders: no object here runs them.
      if (selector?.matchLabels !== undefined && selectorMatches(selector, ACME_SOLVER.labels)) return [];
      const any = inventory.templates.some((t) => t.namespace === namespace && selectorMatches(selector, t.labels));
      return any
        ? []
        : [
            report(
              policy,
              "spec.podSelector",
              `selects no pod in ${namespace}: it protects nothing, and the pods it meant to cover are open or cut off`,
              "make the podSelector match the workload's pod labels",
            ),
          ];
    }),
  ),
  defineRule("network/required-flows", "error", "every flow the platform needs is allowed by the NetworkPolicies", (context, report) => {
    const evaluator = new PolicyEvaluator(context.inventory);
    return neededFlows(context).flatMap((flow): Finding[] => {
      const result = evaluator.allows(flow.from, flow.to, flow.port, flow.protocol);
      if (result.allowed) return [];
      const side = result.blockedBy === "egress" ? `${flow.from.name}'s egress` : `${flow.to.name}'s ingress`;
      return [
        report(
          flow.owner,
          "NetworkPolicy",
          `NetworkPolicies block ${flow.from.name} → ${flow.to.name}:${flow.port}/${flow.protocol} (${flow.purpose}); blocked by ${side}`,
          `allow it in a NetworkPolicy selecting ${result.blockedBy === "egress" ? flow.from.name : flow.to.name}`,
        ),
      ];
    });
  }),
];
