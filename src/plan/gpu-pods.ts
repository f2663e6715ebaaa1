import { Architecture, type ArchitectureSpec } from "../spec/schema-architecture.ts";
import type { Inventory } from "../validate/inventory.ts";
import type { GpuPod } from "./placement.ts";
import { estimateVram, isVllmContainer, vllmSettingsFromArgs } from "./vram.ts";

export const DEFAULT_ARCHITECTURE: ArchitectureSpec = Architecture.parse({});

/** An extended resource the NVIDIA device plugin advertises: whole or time-sliced GPUs, or MIG devices (`.shared` when renamed). */
export const isGpuResource = (name: string): boolean => /^nvidia\.com\/(gpu|mig-\d+g\.\d+gb(\+me)?)(\.shared)?$/.test(name);

export function gpuSlicesOf(limits: Readonly<Record<string, string>> | undefined): number {
  return Object.entries(limits ?? {})
    .filter(([name]) => isGpuResource(name))
    .reduce((n, [, value]) => n + Number(value), 0);
}

/** The GPU resource a pod's containers ask for (the first one named, for the rare pod that asks for two). */
function gpuResourceOf(containers: readonly { readonly resources?: { readonly limits?: Readonly<Record<string, string>> } }[]): string {
  for (const container of containers) {
    const name = Object.keys(container.resources?.limits ?? {}).find(isGpuResource);
    if (name !== undefined) return name;
  }
  return "nvidia.com/gpu";
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
      gpuResource: gpuResourceOf(containers),
      ...(vllm ? { vllm } : {}),
    }));
  });
}
