// The engine: one base model, its LoRA adapters by name, a context pool, the chat template, metrics.
// HTTP lives in server.ts; this file is what `diatonic dev`, the benchmark and tests drive.
import { stat } from "node:fs/promises";
import { basename, resolve } from "node:path";
import {
  readGgufFileInfo,
  type GgufFileInfo,
  resolveChatWrapper,
  type ChatHistoryItem,
  type ChatWrapper,
  type Llama,
  type LlamaEmbeddingContext,
  type LlamaModel,
  type Token,
} from "node-llama-cpp";
import type { Logger } from "pino";
import { InputError } from "../errors.ts";
import { ApiError } from "./api-error.ts";
import { ContextPool, type Lease, type Target } from "./context-pool.ts";
import { generate, type GenerationResult } from "./generate.ts";
import { loadLlamaRuntime } from "./llama-runtime.ts";
import { EngineMetrics } from "./metrics.ts";
import type { Sampling } from "./requests.ts";

export interface LoraModule {
  readonly name: string;
  readonly path: string;
}

export interface EngineOptions {
  /** Path of the base model GGUF. */
  readonly modelPath: string;
  /** The base model's name in `model` fields and /v1/models. @default the file name without `.gguf` */
  readonly servedModelName?: string;
  /** LoRA adapters loaded at start (vLLM's --lora-modules). @default [] */
  readonly loras?: readonly LoraModule[];
  /** Sequences generated in parallel, over all adapters. @default 4 */
  readonly parallel?: number;
  /** Requests that may wait for a sequence before the engine answers 503. @default 64 */
  readonly maxQueue?: number;
  /** Adapter contexts alive at once (vLLM's --max-loras). @default 4 */
  readonly maxLoras?: number;
  /** The largest LoRA rank a load accepts (vLLM's --max-lora-rank). @default 16 */
  readonly maxLoraRank?: number;
  /** Tokens per sequence, prompt plus completion (vLLM's --max-model-len). @default min(trained context, 4096) */
  readonly maxModelLen?: number;
  /** llama.cpp threads. @default cores - 1, at least 1, at most 8 */
  readonly threads?: number;
  /**
   * An emulation, for routing benchmarks on machines without a GPU: each LoRA swapped into a slot
   * takes this much longer, in ms, standing for vLLM's load of the adapter into GPU memory. Here the
   * LoRA's weights stay loaded once read (node-llama-cpp caches them per model), so a swap only makes
   * the slot's llama.cpp context: a few ms, whatever the LoRA's size. Never for serving. @default 0
   */
  readonly emulatedLoraLoadMs?: number;
}

export interface ModelCard {
  readonly id: string;
  readonly object: "model";
  readonly created: number;
  readonly owned_by: "vllm";
  readonly root: string;
  readonly parent: string | null;
  readonly max_model_len: number;
}

export interface RunCallbacks {
  readonly onText?: (delta: string) => void;
  readonly signal?: AbortSignal;
  /** performance.now() when the request arrived: time to first token counts queueing too, as vLLM's does. */
  readonly arrivedAt?: number;
  /** Called once a sequence is assigned: a stream's headers go out only then, so a full queue can still answer 503. */
  readonly onAdmitted?: () => void;
  /** How often `onText` gets the text of the tokens since the last call (see GenerateOptions). @default 0, every token */
  readonly textIntervalMs?: number;
}

/** The name requests use for the base model: --served-model-name, else the file's name without .gguf (as vLLM's path). */
export function servedModelNameOf(options: Pick<EngineOptions, "modelPath" | "servedModelName">): string {
  return options.servedModelName ?? basename(resolve(options.modelPath)).replace(/\.gguf$/i, "");
}

/** Start-up adapters' names: each once, and none the base model's (requests choose by name). Checked before any load. */
export function checkAdapterNames(loras: readonly { readonly name: string; readonly path: string }[], servedModelName: string): void {
  const seen = new Set<string>();
  for (const lora of loras) {
    if (lora.name === servedModelName) {
      throw new InputError(
        `--lora ${lora.name}=${lora.path}: ${lora.name} is the base model's name (requests for it get the base model)`,
        "give the LoRA another NAME, or serve the base model under another --served-model-name",
      );
    }
    if (seen.has(lora.name)) throw new InputError(`--lora ${lora.name} is given twice`, "give each LoRA its own NAME");
    seen.add(lora.name);
  }
}

export class Engine {
  readonly metrics: EngineMetrics;
  private readonly adapters = new Map<string, { path: string; created: number }>();
  private readonly pool: ContextPool;
  private embeddingContext: Promise<LlamaEmbeddingContext> | undefined;
  private embeddingQueue: Promise<unknown> = Promise.resolve();
  private readonly created = Math.floor(Date.now() / 1000);

  private constructor(
    readonly llama: Llama,
    readonly model: LlamaModel,
    readonly servedModelName: string,
    readonly modelPath: string,
    readonly maxModelLen: number,
    private readonly chatWrapper: ChatWrapper,
    private readonly options: Required<
      Pick<EngineOptions, "parallel" | "maxQueue" | "maxLoras" | "threads" | "maxLoraRank" | "emulatedLoraLoadMs">
    >,
  ) {
    this.pool = new ContextPool({
      model,
      parallel: options.parallel,
      maxQueue: options.maxQueue,
      maxLoras: options.maxLoras,
      contextSize: maxModelLen,
      threads: options.threads,
      onSwap: (evicted) => this.metrics.swapped(evicted),
      emulatedLoadMs: options.emulatedLoraLoadMs,
      onBatch: (sequences) => this.metrics.decodeStep(sequences),
    });
    this.metrics = new EngineMetrics(
      servedModelName,
      options.maxLoras,
      () => {
        const activity = this.pool.adapterActivity();
        return {
          running: this.pool.runningCount,
          waiting: this.pool.waitingCount,
          runningAdapters: activity.running,
          waitingAdapters: activity.waiting,
        };
      },
      options.parallel,
    );
  }

  /**
   * Loads llama.cpp, the base model and the start-up adapters; logs load progress. The caller has
   * checked the files and names first (`checkModelFile`, `checkAdapterNames`: startEngine does,
   * before it listens), so they are not read twice.
   */
  static async load(options: EngineOptions, log: Logger): Promise<Engine> {
    const modelPath = resolve(options.modelPath);
    const servedModelName = servedModelNameOf(options);
    const parallel = options.parallel ?? 4;
    const llama = await loadLlamaRuntime({
      threads: options.threads,
      log: (level, message) => log[level]({ source: "llama.cpp" }, message),
    });
    const threads = options.threads ?? llama.maxThreads;
    log.info({ modelPath, threads, parallel }, "loading model");
    let lastReported = -1;
    const model = await llama
      .loadModel({
        modelPath,
        onLoadProgress: (progress) => {
          const percent = Math.floor(progress * 4) * 25;
          if (percent > lastReported) {
            lastReported = percent;
            log.info({ modelPath, progress: percent }, `loading model: ${percent}%`);
          }
        },
      })
      .catch((error: unknown) => {
        // A GGUF header llama.cpp cannot build a model from: truncated, or an architecture it does not know.
        throw new InputError(
          `model ${modelPath} could not be loaded by llama.cpp: ${error instanceof Error ? error.message : String(error)} (its log lines above say why)`,
          "check the file is complete (its size or checksum against the source) and of an architecture llama.cpp supports",
        );
      });
    const chatWrapper = resolveChatWrapper(model);
    const maxModelLen = Math.min(options.maxModelLen ?? 4096, model.trainContextSize);
    const engine = new Engine(llama, model, servedModelName, modelPath, maxModelLen, chatWrapper, {
      parallel,
      maxQueue: options.maxQueue ?? 64,
      maxLoras: options.maxLoras ?? 4,
      threads,
      maxLoraRank: options.maxLoraRank ?? 16,
      emulatedLoraLoadMs: options.emulatedLoraLoadMs ?? 0,
    });
    log.info({ model: servedModelName, chatTemplate: chatWrapper.wrapperName, maxModelLen, bytes: model.size }, "model loaded");
    for (const lora of options.loras ?? []) {
      await engine.loadAdapter(lora.name, lora.path).catch(async (error: unknown) => {
        await engine.close();
        throw error instanceof ApiError
          ? new InputError(
              `--lora ${lora.name}=${lora.path}: ${error.message}`,
              "pass --lora NAME=PATH with a LoRA GGUF made for this base model",
            )
          : error;
      });
      log.info({ lora: lora.name, path: resolve(lora.path) }, "LoRA adapter loaded");
    }
    return engine;
  }

  get chatTemplateName(): string {
    return this.chatWrapper.wrapperName;
  }

  /** /v1/models: the base model, then each adapter with the base as `parent` (as vLLM lists them). */
  models(): ModelCard[] {
    const base: ModelCard = {
      id: this.servedModelName,
      object: "model",
      created: this.created,
      owned_by: "vllm",
      root: this.modelPath,
      parent: null,
      max_model_len: this.maxModelLen,
    };
    const loras = [...this.adapters].map(([name, adapter]): ModelCard => ({
      id: name,
      object: "model",
      created: adapter.created,
      owned_by: "vllm",
      root: adapter.path,
      parent: this.servedModelName,
      max_model_len: this.maxModelLen,
    }));
    return [base, ...loras];
  }

  /** The base model or an adapter, by the request's `model` field. */
  target(model: string): Target {
    if (model === this.servedModelName) return { name: model };
    const adapter = this.adapters.get(model);
    if (adapter === undefined) throw new ApiError(404, `The model \`${model}\` does not exist.`, "model");
    return { name: model, adapter: { path: adapter.path } };
  }

  /**
   * vLLM's /v1/load_lora_adapter (its messages and status codes, v0.34): the file must be a LoRA
   * GGUF whose tensors fit this base model, of rank at most --max-lora-rank. With `inplace`, one of
   * that name is replaced: running requests finish on the old weights, new ones get the new.
   */
  async loadAdapter(name: string, path: string, options: { inplace?: boolean } = {}): Promise<void> {
    if (name === this.servedModelName)
      throw new ApiError(400, `The lora adapter '${name}' conflicts with a served base model.`, "lora_name");
    if (this.adapters.has(name) && options.inplace !== true) {
      throw new ApiError(
        400,
        `The lora adapter '${name}' has already been loaded. If you want to load the adapter in place, set 'load_inplace' to True.`,
        "lora_name",
      );
    }
    const absolute = resolve(path);
    const readable = await stat(absolute).then(
      (info) => info.isFile(),
      () => false,
    );
    if (!readable) throw new ApiError(404, `Loading lora ${name} failed: No adapter found for ${absolute}`, "lora_path");
    const info = await ggufInfo(absolute, true, (reason) => new ApiError(400, `${absolute} is not a GGUF file: ${reason}`, "lora_path"));
    const general = field(info.metadata, "general");
    const adapterType = field(field(info.metadata, "adapter"), "type");
    if (field(general, "type") !== "adapter" || adapterType !== "lora") {
      throw new ApiError(400, `${absolute} is not a LoRA adapter GGUF (needs general.type=adapter, adapter.type=lora)`, "lora_path");
    }
    const architecture = field(general, "architecture");
    const baseArchitecture = this.model.fileInfo.metadata.general.architecture;
    if (architecture !== baseArchitecture) {
      throw new ApiError(
        400,
        `LoRA adapter ${absolute} is for architecture ${String(architecture)}, the base model is ${String(baseArchitecture)}`,
        "lora_path",
      );
    }
    const rank = checkLoraShapes(info.tensorInfo ?? [], await this.baseTensorShapes(), absolute);
    if (rank > this.options.maxLoraRank) {
      throw new ApiError(400, `LoRA rank ${rank} is greater than max_lora_rank ${this.options.maxLoraRank}.`, "lora_path");
    }
    const replaced = this.adapters.has(name);
    this.adapters.set(name, { path: absolute, created: Math.floor(Date.now() / 1000) });
    if (replaced) this.pool.retire(name, absolute);
  }

  private baseShapes: Promise<Map<string, readonly number[]>> | undefined;

  /** The base model's tensor shapes (ggml order), read once from its file. */
  private baseTensorShapes(): Promise<Map<string, readonly number[]>> {
    this.baseShapes ??= ggufInfo(this.modelPath, true, (reason) => new Error(`cannot read the base model's tensors: ${reason}`)).then(
      (info) => new Map((info.tensorInfo ?? []).map((tensor) => [tensor.name, tensor.dimensions.map(Number)])),
    );
    return this.baseShapes;
  }

  /** vLLM's /v1/unload_lora_adapter: new requests for it get 404; running ones finish first. */
  unloadAdapter(name: string): void {
    if (!this.adapters.delete(name)) throw new ApiError(404, `The lora adapter '${name}' cannot be found.`, "lora_name");
    this.pool.retire(name);
  }

  /** Renders messages with the model's own chat template (Llama 3's for Llama 3 GGUFs). */
  chatPrompt(messages: readonly { role: "system" | "developer" | "user" | "assistant"; text: string }[]): Token[] {
    const history: ChatHistoryItem[] = messages.map((m): ChatHistoryItem => {
      if (m.role === "user") return { type: "user", text: m.text };
      if (m.role === "assistant") return { type: "model", response: [m.text] };
      return { type: "system", text: m.text };
    });
    history.push({ type: "model", response: [] });
    const { contextText } = this.chatWrapper.generateContextState({ chatHistory: history });
    return contextText.tokenize(this.model.tokenizer);
  }

  completionPrompt(prompt: string): Token[] {
    const tokens = this.model.tokenize(prompt, false);
    const bos = this.model.tokens.bos;
    return bos !== null && this.model.tokens.shouldPrependBosToken ? [bos, ...tokens] : tokens;
  }

  /** Checks lengths as vLLM does: prompt plus max_tokens must fit the model length. */
  checkLength(promptTokens: number, maxTokens: number | undefined): void {
    const wanted = promptTokens + (maxTokens ?? 1);
    if (wanted > this.maxModelLen) {
      throw new ApiError(
        400,
        `This model's maximum context length is ${this.maxModelLen} tokens. However, you requested ${wanted} tokens (${promptTokens} in the messages, ${maxTokens ?? 1} in the completion). Please reduce the length of the messages or completion.`,
        maxTokens === undefined ? "messages" : "max_tokens",
      );
    }
  }

  /** Waits for a sequence (or throws QueueFullError), generates, records metrics, releases. */
  async run(target: Target, promptTokens: readonly Token[], sampling: Sampling, callbacks: RunCallbacks = {}): Promise<GenerationResult> {
    const arrivedAt = callbacks.arrivedAt ?? performance.now();
    const lease: Lease = await this.pool.acquire(target, callbacks.signal, promptTokens);
    try {
      callbacks.onAdmitted?.();
      // Without max_tokens, vLLM gives the room the model length leaves (llama.cpp pads its context past it).
      const room = this.maxModelLen - promptTokens.length;
      const result = await generate(this.model, lease.sequence, promptTokens, {
        sampling: { ...sampling, maxTokens: Math.min(sampling.maxTokens ?? room, room) },
        onText: callbacks.onText,
        signal: callbacks.signal,
        defer: this.pool.whileDecoding,
        lockstep: lease.lockstep,
        // Without a stream, the text is needed only at the end.
        textIntervalMs: callbacks.onText === undefined ? Number.POSITIVE_INFINITY : callbacks.textIntervalMs,
        onFirstToken: () => this.metrics.firstToken((performance.now() - arrivedAt) / 1000),
      });
      this.metrics.finished(result, (performance.now() - arrivedAt) / 1000);
      return result;
    } finally {
      await lease.release();
    }
  }

  /** Runs `task` while the next batch decodes (see ContextPool.whileDecoding): for stream writes. */
  readonly whileDecoding = (task: () => void): void => {
    this.pool.whileDecoding(task);
  };

  /** Embeddings from the base model, one input at a time on one embedding context. */
  async embed(inputs: readonly string[]): Promise<{ vectors: number[][]; promptTokens: number }> {
    this.embeddingContext ??= this.model.createEmbeddingContext({ contextSize: this.maxModelLen, threads: this.options.threads });
    const context = await this.embeddingContext;
    const job = this.embeddingQueue.then(async () => {
      const vectors: number[][] = [];
      let promptTokens = 0;
      for (const input of inputs) {
        const tokens = this.model.tokenize(input, false);
        if (tokens.length + 1 > this.maxModelLen) {
          throw new ApiError(400, `input has ${tokens.length} tokens; this model's maximum context length is ${this.maxModelLen}`, "input");
        }
        promptTokens += tokens.length;
        const embedding = await context.getEmbeddingFor(tokens);
        vectors.push([...embedding.vector]);
      }
      return { vectors, promptTokens };
    });
    this.embeddingQueue = job.catch(() => undefined);
    return job;
  }

  get load(): { running: number; waiting: number } {
    return { running: this.pool.runningCount, waiting: this.pool.waitingCount };
  }

  async close(): Promise<void> {
    await this.pool.close();
    if (this.embeddingContext !== undefined) await (await this.embeddingContext).dispose();
    await this.model.dispose();
  }
}

const MODEL_FIX = "pass --model with the path of a GGUF model file (`diatonic engine make-test-model` writes a tiny one)";

/** Fails with an InputError when the base model file cannot be read, is not GGUF, or is a LoRA adapter. */
export async function checkModelFile(path: string): Promise<void> {
  const modelPath = resolve(path);
  await assertReadable(modelPath, "model").catch(() => {
    throw new InputError(`model ${modelPath} cannot be read`, MODEL_FIX);
  });
  const { metadata } = await ggufInfo(
    modelPath,
    false,
    (reason) => new InputError(`model ${modelPath} is not a GGUF file: ${reason}`, MODEL_FIX),
  );
  if (field(field(metadata, "general"), "type") === "adapter") {
    throw new InputError(
      `model ${modelPath} is a LoRA adapter, not a base model`,
      "pass the base model as --model and the adapter as --lora NAME=PATH",
    );
  }
}

/** A GGUF file's header: metadata, and tensor shapes when asked; `notGguf` makes the error for a file that is not GGUF. */
async function ggufInfo(path: string, readTensorInfo: boolean, notGguf: (reason: string) => Error): Promise<GgufFileInfo> {
  try {
    return await readGgufFileInfo(path, { readTensorInfo, sourceType: "filesystem", logWarnings: false });
  } catch (error) {
    throw notGguf(error instanceof Error ? error.message : String(error));
  }
}

/**
 * Checks a LoRA's tensors against the base model's, as llama.cpp will when it applies them (ggml
 * order: a is [in, r], b is [r, out]); returns the rank. A LoRA made for another model of the same
 * architecture (another size) is refused here, not at its first request.
 */
function checkLoraShapes(tensors: GgufFileInfo["tensorInfo"] & object, base: ReadonlyMap<string, readonly number[]>, file: string): number {
  const pairs = new Map<string, { a?: readonly number[]; b?: readonly number[] }>();
  for (const tensor of tensors) {
    const match = /^(.*)\.lora_(a|b)$/.exec(tensor.name);
    if (match?.[1] === undefined) continue;
    const pair = pairs.get(match[1]) ?? {};
    pair[match[2] === "a" ? "a" : "b"] = tensor.dimensions.map(Number);
    pairs.set(match[1], pair);
  }
  if (pairs.size === 0) throw new ApiError(400, `${file} holds no LoRA tensors (*.lora_a, *.lora_b)`, "lora_path");
  let rank = 0;
  for (const [name, { a, b }] of pairs) {
    const target = base.get(name);
    if (a === undefined || b === undefined) throw new ApiError(400, `${file}: ${name} has only one of lora_a and lora_b`, "lora_path");
    if (target === undefined)
      throw new ApiError(400, `${file} adapts ${name}, which this base model does not have: it is a LoRA for another model`, "lora_path");
    if (a[0] !== target[0] || b[1] !== target[1] || a[1] !== b[0]) {
      throw new ApiError(
        400,
        `${file}: ${name}'s LoRA is [${a.join("×")}]·[${b.join("×")}] but the base tensor is [${target.join("×")}]: it is a LoRA for another model`,
        "lora_path",
      );
    }
    rank = Math.max(rank, a[1] ?? 0);
  }
  return rank;
}

function field(value: unknown, key: string): unknown {
  return typeof value === "object" && value !== null ? (value as Record<string, unknown>)[key] : undefined;
}

async function assertReadable(path: string, param: string): Promise<void> {
  try {
    const info = await stat(path);
    if (!info.isFile()) throw new Error("not a file");
  } catch {
    throw new ApiError(400, `${param}: cannot read ${path} (no such file)`, param);
  }
}
