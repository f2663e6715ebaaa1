import type { IDeployment } from "kubernetes-models/apps/v1/Deployment";
import type { IIoK8sApiCoreV1Container as Container } from "kubernetes-models/v1/Container";
import type { IIoK8sApiCoreV1Volume as Volume } from "kubernetes-models/v1/Volume";
import type { IService } from "kubernetes-models/v1/Service";
import { serverRoot } from "../gateway/config.ts";
import type { EmbeddingsSpec, PlatformSpec } from "../spec/schema.ts";
import type { KubeObject, Placed, RenderContext } from "./context.ts";
import { downloadEnvVolume, modelDownloadContainer } from "./engine-pod.ts";
import { httpProbe, resourcesOf, restrictedContainer, restrictedPod } from "./pod.ts";

/** The embeddings server's names and port (text-embeddings-inference or the engine image). */
export const embeddingsNames = { service: "embeddings", cacheClaim: "embeddings-cache", upstream: "embeddings" } as const;
export const EMBEDDINGS_PORT = 8080;
export const TEI_IMAGE = "ghcr.io/huggingface/text-embeddings-inference:cpu-1.9.4";
const EMBEDDINGS_UID = 1000;
const CACHE_DIR = "/data";

export function ragEnabled(spec: PlatformSpec): boolean {
  return spec.adapters.some((adapter) => adapter.rag !== undefined);
}

/** The platform runs its own embeddings server: some adapter uses RAG and the spec names no endpoint. */
export function embeddingsDeployed(spec: PlatformSpec): boolean {
  return ragEnabled(spec) && spec.embeddings.endpoint === undefined;
}

/** The base URL the gateway embeds with, or undefined when no adapter uses RAG. */
export function embeddingsUrl(ctx: RenderContext): string | undefined {
  const { spec } = ctx.platform;
  if (!ragEnabled(spec)) return undefined;
  // Written as the gateway reads it: the server's root, without an OpenAI base URL's /v1.
  if (spec.embeddings.endpoint !== undefined) return serverRoot(spec.embeddings.endpoint);
  return `http://${ctx.serviceHost(embeddingsNames.service)}:${EMBEDDINGS_PORT}`;
}

/** text-embeddings-inference: it fetches the model into its cache claim itself. */
function teiPod(e: EmbeddingsSpec): { initContainers: Container[]; container: Container; volumes: Volume[] } {
  return {
    initContainers: [],
    container: {
      name: "embeddings",
      image: e.image ?? TEI_IMAGE,
      args: [
        "--model-id",
        e.model,
        ...(e.revision !== undefined ? ["--revision", e.revision] : []),
        "--hostname",
        "0.0.0.0",
        "--port",
        String(EMBEDDINGS_PORT),
        // Chunks are counted in approximate tokens; one that is longer than the model's 512 is cut for its vector only.
        "--auto-truncate",
        "--json-output",
      ],
      ports: [{ name: "http", containerPort: EMBEDDINGS_PORT, protocol: "TCP" as const }],
      env: [
        { name: "HUGGINGFACE_HUB_CACHE", value: CACHE_DIR },
        { name: "HOME", value: "/tmp" },
      ],
      resources: resourcesOf(e.resources),
      startupProbe: httpProbe("/health", "http", { period: 10, failures: 60 }),
      readinessProbe: httpProbe("/health", "http", { period: 10, failures: 3 }),
      livenessProbe: httpProbe("/health", "http", { period: 20, failures: 3, timeout: 5 }),
      securityContext: restrictedContainer(),
      volumeMounts: [
        { name: "cache", mountPath: CACHE_DIR },
        { name: "tmp", mountPath: "/tmp" },
      ],
    },
    volumes: [],
  };
}

const LLAMACPP_MODELS = "/models";

/** Where the llamacpp server's GGUF lands (the download's folder is named after the repo). */
export function embeddingsModelPath(e: EmbeddingsSpec): string {
  return `${LLAMACPP_MODELS}/${e.model.replace("/", "--")}/${e.file ?? ""}`;
}

/**
 * The engine image serving a GGUF embedding model with `diatonic engine` (its /v1/embeddings, under
 * the model's id as its served name), the file fetched first by the same init container as the base
 * model's, through the same optional download ConfigMap (a mirror, a proxy).
 */
function llamaCppPod(spec: PlatformSpec, e: EmbeddingsSpec): { initContainers: Container[]; container: Container; volumes: Volume[] } {
  const dir = `${LLAMACPP_MODELS}/${e.model.replace("/", "--")}`;
  const item = `${dir}=${e.model}@${e.revision ?? "main"}#${e.file ?? ""}`;
  return {
    // Embedding models are not gated: the base model's token is not sent along.
    initContainers: [modelDownloadContainer(spec, { item, volume: "cache", mountPath: LLAMACPP_MODELS, withToken: false })],
    container: {
      name: "embeddings",
      image: e.image ?? spec.model.downloader.image,
      args: [
        "engine",
        "--model",
        embeddingsModelPath(e),
        "--served-model-name",
        e.model,
        "--host",
        "0.0.0.0",
        "--port",
        String(EMBEDDINGS_PORT),
        "--parallel",
        "1",
      ],
      ports: [{ name: "http", containerPort: EMBEDDINGS_PORT, protocol: "TCP" as const }],
      env: [
        { name: "HOME", value: "/home/engine" },
        { name: "XDG_CACHE_HOME", value: "/home/engine/.cache" },
      ],
      resources: resourcesOf(e.resources),
      // The file is on the volume before the server starts: loading a small model takes seconds.
      startupProbe: httpProbe("/health", "http", { period: 2, failures: 90 }),
      readinessProbe: httpProbe("/health", "http", { period: 10, failures: 3 }),
      livenessProbe: httpProbe("/health", "http", { period: 20, failures: 3, timeout: 5 }),
      securityContext: restrictedContainer(),
      volumeMounts: [
        { name: "cache", mountPath: LLAMACPP_MODELS, readOnly: true },
        { name: "tmp", mountPath: "/tmp" },
        { name: "home", mountPath: "/home/engine" },
      ],
    },
    volumes: [{ name: "home", emptyDir: { sizeLimit: "256Mi" } }, downloadEnvVolume(spec)],
  };
}

/**
 * The embeddings server (bge-small by default) with an OpenAI-compatible /v1/embeddings:
 * text-embeddings-inference on CPU, or the engine image on llama.cpp (`embeddings.server`). Each pod
 * keeps the model in its own cache claim; /health answers 200 only once it is loaded.
 */
export function renderEmbeddings(ctx: RenderContext): Placed[] {
  const { spec } = ctx.platform;
  if (!embeddingsDeployed(spec)) return [];
  const e = spec.embeddings;
  const name = embeddingsNames.service;
  const pod = e.server === "llamacpp" ? llamaCppPod(spec, e) : teiPod(e);
  const deployment: IDeployment = {
    apiVersion: "apps/v1",
    kind: "Deployment",
    metadata: ctx.meta(name, "embeddings"),
    spec: {
      replicas: e.replicas,
      revisionHistoryLimit: 5,
      // Each pod has its own cache, so a rollout can start the new pod first.
      strategy: { type: "RollingUpdate", rollingUpdate: { maxSurge: 1, maxUnavailable: 0 } },
      selector: { matchLabels: ctx.selector(name) },
      template: {
        metadata: { labels: ctx.labels(name, "embeddings") },
        spec: {
          serviceAccountName: name,
          automountServiceAccountToken: false,
          securityContext: restrictedPod(EMBEDDINGS_UID),
          terminationGracePeriodSeconds: 30,
          ...(pod.initContainers.length > 0 ? { initContainers: pod.initContainers } : {}),
          containers: [pod.container],
          volumes: [
            {
              // The pod's own claim (made and deleted with it): replicas on several nodes never share a ReadWriteOnce volume.
              name: "cache",
              ephemeral: {
                volumeClaimTemplate: {
                  metadata: { labels: ctx.labels(embeddingsNames.cacheClaim, "storage") },
                  spec: {
                    accessModes: ["ReadWriteOnce"],
                    storageClassName: spec.storageClass,
                    resources: { requests: { storage: e.cache } },
                  },
                },
              },
            },
            { name: "tmp", emptyDir: { sizeLimit: "256Mi" } },
            ...pod.volumes,
          ],
        },
      },
    },
  };
  const service: IService = {
    apiVersion: "v1",
    kind: "Service",
    metadata: ctx.meta(name, "embeddings"),
    spec: { selector: ctx.selector(name), ports: [{ name: "http", port: EMBEDDINGS_PORT, targetPort: "http", protocol: "TCP" as const }] },
  };
  return [deployment, service].map((object) => ({ object: object as KubeObject, component: "embeddings" }));
}
