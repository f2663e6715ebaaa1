// NVIDIA's device plugin DaemonSet, shared by every platform in the cluster. With one sharing config
// it reads that file; with a config per node it runs as NVIDIA's Helm chart does: config-manager (in
// the plugin's image) reads the node's label nvidia.com/device-plugin.config, copies that named config
// of the ConfigMap into place before the plugin starts, and signals the plugin when the label changes.
import type { IDaemonSet } from "kubernetes-models/apps/v1/DaemonSet";
import type { IIoK8sApiCoreV1Container as Container } from "kubernetes-models/v1/Container";
import type { IClusterRole } from "kubernetes-models/rbac.authorization.k8s.io/v1/ClusterRole";
import type { IClusterRoleBinding } from "kubernetes-models/rbac.authorization.k8s.io/v1/ClusterRoleBinding";
import { DEFAULT_SHARING_CONFIG } from "../spec/gpu-sharing.ts";
import { names, SHARED_NAMESPACE_ANNOTATION, toolLabels, type KubeObject, type RenderContext } from "./context.ts";

export const DEVICE_PLUGIN_CONFIG_KEY = "config.yaml";
/** The node label whose value names the node's config, as NVIDIA's config-manager reads it. */
export const NODE_CONFIG_LABEL = "nvidia.com/device-plugin.config";

const AVAILABLE = "/available-configs";
const CONFIG_DIR = "/config";

const securityContext = { allowPrivilegeEscalation: false, capabilities: { drop: ["ALL"] }, readOnlyRootFilesystem: true };

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
 * NVIDIA's device plugin, as its static manifest runs it (`perNode`: as its Helm chart does with a
 * config per node). It registers a socket under the kubelet's host path, so it runs as root in the
 * privileged namespace: "restricted" cannot admit it.
 */
export function devicePluginDaemonSet(ctx: RenderContext, ns: string, perNode: boolean): IDaemonSet {
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
          // config-manager reads its node's label from the API; the plugin alone needs no token.
          automountServiceAccountToken: perNode,
          ...(perNode ? { shareProcessNamespace: true, initContainers: [configManager(ctx, false)] } : {}),
          priorityClassName: "system-node-critical",
          nodeSelector: spec.gpu.nodeSelector,
          tolerations: [{ key: "nvidia.com/gpu", operator: "Exists", effect: "NoSchedule" }],
          securityContext: { seccompProfile: { type: "RuntimeDefault" } },
          containers: [
            {
              name: "device-plugin",
              image: spec.gpu.devicePlugin.image,
              env: [
                { name: "CONFIG_FILE", value: `${CONFIG_DIR}/${DEVICE_PLUGIN_CONFIG_KEY}` },
                { name: "FAIL_ON_INIT_ERROR", value: "true" },
              ],
              securityContext,
              resources: { requests: { cpu: "10m", memory: "32Mi" }, limits: { memory: "128Mi" } },
              volumeMounts: [
                { name: "device-plugins", mountPath: "/var/lib/kubelet/device-plugins" },
                { name: "config", mountPath: CONFIG_DIR, readOnly: !perNode },
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
