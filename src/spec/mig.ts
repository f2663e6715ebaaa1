// Which GPUs have MIG, and the MIG devices each can be split into. From NVIDIA's MIG user guide and
// the layouts mig-parted ships (deployments/systemd/config-default.yaml): a profile `Ng.Mgb` takes N
// of the card's compute slices and M GB of its memory; the count is how many fit one card alone.
// GPUs not listed here (L4, L40S, T4, every RTX card, …) have no MIG at all.

/** One MIG-capable card: its family, its memory and its profiles with how many of each fit it. */
export interface MigGpu {
  /** The family as NVIDIA names it; variants (A800, H800, NVL, GH200's Hopper) have their own entries. */
  readonly family: string;
  readonly memoryGiB: number;
  /** Compute and memory slices of the whole card: 7 and 8, but the A30's 4 and 4. */
  readonly slices: { readonly compute: number; readonly memory: number };
  /** Profile → the most of it one card holds. */
  readonly profiles: Readonly<Record<string, number>>;
}

/** The usual Hopper/Ampere ladder of profiles for a card of `gb` GB with 1g profiles of `small` and `large` GB. */
function ladder(gb: number, small: number, large: number, three: number): Record<string, number> {
  return {
    [`1g.${small}gb`]: 7,
    [`1g.${small}gb+me`]: 1,
    [`1g.${large}gb`]: 4,
    [`2g.${large}gb`]: 3,
    [`3g.${three}gb`]: 2,
    [`4g.${three}gb`]: 1,
    [`7g.${gb}gb`]: 1,
  };
}

const SEVEN = { compute: 7, memory: 8 } as const;

export const MIG_GPUS: readonly MigGpu[] = [
  {
    family: "A100",
    memoryGiB: 40,
    slices: SEVEN,
    profiles: { "1g.5gb": 7, "1g.5gb+me": 1, "1g.10gb": 4, "2g.10gb": 3, "3g.20gb": 2, "4g.20gb": 1, "7g.40gb": 1 },
  },
  { family: "A100", memoryGiB: 80, slices: SEVEN, profiles: ladder(80, 10, 20, 40) },
  {
    family: "A30",
    memoryGiB: 24,
    slices: { compute: 4, memory: 4 },
    profiles: { "1g.6gb": 4, "1g.6gb+me": 1, "2g.12gb": 2, "2g.12gb+me": 1, "4g.24gb": 1 },
  },
  { family: "H100", memoryGiB: 80, slices: SEVEN, profiles: ladder(80, 10, 20, 40) },
  { family: "H100", memoryGiB: 94, slices: SEVEN, profiles: ladder(94, 12, 24, 47) },
  { family: "H100", memoryGiB: 96, slices: SEVEN, profiles: ladder(96, 12, 24, 48) },
  { family: "H20", memoryGiB: 96, slices: SEVEN, profiles: ladder(96, 12, 24, 48) },
  { family: "GH200", memoryGiB: 96, slices: SEVEN, profiles: ladder(96, 12, 24, 48) },
  { family: "GH200", memoryGiB: 144, slices: SEVEN, profiles: ladder(144, 18, 36, 72) },
  { family: "H200", memoryGiB: 141, slices: SEVEN, profiles: ladder(141, 18, 35, 71) },
  { family: "B200", memoryGiB: 180, slices: SEVEN, profiles: ladder(180, 23, 45, 90) },
  { family: "GB200", memoryGiB: 189, slices: SEVEN, profiles: ladder(189, 24, 47, 95) },
];

/** Product names as nvidia-smi and GPU feature discovery print them, most specific first (GH200 before H200). */
const FAMILIES: readonly (readonly [family: string, pattern: RegExp])[] = [
  ["GB200", /\bGB200\b/],
  ["GH200", /\bGH200\b/],
  ["B200", /\bB200\b/],
  ["H200", /\bH200\b/],
  ["H100", /\bH[18]00\b/],
  ["H20", /\bH20\b/],
  ["A100", /\bA[18]00\b/],
  ["A30", /\bA30\b/],
];

/** The families that have MIG, for messages. */
export const MIG_FAMILIES = "A100, A30, H100, H200, B200 and their variants (A800, H800, H20, GH200, GB200)";

export type MigSupport =
  | { readonly kind: "none" }
  | { readonly kind: "unknown-size"; readonly family: string; readonly sizes: readonly number[] }
  | { readonly kind: "mig"; readonly gpu: MigGpu };

/** Whether a card (as the spec names it, with its memory) has MIG, and which variant it is. */
export function migSupport(model: string, memoryGiB: number): MigSupport {
  const family = FAMILIES.find(([, pattern]) => pattern.test(model.toUpperCase()))?.[0];
  if (family === undefined) return { kind: "none" };
  const variants = MIG_GPUS.filter((gpu) => gpu.family === family);
  // nvidia-smi's MiB and the marketing GB differ by a few percent: take the nearest size within 10%.
  const nearest = [...variants].sort((a, b) => Math.abs(a.memoryGiB - memoryGiB) - Math.abs(b.memoryGiB - memoryGiB))[0];
  if (nearest === undefined || Math.abs(nearest.memoryGiB - memoryGiB) > nearest.memoryGiB * 0.1) {
    return { kind: "unknown-size", family, sizes: variants.map((gpu) => gpu.memoryGiB) };
  }
  return { kind: "mig", gpu: nearest };
}

/** A profile's compute slices and memory (GB) from its name (`3g.40gb`, `1g.10gb+me`). */
export function parseMigProfile(profile: string): { readonly compute: number; readonly memoryGB: number } | undefined {
  const match = /^(\d+)g\.(\d+)gb(\+me)?$/.exec(profile);
  return match?.[1] && match[2] ? { compute: Number(match[1]), memoryGB: Number(match[2]) } : undefined;
}

/**
 * Why a layout of MIG devices does not fit one card, if it does not: a profile the card lacks, more of
 * one than it holds, or more compute or memory slices than it has. NVIDIA's placement rules are
 * stricter still (mig-parted refuses what cannot be placed); these are the sums a spec can get wrong.
 */
export function migLayoutProblem(
  gpu: MigGpu,
  layout: Readonly<Record<string, number>>,
): { readonly profile?: string; readonly message: string } | undefined {
  const name = `${gpu.family} ${gpu.memoryGiB}GB`;
  let compute = 0;
  let memory = 0;
  for (const [profile, count] of Object.entries(layout)) {
    const most = gpu.profiles[profile];
    if (most === undefined)
      return { profile, message: `the ${name} has no MIG profile ${profile}; its profiles are ${Object.keys(gpu.profiles).join(", ")}` };
    if (count > most) return { profile, message: `${count}× ${profile} does not fit one ${name}, which holds at most ${most}` };
    const parsed = parseMigProfile(profile);
    compute += (parsed?.compute ?? 0) * count;
    memory += Math.round(((parsed?.memoryGB ?? 0) * gpu.slices.memory) / gpu.memoryGiB) * count;
  }
  const spelled = Object.entries(layout)
    .map(([profile, count]) => `${count}× ${profile}`)
    .join(" + ");
  if (compute > gpu.slices.compute) return { message: `${spelled} takes ${compute} compute slices; the ${name} has ${gpu.slices.compute}` };
  if (memory > gpu.slices.memory)
    return {
      message: `${spelled} takes ${memory} memory slices (${Math.round(gpu.memoryGiB / gpu.slices.memory)} GB each); the ${name} has ${gpu.slices.memory}`,
    };
  return undefined;
}
