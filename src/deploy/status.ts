import { CoreV1Api } from "@kubernetes/client-node";
import { parse } from "yaml";
import type { AdapterState, AdapterStatus } from "../adapters/agent.ts";
import { AGENT_PORT } from "../adapters/port.ts";
import type { KubeClient } from "../kube/client.ts";
import { resourceName } from "../kube/client.ts";
import { isPodOf, podsReason, type PodLike as EvidencePod } from "../kube/evidence.ts";
import { evaluateReadiness } from "../kube/readiness.ts";
import { isGpuResource } from "../plan/gpu-pods.ts";
import type { KubeObject } from "../render/context.ts";
import { liveSet } from "./inventory.ts";
import { compareWithSpec, latestRevision, type LiveRevision } from "./status-spec.ts";

export interface StatusReport {
  readonly namespace: string;
  /** The environment asked about (`--env`); null when no spec was compared. */
  readonly environment: string | null;
  /** The live revision: the latest recorded, with the environment it was applied for. */
  readonly revision: LiveRevision | null;
  /** The live members of the platform's ApplySet, each with its readiness. */
  readonly objects: readonly { readonly component: string; readonly resource: string; readonly state: string; readonly reason: string }[];
  /** Objects the spec renders for the environment that are not live in the platform's ApplySet. */
  readonly missing: readonly string[];
  /** Live members the spec does not render for the environment, or renders for another. */
  readonly stale: readonly string[];
  /** Why the platform is not ready, each in words; empty when it is. */
  readonly reasons: readonly string[];
  /** What to run about `missing` and `stale`; null when nothing. */
  readonly fix: string | null;
  /** Per node and GPU resource it advertises (`nvidia.com/gpu`, or MIG's `nvidia.com/mig-<profile>`). */
  readonly gpu: readonly { readonly node: string; readonly resource: string; readonly used: number; readonly total: number }[];
  /** Each adapter of the gateway's config, with its state on every engine replica that serves it. */
  readonly adapters: readonly AdapterReport[];
  readonly certificates: readonly { readonly name: string; readonly ready: boolean; readonly notAfter: string | null }[];
  /** Containers of the platform's pods that have restarted, and how their last run ended. */
  readonly restarts: readonly ContainerRestart[];
  readonly url: string | null;
  /**
   * When the URL's certificate comes from the platform's own CA (a CA ClusterIssuer, not a public
   * ACME one): the Secret whose `ca.crt` clients must trust.
   */
  readonly trust: { readonly namespace: string; readonly secret: string } | null;
  readonly healthy: boolean;
  /** When `destroy` removed the platform and kept its data (the objects listed are what it kept); null otherwise. */
  readonly destroyedAt: string | null;
}

interface ContainerStatusLike {
  readonly name: string;
  readonly restartCount?: number;
  readonly lastState?: {
    readonly terminated?: { readonly reason?: string; readonly exitCode?: number; readonly signal?: number; readonly finishedAt?: string };
  };
}

export interface PodLike {
  readonly metadata?: { readonly name?: string; readonly namespace?: string; readonly labels?: Readonly<Record<string, string>> };
  readonly spec?: {
    readonly nodeName?: string;
    readonly containers?: readonly { readonly resources?: { readonly limits?: Record<string, string> } }[];
  };
  readonly status?: {
    readonly phase?: string;
    readonly containerStatuses?: readonly ContainerStatusLike[];
    readonly initContainerStatuses?: readonly ContainerStatusLike[];
  };
}

/** A container that the kubelet restarted: how often, and how its last run ended (Error, OOMKilled, …). */
export interface ContainerRestart {
  readonly pod: string;
  readonly container: string;
  readonly restarts: number;
  readonly lastTermination: { readonly reason: string; readonly exitCode: number | null; readonly finishedAt: string | null } | null;
}

/** Restarted containers of the namespace's pods (sidecars and init containers included), by pod and container. */
export function containerRestarts(pods: readonly PodLike[], namespace: string): ContainerRestart[] {
  return pods
    .filter((pod) => pod.metadata?.namespace === namespace)
    .flatMap((pod) =>
      [...(pod.status?.initContainerStatuses ?? []), ...(pod.status?.containerStatuses ?? [])]
        .filter((container) => (container.restartCount ?? 0) > 0)
        .map((container) => {
          const last = container.lastState?.terminated;
          return {
            pod: pod.metadata?.name ?? "",
            container: container.name,
            restarts: container.restartCount ?? 0,
            lastTermination: last
              ? { reason: last.reason ?? "Unknown", exitCode: last.exitCode ?? null, finishedAt: last.finishedAt ?? null }
              : null,
          };
        }),
    )
    .sort((a, b) => a.pod.localeCompare(b.pod) || a.container.localeCompare(b.container));
}

/** An adapter on one engine replica, as its adapter agent reports it ("unknown": the agent did not answer). */
export interface AdapterReplica {
  readonly pod: string;
  readonly state: AdapterState | "unknown";
  readonly reason?: string;
  readonly since?: string;
}

export interface AdapterReport {
  readonly name: string;
  /** "-" for an adapter the agents still report but the config no longer has (just removed). */
  readonly route: string;
  readonly upstreamModel: string;
  /** Loaded on at least one replica; null when its LoRA state is unknown (no agent answered) or it has no LoRA. */
  readonly loaded: boolean | null;
  /** Empty for an adapter without a LoRA of its own (it runs on the base model everywhere). */
  readonly replicas: readonly AdapterReplica[];
}

/** What one engine pod's agent answered: its adapters, or why there is no answer. */
export type AgentAnswer = { readonly adapters: readonly AdapterStatus[] } | { readonly error: string };

interface GatewayAdapter {
  readonly name: string;
  readonly route: string;
  readonly upstreamModel: string;
  readonly upstream: string;
}

/**
 * Each adapter's state per engine replica: the agents' answers laid over the gateway's adapters
 * (an adapter's LoRA is on the pods of its engine, `upstream`), then what the agents still report
 * of adapters the config no longer has.
 */
export function adapterReplicas(
  adapters: readonly GatewayAdapter[],
  baseModel: string,
  enginePods: ReadonlyMap<string, readonly string[]>,
  answers: ReadonlyMap<string, AgentAnswer>,
): AdapterReport[] {
  const replicaOf = (pod: string, lora: string): AdapterReplica => {
    const answer = answers.get(pod);
    if (answer === undefined || "error" in answer)
      return { pod, state: "unknown", reason: answer === undefined ? "no answer from its adapter agent" : answer.error };
    const found = answer.adapters.find((a) => a.name === lora);
    if (found === undefined)
      return {
        pod,
        state: "unknown",
        reason: "not in its agent's adapter set yet (kubelet updates the mounted ConfigMap within a minute or so)",
      };
    return { pod, state: found.state, ...(found.reason !== undefined ? { reason: found.reason } : {}), since: found.since };
  };
  const known = new Set<string>();
  const reports: AdapterReport[] = adapters.map((adapter) => {
    known.add(adapter.upstreamModel);
    if (adapter.upstreamModel === baseModel)
      return { name: adapter.name, route: adapter.route, upstreamModel: adapter.upstreamModel, loaded: null, replicas: [] };
    const replicas = (enginePods.get(adapter.upstream) ?? []).map((pod) => replicaOf(pod, adapter.upstreamModel));
    const answered = replicas.filter((r) => r.state !== "unknown");
    return {
      name: adapter.name,
      route: adapter.route,
      upstreamModel: adapter.upstreamModel,
      loaded: answered.length === 0 ? null : answered.some((r) => r.state === "loaded"),
      replicas,
    };
  });
  const removed = new Map<string, AdapterReplica[]>();
  for (const [pod, answer] of answers) {
    if ("error" in answer) continue;
    for (const adapter of answer.adapters) {
      if (known.has(adapter.name)) continue;
      removed.set(adapter.name, [
        ...(removed.get(adapter.name) ?? []),
        { pod, state: adapter.state, ...(adapter.reason !== undefined ? { reason: adapter.reason } : {}), since: adapter.since },
      ]);
    }
  }
  for (const [name, replicas] of [...removed].sort(([a], [b]) => a.localeCompare(b))) {
    reports.push({ name, route: "-", upstreamModel: name, loaded: replicas.some((r) => r.state === "loaded"), replicas });
  }
  return reports;
}

/** GET /status of the adapter agent in each pod, through the API server's pod proxy. */
async function agentAnswers(client: KubeClient, namespace: string, pods: readonly string[]): Promise<Map<string, AgentAnswer>> {
  const api = client.config.makeApiClient(CoreV1Api);
  const answers = await Promise.all(
    pods.map(async (pod): Promise<[string, AgentAnswer]> => {
      try {
        const body = await Promise.race([
          api.connectGetNamespacedPodProxyWithPath({ name: `${pod}:${AGENT_PORT}`, namespace, path: "status" }),
          new Promise<never>((_, reject) => setTimeout(() => reject(new Error("no answer in 3 s")), 3000).unref()),
        ]);
        const parsed = (typeof body === "string" ? JSON.parse(body) : body) as { adapters?: AdapterStatus[] };
        return [pod, { adapters: parsed.adapters ?? [] }];
      } catch (error) {
        return [
          pod,
          { error: `its adapter agent did not answer through the API server (${error instanceof Error ? error.message : String(error)})` },
        ];
      }
    }),
  );
  return new Map(answers);
}

type GpuUse = StatusReport["gpu"][number];

/** True when the Certificate writing `secret` is issued by a ClusterIssuer of the platform that is a CA (spec.ca). */
function signedByOwnCa(members: readonly KubeObject[], namespace: string, secret: string): boolean {
  const certificate = members.find(
    (o) =>
      o.kind === "Certificate" &&
      o.metadata.namespace === namespace &&
      (o as unknown as { spec?: { secretName?: string } }).spec?.secretName === secret,
  ) as (KubeObject & { spec?: { issuerRef?: { kind?: string; name?: string } } }) | undefined;
  const issuerRef = certificate?.spec?.issuerRef;
  if (issuerRef?.kind !== "ClusterIssuer") return false;
  const issuer = members.find((o) => o.kind === "ClusterIssuer" && o.metadata.name === issuerRef.name) as
    (KubeObject & { spec?: { ca?: unknown } }) | undefined;
  return issuer?.spec?.ca !== undefined;
}

/** Per node, each GPU resource it advertises and how much of it the pods running there hold. */
export function gpuUse(
  nodes: readonly (KubeObject & { status?: { allocatable?: Record<string, string> } })[],
  pods: readonly PodLike[],
): GpuUse[] {
  // What the running pods hold, per node and resource, in one pass over the pods.
  const held = new Map<string, number>();
  for (const pod of pods) {
    if (pod.status?.phase === "Succeeded" || pod.status?.phase === "Failed") continue;
    for (const container of pod.spec?.containers ?? []) {
      for (const [resource, count] of Object.entries(container.resources?.limits ?? {})) {
        const key = `${pod.spec?.nodeName ?? ""}|${resource}`;
        if (isGpuResource(resource)) held.set(key, (held.get(key) ?? 0) + Number(count));
      }
    }
  }
  return nodes.flatMap((node) =>
    Object.entries(node.status?.allocatable ?? {})
      .filter(([resource, count]) => isGpuResource(resource) && Number(count) > 0)
      .sort(([a], [b]) => a.localeCompare(b))
      .map(([resource, count]) => ({
        node: node.metadata.name,
        resource,
        total: Number(count),
        used: held.get(`${node.metadata.name}|${resource}`) ?? 0,
      })),
  );
}

export interface StatusOptions {
  /** What the spec renders for `environment`: compared with what is live. @default nothing is compared */
  readonly rendered?: readonly KubeObject[];
  /** The environment `rendered` is for. Required with `rendered`. */
  readonly environment?: string;
  /** The platform's instance label (its name): finds the StatefulSet claims a destroy kept. @default they are not listed */
  readonly instance?: string;
}

/**
 * Each component's state and why, what the spec renders that is not live, GPU slices per node,
 * adapters, certificates and the URL to call.
 */
export async function platformStatus(client: KubeClient, namespace: string, options: StatusOptions = {}): Promise<StatusReport> {
  const { parent, members } = await liveSet(client, namespace);
  const destroyedAt = parent?.destroyedAt ?? null;
  const storageClasses = await client.list<KubeObject & { volumeBindingMode?: string }>("storage.k8s.io/v1", "StorageClass");
  const wffc = new Set(storageClasses.filter((s) => s.volumeBindingMode === "WaitForFirstConsumer").map((s) => s.metadata.name));
  // destroy keeps a StatefulSet's claims (Qdrant's volumes) too; they were never set members, so
  // they are found as destroy finds them, by the platform's instance label.
  const kept =
    destroyedAt !== null && options.instance !== undefined
      ? (await client.list("v1", "PersistentVolumeClaim", namespace, `app.kubernetes.io/instance=${options.instance}`)).filter(
          (claim) =>
            !members.some(
              (m) => m.kind === claim.kind && m.metadata.name === claim.metadata.name && m.metadata.namespace === claim.metadata.namespace,
            ),
        )
      : [];
  const pods = (await client.list("v1", "Pod")) as unknown as (PodLike & EvidencePod)[];
  // The claims that exist, so that a scheduler's word that one was missing is not shown once it is there.
  const claims = new Set((await client.list("v1", "PersistentVolumeClaim", namespace).catch(() => [])).map((claim) => claim.metadata.name));
  const objects = [...members, ...kept].map((object) => {
    const readiness = evaluateReadiness(object, { waitForFirstConsumer: (name) => wffc.has(name ?? "") });
    // A workload that waits says why in its pods' words (the scheduler, an image pull, a crash loop), as apply does.
    const why =
      readiness.state === "progressing"
        ? podsReason(
            pods.filter((pod) => isPodOf(object, pod)),
            claims,
          )
        : undefined;
    const state = why?.hard === true ? "failed" : readiness.state;
    return {
      component: object.metadata.labels?.["app.kubernetes.io/component"] ?? "-",
      resource: resourceName(object),
      state,
      reason: why === undefined ? readiness.reason : `${readiness.reason} — ${why.message}`,
    };
  });

  const nodes = await client.list<KubeObject & { status?: { allocatable?: Record<string, string> } }>("v1", "Node");
  const gpu = gpuUse(nodes, pods);

  const gatewayConfig = members.find((o) => o.kind === "ConfigMap" && o.metadata.name === "gateway") as
    (KubeObject & { data?: Record<string, string> }) | undefined;
  const config = gatewayConfig?.data?.["config.yaml"]
    ? (parse(gatewayConfig.data["config.yaml"]) as { baseModel?: { name: string }; adapters?: GatewayAdapter[] })
    : undefined;
  // The engine pods that run (an agent answers only there), by the engine they belong to.
  const enginePods = new Map<string, string[]>();
  for (const pod of pods) {
    const labels = pod.metadata?.labels ?? {};
    if (
      pod.metadata?.namespace !== namespace ||
      labels["app.kubernetes.io/component"] !== "engine" ||
      pod.status?.phase !== "Running" ||
      pod.metadata.name === undefined
    )
      continue;
    const engine = labels["app.kubernetes.io/name"] ?? "";
    enginePods.set(engine, [...(enginePods.get(engine) ?? []), pod.metadata.name]);
  }
  const answers = config ? await agentAnswers(client, namespace, [...enginePods.values()].flat().sort()) : new Map<string, AgentAnswer>();
  const adapters = adapterReplicas(config?.adapters ?? [], config?.baseModel?.name ?? "", enginePods, answers);

  const certificates = members
    .filter((o) => o.kind === "Certificate")
    .map((o) => {
      const status = (o as unknown as { status?: { notAfter?: string; conditions?: { type: string; status: string }[] } }).status;
      return {
        name: resourceName(o),
        ready: status?.conditions?.some((c) => c.type === "Ready" && c.status === "True") ?? false,
        notAfter: status?.notAfter ?? null,
      };
    });
  const ingress = members.find((o) => o.kind === "Ingress" || o.kind === "HTTPProxy") as
    | (KubeObject & {
        spec?: {
          rules?: { host?: string }[];
          tls?: { secretName?: string }[];
          virtualhost?: { fqdn?: string; tls?: { secretName?: string } };
        };
      })
    | undefined;
  const host = ingress?.spec?.rules?.[0]?.host ?? ingress?.spec?.virtualhost?.fqdn;
  const tlsSecret = ingress?.spec?.tls?.[0]?.secretName ?? ingress?.spec?.virtualhost?.tls?.secretName;
  const ingressNamespace = ingress?.metadata.namespace ?? namespace;
  const environment = options.environment ?? null;
  const comparison =
    options.rendered !== undefined && environment !== null && destroyedAt === null && parent !== undefined
      ? await compareWithSpec(client, { namespace, environment, rendered: options.rendered, members })
      : {
          missing: parent === undefined || destroyedAt !== null ? (options.rendered ?? []).map((o) => resourceName(o)) : [],
          stale: [],
          reasons: [],
          fix: null,
          revision: await latestRevision(client, namespace),
        };
  const notReady = objects.filter((o) => o.state !== "ready").map((o) => `${o.resource}: ${o.reason}`);
  const reasons = [
    ...(parent === undefined ? ["nothing is deployed: no ApplySet parent (ConfigMap diatonic-applyset) in the namespace"] : []),
    ...(destroyedAt !== null ? [`destroyed at ${destroyedAt}`] : []),
    ...comparison.reasons,
    ...notReady,
  ];
  return {
    namespace,
    environment,
    revision: comparison.revision,
    objects,
    missing: comparison.missing,
    stale: comparison.stale,
    reasons,
    fix: comparison.fix ?? (parent === undefined && environment !== null ? `diatonic apply --env ${environment}` : null),
    gpu,
    adapters,
    certificates,
    restarts: containerRestarts(pods, namespace),
    url: host ? `https://${host}/v1` : null,
    trust:
      tlsSecret !== undefined && signedByOwnCa(members, ingressNamespace, tlsSecret)
        ? { namespace: ingressNamespace, secret: tlsSecret }
        : null,
    healthy: destroyedAt === null && members.length > 0 && reasons.length === 0,
    destroyedAt,
  };
}
