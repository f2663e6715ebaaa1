import type { PlatformSpec } from "../spec/schema.ts";
import { names, ports, type RenderContext, qdrantEnabled } from "./context.ts";
import { EMBEDDINGS_PORT, embeddingsDeployed, embeddingsNames, ragEnabled } from "./embeddings.ts";
import { QDRANT_SNAPSHOT_JOB } from "./qdrant-snapshots.ts";

/**
 * cert-manager's HTTP-01 solver pods: it creates them in the Certificate's namespace while an order
 * is pending, with this label, listening on this port (cert-manager's defaults).
 */
export const ACME_SOLVER = { labels: { "acme.cert-manager.io/http01-solver": "true" }, port: 8089, name: "acme-http01-solver" } as const;

/** Who talks: one of the platform's workloads, or something outside the namespace. */
export type Peer =
  | { readonly kind: "workload"; readonly name: string }
  | { readonly kind: "acme-solver" }
  | { readonly kind: "ingress-controller"; readonly namespace: string }
  | { readonly kind: "monitoring"; readonly namespace: string }
  | { readonly kind: "dns" }
  | { readonly kind: "internet"; readonly reason: string };

/** One connection the platform needs; NetworkPolicies allow exactly these and nothing else. */
export interface Flow {
  readonly from: Peer;
  readonly to: Peer;
  readonly port: number;
  readonly protocol: "TCP" | "UDP";
  readonly purpose: string;
}

export function ingressControllerNamespace(spec: PlatformSpec): string {
  return spec.ingress.controllerNamespace ?? (spec.ingress.className === "contour" ? "projectcontour" : "ingress-nginx");
}

/** The ingress certificate comes from an ACME issuer that solves HTTP-01: solver pods must be reachable. */
export function acmeHttp01(spec: PlatformSpec): boolean {
  return spec.ingress.enabled && spec.ingress.tls.issuer !== "selfSigned" && spec.certificates.acme?.solver.type === "http01";
}

/** The engine workloads the gateway calls: the shared engine and every dedicated one. */
export function engineWorkloads(spec: PlatformSpec): string[] {
  return [names.engine, ...spec.adapters.filter((a) => a.serving === "dedicated").map((a) => names.dedicatedEngine(a.name))];
}

/** The platform's traffic graph, derived from the spec: the single source for its NetworkPolicies. */
export function trafficGraph(ctx: RenderContext): Flow[] {
  const { spec } = ctx.platform;
  const workload = (name: string): Peer => ({ kind: "workload", name });
  const flows: Flow[] = [];
  const add = (from: Peer, to: Peer, port: number, purpose: string, protocol: "TCP" | "UDP" = "TCP") =>
    flows.push({ from, to, port, protocol, purpose });

  if (spec.ingress.enabled)
    add(
      { kind: "ingress-controller", namespace: ingressControllerNamespace(spec) },
      workload(names.gateway),
      ports.gateway,
      "clients reach the gateway through the ingress",
    );
  if (acmeHttp01(spec)) {
    add(
      { kind: "ingress-controller", namespace: ingressControllerNamespace(spec) },
      { kind: "acme-solver" },
      ACME_SOLVER.port,
      "the ACME server's HTTP-01 challenge reaches cert-manager's solver through the ingress",
    );
  }
  for (const engine of engineWorkloads(spec)) {
    add(workload(names.gateway), workload(engine), ports.engine, "the gateway forwards completions to the engine");
    add(
      workload(names.gateway),
      workload(engine),
      ports.agent,
      "the gateway tells each engine pod's adapter agent which adapters to keep loaded",
    );
  }
  if (qdrantEnabled(spec)) {
    add(workload(names.gateway), workload(names.qdrant), ports.qdrantHttp, "the gateway retrieves and ingests through Qdrant's REST API");
    if (spec.qdrant.replicas > 1) add(workload(names.qdrant), workload(names.qdrant), ports.qdrantP2p, "Qdrant peers replicate over Raft");
    if (spec.qdrant.backups.enabled)
      add(workload(QDRANT_SNAPSHOT_JOB), workload(names.qdrant), ports.qdrantHttp, "the snapshot CronJob calls Qdrant's snapshot API");
  }
  if (embeddingsDeployed(spec)) {
    add(workload(names.gateway), workload(embeddingsNames.service), EMBEDDINGS_PORT, "the gateway embeds queries and documents");
    add(
      workload(embeddingsNames.service),
      { kind: "internet", reason: "Hugging Face" },
      443,
      "the embeddings server fetches its model once into its cache",
    );
  } else if (ragEnabled(spec) && spec.embeddings.endpoint !== undefined) {
    const endpoint = new URL(spec.embeddings.endpoint);
    const port = endpoint.port !== "" ? Number(endpoint.port) : endpoint.protocol === "https:" ? 443 : 80;
    add(
      workload(names.gateway),
      { kind: "internet", reason: "the embeddings endpoint" },
      port,
      "the gateway embeds with the spec's embeddings endpoint",
    );
  }
  const loras = spec.adapters.filter((a) => a.lora !== undefined);
  const downloads = "huggingFace" in spec.model.source || loras.some((a) => a.lora && !("path" in a.lora.source));
  if (downloads) {
    for (const engine of engineWorkloads(spec))
      add(
        workload(engine),
        { kind: "internet", reason: "Hugging Face and LoRA URLs" },
        443,
        "the model download and the adapter agent fetch weights over HTTPS",
      );
  }
  const monitoring: Peer = { kind: "monitoring", namespace: spec.monitoring.namespace };
  add(monitoring, workload(names.gateway), ports.gateway, "Prometheus scrapes the gateway's /metrics");
  for (const engine of engineWorkloads(spec)) {
    add(monitoring, workload(engine), ports.engine, "Prometheus scrapes the engine's /metrics");
    add(monitoring, workload(engine), ports.agent, "Prometheus scrapes the adapter agent's /metrics");
  }
  if (qdrantEnabled(spec)) add(monitoring, workload(names.qdrant), ports.qdrantHttp, "Prometheus scrapes Qdrant's /metrics");
  return flows;
}
