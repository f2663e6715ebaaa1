import type { IncomingMessage, OutgoingHttpHeaders, ServerResponse } from "node:http";
import { StringDecoder } from "node:string_decoder";
import { mayUse, type Principal } from "./auth.ts";
import { RequestCancel } from "./cancel.ts";
import { badRequest, ErrorType, GatewayError, notFound, upstreamRefusal } from "./errors.ts";
import type { GatewayMetrics } from "./metrics.ts";
import {
  clientWantsUsage,
  ENDPOINT_PATHS,
  inClientTerms,
  isSet,
  parseJsonObject,
  readBody,
  upstreamBody,
  validateRequest,
  type InferenceEndpoint,
  type JsonObject,
} from "./request.ts";
import { citationsOf, contextMessage, queryOf, type Citation, type Retriever } from "./retriever.ts";
import type { ModelTarget, Runtime, Snapshot } from "./runtime.ts";
import { renameModelIn, SseRelay, usageInJson, usageOf, type StreamIdentity, type Usage } from "./sse.ts";
import type { UpstreamPool, UpstreamResponse } from "./upstream.ts";

/** One request's record, filled in as it goes, logged and counted when the response closes. */
export interface Exchange {
  readonly req: IncomingMessage;
  readonly res: ServerResponse;
  readonly requestId: string;
  readonly started: number;
  adapter: string;
  tenant: string;
  keyId: string;
  stream: boolean;
  /** Set when the answer is done; `estimated` when counted from a stream the client left (or one without a usage chunk). */
  usage: Usage | undefined;
  firstByteAt: number | undefined;
  replica: string | undefined;
  attempts: number;
  retrieval: "ok" | "skipped" | undefined;
  prompt: unknown;
  errorCode: string | null | undefined;
  /** The error response's message, for the console's recent errors (never the request's content). */
  errorMessage: string | undefined;
  /** Set while the request is being forwarded: the server calls it off when the client goes away. */
  cancel: RequestCancel | undefined;
  /** The client closed the connection before the whole answer was sent (a stream it left): recorded as 499. */
  clientLeft?: boolean;
}

export interface ProxyContext {
  readonly runtime: Runtime;
  readonly snapshot: Snapshot;
  readonly metrics: GatewayMetrics;
  readonly retriever: Retriever | undefined;
}

interface Resolved {
  readonly label: string;
  readonly target: ModelTarget;
  readonly upstream: UpstreamPool;
  readonly upstreamModel: string;
}

function resolveTarget(
  context: ProxyContext,
  endpoint: InferenceEndpoint,
  body: JsonObject,
  routeTarget: ModelTarget | undefined,
  principal: Principal,
): Resolved {
  const { snapshot } = context;
  const base = snapshot.models.get(snapshot.config.baseModel.name);
  if (base === undefined) throw new Error("base model missing from snapshot");
  if (endpoint === "embeddings") {
    const { embeddings } = snapshot;
    if (embeddings === undefined) throw notFound("this platform serves no embeddings model", "model_not_found", "model");
    // One embeddings model: its name, or none (the /<adapter>/ form ignores `model`, as chat's does).
    const model = body.model;
    if (routeTarget === undefined && isSet(body, "model") && model !== embeddings.model) {
      const fix = `this platform's embeddings model is ${JSON.stringify(embeddings.model)}: send that name, or leave model out`;
      if (typeof model !== "string") throw badRequest(`\`model\` must be a string: ${fix}`, "model", "invalid_model");
      throw notFound(`the model ${JSON.stringify(model)} does not exist: ${fix}`, "model_not_found", "model");
    }
    return { label: "embeddings", target: base, upstream: embeddings.upstream, upstreamModel: embeddings.model };
  }
  const model = routeTarget?.name ?? body.model;
  if (typeof model !== "string" || model === "")
    throw badRequest("`model` must name an adapter (or use the /<adapter>/v1/... path)", "model", "missing_model");
  const target = snapshot.models.get(model);
  if (target === undefined)
    throw notFound(`the model ${JSON.stringify(model)} does not exist: GET /v1/models lists the adapters`, "model_not_found", "model");
  if (!mayUse(principal, target.name))
    throw new GatewayError(
      403,
      ErrorType.permission,
      `this API key may not use the adapter ${JSON.stringify(target.name)}`,
      "adapter_not_allowed",
      "model",
    );
  return { label: target.name, target, upstream: target.upstream, upstreamModel: target.upstreamModel };
}

/** POST /v1/chat/completions, /v1/completions, /v1/embeddings (and their /<adapter>/ forms). */
export async function handleInference(
  context: ProxyContext,
  exchange: Exchange,
  endpoint: InferenceEndpoint,
  routeTarget: ModelTarget | undefined,
  principal: Principal,
): Promise<void> {
  try {
    await serveInference(context, exchange, endpoint, routeTarget, principal);
  } catch (error) {
    // The server writes the error response; it carries the request id as proxied answers do.
    if (!exchange.res.headersSent) exchange.res.setHeader("x-request-id", exchange.requestId);
    throw error;
  }
}

async function serveInference(
  context: ProxyContext,
  exchange: Exchange,
  endpoint: InferenceEndpoint,
  routeTarget: ModelTarget | undefined,
  principal: Principal,
): Promise<void> {
  const { snapshot, runtime, metrics } = context;
  const body = parseJsonObject(await readBody(exchange.req, snapshot.config.server.maxBodyBytes));
  const resolved = resolveTarget(context, endpoint, body, routeTarget, principal);
  exchange.adapter = resolved.label;
  validateRequest(endpoint, body);
  exchange.stream = body.stream === true;
  if (snapshot.config.server.logPrompts) exchange.prompt = body.messages ?? body.prompt ?? body.input;

  try {
    runtime.rateLimiter.admit(principal.keyId);
  } catch (error) {
    if (error instanceof GatewayError) metrics.rateLimited.inc({ tenant: principal.tenant, limit: error.code ?? "unknown" });
    throw error;
  }

  const { target } = resolved;
  const cancel = new RequestCancel();
  const timer = setTimeout(
    () =>
      cancel.abort(
        new GatewayError(
          504,
          ErrorType.timeout,
          `the request took longer than ${target.timeoutMs} ms, ${target.name}'s time limit: ask for fewer tokens (max_tokens), ` +
            "or have the platform raise the adapter's limits.timeoutSeconds",
          "request_timeout",
        ),
      ),
    target.timeoutMs,
  );
  exchange.cancel = cancel;
  if (!target.limiter.tryAcquire()) {
    try {
      await target.limiter.acquire(cancel.signal);
    } catch (error) {
      clearTimeout(timer);
      throw error;
    }
  }
  try {
    await forward(context, exchange, endpoint, body, resolved, cancel);
  } finally {
    clearTimeout(timer);
    target.limiter.release();
    if (exchange.usage) runtime.rateLimiter.charge(principal.keyId, exchange.usage.promptTokens + exchange.usage.completionTokens);
  }
}

async function forward(
  context: ProxyContext,
  exchange: Exchange,
  endpoint: InferenceEndpoint,
  body: JsonObject,
  resolved: Resolved,
  cancel: RequestCancel,
): Promise<void> {
  const { target } = resolved;
  // Response headers are built as object literals, never spread: a spread header object costs about
  // 6 µs a request in writeHead (measured, bench:gateway), a tenth of the gateway's own work.
  let retrievalSkipped = false;
  let contextText: string | undefined;
  let citations: Citation[] | undefined;
  const rag = target.adapter?.rag;
  if (rag !== undefined && endpoint === "chat") {
    const query = queryOf(body);
    try {
      if (context.retriever === undefined) throw new Error("no retriever is configured for RAG adapters");
      if (query === undefined) throw new Error("the request has no user message to retrieve for");
      const retrieval = await context.retriever.retrieve(target.adapter as NonNullable<ModelTarget["adapter"]>, query, cancel.signal);
      if (retrieval.chunks.length > 0) contextText = contextMessage(retrieval);
      citations = citationsOf(retrieval);
      exchange.retrieval = "ok";
      context.metrics.retrievals.inc({ adapter: target.name, result: "ok" });
    } catch (error) {
      if (cancel.aborted) throw cancel.reason instanceof GatewayError ? cancel.reason : error;
      context.metrics.retrievals.inc({ adapter: target.name, result: rag.onFailure === "fail" ? "failed" : "skipped" });
      if (rag.onFailure === "fail") {
        throw new GatewayError(
          502,
          ErrorType.upstream,
          `retrieval for adapter ${target.name} failed: ${(error as Error).message}`,
          "retrieval_failed",
        );
      }
      exchange.retrieval = "skipped";
      retrievalSkipped = true;
    }
  }
  const wantsUsage = clientWantsUsage(body); // before upstreamBody, which asks for usage on the client's behalf
  const clientMessages = endpoint === "chat" ? (body.messages as unknown[]).length : 0;
  const clientMaxTokens = isSet(body, "max_tokens") || isSet(body, "max_completion_tokens");
  // `dimensions` goes upstream as sent: a Matryoshka model (an OpenAI-compatible endpoint's
  // text-embedding-3) shortens its vectors; others refuse it (vLLM) or ignore it (llama.cpp, ours),
  // which checkDimensions then refuses.
  const dimensions = endpoint === "embeddings" && typeof body.dimensions === "number" ? body.dimensions : undefined;
  const upstream = upstreamBody(endpoint, body, resolved.upstreamModel, target.adapter, contextText);
  const injected = endpoint === "chat" ? (upstream.messages as unknown[]).length - clientMessages : 0;
  const send = (payload: string) =>
    resolved.upstream.send({
      method: "POST",
      path: ENDPOINT_PATHS[endpoint],
      headers: {
        host: resolved.upstream.hostHeader,
        "content-type": "application/json",
        "x-request-id": exchange.requestId,
      },
      body: payload,
      wholeBody: !exchange.stream,
      cancel,
      firstByteTimeoutMs: target.firstByteTimeoutMs,
      // An adapter with its own LoRA goes to a replica that holds it; the base model is everywhere.
      lora: endpoint === "embeddings" ? undefined : target.lora,
    });
  let response = await send(JSON.stringify(upstream));
  /** The refusal read below, when it is passed on rather than retried. */
  let refusal: Buffer | undefined;
  if (response.statusCode === 400 && !clientMaxTokens && upstream.max_tokens !== undefined) {
    // The adapter's default max_tokens does not fit beside this prompt. The client set none, so the
    // answer gets the room that is left, as vLLM gives when the field is unset; a client's own stays a 400.
    refusal = response.complete ?? (await response.bytes());
    const refused = refusal.toString("utf8");
    if (CONTEXT_LENGTH.test(refused) && !promptAloneTooLong(refused)) {
      refusal = undefined;
      delete upstream.max_tokens;
      response = await send(JSON.stringify(upstream));
    }
  }
  exchange.replica = response.replica;
  exchange.attempts = response.attempts;
  if (response.statusCode >= 500) throw await upstreamFailure(resolved.upstream.name, response);
  let contentType = String(response.headers["content-type"] ?? "application/json");
  const rename = endpoint === "embeddings" ? undefined : resolved.target.rename;
  if (response.statusCode < 300 && contentType.includes("text/event-stream")) {
    const relay = new SseRelay(
      wantsUsage,
      citations ? (stream) => citationEvent(exchange, citations, stream, wantsUsage) : undefined,
      rename,
    );
    await relayStream(exchange, response, relay, retrievalSkipped, cancel);
    return;
  }
  exchange.firstByteAt ??= performance.now();
  let answer: Buffer;
  try {
    answer = refusal ?? response.complete ?? (await response.bytes());
  } catch (error) {
    // Not retried (the engine had the request), never passed on truncated.
    throw brokeOff(cancel, error as Error, `upstream ${resolved.upstream.name} broke off its answer`, "upstream_body_error");
  }
  let out: string | Buffer = answer;
  if (response.statusCode >= 400) {
    // The engine's refusal in OpenAI's shape, naming messages as the client numbered them.
    out = inClientTerms(upstreamRefusal(response.statusCode, answer.toString("utf8"), resolved.upstream.name).body(), injected);
    contentType = "application/json";
  } else if (response.statusCode < 300 && citations !== undefined) {
    try {
      const parsed = JSON.parse(answer.toString("utf8")) as JsonObject;
      exchange.usage = usageOf(parsed.usage);
      out = JSON.stringify({ ...parsed, model: resolved.label, diatonic: { citations } });
    } catch {
      // Not JSON after all: pass it on unchanged.
    }
  } else if (response.statusCode < 300) {
    // The body stays bytes: usage is read from its usage object alone and the model renamed in place
    // (decoding, parsing and encoding the whole answer cost ~10 µs a request, bench:gateway).
    exchange.usage = usageInJson(answer);
    if (rename !== undefined) out = renameModelIn(answer, rename);
    if (dimensions !== undefined) checkDimensions(context.snapshot, answer, dimensions);
  }
  const headers: OutgoingHttpHeaders = {
    "x-request-id": exchange.requestId,
    "content-type": contentType,
    "content-length": typeof out === "string" ? Buffer.byteLength(out) : out.length,
  };
  if (retrievalSkipped) headers["x-diatonic-retrieval"] = "skipped";
  const retryAfter = response.headers["retry-after"];
  if (retryAfter !== undefined) headers["retry-after"] = retryAfter;
  exchange.res.writeHead(response.statusCode, headers);
  exchange.res.end(out);
}

/** An engine's refusal of a prompt plus max_tokens longer than the model's context (vLLM's and our engine's words). */
const CONTEXT_LENGTH = /maximum context length/i;
const CONTEXT_MAX = /maximum context length is (\d+)/i;
/** The prompt's tokens, as vLLM (and our engine) word it: "(N in the messages, …", "N tokens in the messages", "has N input tokens". */
const PROMPT_TOKENS = /\((\d+) in the messages|(\d+) tokens in the messages|has (\d+) input tokens/i;

/**
 * Whether a context-length refusal says the prompt alone fills the context: then no max_tokens fits
 * beside it, and sending it again without one would only make the engine tokenize it twice.
 */
export function promptAloneTooLong(message: string): boolean {
  const max = CONTEXT_MAX.exec(message)?.[1];
  const prompt = PROMPT_TOKENS.exec(message);
  const tokens = prompt?.[1] ?? prompt?.[2] ?? prompt?.[3];
  return max !== undefined && tokens !== undefined && Number(tokens) >= Number(max);
}

/** A 5xx from the engine becomes the gateway's 502 (or the engine's own 503/504), with its message kept. */
async function upstreamFailure(upstream: string, response: UpstreamResponse): Promise<GatewayError> {
  let detail = "";
  try {
    const text = (await response.text()).slice(0, 2000);
    const parsed = JSON.parse(text) as { error?: { message?: unknown }; message?: unknown; detail?: unknown };
    const message = parsed.error?.message ?? parsed.message ?? parsed.detail;
    detail = typeof message === "string" ? `: ${message}` : "";
  } catch {
    detail = "";
  }
  const status = response.statusCode === 503 || response.statusCode === 504 ? response.statusCode : 502;
  const type = status === 504 ? ErrorType.timeout : status === 503 ? ErrorType.overloaded : ErrorType.upstream;
  return new GatewayError(status, type, `upstream ${upstream} answered ${response.statusCode}${detail}`, "upstream_error");
}

/** An answer that broke off after its headers: the request's own reason when it was called off, else a 502. */
function brokeOff(cancel: RequestCancel, error: Error, what: string, code: string): GatewayError {
  if (cancel.aborted && cancel.reason instanceof GatewayError) return cancel.reason;
  return new GatewayError(502, ErrorType.upstream, `${what}: ${(error as { code?: string }).code ?? error.message}`, code);
}

/**
 * The stream's citations chunk: the stream's own id and `created` (SDKs take the final completion's
 * id from the last chunk, and start a new completion at a new id), no choices, and `"usage":null`
 * where the client asked for usage, as every chunk before the usage chunk has.
 */
function citationEvent(
  exchange: Exchange,
  citations: readonly Citation[],
  stream: StreamIdentity | undefined,
  wantsUsage: boolean,
): string {
  const chunk: JsonObject = {
    id: stream?.id ?? `diatonic-${exchange.requestId}`,
    object: "chat.completion.chunk",
    created: stream?.created ?? Math.floor(Date.now() / 1000),
    model: exchange.adapter,
    choices: [],
  };
  if (wantsUsage) chunk.usage = null;
  chunk.diatonic = { citations };
  return JSON.stringify(chunk);
}

/** Refuses an embeddings answer whose vectors do not have the dimension the client asked for. */
function checkDimensions(snapshot: Snapshot, answer: Buffer, requested: number): void {
  if (snapshot.embeddings === undefined) return;
  let first: unknown;
  try {
    first = (JSON.parse(answer.toString("utf8")) as { data?: { embedding?: unknown }[] }).data?.[0]?.embedding;
  } catch {
    return;
  }
  // encoding_format "base64": little-endian float32s.
  const has = Array.isArray(first) ? first.length : typeof first === "string" ? Buffer.from(first, "base64").length / 4 : undefined;
  if (has !== undefined && has !== requested) throw wrongDimensions(snapshot.embeddings.model, has, requested);
}

const wrongDimensions = (model: string, has: number, requested: number) =>
  badRequest(
    `the embeddings model ${JSON.stringify(model)} has ${has} dimensions, not ${requested}: set \`dimensions\` to ${has} or leave it out`,
    "dimensions",
    "unsupported_dimensions",
  );

/** Passes an SSE stream through event by event; when the client reads slowly, the upstream waits. */
function relayStream(
  exchange: Exchange,
  response: UpstreamResponse,
  relay: SseRelay,
  retrievalSkipped: boolean,
  cancel: RequestCancel,
): Promise<void> {
  const { res } = exchange;
  const headers: OutgoingHttpHeaders = {
    "x-request-id": exchange.requestId,
    "content-type": "text/event-stream; charset=utf-8",
    "cache-control": "no-cache",
    "x-accel-buffering": "no",
  };
  if (retrievalSkipped) headers["x-diatonic-retrieval"] = "skipped";
  res.writeHead(response.statusCode, headers);
  res.flushHeaders();
  const decoder = new StringDecoder("utf8");
  return new Promise((resolve) => {
    const onDrain = () => response.resume();
    res.on("drain", onDrain);
    const finish = () => {
      res.off("drain", onDrain);
      // Without a usage chunk (the client left first, or the engine sends none), what was relayed is
      // counted and charged all the same.
      exchange.usage = relay.usage ?? relay.estimatedUsage();
      resolve();
    };
    response.pipe({
      onData(chunk) {
        exchange.firstByteAt ??= performance.now();
        if (res.destroyed) return false;
        const out = relay.push(decoder.write(chunk));
        return out === "" || res.write(out);
      },
      onEnd() {
        const rest = decoder.end();
        if (!res.destroyed) res.end((rest === "" ? "" : relay.push(rest)) + relay.flush());
        finish();
      },
      onError(error) {
        finish();
        if (cancel.aborted && !(cancel.reason instanceof GatewayError && cancel.reason.status === 504)) return;
        // Headers are gone: say so in the stream (the OpenAI SDK raises it), so truncation is never silent.
        const failure = brokeOff(cancel, error, "upstream stream broke", "upstream_stream_error");
        exchange.errorCode = failure.code;
        exchange.errorMessage = failure.message;
        if (!res.destroyed) res.end(`data: ${failure.body()}\n\n`);
      },
    });
  });
}
