import { formatPath } from "./issues.ts";
import { MIG_FAMILIES, migLayoutProblem, migSupport } from "./mig.ts";
import type { Path } from "./overlay.ts";
import type { GpuNodeSpec, GpuSharingSpec, PlatformSpec } from "./schema.ts";

/** The device-plugin config name of `gpu.sharing`, for nodes that name none (the plugin's default). */
export const DEFAULT_SHARING_CONFIG = "default";

/** One device-plugin config: `gpu.sharing` (named `default`) or one of `gpu.sharingConfigs`. */
export interface SharingConfig {
  readonly name: string;
  readonly sharing: GpuSharingSpec;
  /** Where the spec sets it: `gpu.sharing` or `gpu.sharingConfigs.<name>`. */
  readonly path: Path;
  /** The declared nodes under it. */
  readonly nodes: readonly string[];
}

/** True when nodes may be shared differently: the plugin then reads a config per node from its label. */
export function perNodeSharing(spec: PlatformSpec): boolean {
  return Object.keys(spec.gpu.sharingConfigs).length > 0;
}

/** The sharing a node's GPUs are under: its sharingConfig, else `gpu.sharing`. */
export function sharingOf(spec: PlatformSpec, node: GpuNodeSpec): SharingConfig {
  const name = node.sharingConfig;
  const named = name === undefined ? undefined : spec.gpu.sharingConfigs[name];
  if (name === undefined || named === undefined)
    return { name: DEFAULT_SHARING_CONFIG, sharing: spec.gpu.sharing, path: ["gpu", "sharing"], nodes: [node.name] };
  return { name, sharing: named, path: ["gpu", "sharingConfigs", name], nodes: [node.name] };
}

/** Every config with the declared nodes under it: `default` first, then the named ones in order. */
export function sharingConfigs(spec: PlatformSpec): SharingConfig[] {
  const nodesOf = (name: string) => spec.gpu.nodes.filter((node) => sharingOf(spec, node).name === name).map((node) => node.name);
  return [
    { name: DEFAULT_SHARING_CONFIG, sharing: spec.gpu.sharing, path: ["gpu", "sharing"], nodes: nodesOf(DEFAULT_SHARING_CONFIG) },
    ...Object.entries(spec.gpu.sharingConfigs).map(([name, sharing]): SharingConfig => ({
      name,
      sharing,
      path: ["gpu", "sharingConfigs", name],
      nodes: nodesOf(name),
    })),
  ];
}

/**
 * The configs GPUs are shared by: those the declared nodes use, or, with no nodes declared, every
 * config (nodes may be labelled for any of them).
 */
export function sharingConfigsInUse(spec: PlatformSpec): SharingConfig[] {
  const all = sharingConfigs(spec);
  return spec.gpu.nodes.length === 0 ? all : all.filter((config) => config.nodes.length > 0);
}

/** Whether an engine asking for `migProfile` (or none) gets MIG devices, which CUDA shows one at a time. */
export function getsMigDevice(spec: PlatformSpec, migProfile: string | undefined): boolean {
  const used = sharingConfigsInUse(spec);
  if (
    migProfile !== undefined &&
    used.some(({ sharing }) => sharing.mode === "mig" && sharing.strategy === "mixed" && migProfile in sharing.profiles)
  )
    return true;
  return used.length > 0 && used.every(({ sharing }) => sharing.mode === "mig");
}

type Report = (path: Path, message: string, fix: string) => void;

/**
 * Each node names a config that exists; MIG only where the card has it, with profiles that card
 * offers and no more of them than fit it (two L4s showed 40 GiB MIG slices that "fit"); time-slices
 * advertised under one name, so an engine's request can land on any time-sliced node.
 */
export function checkGpuSharing(spec: PlatformSpec, error: Report): void {
  if (!spec.gpu.enabled) return;
  const known = Object.keys(spec.gpu.sharingConfigs);
  spec.gpu.nodes.forEach((node, n) => {
    if (node.sharingConfig !== undefined && !(node.sharingConfig in spec.gpu.sharingConfigs)) {
      error(
        ["gpu", "nodes", n, "sharingConfig"],
        `node ${node.name} names sharing config ${node.sharingConfig}, which gpu.sharingConfigs does not define`,
        known.length > 0
          ? `use one of: ${known.join(", ")}, or add gpu.sharingConfigs.${node.sharingConfig}`
          : `add gpu.sharingConfigs.${node.sharingConfig}: {mode: …}, or leave sharingConfig out to use gpu.sharing`,
      );
      return;
    }
    const { sharing, path } = sharingOf(spec, node);
    if (sharing.mode !== "mig") return;
    const where = formatPath(path);
    node.gpus.forEach((gpu, g) => {
      const at: Path = ["gpu", "nodes", n, "gpus", g, "model"];
      const support = migSupport(gpu.model, gpu.memoryGiB);
      if (support.kind === "none") {
        error(
          at,
          `${gpu.model} on node ${node.name} has no MIG (only ${MIG_FAMILIES} do), but ${where} is mode: mig`,
          known.length > 0 || node.sharingConfig !== undefined
            ? `give node ${node.name} a time-slicing sharingConfig (or none), and MIG only to the nodes with MIG cards`
            : "share this node's GPUs by time-slicing (mode: timeSlicing) or not at all (mode: none); for MIG on other nodes, give those nodes a sharingConfig of their own",
        );
      } else if (support.kind === "unknown-size") {
        error(
          ["gpu", "nodes", n, "gpus", g, "memoryGiB"],
          `no ${support.family} with MIG has ${gpu.memoryGiB} GiB (MIG-capable ${support.family}s have ${support.sizes.join(" or ")} GiB), so its MIG profiles cannot be checked`,
          `set memoryGiB to the card's memory as nvidia-smi reports it: ${support.sizes.join(" or ")}`,
        );
      } else {
        const problem = migLayoutProblem(support.gpu, sharing.profiles);
        if (problem !== undefined) {
          const profilePath: Path = problem.profile !== undefined ? [...path, "profiles", problem.profile] : [...path, "profiles"];
          error(
            profilePath,
            `${problem.message} (${gpu.model} on node ${node.name})`,
            `choose MIG devices that fit one card, e.g. ${balanced(support.gpu.profiles)}`,
          );
        }
      }
    });
  });
  const timeSliced = sharingConfigsInUse(spec).filter((config) => config.sharing.mode === "timeSlicing");
  const renamed = timeSliced.filter((config) => config.sharing.mode === "timeSlicing" && config.sharing.renameByDefault);
  if (renamed.length > 0 && renamed.length < timeSliced.length) {
    const plain = timeSliced.find((config) => !renamed.includes(config));
    error(
      [...(renamed[0]?.path ?? ["gpu", "sharing"]), "renameByDefault"],
      `${formatPath(renamed[0]?.path ?? [])} advertises time-slices as nvidia.com/gpu.shared but ${formatPath(plain?.path ?? [])} as nvidia.com/gpu: an engine asks for one name, so it could never use the other nodes`,
      "set renameByDefault alike in every time-slicing config",
    );
  }
}

/**
 * Under MIG's mixed strategy each MIG profile is a resource of its own, so each engine (the shared one
 * and every dedicated adapter's) names its profile, one the MIG nodes offer; without one it asks for
 * nvidia.com/gpu, which only nodes without MIG advertise.
 */
export function checkMigProfiles(spec: PlatformSpec, error: Report): void {
  const engine = spec.model.engine;
  if (engine.kind !== "vllm" || !spec.gpu.enabled) return;
  const used = sharingConfigsInUse(spec);
  const mixed = used.filter((config) => config.sharing.mode === "mig" && config.sharing.strategy === "mixed");
  if (mixed.length === 0) return;
  const offered = [...new Set(mixed.flatMap((config) => (config.sharing.mode === "mig" ? Object.keys(config.sharing.profiles) : [])))];
  const onlyMixed = mixed.length === used.length;
  const engines: { readonly path: Path; readonly what: string; readonly profile: string | undefined }[] = [
    { path: ["model", "engine", "migProfile"], what: "the engine", profile: engine.migProfile },
    ...spec.adapters.flatMap((adapter, index) =>
      adapter.serving === "dedicated"
        ? [
            {
              path: ["adapters", index, "dedicated", "migProfile"] as Path,
              what: `adapter ${adapter.name}'s own engine`,
              profile: adapter.dedicated.migProfile,
            },
          ]
        : [],
    ),
  ];
  const where = mixed.map((config) => formatPath(config.path)).join(", ");
  for (const { path, what, profile } of engines) {
    const field = formatPath(path);
    if (profile === undefined && onlyMixed) {
      error(
        path,
        `MIG strategy mixed exposes one resource per profile, so ${what} must say which it needs`,
        `set ${field} to one of: ${offered.join(", ")}`,
      );
    } else if (profile !== undefined && !offered.includes(profile)) {
      error(path, `MIG profile ${profile} is not among the profiles of ${where}`, `set ${field} to one of: ${offered.join(", ")}`);
    }
  }
}

/** A layout that fits: two of the small 1g profile, one 2g and one 3g, like mig-parted's all-balanced. */
function balanced(profiles: Readonly<Record<string, number>>): string {
  const names = Object.keys(profiles).filter((p) => !p.endsWith("+me"));
  const first = (prefix: string) => names.find((p) => p.startsWith(prefix));
  const pick = [first("1g."), first("2g."), first("3g.")].filter((p): p is string => p !== undefined);
  return `{${pick.map((p, i) => `${p}: ${i === 0 ? 2 : 1}`).join(", ")}}`;
}
