// The dev tier's spec: the tiny model on the llama.cpp engine, without a GPU, keys optional.
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { writeTestModels } from "../../src/engine/index.ts";

/** The spec, with these lines under `adapters:` (" []" for none) and these after it (environments). */
export function tinySpec(name: string, adapters: string, tail: readonly string[] = []): string {
  return [
    "apiVersion: diatonic.ai/v1alpha1",
    "kind: Platform",
    `metadata: { name: ${name} }`,
    "spec:",
    "  model:",
    "    name: tiny",
    "    source: { huggingFace: { repo: org/tiny, revision: v1, file: tiny.gguf } }",
    "    engine: { kind: llamacpp }",
    "  gpu: { enabled: false, sharing: { mode: none } }",
    "  gateway: { auth: optional }",
    `  adapters:${adapters}`,
    ...tail,
    "",
  ].join("\n");
}

/**
 * In `dir`: the tiny model and its LoRAs under models/, a models/broken.gguf that is no GGUF, and a
 * platform.yaml with adapters alpha (a good LoRA) and broken (that file): what a LoRA that cannot load
 * looks like, in dev and in the console.
 */
export function writeFailingLoraSpec(dir: string): { readonly spec: string; readonly model: string; readonly broken: string } {
  const models = writeTestModels(join(dir, "models"));
  const broken = join(dir, "models", "broken.gguf");
  writeFileSync(broken, "not a GGUF file\n");
  const spec = join(dir, "platform.yaml");
  writeFileSync(
    spec,
    tinySpec(
      "failing",
      "\n    - { name: alpha, lora: { source: { path: models/tiny-lora-a.gguf }, rank: 4 } }" +
        "\n    - { name: broken, lora: { source: { path: models/broken.gguf }, rank: 4 } }",
    ),
  );
  return { spec, model: models.model, broken };
}
