import { z } from "zod";
import { dnsLabel, image } from "./schema-common.ts";

/** The GPU part of the spec: the nodes and their cards, how they are shared, and the device plugin. */

export const GpuModel = z.strictObject({
  model: z.string().min(1).describe("GPU product name, e.g. NVIDIA GeForce RTX 3060"),
  memoryGiB: z.number().positive(),
});

/** The name of a device-plugin config: a node label value and a key of the plugin's ConfigMap. */
const sharingConfigName = dnsLabel.refine(
  (name) => name !== "default",
  "must not be 'default': that is the name of gpu.sharing, the config of every node without one",
);

export const GpuNode = z.strictObject({
  name: z.string().min(1).describe("Kubernetes node name"),
  gpus: z.array(GpuModel).min(1),
  sharingConfig: sharingConfigName
    .optional()
    .describe(
      "a key of gpu.sharingConfigs: how this node's GPUs are shared (the node is labelled nvidia.com/device-plugin.config=<name>); default: gpu.sharing",
    ),
});

const MigProfiles = z.record(z.string().regex(/^\d+g\.\d+gb(\+me)?$/, "must be a MIG profile such as 1g.10gb"), z.number().int().min(1));

export const GpuSharing = z.discriminatedUnion("mode", [
  z.strictObject({ mode: z.literal("none") }),
  z.strictObject({
    mode: z.literal("timeSlicing"),
    replicas: z.number().int().min(2).max(48).default(4).describe("time-slices advertised per physical GPU"),
    failRequestsGreaterThanOne: z.boolean().default(true),
    renameByDefault: z.boolean().default(false),
  }),
  z.strictObject({
    mode: z.literal("mig"),
    strategy: z.enum(["single", "mixed"]).default("single"),
    profiles: MigProfiles.describe("MIG devices per GPU, e.g. {1g.10gb: 7}"),
  }),
]);

export const Gpu = z.strictObject({
  enabled: z.boolean().default(true),
  sharing: GpuSharing.prefault({ mode: "timeSlicing" }).describe("how GPUs are shared on every node that names no sharingConfig"),
  sharingConfigs: z
    .record(sharingConfigName, GpuSharing)
    .default({})
    .describe(
      "named sharing configs for groups of nodes (MIG on A100s, time-slicing on L4s): a node picks one with gpu.nodes[].sharingConfig; the device plugin reads it from the node label nvidia.com/device-plugin.config",
    ),
  nodes: z.array(GpuNode).default([]),
  nodeSelector: z
    .record(z.string(), z.string())
    .default({})
    .describe(
      "node labels the engines and the device plugin keep to; default none: the engines go where the plugin advertises GPUs, and the plugin runs on nodes that node feature discovery marks as having an NVIDIA PCI device (feature.node.kubernetes.io/pci-10de.present), or that GPU feature discovery (or you) label nvidia.com/gpu.present=true, as NVIDIA's chart does",
    ),
  devicePlugin: z
    .strictObject({
      managedBy: z.enum(["diatonic", "gpu-operator"]).default("diatonic"),
      namespace: dnsLabel
        .optional()
        .describe(
          "where its config (and, managed by diatonic, the plugin) goes; default: nvidia-device-plugin, or gpu-operator when the GPU Operator manages it (it reads the config from its own namespace)",
        ),
      image: image.default("nvcr.io/nvidia/k8s-device-plugin:v0.17.0"),
    })
    .transform(({ namespace, ...plugin }) => ({
      ...plugin,
      namespace: namespace ?? (plugin.managedBy === "gpu-operator" ? "gpu-operator" : "nvidia-device-plugin"),
    }))
    .prefault({}),
});
