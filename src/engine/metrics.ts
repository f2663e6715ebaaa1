// Prometheus metrics under vLLM's names, for what this engine can measure. Each engine has its own
// registry, so several engines (tests, `diatonic dev`) can live in one process.
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from "prom-client";

export interface EngineLoad {
  readonly running: number;
  readonly waiting: number;
  readonly runningAdapters: readonly string[];
  readonly waitingAdapters: readonly string[];
}

// vLLM's buckets for time to first token and end-to-end latency (vllm/engine/metrics.py).
const TTFT_BUCKETS = [0.001, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.25, 0.5, 0.75, 1, 2.5, 5, 7.5, 10, 20, 40, 80, 160, 640, 2560];
const LATENCY_BUCKETS = [0.3, 0.5, 0.8, 1, 1.5, 2, 2.5, 5, 10, 15, 20, 30, 40, 50, 60, 120, 240, 480, 960, 1920, 7680];

export class EngineMetrics {
  readonly registry = new Registry();
  private readonly promptTokens: Counter<"model_name">;
  private readonly prefixQueries: Counter<"model_name">;
  private readonly prefixHits: Counter<"model_name">;
  private readonly generationTokens: Counter<"model_name">;
  private readonly success: Counter<"model_name" | "finished_reason">;
  private readonly ttft: Histogram<"model_name">;
  private readonly latency: Histogram<"model_name">;
  private readonly labels: { model_name: string };
  private readonly swaps: Counter<"evicted">;
  private readonly batchSequences: Histogram;

  /** `parallel`: the engine's --parallel, the most sequences a decode step can carry. */
  constructor(modelName: string, maxLoras: number, load: () => EngineLoad, parallel = 4) {
    const registers = [this.registry];
    const labels = { model_name: modelName };
    new Gauge({
      name: "vllm:num_requests_running",
      help: "Number of requests currently running on the engine.",
      labelNames: ["model_name"],
      registers,
      collect() {
        this.set(labels, load().running);
      },
    });
    new Gauge({
      name: "vllm:num_requests_waiting",
      help: "Number of requests waiting to be processed.",
      labelNames: ["model_name"],
      registers,
      collect() {
        this.set(labels, load().waiting);
      },
    });
    new Gauge({
      name: "vllm:lora_requests_info",
      help: "Running stats on LoRA requests.",
      labelNames: ["running_lora_adapters", "waiting_lora_adapters", "max_lora"],
      registers,
      collect() {
        // As vLLM does: one series whose labels carry the adapter lists, valued at the scrape time.
        const now = load();
        this.reset();
        this.set(
          {
            running_lora_adapters: now.runningAdapters.join(","),
            waiting_lora_adapters: now.waitingAdapters.join(","),
            max_lora: String(maxLoras),
          },
          Date.now() / 1000,
        );
      },
    });
    this.promptTokens = new Counter({
      name: "vllm:prompt_tokens_total",
      help: "Number of prefill tokens processed.",
      labelNames: ["model_name"],
      registers,
    });
    // vLLM's prefix cache counters, in prompt tokens: asked for, and found in a sequence's KV cells.
    this.prefixQueries = new Counter({
      name: "vllm:prefix_cache_queries_total",
      help: "Prefix cache queries, in terms of number of queried tokens.",
      labelNames: ["model_name"],
      registers,
    });
    this.prefixHits = new Counter({
      name: "vllm:prefix_cache_hits_total",
      help: "Prefix cache hits, in terms of number of cached tokens.",
      labelNames: ["model_name"],
      registers,
    });
    this.generationTokens = new Counter({
      name: "vllm:generation_tokens_total",
      help: "Number of generation tokens processed.",
      labelNames: ["model_name"],
      registers,
    });
    this.success = new Counter({
      name: "vllm:request_success_total",
      help: "Count of successfully processed requests.",
      labelNames: ["model_name", "finished_reason"],
      registers,
    });
    this.ttft = new Histogram({
      name: "vllm:time_to_first_token_seconds",
      help: "Histogram of time to first token in seconds.",
      labelNames: ["model_name"],
      buckets: TTFT_BUCKETS,
      registers,
    });
    this.latency = new Histogram({
      name: "vllm:e2e_request_latency_seconds",
      help: "Histogram of end to end request latency in seconds.",
      labelNames: ["model_name"],
      buckets: LATENCY_BUCKETS,
      registers,
    });
    // Ours, not vLLM's: how often a LoRA is swapped into a slot (what routing by residency saves).
    this.swaps = new Counter({
      name: "diatonic_engine_lora_swaps_total",
      help: "LoRA adapters put into one of the --max-loras slots, by whether an idle one was evicted for it.",
      labelNames: ["evicted"],
      registers,
    });
    // Ours: how many sequences each decode step of a context carried (batching at work, or not).
    this.batchSequences = new Histogram({
      name: "diatonic_engine_decode_batch_sequences",
      help: "Sequences decoded together in one step of a context (a request's prompt or its next token each).",
      buckets: Array.from({ length: Math.max(1, parallel) }, (_, i) => i + 1),
      registers,
    });
    this.promptTokens.inc(labels, 0);
    this.generationTokens.inc(labels, 0);
    collectDefaultMetrics({ register: this.registry });
    this.labels = labels;
  }

  /** An adapter's LoRA was put in one of the --max-loras slots (evicting an idle one when all were taken). */
  swapped(evicted: boolean): void {
    this.swaps.inc({ evicted: evicted ? "true" : "false" });
  }

  /** One decode step of a context, carrying this many sequences. */
  decodeStep(sequences: number): void {
    this.batchSequences.observe(sequences);
  }

  firstToken(seconds: number): void {
    this.ttft.observe(this.labels, seconds);
  }

  finished(
    result: { promptTokens: number; cachedPromptTokens: number; completionTokens: number; finishReason: string },
    seconds: number,
  ): void {
    this.promptTokens.inc(this.labels, result.promptTokens);
    this.prefixQueries.inc(this.labels, result.promptTokens);
    this.prefixHits.inc(this.labels, result.cachedPromptTokens);
    this.generationTokens.inc(this.labels, result.completionTokens);
    this.success.inc({ ...this.labels, finished_reason: result.finishReason }, 1);
    this.latency.observe(this.labels, seconds);
  }

  render(): Promise<string> {
    return this.registry.metrics();
  }

  get contentType(): string {
    return this.registry.contentType;
  }
}
