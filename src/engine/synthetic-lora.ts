// LoRA adapters with random weights, shaped for any base model from its own GGUF: the projections a
// LoRA adapts are found by their tensor names and shapes (ggml order: [in, out]), so the adapter fits
// whatever the file holds (grouped-query K/V, a custom head size) without computing it from metadata.
// Tensor names and metadata keys follow llama.cpp's convert_lora_to_gguf.py.
import { readGgufFileInfo } from "node-llama-cpp";
import { WorldError } from "../errors.ts";
import { gguf, GgmlType, type GgufTensor, type GgufValue } from "./gguf/writer.ts";
import { SeededRandom } from "./tiny/random.ts";

/** One base tensor a LoRA adapts: `blk.N.<projection>.weight`, [in, out] in ggml order. */
export interface LoraTarget {
  readonly tensor: string;
  readonly in: number;
  readonly out: number;
}

/** What PEFT targets by default for Llama (q_proj, v_proj), in llama.cpp's names. */
export const DEFAULT_LORA_PROJECTIONS: readonly string[] = ["attn_q", "attn_v"];

/** The base model's 2-D `blk.N.<projection>.weight` tensors for the projections asked, by layer then projection. */
export function loraTargetsOf(
  tensors: readonly { readonly name: string; readonly dimensions: readonly (number | bigint)[] }[],
  projections: readonly string[] = DEFAULT_LORA_PROJECTIONS,
): LoraTarget[] {
  const found: { layer: number; order: number; target: LoraTarget }[] = [];
  for (const tensor of tensors) {
    const match = /^blk\.(\d+)\.([a-z_]+)\.weight$/.exec(tensor.name);
    const order = match?.[2] === undefined ? -1 : projections.indexOf(match[2]);
    if (order < 0 || tensor.dimensions.length !== 2) continue;
    const [input, output] = tensor.dimensions.map(Number);
    if (input === undefined || output === undefined) continue;
    found.push({ layer: Number(match?.[1]), order, target: { tensor: tensor.name, in: input, out: output } });
  }
  return found.sort((a, b) => a.layer - b.layer || a.order - b.order).map((entry) => entry.target);
}

/** A base model's architecture and the LoRA targets of its file (the header only is read). */
export async function readLoraTargets(
  modelPath: string,
  projections: readonly string[] = DEFAULT_LORA_PROJECTIONS,
): Promise<{ architecture: string; targets: LoraTarget[] }> {
  const info = await readGgufFileInfo(modelPath, { readTensorInfo: true, sourceType: "filesystem", logWarnings: false }).catch(
    (error: unknown) => {
      throw new WorldError(`cannot read the tensors of ${modelPath}: ${error instanceof Error ? error.message : String(error)}`);
    },
  );
  return { architecture: String(info.metadata.general.architecture), targets: loraTargetsOf(info.tensorInfo ?? [], projections) };
}

export interface SyntheticLoraOptions {
  /** Different seeds give different adapters; the same seed gives the same bytes. */
  readonly seed: number;
  /** @default 8 */
  readonly rank?: number;
  /** llama.cpp scales B·A by alpha / rank: the adapter's strength. @default 2 * rank */
  readonly alpha?: number;
  /** The base model's general.architecture (llama.cpp refuses an adapter of another). @default "llama" */
  readonly architecture?: string;
  /** @default `diatonic-synthetic-lora-<seed>` */
  readonly name?: string;
}

/**
 * A LoRA adapter on `targets`: lora_a is [in, r] and lora_b is [r, out] in ggml order. Unlike training
 * (B starts at zero) both factors are random, with variances such that B·A has the spread of a
 * Xavier-initialised [out, in] matrix: at alpha / rank = s the change to a weight is about s times
 * a fresh random weight of its size.
 */
export function syntheticLora(
  targets: readonly LoraTarget[],
  options: SyntheticLoraOptions,
): { metadata: Map<string, GgufValue>; tensors: GgufTensor[] } {
  const rank = options.rank ?? 8;
  const random = new SeededRandom(options.seed);
  const metadata = new Map<string, GgufValue>([
    ["general.architecture", gguf.str(options.architecture ?? "llama")],
    ["general.type", gguf.str("adapter")],
    ["general.name", gguf.str(options.name ?? `diatonic-synthetic-lora-${options.seed}`)],
    ["adapter.type", gguf.str("lora")],
    ["adapter.lora.alpha", gguf.f32(options.alpha ?? 2 * rank)],
  ]);
  const tensors: GgufTensor[] = targets.flatMap((target) => [
    {
      name: `${target.tensor}.lora_a`,
      shape: [target.in, rank],
      type: GgmlType.f32,
      data: random.normals(target.in * rank, 1 / Math.sqrt(target.in)),
    },
    {
      name: `${target.tensor}.lora_b`,
      shape: [rank, target.out],
      type: GgmlType.f32,
      data: random.normals(rank * target.out, 1 / Math.sqrt(rank)),
    },
  ]);
  return { metadata, tensors };
}
