import type { ArchitectureSpec, ModelShape } from "./schema.ts";

/**
 * Llama 3's sizes (3, 3.1, 3.2 and 3.3 share them), as each model's config.json on Hugging Face
 * gives them: the shape to paste into `model.architecture` when the spec serves one of them. Not
 * their context, which differs by version (8192 for 3, 131072 from 3.1): contextLength keeps its
 * default, the shorter, unless the spec says otherwise.
 */
export const LLAMA3_ARCHITECTURES: ReadonlyMap<number, ModelShape> = new Map([
  [1, { parametersBillions: 1.24, layers: 16, hiddenSize: 2048, intermediateSize: 8192, kvHeads: 8, headDim: 64, vocabSize: 128256 }],
  [3, { parametersBillions: 3.21, layers: 28, hiddenSize: 3072, intermediateSize: 8192, kvHeads: 8, headDim: 128, vocabSize: 128256 }],
  [8, { parametersBillions: 8.03, layers: 32, hiddenSize: 4096, intermediateSize: 14336, kvHeads: 8, headDim: 128, vocabSize: 128256 }],
  [70, { parametersBillions: 70.55, layers: 80, hiddenSize: 8192, intermediateSize: 28672, kvHeads: 8, headDim: 128, vocabSize: 128256 }],
  [
    405,
    { parametersBillions: 405.85, layers: 126, hiddenSize: 16384, intermediateSize: 53248, kvHeads: 8, headDim: 128, vocabSize: 128256 },
  ],
]);

/**
 * The parameter count, in billions, that a model's name states (`Meta-Llama-3-70B-Instruct` → 70,
 * `Qwen2.5-1.5B` → 1.5); undefined when it states none, or several (`8x7B` states none).
 */
export function namedBillions(name: string): number | undefined {
  const sizes = new Set([...name.matchAll(/(?<![\w.])(\d+(?:\.\d+)?)[bB](?![a-zA-Z0-9])/g)].map((match) => Number(match[1])));
  return sizes.size === 1 ? [...sizes][0] : undefined;
}

/** `{layers: 80, …}`: a shape as a YAML flow mapping to paste. */
export function architectureYaml(shape: Partial<ArchitectureSpec>): string {
  return `{ ${Object.entries(shape)
    .map(([key, value]) => `${key}: ${String(value)}`)
    .join(", ")} }`;
}
