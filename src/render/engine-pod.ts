// What every engine pod carries besides the engine: the init container that puts the base model on
// the node before the engine starts, the adapter agent (a native sidecar) that fetches LoRA files
// into the pod's own cache and loads them at runtime, and the volumes they share.
import type { IIoK8sApiCoreV1Container as Container } from "kubernetes-models/v1/Container";
import type { IIoK8sApiCoreV1Volume as Volume } from "kubernetes-models/v1/Volume";
import { AGENT_PORT } from "../adapters/port.ts";
import type { PlatformSpec } from "../spec/schema.ts";
import { names, ports, type RenderContext } from "./context.ts";
import { httpProbe, resourcesOf, restrictedContainer } from "./pod.ts";

export const MODELS_MOUNT = "/models";
export const ADAPTERS_MOUNT = "/adapters";
const ADAPTER_SET_DIR = "/etc/diatonic/adapters";
export const ADAPTER_SET_KEY = "adapters.yaml";

type Mounts = NonNullable<Container["volumeMounts"]>;

/** Where the base model lives inside the engine container. */
export function modelPath(spec: PlatformSpec): string {
  const source = spec.model.source;
  if ("existingClaim" in source) return source.existingClaim.path ? `${MODELS_MOUNT}/${source.existingClaim.path}` : MODELS_MOUNT;
  const dir = `${MODELS_MOUNT}/${spec.model.name}`;
  return source.huggingFace.file ? `${dir}/${source.huggingFace.file}` : dir;
}

/**
 * How the models volume is shared. A claim the operator made is mounted read-only as given. A
 * ReadWriteMany claim is one volume for every pod, filled once (the download takes a lock). Under
 * ReadWriteOnce each pod gets its own claim (a generic ephemeral volume, made and deleted with the
 * pod): one ReadWriteOnce volume mounted by pods on two nodes fails with a Multi-Attach error.
 */
export type ModelStorage = "existing-claim" | "shared" | "per-pod";

export function modelStorage(spec: PlatformSpec): ModelStorage {
  if ("existingClaim" in spec.model.source) return "existing-claim";
  return spec.model.accessMode === "ReadWriteMany" ? "shared" : "per-pod";
}

function modelsVolume(ctx: RenderContext): Volume {
  const { spec } = ctx.platform;
  const source = spec.model.source;
  if ("existingClaim" in source) return { name: "models", persistentVolumeClaim: { claimName: source.existingClaim.name, readOnly: true } };
  if (modelStorage(spec) === "shared") return { name: "models", persistentVolumeClaim: { claimName: names.modelsClaim } };
  return {
    name: "models",
    ephemeral: {
      volumeClaimTemplate: {
        metadata: { labels: ctx.labels(names.modelsClaim, "storage") },
        spec: {
          accessModes: ["ReadWriteOnce"],
          storageClassName: spec.storageClass,
          resources: { requests: { storage: spec.model.size } },
        },
      },
    },
  };
}

/** `DIR=REPO@REVISION[#FILE]` for `diatonic model-download`, or undefined when the model is on a claim already. */
function downloadItem(spec: PlatformSpec): string | undefined {
  const source = spec.model.source;
  if (!("huggingFace" in source)) return undefined;
  const hf = source.huggingFace;
  return `${MODELS_MOUNT}/${spec.model.name}=${hf.repo}@${hf.revision}${hf.file ? `#${hf.file}` : ""}`;
}

/** Where the downloads' ConfigMap is also mounted, so that its keys can be files (a private mirror's CA). */
export const DOWNLOAD_ENV_MOUNT = "/etc/diatonic/download-env";
const DOWNLOAD_ENV_VOLUME = "download-env";

/**
 * The optional ConfigMap that points downloads at a mirror or proxy: its keys are the downloads'
 * environment and, mounted, files beside it, so that `NODE_EXTRA_CA_CERTS:
 * /etc/diatonic/download-env/ca.crt` with the CA in key `ca.crt` trusts a mirror's own certificate.
 */
export function downloadEnvVolume(spec: PlatformSpec): Volume {
  return { name: DOWNLOAD_ENV_VOLUME, configMap: { name: spec.model.downloader.envConfigMap, optional: true } };
}

/** The Hugging Face token (when `withToken`), and the optional ConfigMap as environment and files. */
function downloadEnv(spec: PlatformSpec, withToken = true): Pick<Container, "env" | "envFrom"> {
  const token = withToken ? spec.model.hfTokenSecret : undefined;
  return {
    env: [
      { name: "HOME", value: "/tmp" },
      ...(token ? [{ name: "HF_TOKEN", valueFrom: { secretKeyRef: { name: token.name, key: token.key } } }] : []),
    ],
    envFrom: [{ configMapRef: { name: spec.model.downloader.envConfigMap, optional: true } }],
  };
}

const downloadEnvMount = { name: DOWNLOAD_ENV_VOLUME, mountPath: DOWNLOAD_ENV_MOUNT, readOnly: true };

export interface DownloadContainerOptions {
  /** `DIR=REPO@REVISION[#FILE]`, DIR inside `volume`'s mount. */
  readonly item: string;
  /** The volume the files land in, and where it is mounted. */
  readonly volume: string;
  readonly mountPath: string;
  /** Send the spec's Hugging Face token (gated repos). @default true */
  readonly withToken?: boolean;
}

/**
 * The init container that runs `diatonic model-download` before the server starts, so the weights
 * are on the node first; the pod needs `downloadEnvVolume` and a `tmp` emptyDir beside it.
 */
export function modelDownloadContainer(spec: PlatformSpec, options: DownloadContainerOptions): Container {
  return {
    name: "model-download",
    image: spec.model.downloader.image,
    args: ["model-download", options.item],
    ...downloadEnv(spec, options.withToken ?? true),
    resources: { requests: { cpu: "100m", memory: "256Mi" }, limits: { cpu: "1", memory: "1Gi" } },
    securityContext: restrictedContainer(),
    volumeMounts: [{ name: options.volume, mountPath: options.mountPath }, { name: "tmp", mountPath: "/tmp" }, downloadEnvMount],
  };
}

export interface EnginePodParts {
  readonly volumes: Volume[];
  /** The engine container's mounts. */
  readonly mounts: Mounts;
  readonly initContainers: Container[];
}

/** The engine pod's volumes and init containers; `adapterSet` names its adapters ConfigMap. */
export function enginePodParts(ctx: RenderContext, adapterSet: string): EnginePodParts {
  const { spec } = ctx.platform;
  const agent = spec.model.adapterAgent;
  const volumes: Volume[] = [
    modelsVolume(ctx),
    { name: "adapters", emptyDir: { sizeLimit: agent.cacheSize } },
    { name: "adapter-set", configMap: { name: adapterSet } },
    { name: "tmp", emptyDir: { sizeLimit: "1Gi" } },
    { name: "home", emptyDir: { sizeLimit: "4Gi" } },
    downloadEnvVolume(spec),
  ];
  const mounts: Mounts = [
    { name: "models", mountPath: MODELS_MOUNT, readOnly: true },
    { name: "adapters", mountPath: ADAPTERS_MOUNT, readOnly: true },
    { name: "tmp", mountPath: "/tmp" },
    { name: "home", mountPath: "/home/engine" },
  ];
  if (spec.model.engine.kind === "vllm") {
    // vLLM's workers exchange tensors through shared memory; the container default of 64Mi is too small.
    volumes.push({ name: "dshm", emptyDir: { medium: "Memory", sizeLimit: spec.model.engine.shmSize } });
    mounts.push({ name: "dshm", mountPath: "/dev/shm" });
  }
  const initContainers: Container[] = [];
  const item = downloadItem(spec);
  if (item !== undefined) initContainers.push(modelDownloadContainer(spec, { item, volume: "models", mountPath: MODELS_MOUNT }));
  initContainers.push({
    name: "adapter-agent",
    image: agent.image,
    // A native sidecar: it starts before the engine, runs beside it, and stops after it.
    restartPolicy: "Always",
    args: [
      "adapter-agent",
      "--config",
      `${ADAPTER_SET_DIR}/${ADAPTER_SET_KEY}`,
      "--engine",
      `http://127.0.0.1:${ports.engine}`,
      "--cache",
      ADAPTERS_MOUNT,
      "--port",
      String(AGENT_PORT),
    ],
    ports: [{ name: "agent", containerPort: AGENT_PORT, protocol: "TCP" }],
    ...downloadEnv(spec),
    resources: resourcesOf(agent.resources),
    // No readiness probe: the pod is Ready when the engine serves the base model, whatever the adapters do.
    startupProbe: httpProbe("/healthz", "agent", { period: 2, failures: 30 }),
    livenessProbe: httpProbe("/healthz", "agent", { period: 20, failures: 3 }),
    securityContext: restrictedContainer(),
    volumeMounts: [
      { name: "adapter-set", mountPath: ADAPTER_SET_DIR, readOnly: true },
      { name: "adapters", mountPath: ADAPTERS_MOUNT },
      { name: "tmp", mountPath: "/tmp" },
      downloadEnvMount,
    ],
  });
  return { volumes, mounts, initContainers };
}
