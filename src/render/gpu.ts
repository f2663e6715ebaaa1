import type { IConfigMap } from "kubernetes-models/v1/ConfigMap";
import { DEFAULT_SHARING_CONFIG, perNodeSharing, sharingConfigs, sharingConfigsInUse, type SharingConfig } from "../spec/gpu-sharing.ts";
import type { GpuSharingSpec, PlatformSpec } from "../spec/schema.ts";
import { toYaml } from "../write/yaml.ts";
import { names, SHARED_ANNOTATION, type KubeObject, type Placed, type RenderContext } from "./context.ts";
import { configManagerRbac, DEVICE_PLUGIN_CONFIG_KEY, devicePluginDaemonSet, NODE_CONFIG_LABEL } from "./device-plugin.ts";
import { privilegedNamespace } from "./namespace.ts";
import { serviceAccount } from "./rbac.ts";

export { DEVICE_PLUGIN_CONFIG_KEY } from "./device-plugin.ts";

/**
 * The extended resource a GPU workload requests, as the device plugin will advertise it: its MIG
 * profile's under MIG's mixed strategy, else whole or time-sliced GPUs (`.shared` when renamed).
 */
export function gpuResourceName(spec: PlatformSpec, migProfile?: string): string {
  const used = sharingConfigsInUse(spec);
  if (
    migProfile !== undefined &&
    used.some(({ sharing }) => sharing.mode === "mig" && sharing.strategy === "mixed" && migProfile in sharing.profiles)
  )
    return `nvidia.com/mig-${migProfile}`;
  // renameByDefault: the plugin advertises time-slices as <resource>.shared, and only under that name.
  if (used.some(({ sharing }) => sharing.mode === "timeSlicing" && sharing.renameByDefault)) return "nvidia.com/gpu.shared";
  return "nvidia.com/gpu";
}

/**
 * The device plugin's config file in NVIDIA's schema (k8s-device-plugin api/config/v1):
 * `version`, `flags.migStrategy`, `sharing.timeSlicing.{renameByDefault, failRequestsGreaterThanOne, resources[]}`.
 */
export function devicePluginConfig(sharing: GpuSharingSpec): Record<string, unknown> {
  const config: Record<string, unknown> = {
    version: "v1",
    flags: { migStrategy: sharing.mode === "mig" ? sharing.strategy : "none", failOnInitError: true },
  };
  if (sharing.mode === "timeSlicing") {
    config["sharing"] = {
      timeSlicing: {
        renameByDefault: sharing.renameByDefault,
        failRequestsGreaterThanOne: sharing.failRequestsGreaterThanOne,
        resources: [{ name: "nvidia.com/gpu", replicas: sharing.replicas }],
      },
    };
  }
  return config;
}

/** The mig-parted layout a MIG config's nodes are labelled with (nvidia.com/mig.config). */
export function migLayoutName(config: Pick<SharingConfig, "name">): string {
  return config.name === DEFAULT_SHARING_CONFIG ? "diatonic" : `diatonic-${config.name}`;
}

/** mig-parted's config: one named layout per MIG sharing config, applied to the nodes labelled with it. */
function migPartedConfig(configs: readonly SharingConfig[]): Record<string, unknown> {
  const layouts: Record<string, unknown> = { "all-disabled": [{ devices: "all", "mig-enabled": false }] };
  for (const config of configs) {
    if (config.sharing.mode === "mig")
      layouts[migLayoutName(config)] = [{ devices: "all", "mig-enabled": true, "mig-devices": config.sharing.profiles }];
  }
  return { version: "v1", "mig-configs": layouts };
}

export interface GpuRender {
  readonly placed: Placed[];
  readonly notes: string[];
}

/** `kubectl label node …` for the declared nodes, or what to label when none are declared. */
function labelNodes(nodes: readonly string[], label: string, what: string): string {
  return nodes.length > 0
    ? nodes.map((node) => `kubectl label node ${node} ${label} --overwrite`).join("; ")
    : `label each GPU node${what === "" ? "" : ` ${what}`} with ${label}`;
}

export function renderGpu(ctx: RenderContext): GpuRender {
  const { spec } = ctx.platform;
  const perNode = perNodeSharing(spec);
  if (!spec.gpu.enabled || (spec.gpu.sharing.mode === "none" && !perNode && spec.gpu.devicePlugin.managedBy === "gpu-operator")) {
    return { placed: [], notes: [] };
  }
  const plugin = spec.gpu.devicePlugin;
  const ns = plugin.namespace;
  const objects: KubeObject[] = [];
  const notes: string[] = [];
  if (plugin.managedBy === "diatonic") objects.push(privilegedNamespace(ctx, ns) as KubeObject);

  const configs = sharingConfigs(spec);
  // One config: the file the plugin reads. Per node: NVIDIA's named configs, `default` for unlabelled nodes.
  const data = perNode
    ? Object.fromEntries(configs.map((config) => [config.name, toYaml(devicePluginConfig(config.sharing))]))
    : { [DEVICE_PLUGIN_CONFIG_KEY]: toYaml(devicePluginConfig(spec.gpu.sharing)) };
  const configMap: IConfigMap = {
    apiVersion: "v1",
    kind: "ConfigMap",
    metadata: ctx.meta(names.devicePluginConfig, "gpu", { namespace: ns }),
    data,
  };
  objects.push(configMap as KubeObject);
  if (perNode) {
    const labelled = configs.filter((config) => config.name !== DEFAULT_SHARING_CONFIG);
    notes.push(
      `GPU sharing per node: ${labelled.map((config) => labelNodes(config.nodes, `${NODE_CONFIG_LABEL}=${config.name}`, `that should use gpu.sharingConfigs.${config.name}`)).join("; ")}; nodes without the label use gpu.sharing (config ${DEFAULT_SHARING_CONFIG})`,
    );
  }

  // Every named MIG config (nodes may be labelled for one later); gpu.sharing's only where nodes use it.
  const mig = configs.filter(
    (config) =>
      config.sharing.mode === "mig" && (config.name !== DEFAULT_SHARING_CONFIG || config.nodes.length > 0 || spec.gpu.nodes.length === 0),
  );
  if (mig.length > 0) {
    const layout: IConfigMap = {
      apiVersion: "v1",
      kind: "ConfigMap",
      metadata: ctx.meta(names.migConfig, "gpu", { namespace: ns }),
      data: { "config.yaml": toYaml(migPartedConfig(mig)) },
    };
    objects.push(layout as KubeObject);
    const steps = mig.map((config) => {
      const devices =
        config.sharing.mode === "mig"
          ? Object.entries(config.sharing.profiles)
              .map(([p, n]) => `${n}× ${p}`)
              .join(", ")
          : "";
      return `${labelNodes(config.nodes, `nvidia.com/mig.config=${migLayoutName(config)}`, perNode ? `of gpu.sharingConfigs.${config.name}` : "")} so it applies ${devices}`;
    });
    notes.push(
      `MIG: point NVIDIA's MIG manager at ConfigMap ${ns}/${names.migConfig} (GPU Operator: ClusterPolicy migManager.config.name), then ${steps.join("; ")}; other nodes keep MIG off`,
    );
  }

  if (plugin.managedBy === "gpu-operator") {
    notes.push(
      `GPU Operator: point its ClusterPolicy at this config: devicePlugin.config = {name: ${names.devicePluginConfig}, default: ${perNode ? DEFAULT_SHARING_CONFIG : DEVICE_PLUGIN_CONFIG_KEY}} (namespace ${ns})`,
    );
  } else {
    objects.push(serviceAccount(ctx, names.devicePlugin, "gpu", false, ns) as KubeObject);
    if (perNode) objects.push(...configManagerRbac(ctx, ns));
    const mig = configs.some((config) => config.sharing.mode === "mig");
    objects.push(devicePluginDaemonSet(ctx, ns, { perNode, config: data, mig }) as KubeObject);
  }
  const shared = objects.map((object) => ({
    ...object,
    metadata: { ...object.metadata, annotations: { ...object.metadata.annotations, [SHARED_ANNOTATION]: "device-plugin" } },
  }));
  return { placed: shared.map((object) => ({ object, component: "gpu" })), notes };
}
