import { formatPath } from "./issues.ts";
import { MIG_FAMILIES, migLayoutProblem, migSupport } from "./mig.ts";
import type { Path } from "./overlay.ts";
import type { GpuNodeSpec, GpuSharingSpec, PlatformSpec } from "./schema.ts";

/** The sharing a node's GPUs are under, and where the spec sets it. */
export interface NodeSharing {
  readonly sharing: GpuSharingSpec;
  /** The spec path of that sharing, for messages: `gpu.sharing`. */
  readonly path: Path;
}

/** The sharing that applies to a node's GPUs. */
export function sharingOf(spec: PlatformSpec, _node: GpuNodeSpec): NodeSharing {
  return { sharing: spec.gpu.sharing, path: ["gpu", "sharing"] };
}

type Report = (path: Path, message: string, fix: string) => void;

/**
 * MIG only where the card has it, with profiles that card offers, and no more of them than fit it:
 * the device plugin would otherwise advertise devices that never exist (two L4s showed 40 GiB MIG
 * slices that "fit").
 */
export function checkGpuSharing(spec: PlatformSpec, error: Report): void {
  if (!spec.gpu.enabled) return;
  spec.gpu.nodes.forEach((node, n) => {
    const { sharing, path } = sharingOf(spec, node);
    if (sharing.mode !== "mig") return;
    const where = formatPath(path);
    node.gpus.forEach((gpu, g) => {
      const at: Path = ["gpu", "nodes", n, "gpus", g, "model"];
      const support = migSupport(gpu.model, gpu.memoryGiB);
      if (support.kind === "none") {
        error(at, `${gpu.model} on node ${node.name} has no MIG (only ${MIG_FAMILIES} do), but ${where} is mode: mig`, `share this node's GPUs by time-slicing (mode: timeSlicing) or not at all (mode: none)`);
      } else if (support.kind === "unknown-size") {
        error(["gpu", "nodes", n, "gpus", g, "memoryGiB"], `no ${support.family} with MIG has ${gpu.memoryGiB} GiB (MIG-capable ${support.family}s have ${support.sizes.join(" or ")} GiB), so its MIG profiles cannot be checked`, `set memoryGiB to the card's memory as nvidia-smi reports it: ${support.sizes.join(" or ")}`);
      } else {
        const problem = migLayoutProblem(support.gpu, sharing.profiles);
        if (problem !== undefined) {
          const profilePath: Path = problem.profile !== undefined ? [...path, "profiles", problem.profile] : [...path, "profiles"];
          error(profilePath, `${problem.message} (${gpu.model} on node ${node.name})`, `choose MIG devices that fit one card, e.g. ${balanced(support.gpu.profiles)}`);
        }
      }
    });
  });
}

/** A layout that fits: one each of the 1g (small), 2g and 3g profiles, as mig-parted's all-balanced. */
function balanced(profiles: Readonly<Record<string, number>>): string {
  const names = Object.keys(profiles).filter((p) => !p.endsWith("+me"));
  const first = (prefix: string) => names.find((p) => p.startsWith(prefix));
  const pick = [first("1g."), first("2g."), first("3g.")].filter((p): p is string => p !== undefined);
  return `{${pick.map((p, i) => `${p}: ${i === 0 ? 2 : 1}`).join(", ")}}`;
}
