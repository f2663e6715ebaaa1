import { gpuSlicesOf } from "../../plan/gpu-pods.ts";
import { isVllmContainer, vllmSettingsFromArgs } from "../../plan/vram.ts";
import { NODE_CONFIG_LABEL } from "../../render/device-plugin.ts";
import { findDevicePluginConfigs, timeSlicingReplicas, type FoundConfig } from "../device-plugin.ts";
import { defineRule } from "../finding.ts";
import { containersOf, type PodTemplate } from "../inventory.ts";
import type { Finding, RuleContext } from "../types.ts";
import { placementFor } from "./gpu.ts";

/** Variables through which the NVIDIA runtime and device plugin choose what a container sees. */
const DEVICE_PLUGIN_VARIABLES = ["CUDA_VISIBLE_DEVICES"];

/** One replica of a vLLM pod that takes time-slices of whole GPUs (not MIG devices). */
interface SlicedPod {
  readonly template: PodTemplate;
  readonly name: string;
  readonly container: number;
  readonly utilization: number;
  readonly slices: number;
  /** Node labels it must land on (nodeName as kubernetes.io/hostname). */
  readonly selector: Readonly<Record<string, string>>;
  /** Its replicas never share a node (required pod anti-affinity on the hostname). */
  readonly apart: boolean;
}

function slicedPods({ inventory }: RuleContext): SlicedPod[] {
  return inventory.templates.flatMap((template) => {
    const index = template.spec.containers.findIndex((c) => isVllmContainer(c));
    const container = template.spec.containers[index];
    const limits = container?.resources?.limits ?? {};
    const slices = gpuSlicesOf(limits);
    if (container === undefined || slices === 0 || Object.keys(limits).some((name) => name.startsWith("nvidia.com/mig-"))) return [];
    const { gpuMemoryUtilization } = vllmSettingsFromArgs([...(container.command ?? []), ...(container.args ?? [])]);
    const selector = {
      ...(template.spec.nodeSelector ?? {}),
      ...(template.spec.nodeName !== undefined ? { "kubernetes.io/hostname": template.spec.nodeName } : {}),
    };
    const apart = (template.spec.affinity?.podAntiAffinity?.requiredDuringSchedulingIgnoredDuringExecution ?? []).some(
      (term) => term.topologyKey === "kubernetes.io/hostname",
    );
    return Array.from({ length: template.replicas }, (_, i): SlicedPod => ({
      template,
      name: template.replicas > 1 ? `${template.resource} #${i + 1}` : template.resource,
      container: index,
      utilization: gpuMemoryUtilization,
      slices,
      selector,
      apart,
    }));
  });
}

/** Two node selectors some node can satisfy at once (no key asks for two values). */
const compatible = (a: Readonly<Record<string, string>>, b: Readonly<Record<string, string>>) =>
  Object.entries(b).every(([key, value]) => a[key] === undefined || a[key] === value);

/**
 * The pods, largest claim first, that one GPU of a node under `config` could hold together: its
 * time-slices are interchangeable, so nothing keeps them on different cards.
 */
function sharingOneGpu(anchor: SlicedPod, candidates: readonly SlicedPod[], replicas: number): SlicedPod[] {
  const together = [anchor];
  let selector = anchor.selector;
  let slices = anchor.slices;
  for (const pod of candidates) {
    if (pod === anchor || slices + pod.slices > replicas || !compatible(selector, pod.selector)) continue;
    if (pod.apart && together.some((other) => other.template === pod.template)) continue;
    together.push(pod);
    selector = { ...selector, ...pod.selector };
    slices += pod.slices;
  }
  return together;
}

function timeSlicedConfigs(context: RuleContext): { readonly found: FoundConfig; readonly replicas: number; readonly perNode: boolean }[] {
  return findDevicePluginConfigs(context.inventory).flatMap((found) => {
    const replicas = found.parsed ? timeSlicingReplicas(found.parsed) : 1;
    const keys = Object.keys((found.configMap as unknown as { data?: Record<string, string> }).data ?? {});
    return replicas > 1 ? [{ found, replicas, perNode: keys.length > 1 }] : [];
  });
}

// GPU mistakes of hand-written manifests, found from the objects alone (no spec, no GPU inventory).
export const gpuPodRules = [
  defineRule(
    "gpu/cuda-visible-devices",
    "error",
    "no container pins GPUs with CUDA_VISIBLE_DEVICES where the device plugin allocates them",
    ({ inventory }, report) =>
      inventory.templates.flatMap((template): Finding[] => {
        const containers = containersOf(template);
        if (!containers.some(({ container }) => gpuSlicesOf(container.resources?.limits) > 0)) return [];
        return containers.flatMap(({ container, path }): Finding[] =>
          (container.env ?? []).flatMap((variable, i): Finding[] =>
            DEVICE_PLUGIN_VARIABLES.includes(variable.name)
              ? [
                  report(
                    template.owner,
                    `${path}.env[${i}]`,
                    `${variable.name}=${variable.value ?? "(from a reference)"} in a pod that requests GPUs from the device plugin: the plugin decides which GPU the container gets, and this pins an index that may be another pod's GPU (or hides the one allocated)`,
                    `remove ${variable.name}; request the number of GPUs you need (nvidia.com/gpu) and the device plugin exposes exactly those`,
                  ),
                ]
              : [],
          ),
        );
      }),
  ),
  defineRule(
    "gpu/time-sliced-memory-sum",
    "error",
    "vLLM pods that can share one time-sliced GPU claim at most all of its memory",
    (context, report) => {
      // With the spec's GPU inventory, gpu/memory-utilization-sum places the pods on the cards themselves.
      if (placementFor(context) !== undefined) return [];
      const pods = slicedPods(context).sort((a, b) => b.utilization - a.utilization);
      const findings: Finding[] = [];
      const reported = new Set<string>();
      for (const { found, replicas, perNode } of timeSlicedConfigs(context)) {
        // Per-node configs: a pod whose selector names another config never runs under this one.
        const under = pods.filter(
          (pod) => !perNode || pod.selector[NODE_CONFIG_LABEL] === undefined || pod.selector[NODE_CONFIG_LABEL] === found.key,
        );
        for (const anchor of under) {
          const together = sharingOneGpu(anchor, under, replicas);
          const sum = together.reduce((n, pod) => n + pod.utilization, 0);
          const key = together
            .map((pod) => pod.name)
            .sort()
            .join("|");
          if (together.length < 2 || sum <= 1 + 1e-9 || reported.has(key)) continue;
          reported.add(key);
          const where = `${found.configMap.metadata.namespace ?? "default"}/${found.configMap.metadata.name}${perNode ? ` (config ${found.key})` : ""}`;
          findings.push(
            report(
              anchor.template.owner,
              `${anchor.template.path}.containers[${anchor.container}].args`,
              `${together.map((pod) => `${pod.name} (${pod.utilization})`).join(", ")} can land on one GPU, whose ${replicas} time-slices (${where}) share its memory: their --gpu-memory-utilization add up to ${sum.toFixed(2)} > 1, and the later one fails to start`,
              "keep them on separate GPUs (node selectors, or required pod anti-affinity on kubernetes.io/hostname for replicas of one node's single GPU), or lower --gpu-memory-utilization so pods that can share a GPU sum to ≤ 1",
            ),
          );
        }
      }
      return findings;
    },
  ),
];
