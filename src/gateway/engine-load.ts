// An engine replica's load as it reports it on /metrics, under vLLM's names (v0.34; the local engine
// exports the same): requests running and waiting, KV-cache use, and which LoRA adapters have
// requests running or waiting (vllm:lora_requests_info, whose labels carry the lists). Scraped every
// few hundred milliseconds; an answer older than a few scrapes is stale and not used.
import type { Dispatcher } from "undici";

export interface EngineLoad {
  readonly running: number;
  readonly waiting: number;
  /** 0..1, when the engine reports it. */
  readonly kvCache: number | undefined;
  /** --max-loras, from lora_requests_info's max_lora label. */
  readonly maxLoras: number | undefined;
  readonly runningLoras: ReadonlySet<string>;
  readonly waitingLoras: ReadonlySet<string>;
  /** performance.now() of the scrape. */
  readonly at: number;
}

const SAMPLE = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{([^}]*)\})?\s+(\S+)/;
const LABEL = /([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g;

function labelsOf(text: string | undefined): Map<string, string> {
  const labels = new Map<string, string>();
  if (text === undefined) return labels;
  for (const match of text.matchAll(LABEL)) labels.set(match[1] ?? "", (match[2] ?? "").replace(/\\(.)/g, "$1"));
  return labels;
}

function names(list: string | undefined): Set<string> {
  return new Set((list ?? "").split(",").filter((name) => name !== ""));
}

/**
 * The load in a Prometheus text body. Counts sum over series (vLLM has one per engine core); of
 * lora_requests_info, the newest series counts (its value is the time it was recorded).
 */
export function parseEngineLoad(text: string, at: number): EngineLoad {
  let running = 0;
  let waiting = 0;
  let kvCache: number | undefined;
  let lora: { time: number; labels: Map<string, string> } | undefined;
  for (const line of text.split("\n")) {
    if (line.length === 0 || line.charCodeAt(0) === 35) continue; // '#'
    const match = SAMPLE.exec(line);
    if (match === null) continue;
    const value = Number(match[4]);
    switch (match[1]) {
      case "vllm:num_requests_running":
        running += value;
        break;
      case "vllm:num_requests_waiting":
        waiting += value;
        break;
      case "vllm:kv_cache_usage_perc":
        kvCache = Math.max(kvCache ?? 0, value);
        break;
      case "vllm:lora_requests_info":
        if (lora === undefined || value >= lora.time) lora = { time: value, labels: labelsOf(match[3]) };
        break;
      default:
    }
  }
  const maxLoras = Number(lora?.labels.get("max_lora"));
  return {
    running,
    waiting,
    kvCache,
    maxLoras: Number.isFinite(maxLoras) && maxLoras > 0 ? maxLoras : undefined,
    runningLoras: names(lora?.labels.get("running_lora_adapters")),
    waitingLoras: names(lora?.labels.get("waiting_lora_adapters")),
    at,
  };
}

/** GET /metrics of one replica; undefined when it does not answer in time. */
export async function scrapeEngineLoad(pool: Dispatcher, path: string, host: string, timeoutMs: number): Promise<EngineLoad | undefined> {
  try {
    const response = await pool.request({ method: "GET", path, headers: { host }, headersTimeout: timeoutMs, bodyTimeout: timeoutMs });
    const text = await response.body.text();
    return response.statusCode === 200 ? parseEngineLoad(text, performance.now()) : undefined;
  } catch {
    return undefined;
  }
}
