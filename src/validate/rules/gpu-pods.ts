import { gpuSlicesOf } from "../../plan/gpu-pods.ts";
import { defineRule } from "../finding.ts";
import { containersOf } from "../inventory.ts";
import type { Finding } from "../types.ts";

/** Variables through which the NVIDIA runtime and device plugin choose what a container sees. */
const DEVICE_PLUGIN_VARIABLES = ["CUDA_VISIBLE_DEVICES"];

// GPU mistakes of hand-written manifests, found from the objects alone (no spec, no GPU inventory).
export const gpuPodRules = [
  defineRule("gpu/cuda-visible-devices", "error", "no container pins GPUs with CUDA_VISIBLE_DEVICES where the device plugin allocates them", ({ inventory }, report) =>
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
];
