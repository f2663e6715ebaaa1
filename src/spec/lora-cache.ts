// vLLM keeps `--max-cpu-loras` LoRAs in host memory; a swap of any other reads its weights from disk
// again. vLLM's own default is `--max-loras`: with more adapters than GPU slots, every swap would read
// from disk (the adapter cache of the pod), which costs far more than the copy into a GPU slot that the
// routing's cost model and the placement size the tail for.
import { quantityValue } from "./schema-common.ts";
import type { ModelShape, PlatformSpec, VllmEngineSpec } from "./schema.ts";

/**
 * LoRAs a vLLM replica keeps in host memory when the spec does not say. A constant, not the adapter
 * count: the flag is in the engine's pod template, so following the count would restart the engine
 * for every adapter added, which runtime adapters exist to avoid. The cache fills only with adapters
 * registered on the replica, so a large bound costs nothing until they exist (plan shows what they take).
 */
export const DEFAULT_MAX_CPU_LORAS = 64;

/**
 * Replicas each adapter is kept loaded on (the gateways' placement, `minReplicas`): two, so that an
 * engine replica's loss loses no adapter. Placement spreads the copies so that no replica holds more
 * adapters than its host-memory cache while the replicas have room.
 */
export const ADAPTER_COPIES = 2;

/** The `--max-cpu-loras` an engine with `maxLoras` GPU slots gets: the spec's, or the default; never below its slots (vLLM refuses that). */
export function maxCpuLoras(engine: VllmEngineSpec, maxLoras: number = engine.maxLoras): number {
  return Math.max(maxLoras, engine.maxCpuLoras ?? DEFAULT_MAX_CPU_LORAS);
}

/** Bytes of one LoRA of `rank` on this architecture: A and B of q, k, v, o, gate, up and down in every layer, 16-bit. */
export function loraBytes(arch: ModelShape, rank: number): number {
  const kvDim = arch.kvHeads * arch.headDim;
  const inOut = arch.hiddenSize * 2 * 2 + (arch.hiddenSize + kvDim) * 2 + (arch.hiddenSize + arch.intermediateSize) * 3;
  return rank * inOut * arch.layers * 2;
}

export interface LoraHostCache {
  /** `--max-cpu-loras` of the shared engine... */
  readonly capacity: number;
  /** ...which vLLM holds at least its GPU slots, `--max-loras`. */
  readonly maxLoras: number;
  /** LoRA adapters served by the shared engine. */
  readonly adapters: number;
  /** The shared engine's replicas, and the copies of each adapter placed over them (ADAPTER_COPIES, at most the replicas). */
  readonly replicas: number;
  readonly copies: number;
  /** Places the adapters need (adapters × copies), and what the replicas' caches hold (replicas × capacity). */
  readonly places: number;
  readonly room: number;
  /** Host memory the largest `min(adapters, capacity)` of them take in one replica, at their own ranks. */
  readonly bytes: number;
  /** Host memory every one of them would take (what keeping all of them cached costs). */
  readonly allBytes: number;
  /** Each of them, largest first. */
  readonly sizes: readonly number[];
  /** The engine container's memory limit, if the spec sets one. */
  readonly limitBytes: number | undefined;
}

/** What the shared vLLM engine's LoRA cache holds at most, and what that takes; undefined for the llama.cpp engine. */
export function loraHostCache(spec: PlatformSpec): LoraHostCache | undefined {
  const engine = spec.model.engine;
  if (engine.kind !== "vllm") return undefined;
  const capacity = maxCpuLoras(engine);
  const sizes = spec.adapters
    .flatMap((adapter) =>
      adapter.lora !== undefined && adapter.serving === "shared" ? [loraBytes(spec.model.architecture, adapter.lora.rank)] : [],
    )
    .sort((a, b) => b - a);
  const limit = engine.resources.limits.memory;
  return {
    capacity,
    maxLoras: engine.maxLoras,
    adapters: sizes.length,
    replicas: engine.replicas,
    copies: Math.min(ADAPTER_COPIES, engine.replicas),
    places: sizes.length * Math.min(ADAPTER_COPIES, engine.replicas),
    room: engine.replicas * capacity,
    bytes: sumOfLargest(sizes, capacity),
    allBytes: sumOfLargest(sizes, sizes.length),
    sizes,
    limitBytes: limit === undefined ? undefined : quantityValue(limit),
  };
}

/** Bytes as GiB with two decimals, for messages. */
export function gib(bytes: number): string {
  return `${(bytes / 1024 ** 3).toFixed(2)} GiB`;
}

/** Host memory the largest `count` of the cache's adapters take. */
export function largestBytes(cache: LoraHostCache, count: number): number {
  return sumOfLargest(cache.sizes, count);
}

/** The sum of the first `count` of sizes sorted largest first. */
function sumOfLargest(sizes: readonly number[], count: number): number {
  return sizes.slice(0, count).reduce((a, b) => a + b, 0);
}

/** The most of the cache's adapters (largest first) whose host memory stays within `bytes`. */
export function adaptersWithin(cache: LoraHostCache, bytes: number): number {
  let total = 0;
  let count = 0;
  for (const size of cache.sizes) {
    if (total + size > bytes) break;
    total += size;
    count++;
  }
  return count;
}
