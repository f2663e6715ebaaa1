// The engine's HTTP API on node:http, with vLLM's paths and payloads (OpenAI-compatible).
import { randomUUID } from "node:crypto";
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import type { Logger } from "pino";
import { readBody } from "../http-body.ts";
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

    await respond(
      context,
      target,
      prompt,
      sampling,
      request.stream === true ? { includeUsage: request.stream_options?.include_usage === true } : undefined,
      {
        base,
        // Chat streams announce the assistant's role as soon as a sequence is free.
        onAdmitted: (_sse, emit) => emit({ index: 0, delta: { role: "assistant", content: "" }, logprobs: null, finish_reason: null }),
        choice: (text, finishReason) => ({
          index: 0,
          delta: text === undefined ? {} : { content: text },
          logprobs: null,
          finish_reason: finishReason,
        }),
        body: (result) => ({
          ...base,
          object: "chat.completion",
          choices: [{ index: 0, message: { role: "assistant", content: result.text }, logprobs: null, finish_reason: result.finishReason }],
          usage: usage(result),
        }),
      },
    );
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

    await respond(
      context,
      target,
      prompt,
      sampling,
      request.stream === true ? { includeUsage: request.stream_options?.include_usage === true } : undefined,
      {
        base,
        onAdmitted: (sse) => sse.open(),
        choice: (text, finishReason) => ({ index: 0, text: text ?? "", logprobs: null, finish_reason: finishReason }),
        body: (result) => ({
          ...base,
          choices: [{ index: 0, text: result.text, logprobs: null, finish_reason: result.finishReason }],
          usage: usage(result),
        }),
      },
    );
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
    await engine.loadAdapter(request.lora_name, request.lora_path, { inplace: request.load_inplace === true });
    log.lora = request.lora_name;
    res
      .writeHead(200, { "content-type": "text/plain; charset=utf-8" })
      .end(`Success: LoRA adapter '${request.lora_name}' added successfully.`);
  },

  "POST /v1/unload_lora_adapter": async ({ req, res, engine, log }) => {
    const request = parseBody(unloadLoraRequest, await readJson(req));
    engine.unloadAdapter(request.lora_name);
    log.lora = request.lora_name;
    res
      .writeHead(200, { "content-type": "text/plain; charset=utf-8" })
      .end(`Success: LoRA adapter '${request.lora_name}' removed successfully.`);
  },
};

function usage(result: GenerationResult): { prompt_tokens: number; completion_tokens: number; total_tokens: number } {
  return {
    prompt_tokens: result.promptTokens,
    completion_tokens: result.completionTokens,
    total_tokens: result.promptTokens + result.completionTokens,
  };
}

/**
 * A stream gets the text sampled since its last event at most this often (one event for the tokens
 * of the last few ms, as vLLM's --stream-interval does by token count), and writes at most this
 * often. Tokens slower than this (any real model on a CPU) each go out alone as soon as they are
 * sampled; faster ones go a few per event, which saves a detokenize, an event, a syscall and a
 * client wake-up per token (5 ms is far below what a reader can see: a 60 Hz frame is 16.7 ms).
 * The first token is never held. With stop strings, every token is checked as it comes.
 */
const STREAM_WRITE_INTERVAL_MS = 5;

/**
 * Server-sent events as OpenAI and vLLM send them: `data: <json>\n\n`, closed by `data: [DONE]`.
 * Events are written by `schedule`, which runs the write once the next token's decode is under way
 * (Engine.whileDecoding): the syscall and the client's wake-up then overlap the model's compute
 * instead of adding to every token's latency. After a write, events that come within
 * STREAM_WRITE_INTERVAL_MS go out together (a fast model's tokens, a few per write).
 */
class EventStream {
  /** Events not written yet, as `data: ...` lines. */
  private pending = "";
  private scheduled = false;
  private committed = false;
  private lastWrite = Number.NEGATIVE_INFINITY;
  private holdTimer: NodeJS.Timeout | undefined;

  constructor(
    private readonly res: ServerResponse,
    private readonly schedule: (task: () => void) => void,
  ) {}

  /** Whether the answer is a stream now (status 200 decided), even if nothing has been written yet. */
  get opened(): boolean {
    return this.committed;
  }

  open(): void {
    this.committed = true;
  }

  send(data: unknown): void {
    this.sendSerialized(`data: ${JSON.stringify(data)}\n\n`);
  }

  /** Sends one event given as its `data: ...\n\n` text. */
  sendSerialized(event: string): void {
    this.committed = true;
    this.pending += event;
    if (this.scheduled) return;
    this.scheduled = true;
    this.schedule(this.flush);
  }

  done(): void {
    this.lastWrite = Number.NEGATIVE_INFINITY;
    this.flush();
    this.writeHead();
    if (!this.res.writableEnded) this.res.end("data: [DONE]\n\n");
  }

  private writeHead(): void {
    if (this.res.headersSent) return;
    this.res.writeHead(200, { "content-type": "text/event-stream; charset=utf-8", "cache-control": "no-cache", connection: "keep-alive" });
  }

  private readonly flush = (): void => {
    this.scheduled = false;
    if (this.pending.length === 0 || this.res.writableEnded) return;
    // Too soon after the last write: the events go with the next token's write, or when the
    // interval is over if no token comes first.
    const wait = this.lastWrite + STREAM_WRITE_INTERVAL_MS - performance.now();
    if (wait > 0) {
      this.holdTimer ??= setTimeout(() => {
        this.holdTimer = undefined;
        this.flush();
      }, wait);
      return;
    }
    clearTimeout(this.holdTimer);
    this.holdTimer = undefined;
    const out = this.pending;
    this.pending = "";
    this.writeHead();
    this.res.write(out);
    this.lastWrite = performance.now();
  };
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
async function respond(
  context: RequestContext,
  target: ReturnType<Engine["target"]>,
  prompt: Parameters<Engine["run"]>[1],
  sampling: Parameters<Engine["run"]>[2],
  stream: { includeUsage: boolean } | undefined,
  shape: ResponseShape,
): Promise<void> {
  const { engine } = context;
  if (stream === undefined) {
    const result = await engine.run(target, prompt, sampling, { arrivedAt: context.arrivedAt, signal: context.signal });
    context.log.tokens = result.completionTokens;
    sendJson(context.res, 200, shape.body(result));
    return;
  }
  const usageField = stream.includeUsage ? { usage: null } : {};
  const sse = new EventStream(context.res, engine.whileDecoding);
  const emit = (choice: unknown): void => sse.send({ ...shape.base, choices: [choice], ...usageField });
  const textEvent = textEventTemplate((text) => ({ ...shape.base, choices: [shape.choice(text, null)], ...usageField }));
  await streamGeneration(
    context,
    sse,
    () =>
      engine.run(target, prompt, sampling, {
        arrivedAt: context.arrivedAt,
        signal: context.signal,
        onAdmitted: () => shape.onAdmitted(sse, emit),
        onText: (text) => sse.sendSerialized(textEvent(text)),
        textIntervalMs: STREAM_WRITE_INTERVAL_MS,
      }),
    (result) => {
      emit(shape.choice(undefined, result.finishReason));
      if (stream.includeUsage) sse.send({ ...shape.base, choices: [], usage: usage(result) });
    },
  );
}

const TEXT_MARK = "\u0000diatonic-text\u0000";

/**
 * The `data: ...` line of a text chunk for any text, from one serialization of the chunk: the
 * chunk's JSON with the text spliced in. Byte for byte what serializing each chunk would give
 * (JSON.stringify escapes a string the same alone or inside an object), without building and
 * serializing an object per token.
 */
function textEventTemplate(chunk: (text: string) => unknown): (text: string) => string {
  const json = JSON.stringify(chunk(TEXT_MARK));
  const mark = JSON.stringify(TEXT_MARK);
  const at = json.indexOf(mark);
  const prefix = `data: ${json.slice(0, at)}`;
  const suffix = `${json.slice(at + mark.length)}\n\n`;
  return (text) => prefix + JSON.stringify(text) + suffix;
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
  const body = await readBody(req, MAX_BODY_BYTES, () => new ApiError(413, `request body is larger than ${MAX_BODY_BYTES} bytes`));
  try {
    return JSON.parse(body.toString("utf8")) as unknown;
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
