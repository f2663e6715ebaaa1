import type { IDaemonSet } from "kubernetes-models/apps/v1/DaemonSet";
import type { IConfigMap } from "kubernetes-models/v1/ConfigMap";
import type { PlatformSpec } from "../spec/schema.ts";
import { toYaml } from "../write/yaml.ts";
import { names, SHARED_ANNOTATION, toolLabels, type KubeObject, type Placed, type RenderContext } from "./context.ts";
import { privilegedNamespace } from "./namespace.ts";
import { serviceAccount } from "./rbac.ts";

export const DEVICE_PLUGIN_CONFIG_KEY = "config.yaml";

/** The extended resource a GPU workload requests, as the device plugin will advertise it. */
export function gpuResourceName(spec: PlatformSpec, migProfile?: string): string {
  const sharing = spec.gpu.sharing;
  if (sharing.mode === "mig" && sharing.strategy === "mixed" && migProfile) return `nvidia.com/mig-${migProfile}`;
  // renameByDefault: the plugin advertises time-slices as <resource>.shared, and only under that name.
  if (sharing.mode === "timeSlicing" && sharing.renameByDefault) return "nvidia.com/gpu.shared";
  return "nvidia.com/gpu";
}

/**
 * The device plugin's config file in NVIDIA's schema (k8s-device-plugin api/config/v1):
 * `version`, `flags.migStrategy`, `sharing.timeSlicing.{renameByDefault, failRequestsGreaterThanOne, resources[]}`.
 */
export function devicePluginConfig(spec: PlatformSpec): Record<string, unknown> {
  const sharing = spec.gpu.sharing;
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

/** mig-parted's config: one named layout the MIG manager applies to nodes labelled with it. */
function migPartedConfig(profiles: Record<string, number>): Record<string, unknown> {
  return {
    version: "v1",
    "mig-configs": {
      "all-disabled": [{ devices: "all", "mig-enabled": false }],
      diatonic: [{ devices: "all", "mig-enabled": true, "mig-devices": profiles }],
    },
  };
}

export interface GpuRender {
  readonly placed: Placed[];
  readonly notes: string[];
}

export function renderGpu(ctx: RenderContext): GpuRender {
  const { spec } = ctx.platform;
  if (!spec.gpu.enabled || spec.gpu.sharing.mode === "none" && spec.gpu.devicePlugin.managedBy === "gpu-operator") {
    return { placed: [], notes: [] };
  }
  const plugin = spec.gpu.devicePlugin;
  const ns = plugin.namespace;
  const objects: KubeObject[] = [];
  const notes: string[] = [];
  if (plugin.managedBy === "diatonic") objects.push(privilegedNamespace(ctx, ns) as KubeObject);

  const configMap: IConfigMap = {
    apiVersion: "v1",
    kind: "ConfigMap",
    metadata: ctx.meta(names.devicePluginConfig, "gpu", { namespace: ns }),
    data: { [DEVICE_PLUGIN_CONFIG_KEY]: toYaml(devicePluginConfig(spec)) },
  };
  objects.push(configMap as KubeObject);

  const sharing = spec.gpu.sharing;
  if (sharing.mode === "mig") {
    const mig: IConfigMap = {
      apiVersion: "v1",
      kind: "ConfigMap",
      metadata: ctx.meta(names.migConfig, "gpu", { namespace: ns }),
      data: { "config.yaml": toYaml(migPartedConfig(sharing.profiles)) },
    };
    objects.push(mig as KubeObject);
    notes.push(
      `MIG: point NVIDIA's MIG manager at ConfigMap ${ns}/${names.migConfig} (GPU Operator: ClusterPolicy migManager.config.name), then label each GPU node with nvidia.com/mig.config=diatonic so it applies ${Object.entries(sharing.profiles)
        .map(([p, n]) => `${n}× ${p}`)
        .join(", ")}`,
    );
  }

  if (plugin.managedBy === "gpu-operator") {
    notes.push(
      `GPU Operator: point its ClusterPolicy at this config: devicePlugin.config = {name: ${names.devicePluginConfig}, default: ${DEVICE_PLUGIN_CONFIG_KEY}} (namespace ${ns})`,
    );
  } else {
    objects.push(serviceAccount(ctx, names.devicePlugin, "gpu", false, ns) as KubeObject);
    objects.push(devicePluginDaemonSet(ctx, ns) as KubeObject);
  }
  const shared = objects.map((object) => ({ ...object, metadata: { ...object.metadata, annotations: { ...object.metadata.annotations, [SHARED_ANNOTATION]: "device-plugin" } } }));
  return { placed: shared.map((object) => ({ object, component: "gpu" })), notes };
}

/**
 * NVIDIA's device plugin, as its static manifest runs it. It registers a socket under the kubelet's
 * host path, so it runs as root in the privileged namespace: "restricted" cannot admit it.
 */
function devicePluginDaemonSet(ctx: RenderContext, ns: string): IDaemonSet {
  const { spec } = ctx.platform;
  // One device plugin serves the whole cluster: its selector leaves out the platform instance, so a
  // renamed (or second) platform updates the same DaemonSet instead of hitting an immutable selector.
  const selector = { "app.kubernetes.io/name": names.devicePlugin };
  return {
    apiVersion: "apps/v1",
    kind: "DaemonSet",
    metadata: ctx.meta(names.devicePlugin, "gpu", { namespace: ns }),
    spec: {
      selector: { matchLabels: selector },
      updateStrategy: { type: "RollingUpdate" },
      template: {
        // Shared by every platform in the cluster (src/deploy/shared.ts): none of a platform's own
        // labels, so that an apply by another platform leaves the template, and the pods, alone.
        metadata: { labels: { ...selector, ...toolLabels("gpu") } },
        spec: {
          serviceAccountName: names.devicePlugin,
          automountServiceAccountToken: false,
          priorityClassName: "system-node-critical",
          nodeSelector: spec.gpu.nodeSelector,
          tolerations: [{ key: "nvidia.com/gpu", operator: "Exists", effect: "NoSchedule" }],
          securityContext: { seccompProfile: { type: "RuntimeDefault" } },
          containers: [
            {
              name: "device-plugin",
              image: spec.gpu.devicePlugin.image,
              env: [
                { name: "CONFIG_FILE", value: `/config/${DEVICE_PLUGIN_CONFIG_KEY}` },
                { name: "FAIL_ON_INIT_ERROR", value: "true" },
              ],
              securityContext: { allowPrivilegeEscalation: false, capabilities: { drop: ["ALL"] }, readOnlyRootFilesystem: true },
              resources: { requests: { cpu: "10m", memory: "32Mi" }, limits: { memory: "128Mi" } },
              volumeMounts: [
                { name: "device-plugins", mountPath: "/var/lib/kubelet/device-plugins" },
                { name: "config", mountPath: "/config", readOnly: true },
              ],
            },
          ],
          volumes: [
            { name: "device-plugins", hostPath: { path: "/var/lib/kubelet/device-plugins", type: "Directory" } },
            { name: "config", configMap: { name: names.devicePluginConfig } },
          ],
        },
      },
    },
  };
}
