// NVIDIA's device plugin DaemonSet, shared by every platform in the cluster. With one sharing config
// it reads that file; with a config per node it runs as NVIDIA's Helm chart does: config-manager (in
// the plugin's image) reads the node's label nvidia.com/device-plugin.config, links the config file
// to that named config of the ConfigMap (a symlink into /available-configs, which the plugin mounts
// too) before the plugin starts, and signals the plugin when the label changes. Neither reads the
// ConfigMap again when it changes: the pod template carries its hash, so a new config restarts them.
import type { IDaemonSet } from "kubernetes-models/apps/v1/DaemonSet";
import type { IIoK8sApiCoreV1Affinity as IAffinity } from "kubernetes-models/v1/Affinity";
import type { IIoK8sApiCoreV1Container as Container } from "kubernetes-models/v1/Container";
import type { IClusterRole } from "kubernetes-models/rbac.authorization.k8s.io/v1/ClusterRole";
import type { IClusterRoleBinding } from "kubernetes-models/rbac.authorization.k8s.io/v1/ClusterRoleBinding";
import { contentHash } from "./pod.ts";
import { DEFAULT_SHARING_CONFIG } from "../spec/gpu-sharing.ts";
import { names, SHARED_NAMESPACE_ANNOTATION, toolLabels, type KubeObject, type RenderContext } from "./context.ts";

export const DEVICE_PLUGIN_CONFIG_KEY = "config.yaml";
/** The node label whose value names the node's config, as NVIDIA's config-manager reads it. */
export const NODE_CONFIG_LABEL = "nvidia.com/device-plugin.config";

const AVAILABLE = "/available-configs";
const CONFIG_DIR = "/config";

const securityContext = { allowPrivilegeEscalation: false, capabilities: { drop: ["ALL"] }, readOnlyRootFilesystem: true };
/** The annotation on the plugin's pod template that changes with its config (the plugin reads it only at start). */
export const DEVICE_PLUGIN_CONFIG_HASH = "diatonic.ai/device-plugin-config";

/** config-manager as NVIDIA's chart runs it: once before the plugin (init), then beside it, signalling it on a change. */
function configManager(ctx: RenderContext, sidecar: boolean): Container {
  return {
    name: sidecar ? "config-manager" : "config-manager-init",
    image: ctx.platform.spec.gpu.devicePlugin.image,
    command: ["config-manager"],
    env: [
      { name: "ONESHOT", value: String(!sidecar) },
      { name: "KUBECONFIG", value: "" },
      { name: "NODE_NAME", valueFrom: { fieldRef: { fieldPath: "spec.nodeName" } } },
      { name: "NODE_LABEL", value: NODE_CONFIG_LABEL },
      { name: "CONFIG_FILE_SRCDIR", value: AVAILABLE },
      { name: "CONFIG_FILE_DST", value: `${CONFIG_DIR}/${DEVICE_PLUGIN_CONFIG_KEY}` },
      { name: "DEFAULT_CONFIG", value: DEFAULT_SHARING_CONFIG },
      { name: "FALLBACK_STRATEGIES", value: "named,single" },
      { name: "SEND_SIGNAL", value: String(sidecar) },
      { name: "SIGNAL", value: sidecar ? "1" : "" },
      { name: "PROCESS_TO_SIGNAL", value: sidecar ? "nvidia-device-plugin" : "" },
    ],
    securityContext,
    resources: { requests: { cpu: "10m", memory: "16Mi" }, limits: { memory: "64Mi" } },
    volumeMounts: [
      { name: "available-configs", mountPath: AVAILABLE, readOnly: true },
      { name: "config", mountPath: CONFIG_DIR },
    ],
  };
}

/**
 * Nodes with an NVIDIA GPU, as NVIDIA's chart finds them without a node selector: node feature
 * discovery's PCI vendor label (10de is NVIDIA's), its CPU vendor on Tegra boards, or
 * nvidia.com/gpu.present=true (GPU feature discovery's label, or one set by hand where neither runs).
 */
const GPU_NODES: IAffinity = {
  nodeAffinity: {
    requiredDuringSchedulingIgnoredDuringExecution: {
      nodeSelectorTerms: [
        { matchExpressions: [{ key: "feature.node.kubernetes.io/pci-10de.present", operator: "In", values: ["true"] }] },
        { matchExpressions: [{ key: "feature.node.kubernetes.io/cpu-model.vendor_id", operator: "In", values: ["NVIDIA"] }] },
        { matchExpressions: [{ key: "nvidia.com/gpu.present", operator: "In", values: ["true"] }] },
      ],
    },
  },
};

export interface DevicePluginOptions {
  /** A config per node (config-manager picks one by the node's label), rather than one file. */
  readonly perNode: boolean;
  /** The ConfigMap's data: its hash goes on the pod template. */
  readonly config: Readonly<Record<string, string>>;
  /** Some config shares GPUs by MIG (migStrategy single or mixed). */
  readonly mig: boolean;
}

/**
 * NVIDIA's device plugin, as its static manifest runs it (`perNode`: as its Helm chart does with a
 * config per node). It registers a socket under the kubelet's host path, so it runs as root in the
 * privileged namespace: "restricted" cannot admit it. With MIG it also needs CAP_SYS_ADMIN and the MIG
 * monitor devices (NVIDIA_MIG_MONITOR_DEVICES), as NVIDIA's chart gives it, to watch MIG devices' health.
 */
export function devicePluginDaemonSet(ctx: RenderContext, ns: string, options: DevicePluginOptions): IDaemonSet {
  const { perNode, mig } = options;
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
        metadata: {
          labels: { ...selector, ...toolLabels("gpu") },
          annotations: { [DEVICE_PLUGIN_CONFIG_HASH]: contentHash(options.config) },
        },
        spec: {
          serviceAccountName: names.devicePlugin,
          // config-manager reads its node's label from the API; the plugin alone needs no token.
          automountServiceAccountToken: perNode,
          ...(perNode ? { shareProcessNamespace: true, initContainers: [configManager(ctx, false)] } : {}),
          priorityClassName: "system-node-critical",
          ...(Object.keys(spec.gpu.nodeSelector).length > 0 ? { nodeSelector: spec.gpu.nodeSelector } : { affinity: GPU_NODES }),
          tolerations: [{ key: "nvidia.com/gpu", operator: "Exists", effect: "NoSchedule" }],
          securityContext: { seccompProfile: { type: "RuntimeDefault" } },
          containers: [
            {
              name: "device-plugin",
              image: spec.gpu.devicePlugin.image,
              env: [
                { name: "CONFIG_FILE", value: `${CONFIG_DIR}/${DEVICE_PLUGIN_CONFIG_KEY}` },
                { name: "FAIL_ON_INIT_ERROR", value: "true" },
                ...(mig ? [{ name: "NVIDIA_MIG_MONITOR_DEVICES", value: "all" }] : []),
              ],
              securityContext: mig ? { ...securityContext, capabilities: { add: ["SYS_ADMIN"] } } : securityContext,
              resources: { requests: { cpu: "10m", memory: "32Mi" }, limits: { memory: "128Mi" } },
              volumeMounts: [
                { name: "device-plugins", mountPath: "/var/lib/kubelet/device-plugins" },
                { name: "config", mountPath: CONFIG_DIR, readOnly: true },
                // config-manager's config file is a symlink into these.
                ...(perNode ? [{ name: "available-configs", mountPath: AVAILABLE, readOnly: true }] : []),
              ],
            },
            ...(perNode ? [configManager(ctx, true)] : []),
          ],
          volumes: [
            { name: "device-plugins", hostPath: { path: "/var/lib/kubelet/device-plugins", type: "Directory" } },
            ...(perNode
              ? [
                  { name: "available-configs", configMap: { name: names.devicePluginConfig } },
                  { name: "config", emptyDir: { sizeLimit: "1Mi" } },
                ]
              : [{ name: "config", configMap: { name: names.devicePluginConfig } }]),
          ],
        },
      },
    },
  };
}

/** config-manager may read nodes (its own node's label); nothing else. Cluster-scoped, so named once for the shared plugin. */
export function configManagerRbac(ctx: RenderContext, ns: string): KubeObject[] {
  const name = `${names.devicePlugin}-node-reader`;
  const meta = { name, labels: ctx.labels(name, "gpu"), annotations: { [SHARED_NAMESPACE_ANNOTATION]: ns } };
  const role: IClusterRole = {
    apiVersion: "rbac.authorization.k8s.io/v1",
    kind: "ClusterRole",
    metadata: meta,
    rules: [{ apiGroups: [""], resources: ["nodes"], verbs: ["get", "list", "watch"] }],
  };
  const binding: IClusterRoleBinding = {
    apiVersion: "rbac.authorization.k8s.io/v1",
    kind: "ClusterRoleBinding",
    metadata: meta,
    roleRef: { apiGroup: "rbac.authorization.k8s.io", kind: "ClusterRole", name },
    subjects: [{ kind: "ServiceAccount", name: names.devicePlugin, namespace: ns }],
  };
  return [role as KubeObject, binding as KubeObject];
}
