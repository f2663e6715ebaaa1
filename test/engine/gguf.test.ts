import assert from "node:assert/strict";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, describe, it } from "node:test";
import { readGgufFileInfo } from "node-llama-cpp";
import { encodeGguf, gguf, GgmlType, toFloat16Bits } from "../../src/engine/gguf/writer.ts";
import { tinyBaseModel, tinyLoraAdapter, TINY_MODEL_SHAPE, writeTestModels } from "../../src/engine/tiny/model.ts";

const dir = mkdtempSync(join(tmpdir(), "diatonic-gguf-"));
after(() => rmSync(dir, { recursive: true, force: true }));

function tensorShapes(info: Awaited<ReturnType<typeof readGgufFileInfo>>): Map<string, number[]> {
  return new Map((info.fullTensorInfo ?? []).map((t) => [t.name, t.dimensions.map(Number)]));
}

describe("GGUF writer", () => {
  it("writes the GGUF v3 header, metadata and aligned tensor data", () => {
    const bytes = encodeGguf({
      metadata: new Map([
        ["general.architecture", gguf.str("llama")],
        ["x.count", gguf.u32(7)],
      ]),
      tensors: [{ name: "t", shape: [3], type: GgmlType.f32, data: new Float32Array([1, 2, 3]) }],
    });
    assert.equal(bytes.subarray(0, 4).toString("latin1"), "GGUF");
    assert.equal(bytes.readUInt32LE(4), 3);
    assert.equal(bytes.readBigUInt64LE(8), 1n);
    assert.equal(bytes.readBigUInt64LE(16), 2n);
    assert.equal(bytes.length % 32, 0, "the data section is padded to the alignment");
    assert.deepEqual(
      [...new Float32Array(bytes.buffer.slice(bytes.byteOffset + bytes.length - 32, bytes.byteOffset + bytes.length - 20))],
      [1, 2, 3],
    );
  });

  it("converts floats to IEEE half precision", () => {
    assert.equal(toFloat16Bits(1), 0x3c00);
    assert.equal(toFloat16Bits(-2), 0xc000);
    assert.equal(toFloat16Bits(0.5), 0x3800);
    assert.equal(toFloat16Bits(65504), 0x7bff);
    assert.equal(toFloat16Bits(1e9), 0x7c00);
    assert.equal(toFloat16Bits(0), 0);
  });
});

describe("tiny test models", () => {
  const files = writeTestModels(dir, { seed: 7 });

  it("are deterministic for a seed and differ between seeds", () => {
    const again = writeTestModels(join(dir, "again"), { seed: 7 });
    const other = writeTestModels(join(dir, "other"), { seed: 8 });
    assert.ok(readFileSync(files.model).equals(readFileSync(again.model)));
    assert.ok(!readFileSync(files.model).equals(readFileSync(other.model)));
    assert.ok(files.bytes < 1024 * 1024, `all three files together are under 1 MiB (${files.bytes} bytes)`);
    assert.ok(files.loras.every((l) => l.path.includes("lora")));
  });

  it("the base model has llama.cpp's llama metadata, tokenizer and chat template", async () => {
    const info = await readGgufFileInfo(files.model, { sourceType: "filesystem" });
    const { metadata } = info;
    assert.equal(metadata.general.architecture, "llama");
    const llama = (metadata as unknown as { llama: Record<string, unknown> }).llama;
    assert.equal(llama["block_count"], TINY_MODEL_SHAPE.layers);
    assert.equal(llama["embedding_length"], TINY_MODEL_SHAPE.embedding);
    assert.equal(metadata.tokenizer.ggml.model, "llama");
    const tokens = metadata.tokenizer.ggml.tokens;
    assert.ok(tokens.includes("<0x00>") && tokens.includes("<0xFF>") && tokens.includes("<unk>") && tokens.includes("<s>"));
    assert.match(String(metadata.tokenizer.chat_template), /<\|start_header_id\|>/);
    const shapes = tensorShapes(info);
    assert.deepEqual(shapes.get("token_embd.weight"), [TINY_MODEL_SHAPE.embedding, tokens.length]);
    assert.deepEqual(shapes.get("blk.1.ffn_down.weight"), [TINY_MODEL_SHAPE.feedForward, TINY_MODEL_SHAPE.embedding]);
  });

  it("the adapters are llama.cpp LoRA GGUFs with transposed A and B pairs", async () => {
    const lora = files.loras[0];
    assert.ok(lora);
    const info = await readGgufFileInfo(lora.path, { sourceType: "filesystem" });
    const metadata = info.metadata as unknown as { general: { type: string }; adapter: { type: string; lora: { alpha: number } } };
    assert.equal(metadata.general.type, "adapter");
    assert.equal(metadata.adapter.type, "lora");
    assert.equal(metadata.adapter.lora.alpha, 8);
    const shapes = tensorShapes(info);
    assert.deepEqual(shapes.get("blk.0.attn_q.weight.lora_a"), [TINY_MODEL_SHAPE.embedding, 4]);
    assert.deepEqual(shapes.get("blk.0.attn_q.weight.lora_b"), [4, TINY_MODEL_SHAPE.embedding]);
    assert.deepEqual(shapes.get("blk.1.ffn_down.weight.lora_a"), [TINY_MODEL_SHAPE.feedForward, 4]);
  });

  it("builds in memory without touching the disk", () => {
    const base = tinyBaseModel({ seed: 3 });
    const adapter = tinyLoraAdapter({ seed: 4, rank: 2 });
    assert.equal(base.tensors.length, 3 + TINY_MODEL_SHAPE.layers * 9);
    assert.equal(adapter.tensors.length, TINY_MODEL_SHAPE.layers * 7 * 2);
  });
});
