// The dev tier's spec: the tiny model on the llama.cpp engine, without a GPU, keys optional.

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
