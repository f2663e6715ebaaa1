// vLLM's runtime LoRA API on the engine beside the agent (localhost): /v1/models says what is
// loaded, /v1/load_lora_adapter and /v1/unload_lora_adapter change it (VLLM_ALLOW_RUNTIME_LORA_UPDATING).
// The local engine (src/engine) serves the same paths and shapes.

/** The engine answered, but not with success: its status and its own message. */
export class EngineRefusal extends Error {
  override readonly name = "EngineRefusal";
  constructor(
    readonly status: number,
    message: string,
  ) {
    super(message);
  }
}

/** The engine could not be reached, or is not serving yet (model loading, restarting). */
export class EngineUnavailable extends Error {
  override readonly name = "EngineUnavailable";
}

export interface EngineClientOptions {
  /** e.g. http://127.0.0.1:8000 */
  readonly url: string;
  /** For /v1/models and /health. @default 5000 */
  readonly requestTimeoutMs?: number;
  /** For a load: vLLM reads the weights before it answers. @default 300000 */
  readonly loadTimeoutMs?: number;
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null;
}

/** vLLM's error text: `{"error":{"message"}}` (v0.34), `{"message"}` (older), or the body itself. */
function messageOf(body: string): string {
  try {
    const parsed: unknown = JSON.parse(body);
    if (isRecord(parsed)) {
      const nested = isRecord(parsed.error) ? parsed.error.message : undefined;
      const message = typeof nested === "string" ? nested : parsed.message;
      if (typeof message === "string") return message;
    }
  } catch {
    // Not JSON: the text is the message.
  }
  return body.trim().slice(0, 500) || "(no message)";
}

export class EngineClient {
  private readonly base: string;
  constructor(private readonly options: EngineClientOptions) {
    this.base = options.url.replace(/\/+$/, "");
  }

  get url(): string {
    return this.base;
  }

  private async call(method: "GET" | "POST", path: string, body: unknown, timeoutMs: number): Promise<{ status: number; text: string }> {
    let response: Response;
    try {
      response = await fetch(`${this.base}${path}`, {
        method,
        headers: body === undefined ? {} : { "content-type": "application/json" },
        body: body === undefined ? undefined : JSON.stringify(body),
        signal: AbortSignal.timeout(timeoutMs),
      });
    } catch (error) {
      const cause =
        error instanceof Error && error.cause instanceof Error
          ? error.cause.message
          : error instanceof Error
            ? error.message
            : String(error);
      throw new EngineUnavailable(`the engine at ${this.base} does not answer (${cause})`);
    }
    return { status: response.status, text: await response.text() };
  }

  /** The LoRAs the engine serves now, by name, with the path each was loaded from. */
  async loras(): Promise<Map<string, string>> {
    const { status, text } = await this.call("GET", "/v1/models", undefined, this.options.requestTimeoutMs ?? 5000);
    if (status !== 200) throw new EngineUnavailable(`the engine's /v1/models answered ${status}: ${messageOf(text)}`);
    let parsed: unknown;
    try {
      parsed = JSON.parse(text);
    } catch {
      throw new EngineUnavailable(`the engine's /v1/models answered something that is not JSON`);
    }
    const loaded = new Map<string, string>();
    const data = isRecord(parsed) && Array.isArray(parsed.data) ? parsed.data : [];
    for (const card of data) {
      // A LoRA's card names its base model as `parent`; the base model's has none.
      if (isRecord(card) && typeof card.id === "string" && typeof card.parent === "string" && card.parent !== "") {
        loaded.set(card.id, typeof card.root === "string" ? card.root : "");
      }
    }
    return loaded;
  }

  /** Loads a LoRA; `inplace` replaces one of that name (vLLM ≥ 0.15's load_inplace). */
  async load(name: string, path: string, inplace: boolean): Promise<void> {
    const body = inplace ? { lora_name: name, lora_path: path, load_inplace: true } : { lora_name: name, lora_path: path };
    const { status, text } = await this.call("POST", "/v1/load_lora_adapter", body, this.options.loadTimeoutMs ?? 300_000);
    if (status === 200) return;
    if (status === 503 || status === 502) throw new EngineUnavailable(`the engine is not serving (${status}): ${messageOf(text)}`);
    if (status === 404 && /Not Found: \/v1\/load_lora_adapter|"detail":"Not Found"/.test(text)) {
      throw new EngineRefusal(
        404,
        "the engine has no /v1/load_lora_adapter: start vLLM with VLLM_ALLOW_RUNTIME_LORA_UPDATING=true and --enable-lora",
      );
    }
    throw new EngineRefusal(status, messageOf(text));
  }

  /** Unloads a LoRA; one the engine does not have is already unloaded. */
  async unload(name: string): Promise<void> {
    const { status, text } = await this.call("POST", "/v1/unload_lora_adapter", { lora_name: name }, this.options.requestTimeoutMs ?? 5000);
    if (status === 200 || status === 404) return;
    if (status === 503 || status === 502) throw new EngineUnavailable(`the engine is not serving (${status}): ${messageOf(text)}`);
    throw new EngineRefusal(status, messageOf(text));
  }
}
