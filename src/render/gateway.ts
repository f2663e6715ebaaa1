import type { IDeployment } from "kubernetes-models/apps/v1/Deployment";
import type { IConfigMap } from "kubernetes-models/v1/ConfigMap";
import type { IService } from "kubernetes-models/v1/Service";
import type { IIoK8sApiCoreV1Volume as Volume } from "kubernetes-models/v1/Volume";
import { GatewayConfig, type GatewayConfigInput } from "../gateway/config.ts";
import { adapterRoute } from "../spec/rules.ts";
import { API_VERSION, ONCE, type LoraSourceSpec } from "../spec/schema.ts";
import { toYaml } from "../write/yaml.ts";
import { names, ports, qdrantEnabled, type KubeObject, type Placed, type RenderContext } from "./context.ts";
import { embeddingsNames, embeddingsUrl } from "./embeddings.ts";
import { engineServiceFor, upstreamModelFor } from "./engine.ts";
import { gatewayAutoscaled } from "./scaling.ts";
import { ADAPTER_COPIES, maxCpuLoras } from "../spec/lora-cache.ts";
import { httpProbe, resourcesOf, restrictedContainer, restrictedPod } from "./pod.ts";
import { shownUrl } from "../model/shown-url.ts";

const GATEWAY_UID = 1000;
export const GATEWAY_CONFIG_KEY = "config.yaml";
const CONFIG_DIR = "/etc/diatonic/gateway";
const KEYS_DIR = "/etc/diatonic/keys";
const QDRANT_KEY_DIR = "/etc/diatonic/qdrant";
const GATEWAY_HEADLESS = `${names.gateway}-headless`;

/**
 * A LoRA source as the console shows it: never what could be a secret (a URL's credentials, or its
 * query, where signed URLs keep their token).
 */
export function describeLoraSource(source: LoraSourceSpec): string {
  if ("huggingFace" in source) {
    const { repo, revision, file } = source.huggingFace;
    return `huggingFace ${repo}@${revision}${file !== undefined ? ` ${file}` : ""}`;
  }
  if ("url" in source) return `url ${shownUrl(source.url.url)} (sha256 ${source.url.sha256.slice(0, 12)}…)`;
  return `path ${source.path}`;
}

/** The gateway's routing table and limits, checked against the schema the gateway itself loads. */
export function gatewayConfig(ctx: RenderContext): GatewayConfig {
  const { spec } = ctx.platform;
  const upstreams: GatewayConfigInput["upstreams"] = {};
  const addUpstream = (service: string) => {
    upstreams[service] = {
      url: `http://${ctx.serviceHost(`${service}-headless`)}:${ports.engine}`,
      discovery: "dns",
      residency: { pollMs: 1000 },
      // The gateway places adapters on the replicas through each pod's adapter agent (src/gateway/placement.ts).
      // Every adapter on two replicas at least, so that losing one leaves each adapter loaded somewhere.
      placement: { agentPort: ports.agent, minReplicas: ADAPTER_COPIES },
    };
  };
  addUpstream(names.engine);
  const embeddings = embeddingsUrl(ctx);
  if (embeddings !== undefined) upstreams[embeddingsNames.upstream] = { url: embeddings, discovery: "static" };
  const input: GatewayConfigInput = {
    apiVersion: API_VERSION,
    kind: "GatewayConfig",
    platform: ctx.platform.name,
    ...(ctx.platform.environment !== "base" ? { environment: ctx.platform.environment } : {}),
    server: {
      port: ports.gateway,
      maxBodyBytes: spec.gateway.maxBodyBytes,
      logPrompts: spec.gateway.logPrompts,
      // Keyless callers name the gateway by the ingress host, its Service as `gateway.<namespace>`
      // (from another namespace) or the spec's names; the gateway refuses other outside names without a key.
      ...(spec.gateway.auth === "optional"
        ? {
            keylessHosts: [
              ...new Set([
                ...(spec.ingress.enabled ? [spec.ingress.host] : []),
                `${names.gateway}.${ctx.namespace}`,
                ...spec.gateway.keylessHosts,
              ]),
            ],
          }
        : {}),
    },
    auth: { mode: spec.gateway.auth, keysFile: `${KEYS_DIR}/${spec.gateway.apiKeysSecret.key}` },
    // The limits are the platform's: each replica enforces its share, counting the ready replicas.
    rateLimits: { ...spec.gateway.rateLimits, sharedBy: { dns: ctx.serviceHost(GATEWAY_HEADLESS), refreshMs: 5000 } },
    upstreams,
    // The engines' LoRA slots (--max-loras) until each engine reports them on its /metrics, and the
    // LoRAs vLLM keeps in host memory (--max-cpu-loras), which placement puts no more adapters than on a replica.
    routing:
      spec.model.engine.kind === "vllm"
        ? { policy: "diatonic", slots: spec.model.engine.maxLoras, cpuLoras: maxCpuLoras(spec.model.engine) }
        : { policy: "diatonic", slots: 4 },
    baseModel: { name: spec.model.name, upstream: names.engine },
    // RAG adapters embed with the embeddings server; otherwise the llama.cpp engine serves /v1/embeddings itself.
    ...(embeddings !== undefined
      ? { embeddings: { upstream: embeddingsNames.upstream, model: spec.embeddings.model } }
      : spec.model.engine.kind === "llamacpp"
        ? { embeddings: { upstream: names.engine, model: spec.model.name } }
        : {}),
    ...(qdrantEnabled(spec)
      ? {
          vectorStore: {
            kind: "qdrant" as const,
            url: `http://${ctx.serviceHost(names.qdrant)}:${ports.qdrantHttp}`,
            apiKeyFile: `${QDRANT_KEY_DIR}/${spec.qdrant.apiKeySecret.key}`,
            // A copy of every shard on each Qdrant pod, and a majority to acknowledge a write: an
            // acknowledged write survives the loss of any one pod, and writes go on while it is gone.
            ...(spec.qdrant.replicas > 1
              ? { replicationFactor: spec.qdrant.replicas, writeConsistencyFactor: Math.floor(spec.qdrant.replicas / 2) + 1 }
              : {}),
          },
        }
      : {}),
    adapters: spec.adapters.map((adapter) => {
      const upstream = engineServiceFor(adapter);
      if (!(upstream in upstreams)) addUpstream(upstream);
      return {
        name: adapter.name,
        route: adapterRoute(adapter),
        upstreamModel: upstreamModelFor(spec, adapter),
        upstream,
        description: adapter.description,
        ...(adapter.lora !== undefined ? { lora: { source: describeLoraSource(adapter.lora.source), rank: adapter.lora.rank } } : {}),
        ...(adapter.systemPrompt !== undefined ? { systemPrompt: adapter.systemPrompt } : {}),
        sampling: adapter.sampling,
        ...(adapter.rag ? { rag: adapter.rag } : {}),
        limits: {
          concurrency: adapter.limits.concurrency,
          queue: adapter.limits.queue,
          timeoutMs: adapter.limits.timeoutSeconds * 1000,
          firstByteTimeoutMs: adapter.limits.firstByteTimeoutSeconds * 1000,
        },
      };
    }),
  };
  return GatewayConfig.parse(input, ONCE);
}

export function renderGateway(ctx: RenderContext): Placed[] {
  const { spec } = ctx.platform;
  const config = gatewayConfig(ctx);
  const configMap: IConfigMap = {
    apiVersion: "v1",
    kind: "ConfigMap",
    metadata: ctx.meta(names.gateway, "gateway"),
    data: { [GATEWAY_CONFIG_KEY]: toYaml(config) },
  };
  const volumes: Volume[] = [
    { name: "config", configMap: { name: names.gateway } },
    // Keys are optional only where auth is: a missing Secret then means "no keys", not a stuck pod.
    { name: "api-keys", secret: { secretName: spec.gateway.apiKeysSecret.name, optional: spec.gateway.auth === "optional" } },
    { name: "tmp", emptyDir: { sizeLimit: "256Mi" } },
  ];
  const mounts = [
    { name: "config", mountPath: CONFIG_DIR, readOnly: true },
    { name: "api-keys", mountPath: KEYS_DIR, readOnly: true },
    { name: "tmp", mountPath: "/tmp" },
  ];
  if (config.vectorStore?.kind === "qdrant") {
    volumes.push({ name: "qdrant-api-key", secret: { secretName: spec.qdrant.apiKeySecret.name } });
    mounts.push({ name: "qdrant-api-key", mountPath: QDRANT_KEY_DIR, readOnly: true });
  }
  const deployment: IDeployment = {
    apiVersion: "apps/v1",
    kind: "Deployment",
    metadata: ctx.meta(names.gateway, "gateway"),
    spec: {
      // Under an HPA the replica count is the HPA's: a replicas field here would fight it on every apply.
      ...(gatewayAutoscaled(spec) ? {} : { replicas: spec.gateway.replicas }),
      revisionHistoryLimit: 5,
      strategy: { type: "RollingUpdate", rollingUpdate: { maxSurge: 1, maxUnavailable: 0 } },
      selector: { matchLabels: ctx.selector(names.gateway) },
      template: {
        metadata: { labels: ctx.labels(names.gateway, "gateway") },
        spec: {
          serviceAccountName: names.gateway,
          automountServiceAccountToken: false,
          securityContext: restrictedPod(GATEWAY_UID),
          // Streams in flight get time to finish after the endpoint is removed.
          terminationGracePeriodSeconds: 60,
          topologySpreadConstraints: [
            {
              maxSkew: 1,
              topologyKey: "kubernetes.io/hostname",
              whenUnsatisfiable: "ScheduleAnyway",
              labelSelector: { matchLabels: ctx.selector(names.gateway) },
            },
          ],
          containers: [
            {
              name: "gateway",
              image: spec.gateway.image,
              args: ["gateway", "--config", `${CONFIG_DIR}/${GATEWAY_CONFIG_KEY}`, "--port", String(ports.gateway)],
              ports: [{ name: "http", containerPort: ports.gateway, protocol: "TCP" as const }],
              env: [{ name: "NODE_ENV", value: "production" }],
              resources: resourcesOf(spec.gateway.resources),
              readinessProbe: httpProbe("/readyz", "http", { period: 5, failures: 2 }),
              livenessProbe: httpProbe("/healthz", "http", { period: 10, failures: 3 }),
              securityContext: restrictedContainer(),
              volumeMounts: mounts,
            },
          ],
          volumes,
        },
      },
    },
  };
  const port = [{ name: "http", port: ports.gateway, targetPort: "http", protocol: "TCP" as const }];
  const service: IService = {
    apiVersion: "v1",
    kind: "Service",
    metadata: ctx.meta(names.gateway, "gateway"),
    spec: { selector: ctx.selector(names.gateway), ports: port },
  };
  // Lists the ready gateway pods: each counts them to enforce its share of the platform's rate limits.
  const headless: IService = {
    apiVersion: "v1",
    kind: "Service",
    metadata: ctx.meta(GATEWAY_HEADLESS, "gateway"),
    spec: { clusterIP: "None", selector: ctx.selector(names.gateway), ports: port },
  };
  return [configMap, deployment, service, headless].map((object) => ({ object: object as KubeObject, component: "gateway" }));
}
