// Demo LoRAs: in `diatonic dev` on the demo model, each adapter of the spec that declares no LoRA gets
// a synthetic one shaped for the served model, so the demo runs its adapters as LoRAs on a real
// model (a file, the agent's load, a context per adapter). Random weights, not trained: they show the
// LoRA path, and a small scale keeps the model's answers sensible.
import { createHash } from "node:crypto";
import { existsSync, mkdirSync } from "node:fs";
import { join } from "node:path";
import { writeGgufFile } from "../engine/gguf/writer.ts";
import { readLoraTargets, syntheticLora, type LoraTarget } from "../engine/synthetic-lora.ts";
import type { Platform } from "../spec/schema.ts";

export const DEMO_LORA = {
  rank: 8,
  /**
   * alpha / rank. On SmolLM2-135M-Instruct at temperature 0, 0.25 and 0.5 still answer "The capital of
   * France is Paris." (longer answers change wording), 1 derails, 2 gives noise: 0.25 leaves a margin.
   */
  scale: 0.25,
  /** PEFT's default targets for Llama (q_proj, v_proj). */
  projections: ["attn_q", "attn_v"],
} as const;

/** How the demo LoRAs read in the banner and the docs. */
export const DEMO_LORA_DESCRIPTION = `synthetic: random weights at scale ${DEMO_LORA.scale}, rank ${DEMO_LORA.rank}, on ${DEMO_LORA.projections.join("/")}; they show the LoRA path and are not trained`;

/** Changes when the generator's output would: cached files of an older one are not reused. */
const GENERATOR_VERSION = 1;

/** The seed of an adapter's demo LoRA: its name's, so every machine makes the same file. */
export function demoLoraSeed(adapter: string): number {
  return createHash("sha256").update(adapter).digest().readUInt32LE(0);
}

export class DemoLoras {
  private constructor(
    private readonly dir: string,
    private readonly architecture: string,
    private readonly targets: readonly LoraTarget[],
  ) {}

  /** Reads the served model's shapes; undefined when it has none of the projections (not a Llama-like model). */
  static async forModel(modelPath: string, dir: string): Promise<DemoLoras | undefined> {
    const { architecture, targets } = await readLoraTargets(modelPath, DEMO_LORA.projections);
    return targets.length === 0 ? undefined : new DemoLoras(dir, architecture, targets);
  }

  /** The file of an adapter's demo LoRA: named by what it holds, so a file for another model is never loaded. */
  pathFor(adapter: string): string {
    const digest = createHash("sha256")
      .update(JSON.stringify({ GENERATOR_VERSION, adapter, architecture: this.architecture, targets: this.targets, DEMO_LORA }))
      .digest("hex")
      .slice(0, 12);
    return join(this.dir, `${adapter}-${digest}.gguf`);
  }

  /**
   * The platform with a demo LoRA on each adapter that declares none, and those adapters' names;
   * the files missing from the folder are written first (`onWrite` is told which).
   */
  apply(platform: Platform, onWrite?: (adapters: readonly string[]) => void): { platform: Platform; adapters: string[] } {
    const adapters = platform.spec.adapters.filter((adapter) => adapter.lora === undefined).map((adapter) => adapter.name);
    const missing = adapters.filter((adapter) => !existsSync(this.pathFor(adapter)));
    if (missing.length > 0) {
      onWrite?.(missing);
      mkdirSync(this.dir, { recursive: true });
      for (const adapter of missing) {
        const lora = syntheticLora(this.targets, {
          seed: demoLoraSeed(adapter),
          rank: DEMO_LORA.rank,
          alpha: DEMO_LORA.scale * DEMO_LORA.rank,
          architecture: this.architecture,
          name: `diatonic-demo-lora-${adapter}`,
        });
        writeGgufFile(this.pathFor(adapter), lora);
      }
    }
    const withLoras = platform.spec.adapters.map((adapter) =>
      adapter.lora !== undefined ? adapter : { ...adapter, lora: { source: { path: this.pathFor(adapter.name) }, rank: DEMO_LORA.rank } },
    );
    return { platform: { ...platform, spec: { ...platform.spec, adapters: withLoras } }, adapters };
  }
}
