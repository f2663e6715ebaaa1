// vLLM's memory per GPU under tensor parallelism.
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { estimateVram } from "../../src/plan/vram.ts";
import { LLAMA3_ARCHITECTURES } from "../../src/spec/architectures.ts";

describe("the VRAM estimate per GPU", () => {
  it("splits weights, LoRA slots and KV cache over the tensor-parallel ranks, but not the fixed 1 GiB each rank's CUDA context and graphs take", () => {
    const arch = LLAMA3_ARCHITECTURES.get(70);
    assert.ok(arch);
    const settings = {
      gpuMemoryUtilization: 0.9,
      maxModelLen: 8192,
      loraEnabled: true,
      maxLoras: 4,
      maxLoraRank: 16,
      quantization: "none",
      dtype: "bfloat16",
    };
    const one = estimateVram(arch, { ...settings, tensorParallel: 1 });
    const eight = estimateVram(arch, { ...settings, tensorParallel: 8 });
    const near = (actual: number, expected: number, what: string) =>
      assert.ok(Math.abs(actual - expected) <= 0.02, `${what}: ${actual} ≠ ${expected}`);
    near(eight.weightsGiB, one.weightsGiB / 8, "weights");
    near(eight.kvCacheGiB, one.kvCacheGiB / 8, "KV cache");
    // Overhead: 1 GiB per rank plus 5% of that rank's weights.
    near(one.overheadGiB, 1 + 0.05 * one.weightsGiB, "overhead, one GPU");
    near(eight.overheadGiB, 1 + 0.05 * eight.weightsGiB, "overhead, each of eight");
    near(eight.totalGiB, eight.weightsGiB + eight.loraGiB + eight.kvCacheGiB + eight.overheadGiB, "total");
  });
});
