// LoRAs with random weights shaped from a base model's own GGUF (what `diatonic dev` gives the demo's
// adapters): their tensors fit the model's, the same seed gives the same bytes, and llama.cpp loads
// one and answers differently with it.
import assert from "node:assert/strict";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { readGgufFileInfo } from "node-llama-cpp";
import { encodeGguf, writeGgufFile } from "../../src/engine/gguf/writer.ts";
import { loraTargetsOf, readLoraTargets, syntheticLora } from "../../src/engine/synthetic-lora.ts";
import { TINY_MODEL_SHAPE, tinyBaseModel } from "../../src/engine/tiny/model.ts";
import { postJson, startTestEngine, type TestEngine } from "./helpers.ts";

const dir = mkdtempSync(join(tmpdir(), "diatonic-synthetic-lora-"));
after(() => rmSync(dir, { recursive: true, force: true }));

async function tensorShapes(path: string): Promise<Map<string, number[]>> {
  const info = await readGgufFileInfo(path, { readTensorInfo: true, sourceType: "filesystem" });
  return new Map((info.tensorInfo ?? []).map((t) => [t.name, t.dimensions.map(Number)]));
}

describe("synthetic LoRAs shaped from a model's GGUF", () => {
  it("targets each layer's projections with the base tensors' own shapes, for a model of any size", async () => {
    // Not the tiny model's shape: 6 heads of 16, 2 KV heads, so K/V are narrower than Q.
    const shape = { ...TINY_MODEL_SHAPE, embedding: 96, layers: 3, heads: 6, kvHeads: 2, feedForward: 160 };
    const model = join(dir, "other-shape.gguf");
    writeGgufFile(model, tinyBaseModel({ seed: 5, shape }));
    const { architecture, targets } = await readLoraTargets(model, ["attn_q", "attn_v", "ffn_down"]);
    assert.equal(architecture, "llama");
    assert.deepEqual(targets.slice(0, 3), [
      { tensor: "blk.0.attn_q.weight", in: 96, out: 96 },
      { tensor: "blk.0.attn_v.weight", in: 96, out: 32 },
      { tensor: "blk.0.ffn_down.weight", in: 160, out: 96 },
    ]);
    assert.equal(targets.length, 3 * 3);

    const lora = join(dir, "other-shape-lora.gguf");
    writeGgufFile(lora, syntheticLora(targets, { seed: 1, rank: 8, alpha: 2 }));
    const base = await tensorShapes(model);
    const shapes = await tensorShapes(lora);
    assert.equal(shapes.size, 2 * targets.length);
    for (const target of targets) {
      const [input, output] = base.get(target.tensor) ?? [];
      assert.deepEqual(shapes.get(`${target.tensor}.lora_a`), [input, 8], target.tensor);
      assert.deepEqual(shapes.get(`${target.tensor}.lora_b`), [8, output], target.tensor);
    }
    const metadata = (await readGgufFileInfo(lora, { sourceType: "filesystem" })).metadata as unknown as {
      general: { type: string; architecture: string };
      adapter: { type: string; lora: { alpha: number } };
    };
    assert.deepEqual([metadata.general.type, metadata.general.architecture, metadata.adapter.type], ["adapter", "llama", "lora"]);
    assert.equal(metadata.adapter.lora.alpha, 2);
  });

  it("takes only 2-D blk.N.<projection>.weight tensors, in layer order", () => {
    const targets = loraTargetsOf(
      [
        { name: "blk.10.attn_q.weight", dimensions: [8n, 8n] },
        { name: "blk.2.attn_v.weight", dimensions: [8, 4] },
        { name: "blk.2.attn_q.weight", dimensions: [8, 8] },
        { name: "blk.2.attn_q.bias", dimensions: [8] },
        { name: "blk.2.attn_norm.weight", dimensions: [8] },
        { name: "blk.2.attn_k.weight", dimensions: [8, 4] },
        { name: "token_embd.weight", dimensions: [8, 100] },
      ],
      ["attn_q", "attn_v"],
    );
    assert.deepEqual(
      targets.map((t) => t.tensor),
      ["blk.2.attn_q.weight", "blk.2.attn_v.weight", "blk.10.attn_q.weight"],
    );
  });

  it("gives the same bytes for a seed and other bytes for another seed", () => {
    const targets = [{ tensor: "blk.0.attn_q.weight", in: 64, out: 64 }];
    const bytes = (seed: number) => encodeGguf(syntheticLora(targets, { seed }));
    assert.ok(bytes(3).equals(bytes(3)));
    assert.ok(!bytes(3).equals(bytes(4)));
  });
});

describe("a synthetic LoRA in the real engine (llama.cpp on the tiny model)", () => {
  let t: TestEngine;
  let lora: string;
  let inert: string;
  before(async () => {
    t = await startTestEngine({ withLoras: false });
    const { architecture, targets } = await readLoraTargets(t.files.model);
    lora = join(dir, "tiny-synthetic.gguf");
    // The demo's strength (alpha / rank = 0.25): small, and still a change llama.cpp must apply.
    writeGgufFile(lora, syntheticLora(targets, { seed: 11, rank: 8, alpha: 2, architecture }));
    // The same adapter at alpha ≈ 0: if the engine answers differently with it, the test compares noise, not the LoRA.
    inert = join(dir, "tiny-inert.gguf");
    writeGgufFile(inert, syntheticLora(targets, { seed: 11, rank: 8, alpha: 1e-6, architecture }));
  });
  after(() => t.close());

  async function answer(model: string): Promise<string> {
    const response = await postJson(`${t.url}/v1/chat/completions`, {
      model,
      messages: [{ role: "user", content: "what is a pod" }],
      temperature: 0,
      max_tokens: 24,
    });
    assert.equal(response.status, 200, response.text);
    return (response.json as { choices: { message: { content: string } }[] }).choices[0]?.message.content ?? "";
  }

  it("loads through /v1/load_lora_adapter, is listed, and changes the greedy answer; the inert one does not", async () => {
    for (const [name, path] of [
      ["synthetic", lora],
      ["inert", inert],
    ]) {
      const loaded = await postJson(`${t.url}/v1/load_lora_adapter`, { lora_name: name, lora_path: path });
      assert.equal(loaded.status, 200, loaded.text);
    }
    const models = (await t.openai.models.list()).data.map((m) => m.id);
    assert.deepEqual(models, ["tiny", "synthetic", "inert"]);
    const base = await answer("tiny");
    assert.notEqual(await answer("synthetic"), base, "the LoRA is applied");
    assert.equal(await answer("inert"), base, "a LoRA of scale ~0 answers as the base model");
    assert.ok(readFileSync(lora).length < 1024 * 1024);
  });
});
