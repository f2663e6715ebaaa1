import type { AdapterRoute } from "./config.ts";

/** One retrieved passage: where it came from, which chunk of it, how well it matched, and its text. */
export interface RetrievedChunk {
  readonly source: string;
  readonly chunk: number;
  readonly score: number;
  readonly text: string;
}

export interface Retrieval {
  readonly chunks: readonly RetrievedChunk[];
}

/** What the gateway asks before forwarding a RAG adapter's request. The RAG module implements it. */
export interface Retriever {
  retrieve(adapter: AdapterRoute, query: string, signal: AbortSignal): Promise<Retrieval>;
}

/** A citation as returned in the response's `diatonic.citations` field (text left out: the client has the answer). */
export interface Citation {
  readonly index: number;
  readonly source: string;
  readonly chunk: number;
  readonly score: number;
}

export function citationsOf(retrieval: Retrieval): Citation[] {
  return retrieval.chunks.map((chunk, index) => ({ index: index + 1, source: chunk.source, chunk: chunk.chunk, score: chunk.score }));
}

/** The context message placed after the system prompt: numbered passages the model can cite as [n]. */
export function contextMessage(retrieval: Retrieval): string {
  const passages = retrieval.chunks.map((chunk, index) => `[${index + 1}] (${chunk.source}#${chunk.chunk})\n${chunk.text}`);
  return `Context:\n\n${passages.join("\n\n")}`;
}

/** The text to retrieve for: the last user message of a chat, or the prompt of a completion. */
export function queryOf(body: Record<string, unknown>): string | undefined {
  if (Array.isArray(body.messages)) {
    for (let i = body.messages.length - 1; i >= 0; i--) {
      const message: unknown = body.messages[i];
      if (typeof message !== "object" || message === null) continue;
      const { role, content } = message as { role?: unknown; content?: unknown };
      if (role !== "user") continue;
      if (typeof content === "string") return content;
      if (Array.isArray(content)) {
        const text = content
          .map((part: unknown) =>
            typeof part === "object" && part !== null && (part as { type?: unknown }).type === "text"
              ? String((part as { text?: unknown }).text ?? "")
              : "",
          )
          .join(" ")
          .trim();
        if (text !== "") return text;
      }
    }
    return undefined;
  }
  if (typeof body.prompt === "string") return body.prompt;
  return undefined;
}
