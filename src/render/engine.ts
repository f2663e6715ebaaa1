import type { IDeployment } from "kubernetes-models/apps/v1/Deployment";
import type { IIoK8sApiCoreV1Container as Container } from "kubernetes-models/v1/Container";
import type { IConfigMap } from "kubernetes-models/v1/ConfigMap";
import type { IPersistentVolumeClaim } from "kubernetes-models/v1/PersistentVolumeClaim";
import type { IService } from "kubernetes-models/v1/Service";
import { ADAPTER_SET_KIND, type AdapterSet } from "../adapters/set.ts";
import { devicesOf, placePods, type GpuPod } from "../plan/placement.ts";
import { estimateVram, vllmSettingsFromArgs } from "../plan/vram.ts";
import { isGgufLora } from "../spec/rules.ts";
import { maxCpuLoras } from "../spec/lora-cache.ts";
import { API_VERSION, type AdapterSpec, type LlamaCppEngineSpec, type PlatformSpec, type VllmEngineSpec } from "../spec/schema.ts";
import { toYaml } from "../write/yaml.ts";
import { names, ports, type KubeObject, type Placed, type RenderContext } from "./context.ts";
import { ADAPTER_SET_KEY, enginePodParts, modelPath, modelStorage } from "./engine-pod.ts";
import { gpuResourceName } from "./gpu.ts";
import { httpProbe, resourcesOf, restrictedContainer, restrictedPod } from "./pod.ts";

export { modelPath } from "./engine-pod.ts";

const ENGINE_UID = 1000;

/** Adapters the engine can load as LoRAs (llama.cpp loads only GGUF files). */
export function servedLoras(spec: PlatformSpec, adapters: readonly AdapterSpec[] = spec.adapters): AdapterSpec[] {
  return adapters.filter((a) => a.lora && (spec.model.engine.kind === "vllm" || isGgufLora(a.lora.source)));
}

/** The name the gateway sends upstream for an adapter: its LoRA's name, or the base model. */
export function upstreamModelFor(spec: PlatformSpec, adapter: AdapterSpec): string {
  return servedLoras(spec, [adapter]).length > 0 ? adapter.name : spec.model.name;
}

/** One engine Deployment: the shared engine, or a dedicated adapter's. */
interface EngineInstance {
  readonly name: string;
  readonly loras: readonly AdapterSpec[];
  readonly gpuSlices: number;
  /** Under MIG's mixed strategy, the profile it requests: the shared engine's, or a dedicated adapter's own. */
  readonly migProfile: string | undefined;
  readonly replicas: number;
  /** LoRA slots: the spec's for the shared engine, one for a dedicated engine (it serves one LoRA). */
  readonly maxLoras: number;
  /** The rendered `component` of its objects. */
  readonly component: string;
}

function vllmArgs(spec: PlatformSpec, engine: VllmEngineSpec, instance: EngineInstance): string[] {
  const args = [
    "--model",
    modelPath(spec),
    "--served-model-name",
    spec.model.name,
    "--host",
    "0.0.0.0",
    "--port",
    String(ports.engine),
    "--max-model-len",
    String(engine.maxModelLen),
    "--gpu-memory-utilization",
    String(engine.gpuMemoryUtilization),
    "--tensor-parallel-size",
    String(engine.tensorParallel),
    "--dtype",
    engine.dtype,
  ];
  if (engine.quantization !== "none") args.push("--quantization", engine.quantization);
  // LoRA stays on even with no adapter yet: adding the first one must not restart the engine.
  args.push("--enable-lora", "--max-loras", String(instance.maxLoras), "--max-lora-rank", String(engine.maxLoraRank));
  // Always set: vLLM's default (max_loras) would read every swapped-in LoRA from disk again.
  args.push("--max-cpu-loras", String(maxCpuLoras(engine, instance.maxLoras)));
  return [...args, ...engine.extraArgs];
}

function llamaCppArgs(spec: PlatformSpec, engine: LlamaCppEngineSpec): string[] {
  return [
    "engine",
    "--model",
    modelPath(spec),
    // The name the gateway sends for the base model (the engine's default is the file's name).
    "--served-model-name",
    spec.model.name,
    "--host",
    "0.0.0.0",
    "--port",
    String(ports.engine),
    "--parallel",
    String(engine.parallel),
  ];
}

/** The adapter set an engine's agent keeps loaded (what its ConfigMap holds): `loras` by name and source. */
export function adapterSetOf(spec: PlatformSpec, engine: string, loras: readonly AdapterSpec[]): AdapterSet {
  return {
    apiVersion: API_VERSION,
    kind: ADAPTER_SET_KIND,
    engine,
    baseModel: spec.model.name,
    maxLoraRank: spec.model.engine.kind === "vllm" ? spec.model.engine.maxLoraRank : 16,
    adapters: loras.flatMap((adapter) =>
      adapter.lora ? [{ name: adapter.name, source: adapter.lora.source, rank: adapter.lora.rank }] : [],
    ),
  };
}

export function adapterSetName(engine: string): string {
  return `${engine}-adapters`;
}

/**
 * True when one more pod of `instance` would find GPU room (by the plan's own placement, VRAM
 * included) beside every engine pod, so a rollout can start the new pod before stopping an old
 * one. Without a declared inventory there is no telling: no surge.
 */
function surgeFits(spec: PlatformSpec, instances: readonly EngineInstance[], instance: EngineInstance): boolean {
  const engine = spec.model.engine;
  if (engine.kind !== "vllm" || spec.gpu.nodes.length === 0) return false;
  const podOf = (of: EngineInstance, index: number | "surge"): GpuPod => {
    const settings = vllmSettingsFromArgs(vllmArgs(spec, engine, of));
    return {
      resource: of.name,
      name: `${of.name} #${index}`,
      slices: of.gpuSlices,
      gpuResource: gpuResourceName(spec, of.migProfile),
      vllm: { settings, estimate: estimateVram(spec.model.architecture, settings) },
    };
  };
  const pods = [...instances.flatMap((of) => Array.from({ length: of.replicas }, (_, i) => podOf(of, i + 1))), podOf(instance, "surge")];
  const placement = placePods(devicesOf(spec), pods);
  return placement.pending.length === 0 && placement.devices.every((use) => use.pods.every((pod) => pod.fits));
}

function engineDeployment(ctx: RenderContext, instance: EngineInstance, surge: boolean): IDeployment {
  const { spec } = ctx.platform;
  const engine = spec.model.engine;
  const vllm = engine.kind === "vllm";
  const { volumes, mounts, initContainers } = enginePodParts(ctx, adapterSetName(instance.name));
  const gpuLimits: Record<string, string> = vllm ? { [gpuResourceName(spec, instance.migProfile)]: String(instance.gpuSlices) } : {};
  const container: Container = {
    name: "engine",
    image: engine.image,
    args: vllm ? vllmArgs(spec, engine, instance) : llamaCppArgs(spec, engine),
    ports: [{ name: "http", containerPort: ports.engine, protocol: "TCP" as const }],
    env: [
      { name: "HOME", value: "/home/engine" },
      { name: "XDG_CACHE_HOME", value: "/home/engine/.cache" },
      { name: "HF_HUB_OFFLINE", value: "1" },
      ...(vllm
        ? [
            // The pod runs as uid 1000, which vLLM's image has no passwd entry for (its user is vllm,
            // 2000): torch's cache code calls getpass.getuser() as vLLM imports it, which reads USER
            // or LOGNAME first and otherwise fails with "getpwuid(): uid not found: 1000".
            { name: "USER", value: "engine" },
            { name: "LOGNAME", value: "engine" },
            // The adapter agent loads and unloads LoRAs through /v1/load_lora_adapter at runtime.
            { name: "VLLM_ALLOW_RUNTIME_LORA_UPDATING", value: "true" },
            { name: "VLLM_NO_USAGE_STATS", value: "1" },
            { name: "DO_NOT_TRACK", value: "1" },
          ]
        : []),
    ],
    resources: resourcesOf(engine.resources, gpuLimits),
    // Loading an 8B model takes minutes; the startup probe allows 30 before liveness takes over.
    startupProbe: httpProbe("/health", "http", { period: 10, failures: 180 }),
    readinessProbe: httpProbe("/health", "http", { period: 10, failures: 3 }),
    livenessProbe: httpProbe("/health", "http", { period: 20, failures: 3, timeout: 5 }),
    securityContext: restrictedContainer(),
    volumeMounts: mounts,
  };
  const selector = ctx.selector(instance.name);
  return {
    apiVersion: "apps/v1",
    kind: "Deployment",
    metadata: ctx.meta(instance.name, "engine"),
    spec: {
      replicas: instance.replicas,
      // Never every replica at once: a new pod starts first where the GPUs have room for it,
      // otherwise one old pod at a time makes way (GPU slices are held until a pod is gone).
      strategy: {
        type: "RollingUpdate",
        rollingUpdate: surge || !vllm ? { maxSurge: 1, maxUnavailable: 0 } : { maxSurge: 0, maxUnavailable: 1 },
      },
      progressDeadlineSeconds: 3600,
      revisionHistoryLimit: 5,
      selector: { matchLabels: selector },
      template: {
        metadata: { labels: ctx.labels(instance.name, "engine") },
        spec: {
          serviceAccountName: names.engine,
          automountServiceAccountToken: false,
          securityContext: restrictedPod(ENGINE_UID),
          terminationGracePeriodSeconds: 60,
          ...(instance.replicas > 1
            ? {
                affinity: {
                  podAntiAffinity: {
                    preferredDuringSchedulingIgnoredDuringExecution: [
                      { weight: 100, podAffinityTerm: { topologyKey: "kubernetes.io/hostname", labelSelector: { matchLabels: selector } } },
                    ],
                  },
                },
              }
            : {}),
          ...(vllm
            ? {
                // None by default: the GPU in its limits already keeps it to nodes that advertise one.
                ...(Object.keys(spec.gpu.nodeSelector).length > 0 ? { nodeSelector: spec.gpu.nodeSelector } : {}),
                tolerations: [{ key: "nvidia.com/gpu", operator: "Exists", effect: "NoSchedule" }],
              }
            : {}),
          initContainers,
          containers: [container],
          volumes,
        },
      },
    },
  };
}

function engineServices(ctx: RenderContext, name: string): IService[] {
  const port = [{ name: "http", port: ports.engine, targetPort: "http", protocol: "TCP" as const }];
  // The agent's port is on the ClusterIP Service only: Prometheus scrapes it there.
  const withAgent = [...port, { name: "agent", port: ports.agent, targetPort: ports.agent, protocol: "TCP" as const }];
  return [
    { apiVersion: "v1", kind: "Service", metadata: ctx.meta(name, "engine"), spec: { selector: ctx.selector(name), ports: withAgent } },
    {
      // The gateway resolves every replica behind this name and routes to those that hold the adapter.
      apiVersion: "v1",
      kind: "Service",
      metadata: ctx.meta(`${name}-headless`, "engine"),
      spec: { clusterIP: "None", selector: ctx.selector(name), ports: port },
    },
  ];
}

function adapterSetConfigMap(ctx: RenderContext, instance: EngineInstance): IConfigMap {
  return {
    apiVersion: "v1",
    kind: "ConfigMap",
    metadata: ctx.meta(adapterSetName(instance.name), "engine"),
    data: { [ADAPTER_SET_KEY]: toYaml(adapterSetOf(ctx.platform.spec, instance.name, instance.loras)) },
  };
}

/** One ReadWriteMany claim for every engine pod; other storage modes need none here. */
function sharedModelsClaim(ctx: RenderContext): IPersistentVolumeClaim {
  const { spec } = ctx.platform;
  return {
    apiVersion: "v1",
    kind: "PersistentVolumeClaim",
    metadata: ctx.meta(names.modelsClaim, "storage"),
    spec: { accessModes: ["ReadWriteMany"], storageClassName: spec.storageClass, resources: { requests: { storage: spec.model.size } } },
  };
}

/** The engine Deployments: the shared one, and one per dedicated adapter. */
function engineInstances(spec: PlatformSpec): EngineInstance[] {
  const engine = spec.model.engine;
  const shared = servedLoras(spec).filter((a) => a.serving === "shared");
  return [
    {
      name: names.engine,
      loras: shared,
      gpuSlices: engine.kind === "vllm" ? engine.gpuSlices : 0,
      migProfile: engine.kind === "vllm" ? engine.migProfile : undefined,
      replicas: engine.replicas,
      maxLoras: engine.kind === "vllm" ? engine.maxLoras : 4,
      component: "engine",
    },
    ...spec.adapters
      .filter((a) => a.serving === "dedicated")
      .map((adapter) => ({
        name: names.dedicatedEngine(adapter.name),
        loras: servedLoras(spec, [adapter]),
        gpuSlices: adapter.dedicated.gpuSlices,
        migProfile: adapter.dedicated.migProfile,
        replicas: adapter.dedicated.replicas,
        maxLoras: 1,
        component: `adapters/${adapter.name}`,
      })),
  ];
}

export function renderEngine(ctx: RenderContext): Placed[] {
  const { spec } = ctx.platform;
  const placed: Placed[] = [];
  if (modelStorage(spec) === "shared") placed.push({ object: sharedModelsClaim(ctx) as KubeObject, component: "engine" });
  const instances = engineInstances(spec);
  for (const instance of instances) {
    const { component } = instance;
    placed.push({ object: adapterSetConfigMap(ctx, instance) as KubeObject, component });
    placed.push({ object: engineDeployment(ctx, instance, surgeFits(spec, instances, instance)) as KubeObject, component });
    for (const service of engineServices(ctx, instance.name)) placed.push({ object: service as KubeObject, component });
  }
  return placed;
}

/** The engine Deployments' names and replica counts (for disruption budgets). */
export function engineReplicas(spec: PlatformSpec): { readonly name: string; readonly replicas: number; readonly component: string }[] {
  return engineInstances(spec).map(({ name, replicas, component }) => ({ name, replicas, component }));
}

/** The engine Service an adapter's requests go to. */
export function engineServiceFor(adapter: AdapterSpec): string {
  return adapter.serving === "dedicated" ? names.dedicatedEngine(adapter.name) : names.engine;
}
