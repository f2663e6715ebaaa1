import { DEFAULT_ARCHITECTURE, gpuPodsOf, gpuSlicesOf } from "../../plan/gpu-pods.ts";
import { devicesOf, placePods, type GpuDevice, type Placement } from "../../plan/placement.ts";
import { isVllmContainer, vllmSettingsFromArgs } from "../../plan/vram.ts";
import { DEVICE_PLUGIN_CONFIG_KEY } from "../../render/device-plugin.ts";
import { perNodeSharing, sharingConfigsInUse } from "../../spec/gpu-sharing.ts";
import { defineRule } from "../finding.ts";
import { findDevicePluginConfigs, timeSlicingReplicas } from "../device-plugin.ts";
import type { Finding, RuleContext } from "../types.ts";

/**
 * Devices as the spec declares them, with the slice count the rendered device-plugin config of each
 * node sets (per node, the ConfigMap key its label names; else the one config).
 */
export function devicesFor(context: RuleContext): GpuDevice[] {
  const platform = context.env.platform;
  if (!platform || !platform.spec.gpu.enabled) return [];
  const devices = devicesOf(platform.spec);
  const found = findDevicePluginConfigs(context.inventory);
  if (found.length === 0) return devices;
  const perNode = perNodeSharing(platform.spec);
  return devices.map((device) => {
    if (device.mig) return device;
    const key = perNode ? device.sharingConfig : DEVICE_PLUGIN_CONFIG_KEY;
    const mine = found.find((c) => c.key === key) ?? (perNode ? undefined : found[0]);
    // A config the plugin cannot read shares nothing: each card is advertised once.
    return { ...device, slices: mine?.parsed ? timeSlicingReplicas(mine.parsed) : 1 };
  });
}

const placements = new WeakMap<RuleContext["inventory"], Placement | null>();

export function placementFor(context: RuleContext): Placement | undefined {
  const cached = placements.get(context.inventory);
  if (cached !== undefined) return cached ?? undefined;
  const placement = computePlacement(context);
  placements.set(context.inventory, placement ?? null);
  return placement;
}

function computePlacement(context: RuleContext): Placement | undefined {
  const devices = devicesFor(context);
  if (devices.length === 0) return undefined;
  return placePods(devices, gpuPodsOf(context.inventory, context.env.platform?.spec.model.architecture ?? DEFAULT_ARCHITECTURE));
}

const deviceName = (d: GpuDevice) => `${d.node} GPU ${d.index} (${d.model}, ${d.memoryGiB} GiB)`;

export const gpuRules = [
  defineRule("gpu/device-plugin-config", "error", "the device-plugin config follows NVIDIA's schema", ({ inventory }, report) =>
    findDevicePluginConfigs(inventory).flatMap((found): Finding[] =>
      found.problems.length === 0
        ? []
        : [
            report(
              found.configMap,
              `data.${found.key}`,
              `not a valid NVIDIA device-plugin config (${found.problems.join("; ")}): the plugin ignores it and advertises each GPU once`,
              "write version: v1 and sharing.timeSlicing.resources: [{name: nvidia.com/gpu, replicas: N}] (see `diatonic render` output)",
            ),
          ],
    ),
  ),
  defineRule("gpu/capacity", "error", "GPU requests fit the slices the nodes advertise", (context, report) => {
    const placement = placementFor(context);
    if (!placement) return [];
    return placement.pending.map(({ pod, reason }) => {
      const owner = context.inventory.templates.find((t) => t.resource === pod.resource)?.owner ?? pod.resource;
      return report(
        owner,
        "spec.template.spec.containers[*].resources.limits",
        `${pod.name} will stay Pending: ${reason}`,
        `lower its nvidia.com/gpu or replicas, raise gpu.sharing.replicas, or add GPU nodes (capacity ${placement.totalSlices}, requested ${placement.requestedSlices})`,
      );
    });
  }),
  defineRule(
    "gpu/fail-requests-greater-than-one",
    "error",
    "no pod asks for more than one slice when the plugin refuses it",
    ({ inventory }, report) => {
      const strict = findDevicePluginConfigs(inventory).some((c) => c.parsed?.sharing?.timeSlicing?.failRequestsGreaterThanOne === true);
      if (!strict) return [];
      return inventory.templates.flatMap((template) =>
        template.spec.containers.flatMap((container, i): Finding[] => {
          const slices = gpuSlicesOf(container.resources?.limits);
          return slices > 1
            ? [
                report(
                  template.owner,
                  `${template.path}.containers[${i}].resources.limits`,
                  `asks for ${slices} time-sliced GPUs, but failRequestsGreaterThanOne is true: the plugin fails the allocation (UnexpectedAdmissionError)`,
                  "request 1 slice (a slice is the whole GPU's compute, shared), or set failRequestsGreaterThanOne: false knowing slices give no extra memory",
                ),
              ]
            : [];
        }),
      );
    },
  ),
  defineRule("gpu/memory-utilization-sum", "error", "vLLM pods sharing one GPU claim at most all of its memory", (context, report) => {
    const placement = placementFor(context);
    if (!placement) return [];
    return placement.devices
      .filter((use) => use.utilization > 1 + 1e-9)
      .map((use) =>
        report(
          use.pods[0]?.pod.resource ?? "Node",
          "--gpu-memory-utilization",
          `${deviceName(use.device)} holds ${use.pods.map((p) => p.pod.name).join(", ")} whose --gpu-memory-utilization add up to ${use.utilization.toFixed(2)} > 1: the later one fails to start`,
          "lower --gpu-memory-utilization so they sum to ≤ 1, or give them separate GPUs",
        ),
      );
  }),
  defineRule("gpu/vram", "error", "vLLM's estimated memory fits the GPU share it claims", (context, report) => {
    const placement = placementFor(context);
    if (!placement) return [];
    const findings: Finding[] = [];
    for (const use of placement.devices) {
      for (const placed of use.pods) {
        const vllm = placed.pod.vllm;
        if (!vllm || placed.fits) continue;
        const e = vllm.estimate;
        findings.push(
          report(
            placed.pod.resource,
            "--gpu-memory-utilization",
            `${placed.pod.name} needs about ${e.totalGiB} GiB (weights ${e.weightsGiB}, LoRA slots ${e.loraGiB}, KV cache for ${vllm.settings.maxModelLen} tokens ${e.kvCacheGiB}, overhead ${e.overheadGiB}) but gets ${placed.claimedGiB} GiB on ${deviceName(use.device)}`,
            "quantise the model, lower --max-model-len or --max-loras, raise --gpu-memory-utilization, or use a larger GPU",
          ),
        );
      }
    }
    // Time-slicing hides which card a slice belongs to: a pod that only fits the larger card may get the smaller.
    // The cards its slice may come from: the node's others advertised under the same resource.
    const smallestBeside = (device: GpuDevice) =>
      Math.min(
        ...placement.devices
          .filter((u) => u.device.node === device.node && u.device.gpuResource === device.gpuResource)
          .map((u) => u.device.memoryGiB),
      );
    const seen = new Set<string>();
    for (const use of placement.devices) {
      const smallest = smallestBeside(use.device);
      for (const placed of use.pods) {
        const vllm = placed.pod.vllm;
        if (!vllm || !placed.fits || seen.has(placed.pod.resource) || use.device.memoryGiB === smallest || use.device.slices <= 1) continue;
        if (smallest * vllm.settings.gpuMemoryUtilization < vllm.estimate.totalGiB) {
          seen.add(placed.pod.resource);
          findings.push(
            report(
              placed.pod.resource,
              "resources.limits.nvidia.com/gpu",
              `${placed.pod.name} fits ${deviceName(use.device)} but not the ${smallest} GiB card on the same node; time-slicing does not let it choose, so it may start on the small one and fail`,
              "make it fit the smallest card (quantise the model, lower maxModelLen or maxLoras), or run it on nodes whose cards all fit it (gpu.nodeSelector)",
              "warning",
            ),
          );
        }
      }
    }
    return findings;
  }),
  defineRule("gpu/tensor-parallel", "error", "tensor parallelism uses whole, matching GPUs", (context, report) =>
    context.inventory.templates.flatMap((template) =>
      template.spec.containers.flatMap((container, i): Finding[] => {
        if (!isVllmContainer(container)) return [];
        const tp = vllmSettingsFromArgs([...(container.command ?? []), ...(container.args ?? [])]).tensorParallel;
        if (tp <= 1) return [];
        const path = `${template.path}.containers[${i}].args`;
        const slices = gpuSlicesOf(container.resources?.limits);
        const out: Finding[] = [];
        if (slices !== tp)
          out.push(
            report(
              template.owner,
              path,
              `--tensor-parallel-size ${tp} but the container gets ${slices} GPU(s): vLLM needs one GPU per rank`,
              `request nvidia.com/gpu: ${tp}`,
            ),
          );
        const platform = context.env.platform;
        // Where the plan put it, else any time-slicing config the nodes use.
        const placed = placementFor(context)?.devices.filter((use) => use.pods.some((p) => p.pod.resource === template.resource));
        const timeSliced =
          placed !== undefined && placed.length > 0
            ? placed.some((use) => use.device.slices > 1)
            : platform !== undefined && sharingConfigsInUse(platform.spec).some((c) => c.sharing.mode === "timeSlicing");
        if (timeSliced)
          out.push(
            report(
              template.owner,
              path,
              `tensor parallelism over time-sliced GPUs: the ${tp} slices may be the same physical card, so ranks fight over one GPU`,
              "run tensor-parallel engines on GPUs that are not time-sliced (gpu.sharing.mode: none)",
            ),
          );
        const sizes = new Set((platform?.spec.gpu.nodes ?? []).flatMap((n) => n.gpus.map((g) => g.memoryGiB)));
        if (sizes.size > 1)
          out.push(
            report(
              template.owner,
              path,
              `tensor parallelism across GPUs of different sizes (${[...sizes].join(", ")} GiB): every rank is limited to the smallest`,
              "use identical GPUs for a tensor-parallel group",
              "warning",
            ),
          );
        return out;
      }),
    ),
  ),
  defineRule("gpu/rollout-surge", "warning", "GPU Deployments do not surge when no slice is free", (context, report) => {
    const placement = placementFor(context);
    if (!placement) return [];
    const free = placement.totalSlices - placement.requestedSlices;
    return context.inventory.templates.flatMap((template): Finding[] => {
      if (template.owner.kind !== "Deployment") return [];
      const slices = template.spec.containers.reduce((n, c) => n + gpuSlicesOf(c.resources?.limits), 0);
      const strategy = (
        template.owner as unknown as { spec?: { strategy?: { type?: string; rollingUpdate?: { maxSurge?: number | string } } } }
      ).spec?.strategy;
      const surges = (strategy?.type ?? "RollingUpdate") === "RollingUpdate" && strategy?.rollingUpdate?.maxSurge !== 0;
      return slices > 0 && surges && free < slices
        ? [
            report(
              template.owner,
              "spec.strategy",
              `a rolling update starts a new pod before the old one frees its ${slices} GPU slice(s), and only ${free} are free: the rollout stalls`,
              "use strategy type Recreate, or RollingUpdate with maxSurge: 0",
            ),
          ]
        : [];
    });
  }),
];
