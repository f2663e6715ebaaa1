import { z } from "zod";

// Its own module so that code needing only the model's shape (the GPU pod rules of validate, the
// VRAM estimate) does not build the whole spec schema when it loads.

/** What the VRAM estimate and the context check need to know of the model; defaults are Llama 3 8B's. */
export const Architecture = z.strictObject({
  parametersBillions: z.number().positive().default(8.03),
  layers: z.number().int().min(1).default(32),
  hiddenSize: z.number().int().min(1).default(4096),
  intermediateSize: z.number().int().min(1).default(14336),
  kvHeads: z.number().int().min(1).default(8),
  headDim: z.number().int().min(1).default(128),
  vocabSize: z.number().int().min(1).default(128256),
  contextLength: z
    .number()
    .int()
    .min(1)
    .default(8192)
    .describe(
      "the model's context, its config.json's max_position_embeddings: the longest maxModelLen vLLM starts with (Llama 3: 8192; Llama 3.1 and later: 131072)",
    ),
});
export type ArchitectureSpec = z.infer<typeof Architecture>;
/** The model's shape alone: what its weights, LoRAs and KV cache take (its context is a separate matter). */
export type ModelShape = Omit<ArchitectureSpec, "contextLength">;
