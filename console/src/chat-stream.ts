// A streamed chat completion read event by event, as the gateway relays it: text deltas, usage in the
// last chunk (stream_options.include_usage), RAG citations in a chunk of their own before [DONE], and
// an `error` event where the upstream broke off after the answer had started.
import { ApiError, type Api } from "./api.ts";

export interface Citation {
  readonly index: number;
  readonly source: string;
  readonly chunk: number;
  readonly score: number;
}

export interface Usage {
  readonly prompt_tokens: number;
  readonly completion_tokens: number;
  readonly total_tokens: number;
}

export interface ChatMessage {
  readonly role: "system" | "user" | "assistant";
  readonly content: string;
}

export interface ChatRequest {
  readonly model: string;
  readonly messages: readonly ChatMessage[];
  readonly stream: true;
  readonly stream_options: { readonly include_usage: true };
  readonly max_tokens?: number;
  readonly temperature?: number;
}

export interface StreamHandlers {
  onText(delta: string): void;
  onFirstToken(): void;
  onUsage(usage: Usage): void;
  onCitations(citations: readonly Citation[]): void;
}

interface Chunk {
  readonly choices?: ReadonlyArray<{ readonly delta?: { readonly content?: string | null } }>;
  readonly usage?: Usage | null;
  readonly diatonic?: { readonly citations?: readonly Citation[] };
  readonly error?: { readonly message?: string; readonly code?: string | null };
}

/** The `data:` payloads of the complete events in `buffer`, and what is left of it. */
export function splitEvents(buffer: string): { events: string[]; rest: string } {
  const events: string[] = [];
  const parts = buffer.split(/\r?\n\r?\n/);
  const rest = parts.pop() ?? "";
  for (const part of parts) {
    const data = part
      .split(/\r?\n/)
      .filter((line) => line.startsWith("data:"))
      .map((line) => line.slice(line.startsWith("data: ") ? 6 : 5))
      .join("\n");
    if (data !== "") events.push(data);
  }
  return { events, rest };
}

/** Sends the request and calls the handlers as events arrive; resolves at [DONE]. Abort with `signal`. */
export async function streamChat(api: Api, request: ChatRequest, handlers: StreamHandlers, signal: AbortSignal): Promise<void> {
  const response = await api.request("/v1/chat/completions", { method: "POST", body: JSON.stringify(request), signal });
  if (response.body === null) throw new ApiError(response.status, null, "the gateway answered without a body");
  const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
  let buffer = "";
  let first = true;
  for (;;) {
    const { value, done } = await reader.read();
    if (done) break;
    const { events, rest } = splitEvents(buffer + value);
    buffer = rest;
    for (const data of events) {
      if (data.trim() === "[DONE]") return;
      const chunk = JSON.parse(data) as Chunk;
      if (chunk.error !== undefined) throw new ApiError(502, chunk.error.code ?? null, chunk.error.message ?? "the answer broke off");
      const delta = chunk.choices?.[0]?.delta?.content;
      if (typeof delta === "string" && delta !== "") {
        if (first) handlers.onFirstToken();
        first = false;
        handlers.onText(delta);
      }
      if (chunk.usage) handlers.onUsage(chunk.usage);
      if (chunk.diatonic?.citations) handlers.onCitations(chunk.diatonic.citations);
    }
  }
}
