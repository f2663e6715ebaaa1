import { Architecture, type ArchitectureSpec } from "../spec/schema.ts";
import type { Inventory } from "../validate/inventory.ts";
import type { GpuPod } from "./placement.ts";
import { estimateVram, isVllmContainer, vllmSettingsFromArgs } from "./vram.ts";

export const DEFAULT_ARCHITECTURE: ArchitectureSpec = Architecture.parse({});

export function gpuSlicesOf(limits: Readonly<Record<string, string>> | undefined): number {
  return Object.entries(limits ?? {})
    .filter(([name]) => name === "nvidia.com/gpu" || name.startsWith("nvidia.com/mig-"))
    .reduce((n, [, value]) => n + Number(value), 0);
}

/** Every GPU pod the objects will run (one entry per replica), with vLLM's VRAM estimate. */
export function gpuPodsOf(inventory: Inventory, architecture: ArchitectureSpec = DEFAULT_ARCHITECTURE): GpuPod[] {
  return inventory.templates.flatMap((template) => {
    const containers = template.spec.containers;
    const slices = containers.reduce((n, c) => n + gpuSlicesOf(c.resources?.limits), 0);
    if (slices === 0) return [];
    const engine = containers.find((c) => isVllmContainer(c));
    const settings = engine ? vllmSettingsFromArgs([...(engine.command ?? []), ...(engine.args ?? [])]) : undefined;
    const vllm = settings ? { settings, estimate: estimateVram(architecture, settings) } : undefined;
    return Array.from({ length: template.replicas }, (_, i) => ({
      resource: template.resource,
      name: template.replicas > 1 ? `${template.resource} #${i + 1}` : template.resource,
      slices,
      ...(vllm ? { vllm } : {}),
    }));
  });
}
