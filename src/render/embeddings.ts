import type { IDeployment } from "kubernetes-models/apps/v1/Deployment";
import type { IService } from "kubernetes-models/v1/Service";
import type { PlatformSpec } from "../spec/schema.ts";
import type { KubeObject, Placed, RenderContext } from "./context.ts";
import { httpProbe, resourcesOf, restrictedContainer, restrictedPod } from "./pod.ts";

/** The embeddings server's names and port (text-embeddings-inference). */
export const embeddingsNames = { service: "embeddings", cacheClaim: "embeddings-cache", upstream: "embeddings" } as const;
export const EMBEDDINGS_PORT = 8080;
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
  return spec.embeddings.endpoint ?? `http://${ctx.serviceHost(embeddingsNames.service)}:${EMBEDDINGS_PORT}`;
}

/**
 * Hugging Face text-embeddings-inference on CPU serving a small model (bge-small by default) with an
 * OpenAI-compatible /v1/embeddings. Each pod downloads the model into its own cache claim; /health
 * answers 200 only once it is loaded, so the startup probe allows for the download.
 */
export function renderEmbeddings(ctx: RenderContext): Placed[] {
  const { spec } = ctx.platform;
  if (!embeddingsDeployed(spec)) return [];
  const e = spec.embeddings;
  const name = embeddingsNames.service;
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
          containers: [
            {
              name: "embeddings",
              image: e.image,
              args: [
                "--model-id", e.model,
                ...(e.revision !== undefined ? ["--revision", e.revision] : []),
                "--hostname", "0.0.0.0",
                "--port", String(EMBEDDINGS_PORT),
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
          ],
          volumes: [
            {
              // The pod's own claim (made and deleted with it): replicas on several nodes never share a ReadWriteOnce volume.
              name: "cache",
              ephemeral: {
                volumeClaimTemplate: {
                  metadata: { labels: ctx.labels(embeddingsNames.cacheClaim, "storage") },
                  spec: { accessModes: ["ReadWriteOnce"], storageClassName: spec.storageClass, resources: { requests: { storage: e.cache } } },
                },
              },
            },
            { name: "tmp", emptyDir: { sizeLimit: "256Mi" } },
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
