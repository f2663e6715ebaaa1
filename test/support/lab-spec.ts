import { readFileSync } from "node:fs";

/** The lab example every spec test starts from. */
export const LAB_EXAMPLE = "examples/lab/platform.yaml";

export interface LabChanges {
  /** LoRA adapters added on the shared engine, named extra-0, extra-1, … */
  readonly adapters?: number;
  /** Their rank. @default 16 */
  readonly rank?: number;
  /** Lines added to the lab's vLLM engine (after its maxLoraRank), indented as its keys. */
  readonly engine?: string;
  /** The engine's replicas. @default 1, the lab's */
  readonly replicas?: number;
}

/** The lab's spec text with these changes: more LoRA adapters, engine settings, engine replicas. */
export function labSpec(changes: LabChanges = {}): string {
  const rank = changes.rank ?? 16;
  const extra = Array.from(
    { length: changes.adapters ?? 0 },
    (_, i) =>
      `    - name: extra-${i}\n      lora: { source: { huggingFace: { repo: lab/extra-${i}, revision: 5f1c7e2d9a8b4c3e6f70a1b2c3d4e5f6a7b8c9d0 } }, rank: ${rank} }\n`,
  ).join("");
  return readFileSync(LAB_EXAMPLE, "utf8")
    .replace("  adapters:\n", `  adapters:\n${extra}`)
    .replace("      maxLoraRank: 16\n", `      maxLoraRank: 16\n${changes.engine ?? ""}`)
    .replace("      gpuSlices: 1\n      replicas: 1\n", `      gpuSlices: 1\n      replicas: ${changes.replicas ?? 1}\n`);
}
