// The engine's HTTP API on node:http, with vLLM's paths and payloads (OpenAI-compatible).
import { randomUUID } from "node:crypto";
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import type { Logger } from "pino";
import { ApiError } from "./api-error.ts";
import type { Engine } from "./engine.ts";
import type { GenerationResult } from "./generate.ts";
import {
  chatCompletionRequest,
  completionRequest,
  embeddingRequest,
  loadLoraRequest,
  messageText,
  parseBody,
  samplingOf,
  unloadLoraRequest,
} from "./requests.ts";

const MAX_BODY_BYTES = 8 * 1024 * 1024;

/** Where the server finds the engine: undefined until the model has loaded (health says 503 till then). */
export type EngineSource = () => Engine | undefined;

type Route = (context: RequestContext) => Promise<void>;

interface RequestContext {
  readonly req: IncomingMessage;
  readonly res: ServerResponse;
  readonly engine: Engine;
  readonly arrivedAt: number;
  readonly signal: AbortSignal;
  /** Fields for the request's log line. */
  readonly log: Record<string, unknown>;
}

export function createEngineServer(source: EngineSource, log: Logger): Server {
  const server = createServer((req, res) => {
    void handle(source, log, req, res);
  });
  server.keepAliveTimeout = 65_000;
  return server;
}

async function handle(source: EngineSource, log: Logger, req: IncomingMessage, res: ServerResponse): Promise<void> {
  const arrivedAt = performance.now();
  const path = (req.url ?? "/").split("?")[0] ?? "/";
  const fields: Record<string, unknown> = { method: req.method, path };
  const controller = new AbortController();
  res.on("close", () => {
    if (!res.writableFinished) controller.abort(new Error("client disconnected"));
  });
  try {
    const probe = probes(path, source);
    if (probe !== undefined) {
      if (req.method !== "GET" && req.method !== "HEAD") throw new ApiError(405, `${req.method ?? "?"} is not allowed on ${path}`);
      await probe(res);
      return;
    }
    const route = routes[`${req.method ?? "GET"} ${path}`];
    if (route === undefined) {
      const known = Object.keys(routes).some((key) => key.endsWith(` ${path}`));
      throw known ? new ApiError(405, `${req.method ?? "?"} is not allowed on ${path}`) : new ApiError(404, `Not Found: ${path}`);
    }
    const engine = source();
    if (engine === undefined) throw new ApiError(503, "The model is still loading.");
    await route({ req, res, engine, arrivedAt, signal: controller.signal, log: fields });
  } catch (error) {
    if (controller.signal.aborted) fields.error = "client disconnected";
    else sendError(res, error, log, fields);
  } finally {
    if (!path.startsWith("/health") && path !== "/readyz" && path !== "/metrics") {
      log.info({ ...fields, status: res.statusCode, ms: Math.round(performance.now() - arrivedAt) }, "request");
    }
  }
}

function probes(path: string, source: EngineSource): ((res: ServerResponse) => Promise<void>) | undefined {
  switch (path) {
    case "/health":
      // vLLM answers 200 with an empty body once it serves.
      return async (res) => {
        res.writeHead(source() === undefined ? 503 : 200).end();
      };
    case "/healthz":
      return async (res) => sendJson(res, 200, { status: "ok" });
    case "/readyz":
      return async (res) => {
        const ready = source() !== undefined;
        sendJson(res, ready ? 200 : 503, { status: ready ? "ready" : "loading" });
      };
    case "/metrics":
      return async (res) => {
        const engine = source();
        if (engine === undefined) {
          res.writeHead(503, { "content-type": "text/plain" }).end("# model loading\n");
          return;
        }
        const body = await engine.metrics.render();
        res.writeHead(200, { "content-type": engine.metrics.contentType }).end(body);
      };
    default:
      return undefined;
  }
}

const routes: Record<string, Route> = {
  "GET /v1/models": async ({ res, engine }) => sendJson(res, 200, { object: "list", data: engine.models() }),

  "POST /v1/chat/completions": async (context) => {
    const request = parseBody(chatCompletionRequest, await readJson(context.req));
    const { engine } = context;
    const target = engine.target(request.model);
    const prompt = engine.chatPrompt(request.messages.map((m) => ({ role: m.role, text: messageText(m.content) })));
    const sampling = samplingOf(request);
    engine.checkLength(prompt.length, sampling.maxTokens);
    context.log.model = request.model;
    const id = `chatcmpl-${randomUUID().replaceAll("-", "")}`;
    const created = Math.floor(Date.now() / 1000);
    const base = { id, object: "chat.completion.chunk", created, model: request.model };

    await respond(context, target, prompt, sampling, request.stream === true ? { includeUsage: request.stream_options?.include_usage === true } : undefined, {
      base,
      // Chat streams announce the assistant's role as soon as a sequence is free.
      onAdmitted: (_sse, emit) => emit({ index: 0, delta: { role: "assistant", content: "" }, logprobs: null, finish_reason: null }),
      choice: (text, finishReason) => ({ index: 0, delta: text === undefined ? {} : { content: text }, logprobs: null, finish_reason: finishReason }),
      body: (result) => ({
        ...base,
        object: "chat.completion",
        choices: [{ index: 0, message: { role: "assistant", content: result.text }, logprobs: null, finish_reason: result.finishReason }],
        usage: usage(result),
      }),
    });
  },

  "POST /v1/completions": async (context) => {
    const request = parseBody(completionRequest, await readJson(context.req));
    const { engine } = context;
    const target = engine.target(request.model);
    const prompt = engine.completionPrompt(typeof request.prompt === "string" ? request.prompt : (request.prompt[0] ?? ""));
    const sampling = samplingOf(request, 16); // the OpenAI completions default
    engine.checkLength(prompt.length, sampling.maxTokens);
    context.log.model = request.model;
    const id = `cmpl-${randomUUID().replaceAll("-", "")}`;
    const base = { id, object: "text_completion", created: Math.floor(Date.now() / 1000), model: request.model };

    await respond(context, target, prompt, sampling, request.stream === true ? { includeUsage: request.stream_options?.include_usage === true } : undefined, {
      base,
      onAdmitted: (sse) => sse.open(),
      choice: (text, finishReason) => ({ index: 0, text: text ?? "", logprobs: null, finish_reason: finishReason }),
      body: (result) => ({ ...base, choices: [{ index: 0, text: result.text, logprobs: null, finish_reason: result.finishReason }], usage: usage(result) }),
    });
  },

  "POST /v1/embeddings": async ({ req, res, engine, log }) => {
    const request = parseBody(embeddingRequest, await readJson(req));
    if (request.model !== engine.servedModelName) engine.target(request.model); // 404 for unknown names
    log.model = request.model;
    const inputs = typeof request.input === "string" ? [request.input] : request.input;
    const { vectors, promptTokens } = await engine.embed(inputs);
    const base64 = request.encoding_format === "base64";
    sendJson(res, 200, {
      object: "list",
      model: request.model,
      data: vectors.map((vector, index) => ({
        object: "embedding",
        index,
        embedding: base64 ? Buffer.from(new Float32Array(vector).buffer).toString("base64") : vector,
      })),
      usage: { prompt_tokens: promptTokens, total_tokens: promptTokens },
    });
  },

  "POST /v1/load_lora_adapter": async ({ req, res, engine, log }) => {
    const request = parseBody(loadLoraRequest, await readJson(req));
    await engine.loadAdapter(request.lora_name, request.lora_path);
    log.lora = request.lora_name;
    res.writeHead(200, { "content-type": "text/plain; charset=utf-8" }).end(`Success: LoRA adapter '${request.lora_name}' added successfully.`);
  },

  "POST /v1/unload_lora_adapter": async ({ req, res, engine, log }) => {
    const request = parseBody(unloadLoraRequest, await readJson(req));
    engine.unloadAdapter(request.lora_name);
    log.lora = request.lora_name;
    res.writeHead(200, { "content-type": "text/plain; charset=utf-8" }).end(`Success: LoRA adapter '${request.lora_name}' removed successfully.`);
  },
};

function usage(result: GenerationResult): { prompt_tokens: number; completion_tokens: number; total_tokens: number } {
  return { prompt_tokens: result.promptTokens, completion_tokens: result.completionTokens, total_tokens: result.promptTokens + result.completionTokens };
}

/** At most one socket write per stream per this many milliseconds; events stay one per token. */
const STREAM_WRITE_INTERVAL_MS = 1;

/**
 * Server-sent events as OpenAI and vLLM send them: `data: <json>\n\n`, closed by `data: [DONE]`.
 * The first event goes out at once (time to first token); later events that arrive within
 * STREAM_WRITE_INTERVAL_MS of the last write are sent together in one write. On a fast model that
 * saves a syscall and a client wake-up per token; on a real one (tens of ms per token) every token
 * is written alone, as before.
 */
class EventStream {
  private pending = "";
  private timer: NodeJS.Timeout | undefined;
  private lastWrite = Number.NEGATIVE_INFINITY;

  constructor(private readonly res: ServerResponse) {}

  get opened(): boolean {
    return this.res.headersSent;
  }

  open(): void {
    if (this.res.headersSent) return;
    this.res.writeHead(200, { "content-type": "text/event-stream; charset=utf-8", "cache-control": "no-cache", connection: "keep-alive" });
  }

  send(data: unknown): void {
    this.open();
    this.pending += `data: ${JSON.stringify(data)}\n\n`;
    if (this.timer !== undefined) return;
    const wait = this.lastWrite + STREAM_WRITE_INTERVAL_MS - performance.now();
    if (wait <= 0) this.flush();
    else this.timer = setTimeout(() => this.flush(), wait);
  }

  done(): void {
    this.open();
    this.flush();
    if (!this.res.writableEnded) this.res.end("data: [DONE]\n\n");
  }

  private flush(): void {
    if (this.timer !== undefined) clearTimeout(this.timer);
    this.timer = undefined;
    if (this.pending.length === 0 || this.res.writableEnded) return;
    this.res.write(this.pending);
    this.pending = "";
    this.lastWrite = performance.now();
  }
}

/** How one endpoint shapes its stream chunks and its JSON body; the generation itself is shared. */
interface ResponseShape {
  readonly base: Record<string, unknown>;
  /** Called when a sequence is free; `emit` sends one chunk holding the given choice. */
  readonly onAdmitted: (sse: EventStream, emit: (choice: unknown) => void) => void;
  /** One choice of a chunk: `text` undefined for the closing chunk. */
  readonly choice: (text: string | undefined, finishReason: string | null) => unknown;
  readonly body: (result: GenerationResult) => unknown;
}

/** Runs the generation and answers as SSE (when `stream` is given) or as one JSON body. */
async function respond(context: RequestContext, target: ReturnType<Engine["target"]>, prompt: Parameters<Engine["run"]>[1], sampling: Parameters<Engine["run"]>[2], stream: { includeUsage: boolean } | undefined, shape: ResponseShape): Promise<void> {
  const { engine } = context;
  if (stream === undefined) {
    const result = await engine.run(target, prompt, sampling, { arrivedAt: context.arrivedAt, signal: context.signal });
    context.log.tokens = result.completionTokens;
    sendJson(context.res, 200, shape.body(result));
    return;
  }
  const usageField = stream.includeUsage ? { usage: null } : {};
  const sse = new EventStream(context.res);
  const emit = (choice: unknown): void => sse.send({ ...shape.base, choices: [choice], ...usageField });
  await streamGeneration(context, sse, () => engine.run(target, prompt, sampling, {
    arrivedAt: context.arrivedAt,
    signal: context.signal,
    onAdmitted: () => shape.onAdmitted(sse, emit),
    onText: (text) => emit(shape.choice(text, null)),
  }), (result) => {
    emit(shape.choice(undefined, result.finishReason));
    if (stream.includeUsage) sse.send({ ...shape.base, choices: [], usage: usage(result) });
  });
}

/** Runs a streamed generation; an error before the stream opened is a normal error response. */
async function streamGeneration(
  context: RequestContext,
  sse: EventStream,
  run: () => Promise<GenerationResult>,
  finish: (result: GenerationResult) => void,
): Promise<void> {
  try {
    const result = await run();
    context.log.tokens = result.completionTokens;
    finish(result);
    sse.done();
  } catch (error) {
    if (!sse.opened) throw error;
    // Mid-stream failures go out as an error event, as vLLM does, then the stream ends.
    const apiError = error instanceof ApiError ? error : new ApiError(500, error instanceof Error ? error.message : String(error));
    sse.send(apiError.toBody());
    sse.done();
  }
}

async function readJson(req: IncomingMessage): Promise<unknown> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req) {
    const buffer = chunk instanceof Buffer ? chunk : Buffer.from(String(chunk));
    size += buffer.length;
    if (size > MAX_BODY_BYTES) throw new ApiError(413, `request body is larger than ${MAX_BODY_BYTES} bytes`);
    chunks.push(buffer);
  }
  const text = Buffer.concat(chunks).toString("utf8");
  try {
    return JSON.parse(text) as unknown;
  } catch {
    throw new ApiError(400, "request body is not valid JSON");
  }
}

function sendJson(res: ServerResponse, status: number, body: unknown): void {
  const payload = JSON.stringify(body);
  res.writeHead(status, { "content-type": "application/json", "content-length": Buffer.byteLength(payload) }).end(payload);
}

function sendError(res: ServerResponse, error: unknown, log: Logger, fields: Record<string, unknown>): void {
  const apiError = error instanceof ApiError ? error : new ApiError(500, "internal error");
  if (!(error instanceof ApiError)) log.error({ ...fields, err: error }, "request failed");
  else fields.error = apiError.message;
  if (res.headersSent) {
    res.end();
    return;
  }
  sendJson(res, apiError.status, apiError.toBody());
}
