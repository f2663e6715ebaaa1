import { request } from "undici";

/** Turns texts into dense vectors. */
export interface Embedder {
  embed(texts: readonly string[], signal?: AbortSignal): Promise<number[][]>;
}

export interface HttpEmbedderOptions {
  /** Base URL of an OpenAI-compatible server; `/v1/embeddings` is appended. */
  readonly url: string;
  readonly model: string;
  /** Inputs per request. @default 32 */
  readonly batchSize?: number;
  /** Bearer token, for hosted endpoints. */
  readonly apiKey?: string;
  /** Tries per batch on connection errors and 429/5xx answers. @default 3 */
  readonly attempts?: number;
  /**
   * How long one request may take. @default 60 s, and 5 s more for each input after the first: a
   * small model on a CPU takes seconds a chunk (the demo's e5 about 6), so a full batch of 32 needs
   * minutes, where a lone question needs well under one.
   */
  readonly timeoutMs?: number;
  /**
   * How a request reaches the server: by default straight to the URL. The gateway sends through its
   * upstream pool instead, so that a dead embeddings server is ejected, probed and reported like
   * any upstream (src/gateway/embeddings-transport.ts).
   */
  readonly transport?: EmbeddingsTransport;
}

/** POSTs a `/v1/embeddings` body; resolves with the answer's status and text, rejects when none came. */
export type EmbeddingsTransport = (
  body: string,
  options: { readonly timeoutMs: number; readonly signal?: AbortSignal },
) => Promise<{
  readonly statusCode: number;
  readonly text: string;
}>;

/** An embeddings endpoint failed or answered something that is not embeddings. */
export class EmbeddingError extends Error {
  override readonly name = "EmbeddingError";
}

interface EmbeddingsResponse {
  data?: Array<{ index?: number; embedding?: unknown }>;
}

const TOO_LONG = /context length|too long|maximum.*tokens|exceeds|truncat/i;

/** Any OpenAI-compatible `/v1/embeddings` (vLLM, the local engine, text-embeddings-inference, OpenAI). */
export class HttpEmbedder implements Embedder {
  private readonly endpoint: string;
  private readonly batchSize: number;
  private readonly attempts: number;
  private readonly transport: EmbeddingsTransport;

  constructor(private readonly options: HttpEmbedderOptions) {
    this.endpoint = `${options.url.replace(/\/+$/, "").replace(/\/v1$/, "")}/v1/embeddings`;
    this.batchSize = options.batchSize ?? 32;
    this.attempts = options.attempts ?? 3;
    this.transport = options.transport ?? ((body, call) => this.direct(body, call));
  }

  private async direct(body: string, { timeoutMs, signal }: Parameters<EmbeddingsTransport>[1]): ReturnType<EmbeddingsTransport> {
    const response = await request(this.endpoint, {
      method: "POST",
      headers: {
        "content-type": "application/json",
        ...(this.options.apiKey ? { authorization: `Bearer ${this.options.apiKey}` } : {}),
      },
      body,
      signal: signal ?? AbortSignal.timeout(timeoutMs),
      headersTimeout: timeoutMs,
      bodyTimeout: timeoutMs,
    });
    return { statusCode: response.statusCode, text: await response.body.text() };
  }

  async embed(texts: readonly string[], signal?: AbortSignal): Promise<number[][]> {
    const vectors: number[][] = [];
    for (let start = 0; start < texts.length; start += this.batchSize) {
      vectors.push(...(await this.batch(texts.slice(start, start + this.batchSize), signal)));
    }
    return vectors;
  }

  private async batch(original: readonly string[], signal: AbortSignal | undefined): Promise<number[][]> {
    let lastError: unknown;
    let input = original;
    let shortened = 0;
    for (let attempt = 1; attempt <= this.attempts; attempt++) {
      signal?.throwIfAborted();
      try {
        const response = await this.transport(JSON.stringify({ model: this.options.model, input, encoding_format: "float" }), {
          timeoutMs: this.options.timeoutMs ?? 60_000 + 5_000 * (input.length - 1),
          ...(signal !== undefined ? { signal } : {}),
        });
        const text = response.text;
        if (response.statusCode === 429 || response.statusCode >= 500) {
          lastError = new EmbeddingError(`${this.endpoint} answered ${response.statusCode}: ${text.slice(0, 300)}`);
          await new Promise((resolve) => setTimeout(resolve, 100 * 2 ** attempt));
          continue;
        }
        // Inputs longer than the model's context: embed their beginning (the keyword index keeps the whole text).
        if (
          (response.statusCode === 400 || response.statusCode === 413 || response.statusCode === 422) &&
          TOO_LONG.test(text) &&
          shortened < 6
        ) {
          const longest = Math.max(...input.map((t) => t.length));
          const limit = Math.max(1, Math.floor(longest / 2));
          input = input.map((t) => (t.length > limit ? t.slice(0, limit) : t));
          shortened++;
          attempt--;
          continue;
        }
        if (response.statusCode >= 300) throw new EmbeddingError(`${this.endpoint} answered ${response.statusCode}: ${text.slice(0, 300)}`);
        return this.parse(text, input.length);
      } catch (error) {
        if (error instanceof EmbeddingError || signal?.aborted) throw error;
        lastError = error;
      }
    }
    throw lastError instanceof EmbeddingError
      ? lastError
      : new EmbeddingError(`${this.endpoint} is unreachable: ${(lastError as Error).message}`);
  }

  private parse(text: string, count: number): number[][] {
    let body: EmbeddingsResponse;
    try {
      body = JSON.parse(text) as EmbeddingsResponse;
    } catch {
      throw new EmbeddingError(`${this.endpoint} did not answer JSON`);
    }
    const data = body.data;
    if (!Array.isArray(data) || data.length !== count)
      throw new EmbeddingError(`${this.endpoint} returned ${Array.isArray(data) ? data.length : "no"} embeddings for ${count} inputs`);
    const out: number[][] = new Array<number[]>(count);
    data.forEach((item, position) => {
      const vector = item.embedding;
      if (!Array.isArray(vector) || vector.length === 0 || !vector.every((v) => typeof v === "number"))
        throw new EmbeddingError(`${this.endpoint} returned an embedding that is not a list of numbers`);
      out[item.index ?? position] = vector as number[];
    });
    return out;
  }
}
