import { sharingOf } from "../spec/gpu-sharing.ts";
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
  /** The device-plugin config its node runs (`default`: gpu.sharing). */
  readonly sharingConfig: string;
  /** A MIG device (its slices are fixed by the layout, not by time-slicing). */
  readonly mig: boolean;
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

/** The devices each node advertises under its own sharing config (gpu.sharing, or its sharingConfig). */
export function devicesOf(spec: PlatformSpec): GpuDevice[] {
  return spec.gpu.nodes.flatMap((node: GpuNodeSpec) => {
    const { sharing, name: sharingConfig } = sharingOf(spec, node);
    return node.gpus.flatMap((gpu, index): GpuDevice[] => {
      if (sharing.mode === "mig") {
        // The single strategy advertises every MIG device as nvidia.com/gpu; mixed, one resource per profile.
        return Object.entries(sharing.profiles).flatMap(([profile, count]) =>
          Array.from({ length: count }, () => ({
            node: node.name,
            index,
            model: `${gpu.model} MIG ${profile}`,
            memoryGiB: Math.min(migMemory(profile), gpu.memoryGiB),
            slices: 1,
            sharingConfig,
            mig: true,
            gpuResource: sharing.strategy === "mixed" ? `nvidia.com/mig-${profile}` : "nvidia.com/gpu",
          })),
        );
      }
      const timeSliced = sharing.mode === "timeSlicing";
      return [
        {
          node: node.name,
          index,
          model: gpu.model,
          memoryGiB: gpu.memoryGiB,
          slices: timeSliced ? sharing.replicas : 1,
          sharingConfig,
          mig: false,
          gpuResource: timeSliced && sharing.renameByDefault ? "nvidia.com/gpu.shared" : "nvidia.com/gpu",
        },
      ];
    });
  });
}

/** A device's use while pods are being placed. */
interface Use {
  readonly device: GpuDevice;
  readonly pods: DeviceUse["pods"][number][];
  usedSlices: number;
  utilization: number;
}

const free = (use: Use) => use.device.slices - use.usedSlices;

/**
 * A pod asking for more slices than any one device has free (tensor parallelism over whole GPUs):
 * the kubelet gives it devices of one node. The node whose devices fit the most ranks wins.
 */
function spreadOnOneNode(
  offered: readonly Use[],
  slices: number,
  preferred: (a: Use, b: Use) => number,
  fits: (use: Use) => boolean,
): { use: Use; slices: number }[] | undefined {
  let best: { use: Use; slices: number }[] | undefined;
  const fitting = (ranks: readonly { use: Use }[]) => ranks.filter((rank) => fits(rank.use)).length;
  for (const node of new Set(offered.map((use) => use.device.node))) {
    let left = slices;
    const taken: { use: Use; slices: number }[] = [];
    for (const use of offered.filter((candidate) => candidate.device.node === node && free(candidate) > 0).sort(preferred)) {
      if (left === 0) break;
      const take = Math.min(free(use), left);
      taken.push({ use, slices: take });
      left -= take;
    }
    if (left === 0 && (best === undefined || fitting(taken) > fitting(best))) best = taken;
  }
  return best;
}

/**
 * Where the scheduler and device plugin can put each GPU pod. The scheduler counts slices, not memory,
 * so a pod may land on a card too small for it: such placements are kept and marked `fits: false`.
 * Largest needs go first, onto the GPU with the most free memory; a pod only gets devices advertised
 * under the resource it asks for.
 */
export function placePods(devices: readonly GpuDevice[], pods: readonly GpuPod[]): Placement {
  const uses: Use[] = devices.map((device) => ({ device, pods: [], usedSlices: 0, utilization: 0 }));
  const pending: Placement["pending"][number][] = [];
  const totalSlices = devices.reduce((n, d) => n + d.slices, 0);
  const requestedSlices = pods.reduce((n, p) => n + p.slices, 0);
  const need = (p: GpuPod) => p.vllm?.estimate.totalGiB ?? 0;
  const order = [...pods].sort((a, b) => need(b) - need(a) || b.slices - a.slices);
  const requested = new Map<string, number>();
  for (const pod of order) {
    const resource = pod.gpuResource;
    requested.set(resource, (requested.get(resource) ?? 0) + pod.slices);
    const util = pod.vllm?.settings.gpuMemoryUtilization ?? 0;
    const freeMemory = (use: Use) => use.device.memoryGiB * (1 - use.utilization);
    const fitsOn = (use: Use) => !pod.vllm || (use.device.memoryGiB * util >= need(pod) && use.utilization + util <= 1 + 1e-9);
    const preferred = (a: Use, b: Use) => Number(fitsOn(b)) - Number(fitsOn(a)) || freeMemory(b) - freeMemory(a);
    const take = (use: Use, slices: number) => {
      use.pods.push({ pod, slices, claimedGiB: Math.round(use.device.memoryGiB * util * 100) / 100, fits: fitsOn(use) });
      use.usedSlices += slices;
      use.utilization += util;
    };
    const offered = uses.filter((use) => use.device.gpuResource === resource);
    const chosen = offered.filter((use) => free(use) >= pod.slices).sort(preferred)[0];
    const ranks = chosen ? [{ use: chosen, slices: pod.slices }] : spreadOnOneNode(offered, pod.slices, preferred, fitsOn);
    if (ranks) {
      for (const rank of ranks) take(rank.use, rank.slices);
      continue;
    }
    const byNode = new Map<string, number>();
    for (const use of offered) byNode.set(use.device.node, (byNode.get(use.device.node) ?? 0) + use.device.slices);
    const largest = Math.max(0, ...byNode.values());
    const exist = offered.reduce((n, use) => n + use.device.slices, 0);
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
