import { loraBytes } from "../spec/lora-cache.ts";
import type { ModelShape } from "../spec/schema.ts";

/** What vLLM is told on its command line; read back from a Deployment's args. */
export interface VllmSettings {
  readonly gpuMemoryUtilization: number;
  readonly maxModelLen: number;
  readonly tensorParallel: number;
  readonly maxLoras: number;
  readonly maxLoraRank: number;
  readonly loraEnabled: boolean;
  readonly quantization: string;
  readonly dtype: string;
}

export interface VramEstimate {
  /** Per GPU of the tensor-parallel group, in GiB. */
  readonly weightsGiB: number;
  readonly loraGiB: number;
  readonly kvCacheGiB: number;
  readonly overheadGiB: number;
  readonly totalGiB: number;
  readonly kvBytesPerToken: number;
}

const GIB = 1024 ** 3;

/** Bytes per weight: quantised layers shrink, embeddings and the LM head stay at 16 bits. */
function bytesPerWeight(settings: VllmSettings): number {
  switch (settings.quantization) {
    case "awq":
    case "gptq":
    case "bitsandbytes":
      return 0.5 + 0.0625; // 4-bit weights plus group scales and zeros
    case "fp8":
      return 1;
    default:
      return settings.dtype === "float32" ? 4 : 2;
  }
}

/**
 * vLLM's memory for one replica: weights, the LoRA slots it preallocates (max_loras × max_lora_rank over
 * q,k,v,o,gate,up,down of every layer), one max-length sequence of KV cache (vLLM refuses to start with
 * less), and activations/CUDA graphs. Split evenly across the tensor-parallel group, but for the
 * fixed 1 GiB of the overhead: every rank has its own CUDA context, graphs and activation buffers.
 */
export function estimateVram(arch: ModelShape, settings: VllmSettings): VramEstimate {
  const embeddingParams = 2 * arch.vocabSize * arch.hiddenSize;
  const bodyParams = Math.max(0, arch.parametersBillions * 1e9 - embeddingParams);
  const weights = bodyParams * bytesPerWeight(settings) + embeddingParams * 2;
  const kvDim = arch.kvHeads * arch.headDim;
  const lora = settings.loraEnabled ? settings.maxLoras * loraBytes(arch, settings.maxLoraRank) : 0;
  const kvBytesPerToken = 2 * arch.layers * kvDim * 2;
  const kv = kvBytesPerToken * settings.maxModelLen;
  const tp = Math.max(1, settings.tensorParallel);
  /** Per GPU: a rank's fixed share, and its part of what grows with the weights. */
  const overhead = 1.0 * GIB + (0.05 * weights) / tp;
  const perGpu = (bytes: number) => bytes / tp;
  const round = (bytes: number) => Math.round((bytes / GIB) * 100) / 100;
  return {
    weightsGiB: round(perGpu(weights)),
    loraGiB: round(perGpu(lora)),
    kvCacheGiB: round(perGpu(kv)),
    overheadGiB: round(overhead),
    totalGiB: round(perGpu(weights + lora + kv) + overhead),
    kvBytesPerToken,
  };
}

/** Reads vLLM's flags from a container's args (`--flag value` and `--flag=value`). */
export function vllmSettingsFromArgs(args: readonly string[]): VllmSettings {
  const value = (flag: string): string | undefined => {
    for (let i = 0; i < args.length; i++) {
      const arg = args[i] ?? "";
      if (arg === flag) return args[i + 1];
      if (arg.startsWith(`${flag}=`)) return arg.slice(flag.length + 1);
    }
    return undefined;
  };
  const number = (flag: string, fallback: number) => {
    const v = value(flag);
    const n = v === undefined ? NaN : Number(v);
    return Number.isFinite(n) ? n : fallback;
  };
  return {
    gpuMemoryUtilization: number("--gpu-memory-utilization", 0.9),
    maxModelLen: number("--max-model-len", 8192),
    tensorParallel: number("--tensor-parallel-size", 1),
    maxLoras: number("--max-loras", 1),
    maxLoraRank: number("--max-lora-rank", 16),
    loraEnabled: args.includes("--enable-lora"),
    quantization: value("--quantization") ?? "none",
    dtype: value("--dtype") ?? "auto",
  };
}

/** True when a container runs vLLM's OpenAI server (by image or by its flags). */
export function isVllmContainer(container: {
  readonly image?: string;
  readonly args?: readonly string[];
  readonly command?: readonly string[];
}): boolean {
  return (
    /vllm/.test(container.image ?? "") ||
    [...(container.command ?? []), ...(container.args ?? [])].some((a) => a.includes("--gpu-memory-utilization"))
  );
}
