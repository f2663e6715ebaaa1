// Generates a tiny Llama-architecture GGUF (random weights, 2 layers) and matching LoRA adapters,
// so engine and gateway tests run real llama.cpp inference without downloading any weights.
// Tensor names and metadata keys follow llama.cpp's llama architecture (llama-arch.cpp) and
// convert_lora_to_gguf.py; shapes are in ggml order ([in, out] for a PyTorch [out, in] matrix).
import { mkdirSync } from "node:fs";
import { join, resolve } from "node:path";
import { GgmlType, gguf, writeGgufFile, type GgufTensor, type GgufValue } from "../gguf/writer.ts";
import { syntheticLora } from "../synthetic-lora.ts";
import { SeededRandom } from "./random.ts";
import { buildVocabulary, LLAMA3_CHAT_TEMPLATE, TokenType } from "./vocab.ts";

export interface TinyModelShape {
  readonly embedding: number;
  readonly layers: number;
  readonly heads: number;
  readonly kvHeads: number;
  readonly feedForward: number;
  readonly contextLength: number;
}

export const TINY_MODEL_SHAPE: TinyModelShape = {
  embedding: 64,
  layers: 2,
  heads: 4,
  kvHeads: 2,
  feedForward: 128,
  // Its vocabulary is nearly byte-level (~4 tokens an English word), so a RAG answer's retrieved
  // passages need this much room in the dev stack; the KV cache is ~256 bytes a token.
  contextLength: 16384,
};

/** The projections a LoRA adapter targets, with their ggml [in, out] shapes. */
function projections(shape: TinyModelShape): readonly { readonly name: string; readonly in: number; readonly out: number }[] {
  const kv = (shape.embedding / shape.heads) * shape.kvHeads;
  return [
    { name: "attn_q", in: shape.embedding, out: shape.embedding },
    { name: "attn_k", in: shape.embedding, out: kv },
    { name: "attn_v", in: shape.embedding, out: kv },
    { name: "attn_output", in: shape.embedding, out: shape.embedding },
    { name: "ffn_gate", in: shape.embedding, out: shape.feedForward },
    { name: "ffn_up", in: shape.embedding, out: shape.feedForward },
    { name: "ffn_down", in: shape.feedForward, out: shape.embedding },
  ];
}

function f32(name: string, shape: readonly number[], data: Float32Array): GgufTensor {
  return { name, shape, type: GgmlType.f32, data };
}

/** The two vocabulary-sized matrices are stored as F16 to keep the file small; llama.cpp's CPU backend reads both. */
function f16(name: string, shape: readonly number[], data: Float32Array): GgufTensor {
  return { name, shape, type: GgmlType.f16, data };
}

export interface TinyBaseModelOptions {
  /** @default 1 */
  readonly seed?: number;
  /** @default "diatonic-tiny-llama" */
  readonly name?: string;
  /** @default TINY_MODEL_SHAPE */
  readonly shape?: TinyModelShape;
}

export function tinyBaseModel(options: TinyBaseModelOptions = {}): { metadata: Map<string, GgufValue>; tensors: GgufTensor[] } {
  const shape = options.shape ?? TINY_MODEL_SHAPE;
  const random = new SeededRandom(options.seed ?? 1);
  const vocab = buildVocabulary();
  const nVocab = vocab.tokens.length;
  const headDim = shape.embedding / shape.heads;

  const metadata = new Map<string, GgufValue>([
    ["general.architecture", gguf.str("llama")],
    ["general.type", gguf.str("model")],
    ["general.name", gguf.str(options.name ?? "diatonic-tiny-llama")],
    ["general.description", gguf.str("Random weights for tests: its output is noise.")],
    ["general.file_type", gguf.u32(1)], // LLAMA_FTYPE_MOSTLY_F16
    ["llama.vocab_size", gguf.u32(nVocab)],
    ["llama.context_length", gguf.u32(shape.contextLength)],
    ["llama.embedding_length", gguf.u32(shape.embedding)],
    ["llama.block_count", gguf.u32(shape.layers)],
    ["llama.feed_forward_length", gguf.u32(shape.feedForward)],
    ["llama.attention.head_count", gguf.u32(shape.heads)],
    ["llama.attention.head_count_kv", gguf.u32(shape.kvHeads)],
    ["llama.attention.layer_norm_rms_epsilon", gguf.f32(1e-5)],
    ["llama.rope.dimension_count", gguf.u32(headDim)],
    ["llama.rope.freq_base", gguf.f32(10000)],
    ["tokenizer.ggml.model", gguf.str("llama")],
    ["tokenizer.ggml.tokens", gguf.strings(vocab.tokens)],
    ["tokenizer.ggml.scores", gguf.f32s(vocab.scores)],
    ["tokenizer.ggml.token_type", gguf.i32s(vocab.types)],
    ["tokenizer.ggml.unknown_token_id", gguf.u32(vocab.unkId)],
    ["tokenizer.ggml.bos_token_id", gguf.u32(vocab.bosId)],
    ["tokenizer.ggml.eos_token_id", gguf.u32(vocab.eosId)],
    ["tokenizer.ggml.eot_token_id", gguf.u32(vocab.eotId)],
    ["tokenizer.ggml.add_bos_token", gguf.bool(true)],
    ["tokenizer.ggml.add_eos_token", gguf.bool(false)],
    // Llama 3's tokenizer adds no leading space, so chat headers tokenize as "system", not " system".
    ["tokenizer.ggml.add_space_prefix", gguf.bool(false)],
    ["tokenizer.chat_template", gguf.str(LLAMA3_CHAT_TEMPLATE)],
  ]);

  const ones = (n: number): Float32Array => new Float32Array(n).fill(1);
  const tensors: GgufTensor[] = [f16("token_embd.weight", [shape.embedding, nVocab], random.normals(shape.embedding * nVocab, 1))];

  // Output rows: word pieces get a wide spread so greedy decoding picks words; byte and control
  // tokens get small rows so they (and end-of-turn) are rarely chosen and outputs run to max_tokens.
  const output = random.normals(shape.embedding * nVocab, 3 / Math.sqrt(shape.embedding));
  vocab.types.forEach((type, token) => {
    const damp = type === TokenType.normal ? 1 : type === TokenType.byte ? 0.15 : 0;
    for (let i = 0; i < shape.embedding; i++) output[token * shape.embedding + i] = (output[token * shape.embedding + i] ?? 0) * damp;
  });

  for (let layer = 0; layer < shape.layers; layer++) {
    tensors.push(f32(`blk.${layer}.attn_norm.weight`, [shape.embedding], ones(shape.embedding)));
    for (const p of projections(shape)) {
      if (p.name === "ffn_gate") tensors.push(f32(`blk.${layer}.ffn_norm.weight`, [shape.embedding], ones(shape.embedding)));
      tensors.push(f32(`blk.${layer}.${p.name}.weight`, [p.in, p.out], random.normals(p.in * p.out, 1 / Math.sqrt(p.in))));
    }
  }
  tensors.push(f32("output_norm.weight", [shape.embedding], ones(shape.embedding)));
  tensors.push(f16("output.weight", [shape.embedding, nVocab], output));
  return { metadata, tensors };
}

export interface TinyLoraOptions {
  /** Different seeds give different adapters. */
  readonly seed: number;
  /** @default 4 */
  readonly rank?: number;
  /** @default 2 * rank (llama.cpp scales B·A by alpha / rank) */
  readonly alpha?: number;
  /** @default TINY_MODEL_SHAPE */
  readonly shape?: TinyModelShape;
  readonly name?: string;
}

/** A LoRA adapter for the tiny model on every projection of every layer (see syntheticLora). */
export function tinyLoraAdapter(options: TinyLoraOptions): { metadata: Map<string, GgufValue>; tensors: GgufTensor[] } {
  const shape = options.shape ?? TINY_MODEL_SHAPE;
  const rank = options.rank ?? 4;
  const targets = Array.from({ length: shape.layers }, (_, layer) =>
    projections(shape).map((p) => ({ tensor: `blk.${layer}.${p.name}.weight`, in: p.in, out: p.out })),
  ).flat();
  return syntheticLora(targets, {
    seed: options.seed,
    rank,
    alpha: options.alpha ?? 2 * rank,
    name: options.name ?? `diatonic-tiny-lora-${options.seed}`,
  });
}

export interface TestModelFiles {
  readonly model: string;
  readonly loras: readonly { readonly name: string; readonly path: string }[];
  readonly bytes: number;
}

export interface WriteTestModelsOptions {
  /** @default 1 */
  readonly seed?: number;
}

/** Writes `tiny-llama.gguf` and two adapters (`tiny-lora-a.gguf`, `tiny-lora-b.gguf`) into `outDir`. */
export function writeTestModels(outDir: string, options: WriteTestModelsOptions = {}): TestModelFiles {
  const seed = options.seed ?? 1;
  const dir = resolve(outDir);
  mkdirSync(dir, { recursive: true });
  const model = join(dir, "tiny-llama.gguf");
  let bytes = writeGgufFile(model, tinyBaseModel({ seed }));
  const loras = (["a", "b"] as const).map((suffix, i) => {
    const path = join(dir, `tiny-lora-${suffix}.gguf`);
    bytes += writeGgufFile(path, tinyLoraAdapter({ seed: seed * 1000 + i + 1, name: `tiny-lora-${suffix}` }));
    return { name: `lora-${suffix}`, path };
  });
  return { model, loras, bytes };
}
