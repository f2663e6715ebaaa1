import { z } from "zod";
import type { KubeObject } from "../render/context.ts";
import { fromYaml } from "../write/yaml.ts";
import type { Inventory } from "./inventory.ts";

/** NVIDIA k8s-device-plugin config file, api/config/v1: the fields that decide what is advertised. */
export const NvidiaDevicePluginConfig = z.strictObject({
  version: z.literal("v1"),
  flags: z
    .looseObject({
      migStrategy: z.enum(["none", "single", "mixed"]).optional(),
      failOnInitError: z.boolean().optional(),
    })
    .optional(),
  resources: z.looseObject({}).optional(),
  sharing: z
    .strictObject({
      timeSlicing: z
        .strictObject({
          renameByDefault: z.boolean().optional(),
          failRequestsGreaterThanOne: z.boolean().optional(),
          resources: z
            .array(
              z.strictObject({
                name: z.string().regex(/^nvidia\.com\/(gpu|mig-\d+g\.\d+gb)$/, "must be nvidia.com/gpu or nvidia.com/mig-<profile>"),
                devices: z.union([z.literal("all"), z.number(), z.array(z.union([z.string(), z.number()]))]).optional(),
                replicas: z.number().int().min(2),
                rename: z.string().optional(),
              }),
            )
            .min(1),
        })
        .optional(),
      mps: z.looseObject({}).optional(),
    })
    .optional(),
  imex: z.looseObject({}).optional(),
});
export type NvidiaDevicePluginConfig = z.infer<typeof NvidiaDevicePluginConfig>;

export interface FoundConfig {
  readonly configMap: KubeObject;
  readonly key: string;
  readonly raw: unknown;
  readonly parsed?: NvidiaDevicePluginConfig;
  readonly problems: readonly string[];
}

const NAME_HINT = /device-plugin|time-slicing|timeslicing|nvidia/i;

/**
 * Top-level keys of a device-plugin config, and the time-slicing keys written at the top by mistake:
 * a ConfigMap found by its name holds a config only if its value has one of them (a platform named
 * `nvidia-lab` names its Grafana dashboard's ConfigMap after itself).
 */
const PLUGIN_KEYS = [
  "flags",
  "sharing",
  "timeSlicing",
  "resources",
  "mps",
  "imex",
  "replicas",
  "renameByDefault",
  "failRequestsGreaterThanOne",
  "migStrategy",
];

const found = new WeakMap<Inventory, FoundConfig[]>();

/** ConfigMaps holding a device-plugin config: by name, or by a value that looks like one. */
export function findDevicePluginConfigs(inventory: Inventory): FoundConfig[] {
  const cached = found.get(inventory);
  if (cached) return cached;
  const result = scan(inventory);
  found.set(inventory, result);
  return result;
}

function scan(inventory: Inventory): FoundConfig[] {
  return inventory.ofKind("ConfigMap").flatMap((configMap) => {
    const data = (configMap as unknown as { data?: Record<string, string> }).data ?? {};
    const named = NAME_HINT.test(configMap.metadata.name);
    return Object.entries(data).flatMap(([key, text]): FoundConfig[] => {
      // Parsing every ConfigMap is costly (the gateway's holds every adapter); look before parsing.
      if (!named && !/^\s*(sharing|timeSlicing)\s*:/m.test(text)) return [];
      let raw: unknown;
      try {
        raw = fromYaml(text);
      } catch {
        // Broken YAML is a config only when it reads like one (a script in a ConfigMap named nvidia-… is not).
        return named && /^\s*(version|flags|sharing|timeSlicing)\s*:/m.test(text)
          ? [{ configMap, key, raw: text, problems: ["is not valid YAML"] }]
          : [];
      }
      const looksLike =
        typeof raw === "object" && raw !== null && ("sharing" in raw || "timeSlicing" in raw || ("version" in raw && "flags" in raw));
      const namedLikeOne =
        named && typeof raw === "object" && raw !== null && !("mig-configs" in raw) && PLUGIN_KEYS.some((key) => key in raw);
      if (!looksLike && !namedLikeOne) return [];
      const result = NvidiaDevicePluginConfig.safeParse(raw);
      if (result.success) return [{ configMap, key, raw, parsed: result.data, problems: [] }];
      return [{ configMap, key, raw, problems: result.error.issues.map((i) => `${i.path.join(".") || "(root)"}: ${i.message}`) }];
    });
  });
}

/** Time-slicing replicas of nvidia.com/gpu in a valid config (1 when it does not time-slice). */
export function timeSlicingReplicas(config: NvidiaDevicePluginConfig): number {
  return config.sharing?.timeSlicing?.resources.find((r) => r.name === "nvidia.com/gpu")?.replicas ?? 1;
}
