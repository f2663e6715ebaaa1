import type { IDeployment } from "kubernetes-models/apps/v1/Deployment";
import type { IJob } from "kubernetes-models/batch/v1/Job";
import type { IIoK8sApiCoreV1Container as Container } from "kubernetes-models/v1/Container";
import type { IPersistentVolumeClaim } from "kubernetes-models/v1/PersistentVolumeClaim";
import type { IService } from "kubernetes-models/v1/Service";
import type { IIoK8sApiCoreV1Volume as Volume } from "kubernetes-models/v1/Volume";
import { isGgufLora } from "../spec/rules.ts";
import type { AdapterSpec, LlamaCppEngineSpec, PlatformSpec, VllmEngineSpec } from "../spec/schema.ts";
import { names, ports, type KubeObject, type Placed, type RenderContext } from "./context.ts";
import { gpuResourceName } from "./gpu.ts";
import { contentHash, httpProbe, resourcesOf, restrictedContainer, restrictedPod } from "./pod.ts";

const ENGINE_UID = 1000;
const MODELS_MOUNT = "/models";
const ADAPTERS_MOUNT = "/adapters";

/** Where the base model lives inside the engine container. */
export function modelPath(spec: PlatformSpec): string {
  const source = spec.model.source;
  if ("existingClaim" in source) return source.existingClaim.path ? `${MODELS_MOUNT}/${source.existingClaim.path}` : MODELS_MOUNT;
  const dir = `${MODELS_MOUNT}/${spec.model.name}`;
  return source.huggingFace.file ? `${dir}/${source.huggingFace.file}` : dir;
}

/** Where an adapter's LoRA weights live inside the engine container, or undefined when it has none. */
export function loraPath(adapter: AdapterSpec): string | undefined {
  const lora = adapter.lora;
  if (!lora) return undefined;
  if ("path" in lora.source) return `${ADAPTERS_MOUNT}/${lora.source.path}`;
  const dir = `${ADAPTERS_MOUNT}/${adapter.name}`;
  return lora.source.huggingFace.file ? `${dir}/${lora.source.huggingFace.file}` : dir;
}

/** Adapters the engine can load as LoRAs (llama.cpp loads only GGUF files). */
export function servedLoras(spec: PlatformSpec, adapters: readonly AdapterSpec[] = spec.adapters): AdapterSpec[] {
  return adapters.filter((a) => a.lora && (spec.model.engine.kind === "vllm" || isGgufLora(a.lora.source)));
}

/** The name the gateway sends upstream for an adapter: its LoRA module, or the base model. */
export function upstreamModelFor(spec: PlatformSpec, adapter: AdapterSpec): string {
  return servedLoras(spec, [adapter]).length > 0 ? adapter.name : spec.model.name;
}

function vllmArgs(spec: PlatformSpec, engine: VllmEngineSpec, loras: readonly AdapterSpec[]): string[] {
  const args = [
    "--model", modelPath(spec),
    "--served-model-name", spec.model.name,
    "--host", "0.0.0.0",
    "--port", String(ports.engine),
    "--max-model-len", String(engine.maxModelLen),
    "--gpu-memory-utilization", String(engine.gpuMemoryUtilization),
    "--tensor-parallel-size", String(engine.tensorParallel),
    "--dtype", engine.dtype,
    "--disable-log-requests",
  ];
  if (engine.quantization !== "none") args.push("--quantization", engine.quantization);
  if (loras.length > 0) {
    args.push("--enable-lora", "--max-loras", String(engine.maxLoras), "--max-lora-rank", String(engine.maxLoraRank));
    if (engine.maxCpuLoras !== undefined) args.push("--max-cpu-loras", String(engine.maxCpuLoras));
    args.push("--lora-modules", ...loras.map((a) => `${a.name}=${loraPath(a)}`));
  }
  return [...args, ...engine.extraArgs];
}

function llamaCppArgs(spec: PlatformSpec, engine: LlamaCppEngineSpec, loras: readonly AdapterSpec[]): string[] {
  return [
    "engine",
    "--model", modelPath(spec),
    // The name the gateway sends for the base model (the engine's default is the file's name).
    "--served-model-name", spec.model.name,
    ...loras.flatMap((a) => ["--lora", `${a.name}=${loraPath(a)}`]),
    "--host", "0.0.0.0",
    "--port", String(ports.engine),
    "--parallel", String(engine.parallel),
  ];
}

interface EngineInstance {
  readonly name: string;
  readonly loras: readonly AdapterSpec[];
  readonly gpuSlices: number;
  readonly replicas: number;
}

function engineVolumes(spec: PlatformSpec, withAdapters: boolean): { volumes: Volume[]; mounts: NonNullable<Container["volumeMounts"]> } {
  const source = spec.model.source;
  const modelsClaim = "existingClaim" in source ? source.existingClaim.name : names.modelsClaim;
  const volumes: Volume[] = [
    { name: "models", persistentVolumeClaim: { claimName: modelsClaim, readOnly: true } },
    { name: "tmp", emptyDir: { sizeLimit: "1Gi" } },
    { name: "home", emptyDir: { sizeLimit: "4Gi" } },
  ];
  const mounts: NonNullable<Container["volumeMounts"]> = [
    { name: "models", mountPath: MODELS_MOUNT, readOnly: true },
    { name: "tmp", mountPath: "/tmp" },
    { name: "home", mountPath: "/home/engine" },
  ];
  if (withAdapters) {
    volumes.push({ name: "adapters", persistentVolumeClaim: { claimName: names.adaptersClaim, readOnly: true } });
    mounts.push({ name: "adapters", mountPath: ADAPTERS_MOUNT, readOnly: true });
  }
  if (spec.model.engine.kind === "vllm") {
    // vLLM's workers exchange tensors through shared memory; the container default of 64Mi is too small.
    volumes.push({ name: "dshm", emptyDir: { medium: "Memory", sizeLimit: spec.model.engine.shmSize } });
    mounts.push({ name: "dshm", mountPath: "/dev/shm" });
  }
  return { volumes, mounts };
}

function engineDeployment(ctx: RenderContext, instance: EngineInstance, needsAdapterVolume: boolean): IDeployment {
  const { spec } = ctx.platform;
  const engine = spec.model.engine;
  const { volumes, mounts } = engineVolumes(spec, needsAdapterVolume);
  const vllm = engine.kind === "vllm";
  const gpuLimits: Record<string, string> = vllm ? { [gpuResourceName(spec, engine.migProfile)]: String(instance.gpuSlices) } : {};
  const container: Container = {
    name: "engine",
    image: engine.image,
    ...(vllm ? { args: vllmArgs(spec, engine, instance.loras) } : { args: llamaCppArgs(spec, engine, instance.loras) }),
    ports: [{ name: "http", containerPort: ports.engine, protocol: "TCP" as const }],
    env: [
      { name: "HOME", value: "/home/engine" },
      { name: "XDG_CACHE_HOME", value: "/home/engine/.cache" },
      { name: "HF_HUB_OFFLINE", value: "1" },
      ...(vllm ? [{ name: "VLLM_NO_USAGE_STATS", value: "1" }, { name: "DO_NOT_TRACK", value: "1" }] : []),
    ],
    resources: resourcesOf(engine.resources, gpuLimits),
    // Loading an 8B model takes minutes; the startup probe allows 30 before liveness takes over.
    startupProbe: httpProbe("/health", "http", { period: 10, failures: 180 }),
    readinessProbe: httpProbe("/health", "http", { period: 10, failures: 3 }),
    livenessProbe: httpProbe("/health", "http", { period: 20, failures: 3, timeout: 5 }),
    securityContext: restrictedContainer(),
    volumeMounts: mounts,
  };
  return {
    apiVersion: "apps/v1",
    kind: "Deployment",
    metadata: ctx.meta(instance.name, "engine"),
    spec: {
      replicas: instance.replicas,
      // GPU slices are scarce: a surge pod would wait for a slice the old pod holds. Replace instead.
      strategy: vllm ? { type: "Recreate" } : { type: "RollingUpdate", rollingUpdate: { maxSurge: 1, maxUnavailable: 0 } },
      progressDeadlineSeconds: 3600,
      revisionHistoryLimit: 5,
      selector: { matchLabels: ctx.selector(instance.name) },
      template: {
        metadata: { labels: ctx.labels(instance.name, "engine") },
        spec: {
          serviceAccountName: names.engine,
          automountServiceAccountToken: false,
          securityContext: restrictedPod(ENGINE_UID),
          terminationGracePeriodSeconds: 60,
          ...(vllm
            ? {
                nodeSelector: spec.gpu.nodeSelector,
                tolerations: [{ key: "nvidia.com/gpu", operator: "Exists", effect: "NoSchedule" }],
              }
            : {}),
          containers: [container],
          volumes,
        },
      },
    },
  };
}

function engineServices(ctx: RenderContext, name: string): IService[] {
  const port = [{ name: "http", port: ports.engine, targetPort: "http", protocol: "TCP" as const }];
  return [
    { apiVersion: "v1", kind: "Service", metadata: ctx.meta(name, "engine"), spec: { selector: ctx.selector(name), ports: port } },
    {
      // The gateway resolves every replica behind this name and balances by outstanding requests.
      apiVersion: "v1",
      kind: "Service",
      metadata: ctx.meta(`${name}-headless`, "engine"),
      spec: { clusterIP: "None", selector: ctx.selector(name), ports: port },
    },
  ];
}

function claim(ctx: RenderContext, name: string, size: string, accessMode: string): IPersistentVolumeClaim {
  return {
    apiVersion: "v1",
    kind: "PersistentVolumeClaim",
    metadata: ctx.meta(name, "storage"),
    spec: { accessModes: [accessMode as "ReadWriteOnce" | "ReadWriteMany"], storageClassName: ctx.platform.spec.storageClass, resources: { requests: { storage: size } } },
  };
}

/** `DIR=REPO@REVISION[#FILE]` items for `diatonic model-download`. */
function downloadItems(spec: PlatformSpec): string[] {
  const items: string[] = [];
  const source = spec.model.source;
  if ("huggingFace" in source) {
    const hf = source.huggingFace;
    items.push(`${MODELS_MOUNT}/${spec.model.name}=${hf.repo}@${hf.revision}${hf.file ? `#${hf.file}` : ""}`);
  }
  for (const adapter of servedLoras(spec)) {
    const lora = adapter.lora;
    if (lora && "huggingFace" in lora.source) {
      const hf = lora.source.huggingFace;
      items.push(`${ADAPTERS_MOUNT}/${adapter.name}=${hf.repo}@${hf.revision}${hf.file ? `#${hf.file}` : ""}`);
    }
  }
  return items;
}

/**
 * Fetches the model and Hugging Face LoRAs onto the volumes. Jobs are immutable, so the name carries
 * a hash of what it downloads: a changed source makes a new Job, an unchanged one is left alone.
 */
function downloadJob(ctx: RenderContext, items: string[], withAdapters: boolean): IJob {
  const { spec } = ctx.platform;
  const name = `${names.modelDownload}-${contentHash(items)}`;
  const token = spec.model.hfTokenSecret;
  const volumes: Volume[] = [
    { name: "models", persistentVolumeClaim: { claimName: names.modelsClaim } },
    { name: "tmp", emptyDir: { sizeLimit: "1Gi" } },
  ];
  const mounts: NonNullable<Container["volumeMounts"]> = [
    { name: "models", mountPath: MODELS_MOUNT },
    { name: "tmp", mountPath: "/tmp" },
  ];
  if (withAdapters) {
    volumes.push({ name: "adapters", persistentVolumeClaim: { claimName: names.adaptersClaim } });
    mounts.push({ name: "adapters", mountPath: ADAPTERS_MOUNT });
  }
  return {
    apiVersion: "batch/v1",
    kind: "Job",
    metadata: ctx.meta(name, "model-download"),
    spec: {
      backoffLimit: 4,
      activeDeadlineSeconds: 6 * 3600,
      ttlSecondsAfterFinished: 7 * 24 * 3600,
      template: {
        metadata: { labels: { ...ctx.labels(names.modelDownload, "model-download") } },
        spec: {
          restartPolicy: "OnFailure",
          serviceAccountName: names.modelDownload,
          automountServiceAccountToken: false,
          securityContext: restrictedPod(ENGINE_UID),
          containers: [
            {
              name: "download",
              image: spec.model.downloader.image,
              args: ["model-download", ...items],
              env: [
                { name: "HOME", value: "/tmp" },
                ...(token ? [{ name: "HF_TOKEN", valueFrom: { secretKeyRef: { name: token.name, key: token.key } } }] : []),
              ],
              resources: { requests: { cpu: "100m", memory: "256Mi" }, limits: { cpu: "1", memory: "1Gi" } },
              securityContext: restrictedContainer(),
              volumeMounts: mounts,
            },
          ],
          volumes,
        },
      },
    },
  };
}

export function renderEngine(ctx: RenderContext): Placed[] {
  const { spec } = ctx.platform;
  const engine = spec.model.engine;
  const objects: KubeObject[] = [];
  const loras = servedLoras(spec);
  const needsAdapterVolume = loras.length > 0;
  if (!("existingClaim" in spec.model.source)) objects.push(claim(ctx, names.modelsClaim, spec.model.size, spec.model.accessMode) as KubeObject);
  if (needsAdapterVolume) objects.push(claim(ctx, names.adaptersClaim, "5Gi", spec.model.accessMode) as KubeObject);
  const items = downloadItems(spec);
  if (items.length > 0) objects.push(downloadJob(ctx, items, needsAdapterVolume) as KubeObject);

  const shared = loras.filter((a) => a.serving === "shared");
  const instances: EngineInstance[] = [
    { name: names.engine, loras: shared, gpuSlices: engine.kind === "vllm" ? engine.gpuSlices : 0, replicas: engine.replicas },
  ];
  for (const adapter of spec.adapters.filter((a) => a.serving === "dedicated")) {
    instances.push({
      name: names.dedicatedEngine(adapter.name),
      loras: servedLoras(spec, [adapter]),
      gpuSlices: adapter.dedicated.gpuSlices,
      replicas: adapter.dedicated.replicas,
    });
  }
  const placed: Placed[] = objects.map((object) => ({ object, component: "engine" }));
  for (const instance of instances) {
    const component = instance.name === names.engine ? "engine" : `adapters/${instance.name.slice("engine-".length)}`;
    placed.push({ object: engineDeployment(ctx, instance, needsAdapterVolume) as KubeObject, component });
    for (const service of engineServices(ctx, instance.name)) placed.push({ object: service as KubeObject, component });
  }
  return placed;
}

/** The engine Service an adapter's requests go to. */
export function engineServiceFor(adapter: AdapterSpec): string {
  return adapter.serving === "dedicated" ? names.dedicatedEngine(adapter.name) : names.engine;
}
