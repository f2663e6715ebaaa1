// The playground's request as code to paste: curl, the OpenAI SDK for Node and for Python. The key is
// never written out: the snippets read it from DIATONIC_API_KEY.
import type { ChatRequest } from "./chat-stream.ts";

export type SnippetKind = "curl" | "node" | "python";

export const SNIPPET_LABELS: Readonly<Record<SnippetKind, string>> = {
  curl: "curl",
  node: "OpenAI SDK (Node)",
  python: "OpenAI SDK (Python)",
};

/** A JSON string for a single-quoted shell word: every ' closed, escaped and reopened. */
function shellQuoted(text: string): string {
  return `'${text.replaceAll("'", `'\\''`)}'`;
}

/** The messages one to a line, inside brackets indented by `by`. */
function messageList(messages: readonly unknown[], literal: (value: unknown) => string, by: string): string {
  return `[\n${messages.map((message) => `${by}    ${literal(message)},`).join("\n")}\n${by}]`;
}

/** JSON with a space after each colon and comma, as people write it. */
function spacedJson(value: unknown): string {
  return JSON.stringify(value).replace(/("(?:[^"\\]|\\.)*")|([:,])/g, (match, string: string | undefined) => string ?? `${match} `);
}

/** Python literals from JSON: true/false/null become True/False/None outside strings. */
function pythonLiteral(value: unknown): string {
  return spacedJson(value).replace(/("(?:[^"\\]|\\.)*")|\btrue\b|\bfalse\b|\bnull\b/g, (match, string: string | undefined) =>
    string !== undefined ? string : match === "true" ? "True" : match === "false" ? "False" : "None",
  );
}

export function snippet(kind: SnippetKind, origin: string, request: ChatRequest, authRequired: boolean): string {
  const baseURL = `${origin}/v1`;
  if (kind === "curl") {
    return [
      `curl -N ${baseURL}/chat/completions \\`,
      ...(authRequired ? [`  -H "Authorization: Bearer $DIATONIC_API_KEY" \\`] : []),
      `  -H "Content-Type: application/json" \\`,
      `  -d ${shellQuoted(JSON.stringify(request))}`,
    ].join("\n");
  }
  const { model, messages, stream: _stream, stream_options: _options, ...sampling } = request;
  if (kind === "node") {
    const extra = Object.entries(sampling).map(([key, value]) => `\n  ${key}: ${JSON.stringify(value)},`);
    return [
      `import OpenAI from "openai";`,
      ``,
      `const client = new OpenAI({ baseURL: ${JSON.stringify(baseURL)}, apiKey: ${authRequired ? "process.env.DIATONIC_API_KEY" : `"unused"`} });`,
      `const stream = await client.chat.completions.create({`,
      `  model: ${JSON.stringify(model)},`,
      `  messages: ${messageList(messages, spacedJson, "  ")},${extra.join("")}`,
      `  stream: true,`,
      `  stream_options: { include_usage: true },`,
      `});`,
      `for await (const chunk of stream) {`,
      `  process.stdout.write(chunk.choices[0]?.delta?.content ?? "");`,
      `}`,
    ].join("\n");
  }
  const extra = Object.entries(sampling).map(([key, value]) => `\n    ${key}=${pythonLiteral(value)},`);
  return [
    `import os`,
    `from openai import OpenAI`,
    ``,
    `client = OpenAI(base_url=${JSON.stringify(baseURL)}, api_key=${authRequired ? `os.environ["DIATONIC_API_KEY"]` : `"unused"`})`,
    `stream = client.chat.completions.create(`,
    `    model=${JSON.stringify(model)},`,
    `    messages=${messageList(messages, (message) => pythonLiteral(message), "    ")},${extra.join("")}`,
    `    stream=True,`,
    `    stream_options={"include_usage": True},`,
    `)`,
    `for chunk in stream:`,
    `    if chunk.choices:`,
    `        print(chunk.choices[0].delta.content or "", end="", flush=True)`,
  ].join("\n");
}
