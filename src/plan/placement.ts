import { gpuResourceName } from "../render/gpu.ts";
import type { GpuNodeSpec, PlatformSpec } from "../spec/schema.ts";
import type { VllmSettings, VramEstimate } from "./vram.ts";

/** One advertised GPU: a physical card, or one MIG device. */
export interface GpuDevice {
  readonly node: string;
  readonly index: number;
  readonly model: string;
  readonly memoryGiB: number;
  /** Slices the device plugin advertises for it (time-slicing replicas, else 1). */
  readonly slices: number;
  /** What it is advertised as: `nvidia.com/gpu` (`.shared` when time-slices are renamed), or `nvidia.com/mig-<profile>` under MIG's mixed strategy. */
  readonly gpuResource: string;
}

/** One pod that asks for GPU slices. */
export interface GpuPod {
  readonly resource: string;
  readonly name: string;
  readonly slices: number;
  /** The extended resource it asks for (`nvidia.com/gpu`, `nvidia.com/mig-3g.40gb`). */
  readonly gpuResource: string;
  readonly vllm?: { readonly settings: VllmSettings; readonly estimate: VramEstimate };
}

export interface DeviceUse {
  readonly device: GpuDevice;
  readonly pods: { readonly pod: GpuPod; readonly slices: number; readonly claimedGiB: number; readonly fits: boolean }[];
  readonly usedSlices: number;
  /** Sum of vLLM --gpu-memory-utilization of the pods on it. */
  readonly utilization: number;
}

export interface Placement {
  readonly devices: DeviceUse[];
  readonly pending: { readonly pod: GpuPod; readonly reason: string }[];
  readonly totalSlices: number;
  readonly requestedSlices: number;
}

function migMemory(profile: string): number {
  const match = /(\d+)gb/.exec(profile);
  return match?.[1] ? Number(match[1]) : 0;
}

/** The devices the nodes advertise under the spec's sharing mode. */
export function devicesOf(spec: PlatformSpec): GpuDevice[] {
  const sharing = spec.gpu.sharing;
  return spec.gpu.nodes.flatMap((node: GpuNodeSpec) =>
    node.gpus.flatMap((gpu, index): GpuDevice[] => {
      if (sharing.mode === "mig") {
        // The single strategy advertises every MIG device as nvidia.com/gpu; mixed, one resource per profile.
        return Object.entries(sharing.profiles).flatMap(([profile, count]) =>
          Array.from({ length: count }, () => ({
            node: node.name,
            index,
            model: `${gpu.model} MIG ${profile}`,
            memoryGiB: migMemory(profile),
            slices: 1,
            gpuResource: gpuResourceName(spec, profile),
          })),
        );
      }
      return [{ node: node.name, index, model: gpu.model, memoryGiB: gpu.memoryGiB, slices: sharing.mode === "timeSlicing" ? sharing.replicas : 1, gpuResource: gpuResourceName(spec) }];
    }),
  );
}

/**
 * Where the scheduler and device plugin can put each GPU pod. The scheduler counts slices, not memory,
 * so a pod may land on a card too small for it: such placements are kept and marked `fits: false`.
 * Largest needs go first, onto the GPU with the most free memory.
 */
export function placePods(devices: readonly GpuDevice[], pods: readonly GpuPod[]): Placement {
  const uses: DeviceUse[] = devices.map((device) => ({ device, pods: [], usedSlices: 0, utilization: 0 }));
  const mutable = uses as { device: GpuDevice; pods: DeviceUse["pods"][number][]; usedSlices: number; utilization: number }[];
  const pending: Placement["pending"][number][] = [];
  const totalSlices = devices.reduce((n, d) => n + d.slices, 0);
  const requestedSlices = pods.reduce((n, p) => n + p.slices, 0);
  const need = (p: GpuPod) => p.vllm?.estimate.totalGiB ?? 0;
  const order = [...pods].sort((a, b) => need(b) - need(a) || b.slices - a.slices);
  const requested = new Map<string, number>();
  for (const pod of order) {
    requested.set(pod.gpuResource, (requested.get(pod.gpuResource) ?? 0) + pod.slices);
    const util = pod.vllm?.settings.gpuMemoryUtilization ?? 0;
    const freeMemory = (u: (typeof mutable)[number]) => u.device.memoryGiB * (1 - u.utilization);
    const fitsOn = (u: (typeof mutable)[number]) => !pod.vllm || (u.device.memoryGiB * util >= need(pod) && u.utilization + util <= 1 + 1e-9);
    const free = (u: (typeof mutable)[number]) => u.device.slices - u.usedSlices;
    const preferred = (a: (typeof mutable)[number], b: (typeof mutable)[number]) => Number(fitsOn(b)) - Number(fitsOn(a)) || freeMemory(b) - freeMemory(a);
    const take = (u: (typeof mutable)[number], slices: number) => {
      u.pods.push({ pod, slices, claimedGiB: Math.round(u.device.memoryGiB * util * 100) / 100, fits: fitsOn(u) });
      u.usedSlices += slices;
      u.utilization += util;
    };
    const offered = mutable.filter((u) => u.device.gpuResource === pod.gpuResource);
    const chosen = offered.filter((u) => free(u) >= pod.slices).sort(preferred)[0];
    if (chosen) {
      take(chosen, pod.slices);
      continue;
    }
    // More slices than any one device has free (tensor parallelism over whole GPUs or MIG devices):
    // the kubelet gives the pod devices of one node, one rank on each.
    let spread: { use: (typeof mutable)[number]; slices: number }[] | undefined;
    for (const node of new Set(offered.map((u) => u.device.node))) {
      let left = pod.slices;
      const taken: { use: (typeof mutable)[number]; slices: number }[] = [];
      for (const u of offered.filter((candidate) => candidate.device.node === node && free(candidate) > 0).sort(preferred)) {
        if (left === 0) break;
        taken.push({ use: u, slices: Math.min(free(u), left) });
        left -= Math.min(free(u), left);
      }
      const fitting = (ranks: typeof taken) => ranks.filter((t) => fitsOn(t.use)).length;
      if (left === 0 && (spread === undefined || fitting(taken) > fitting(spread))) spread = taken;
    }
    if (spread) {
      for (const { use, slices } of spread) take(use, slices);
      continue;
    }
    const byNode = new Map<string, number>();
    for (const u of offered) byNode.set(u.device.node, (byNode.get(u.device.node) ?? 0) + u.device.slices);
    const largest = Math.max(0, ...byNode.values());
    const exist = offered.reduce((n, u) => n + u.device.slices, 0);
    const resource = pod.gpuResource;
    pending.push({
      pod,
      reason:
        exist === 0
          ? `needs ${pod.slices} ${resource}, which none of the declared GPUs advertises (they advertise ${[...new Set(devices.map((d) => d.gpuResource))].join(", ")})`
          : pod.slices > largest
            ? `needs ${pod.slices} ${resource} on one node, the largest node has ${largest}`
            : `needs ${pod.slices} ${resource}, ${exist} exist, ${requested.get(resource) ?? 0} requested`,
    });
  }
  return { devices: uses, pending, totalSlices, requestedSlices };
}
