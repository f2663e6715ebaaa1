// The "fixed-completion upstream": a real node:http server that speaks the slice of vLLM's OpenAI API
// the gateway forwards, answering a fixed completion and a fixed SSE stream, and misbehaving on
// request (status codes, hangs, resets) for fault tests. Also the upstream of bench:gateway.
import { createServer, type IncomingMessage, type ServerResponse } from "node:http";
import { connect, type AddressInfo, type Socket } from "node:net";
import { spawn } from "node:child_process";
import { readFileSync } from "node:fs";

export type Behaviour =
  | { readonly kind: "ok" }
  /** An error answer: `message` is its error's message (default: "fixed upstream failing with STATUS"). */
  | { readonly kind: "status"; readonly status: number; readonly message?: string }
  /** Any answer as it is given (an engine's own error shapes, a proxy's HTML page), for every path but /health. */
  | {
      readonly kind: "raw";
      readonly status: number;
      readonly contentType: string;
      readonly body: string;
      readonly headers?: Readonly<Record<string, string>>;
    }
  | { readonly kind: "hang" }
  | { readonly kind: "reset-mid-stream" }
  | { readonly kind: "reset-mid-body" }
  | { readonly kind: "slow-stream"; readonly delayMs: number; readonly chunks: number }
  /** Answers as `ok`, after delayMs: a long answer, whose headers (not streamed) come only when it is done. */
  | { readonly kind: "slow"; readonly delayMs: number }
  /** A stream's first event, then nothing: an engine reading a long prompt. */
  | { readonly kind: "stall-stream" }
  | { readonly kind: "big-stream"; readonly chunks: number; readonly chunkBytes: number };

export interface RecordedRequest {
  readonly method: string;
  readonly path: string;
  readonly headers: IncomingMessage["headers"];
  readonly body: Record<string, unknown> | undefined;
}

export interface FixedUpstream {
  url: string;
  port: number;
  readonly requests: RecordedRequest[];
  behaviour: Behaviour;
  /** "hang": the health path never answers (the rest follows `behaviour`). @default "ok" */
  health: "ok" | "hang";
  /** Requests whose client went away before the response ended. */
  aborted: number;
  /** Set when a big-stream write had to wait for the reader (backpressure reached the upstream). */
  sawBackpressure: boolean;
  /** Bytes of a big stream written so far. */
  bytesWritten: number;
  close(): Promise<void>;
}

export interface FixedUpstreamOptions {
  /** @default 0 (a free port) */
  readonly port?: number;
  /** Keep every request for assertions; off for benchmarks. @default true */
  readonly record?: boolean;
  /** @default "127.0.0.1" */
  readonly host?: string;
}

export const FIXED_TEXT = "Hello from the fixed upstream.";
const STREAM_PIECES = ["Hello", " from", " the", " fixed", " upstream", "."];
const USAGE = { prompt_tokens: 7, completion_tokens: 6, total_tokens: 13 };
const CREATED = 1_700_000_000;

function chatCompletion(model: string): string {
  return JSON.stringify({
    id: "chatcmpl-fixed",
    object: "chat.completion",
    created: CREATED,
    model,
    choices: [{ index: 0, message: { role: "assistant", content: FIXED_TEXT }, finish_reason: "stop", logprobs: null }],
    usage: USAGE,
  });
}

function completion(model: string): string {
  return JSON.stringify({
    id: "cmpl-fixed",
    object: "text_completion",
    created: CREATED,
    model,
    choices: [{ index: 0, text: FIXED_TEXT, finish_reason: "stop", logprobs: null }],
    usage: USAGE,
  });
}

/** With usage asked for, every chunk carries `"usage":null` until the usage-only chunk, as OpenAI's (and our engine's) do. */
function chunkEvent(model: string, content: string, finish: string | null, includeUsage: boolean): string {
  return `data: ${JSON.stringify({ id: "chatcmpl-fixed", object: "chat.completion.chunk", created: CREATED, model, choices: [{ index: 0, delta: { content }, finish_reason: finish, logprobs: null }], ...(includeUsage ? { usage: null } : {}) })}\n\n`;
}

function streamEvents(model: string, includeUsage: boolean): string[] {
  const events = STREAM_PIECES.map((piece, index) =>
    chunkEvent(model, piece, index === STREAM_PIECES.length - 1 ? "stop" : null, includeUsage),
  );
  if (includeUsage)
    events.push(
      `data: ${JSON.stringify({ id: "chatcmpl-fixed", object: "chat.completion.chunk", created: CREATED, model, choices: [], usage: USAGE })}\n\n`,
    );
  events.push("data: [DONE]\n\n");
  return events;
}

const wait = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

export async function startFixedUpstream(options: FixedUpstreamOptions = {}): Promise<FixedUpstream> {
  const record = options.record ?? true;
  const sockets = new Set<Socket>();
  const state: FixedUpstream = {
    url: "",
    port: 0,
    requests: [],
    behaviour: { kind: "ok" },
    health: "ok",
    aborted: 0,
    sawBackpressure: false,
    bytesWritten: 0,
    close: async () => {
      for (const socket of sockets) socket.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };

  const server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on("data", (chunk: Buffer) => chunks.push(chunk));
    req.on("end", () => void answer(req, res, Buffer.concat(chunks)));
  });
  server.on("connection", (socket) => {
    sockets.add(socket);
    socket.on("close", () => sockets.delete(socket));
  });

  async function answer(req: IncomingMessage, res: ServerResponse, raw: Buffer): Promise<void> {
    const path = (req.url ?? "/").split("?")[0] ?? "/";
    let body: Record<string, unknown> | undefined;
    if (raw.length > 0) {
      try {
        body = JSON.parse(raw.toString("utf8")) as Record<string, unknown>;
      } catch {
        body = undefined;
      }
    }
    if (record) state.requests.push({ method: req.method ?? "", path, headers: req.headers, body });
    res.on("close", () => {
      if (!res.writableFinished) state.aborted++;
    });
    if (path === "/health") {
      if (state.health === "ok") res.writeHead(200).end();
      return;
    }
    const behaviour = state.behaviour;
    if (behaviour.kind === "hang") return;
    if (behaviour.kind === "raw") {
      res.writeHead(behaviour.status, { "content-type": behaviour.contentType, ...behaviour.headers }).end(behaviour.body);
      return;
    }
    if (behaviour.kind === "status") {
      const message = JSON.stringify({
        error: {
          message: behaviour.message ?? `fixed upstream failing with ${behaviour.status}`,
          type: "server_error",
          param: null,
          code: null,
        },
      });
      res.writeHead(behaviour.status, { "content-type": "application/json" }).end(message);
      return;
    }
    const model = typeof body?.model === "string" ? body.model : "unknown";
    if (req.method === "GET" && path === "/v1/models") {
      res
        .writeHead(200, { "content-type": "application/json" })
        .end(JSON.stringify({ object: "list", data: [{ id: "base", object: "model", created: CREATED, owned_by: "fixed" }] }));
      return;
    }
    if (path === "/v1/embeddings") {
      const inputs = Array.isArray(body?.input) ? body.input : [body?.input];
      const data = inputs.map((_, index) => ({ object: "embedding", index, embedding: [0.1, 0.2, 0.3, 0.4] }));
      res
        .writeHead(200, { "content-type": "application/json" })
        .end(JSON.stringify({ object: "list", data, model, usage: { prompt_tokens: 3, total_tokens: 3 } }));
      return;
    }
    if (path !== "/v1/chat/completions" && path !== "/v1/completions") {
      res
        .writeHead(404, { "content-type": "application/json" })
        .end(JSON.stringify({ error: { message: "not found", type: "not_found_error", param: null, code: null } }));
      return;
    }
    if (behaviour.kind === "slow") {
      await wait(behaviour.delayMs);
      if (res.destroyed) return;
    }
    if (body?.stream !== true) {
      const text = path === "/v1/completions" ? completion(model) : chatCompletion(model);
      res.writeHead(200, { "content-type": "application/json", "content-length": Buffer.byteLength(text) });
      if (behaviour.kind === "reset-mid-body") {
        res.write(text.slice(0, 40));
        await wait(20);
        res.socket?.resetAndDestroy();
        return;
      }
      res.end(text);
      return;
    }
    const includeUsage = (body.stream_options as { include_usage?: unknown } | undefined)?.include_usage === true;
    res.writeHead(200, { "content-type": "text/event-stream", "cache-control": "no-cache" });
    const events = streamEvents(model, includeUsage);
    if (behaviour.kind === "reset-mid-stream") {
      res.write(events[0]);
      res.write(events[1]);
      await wait(20);
      res.socket?.resetAndDestroy();
      return;
    }
    if (behaviour.kind === "stall-stream") {
      res.write(events[0]);
      return;
    }
    if (behaviour.kind === "slow-stream") {
      for (let i = 0; i < behaviour.chunks && !res.destroyed; i++) {
        res.write(chunkEvent(model, `tick${i} `, null, includeUsage));
        await wait(behaviour.delayMs);
      }
      if (!res.destroyed) res.end("data: [DONE]\n\n");
      return;
    }
    if (behaviour.kind === "big-stream") {
      const filler = "x".repeat(behaviour.chunkBytes);
      for (let i = 0; i < behaviour.chunks && !res.destroyed; i++) {
        const event = chunkEvent(model, filler, null, includeUsage);
        state.bytesWritten += event.length;
        if (!res.write(event)) {
          state.sawBackpressure = true;
          await new Promise<void>((resolve) => {
            res.once("drain", resolve);
            res.once("close", resolve);
          });
        }
      }
      if (!res.destroyed) res.end("data: [DONE]\n\n");
      return;
    }
    res.end(events.join(""));
  }

  await new Promise<void>((resolve) => server.listen(options.port ?? 0, options.host ?? "127.0.0.1", resolve));
  state.port = (server.address() as AddressInfo).port;
  state.url = `http://127.0.0.1:${state.port}`;
  return state;
}

/**
 * A port where nothing listens, and where no other test's server will: one below the kernel's
 * ephemeral range, which listen(0) never hands out (every server of these tests listens on port 0),
 * and which refuses a connection now. A port bound with listen(0) and released, as before, could be
 * handed to another test's server in a parallel run between its release and its use.
 */
export async function refusedPort(): Promise<number> {
  let ephemeralFrom = 32768;
  try {
    ephemeralFrom = Number(readFileSync("/proc/sys/net/ipv4/ip_local_port_range", "utf8").trim().split(/\s+/)[0]) || ephemeralFrom;
  } catch {
    // Not Linux: the IANA ephemeral range starts at 49152; 32768 stays below it.
  }
  const from = 20_000;
  for (let tries = 0; tries < 100; tries++) {
    const port = from + Math.floor(Math.random() * Math.max(1, ephemeralFrom - from));
    if (await refuses(port)) return port;
  }
  throw new Error(`no refusing port found in ${from}–${ephemeralFrom - 1} on 127.0.0.1`);
}

/** Whether a TCP connect to 127.0.0.1:port is refused. */
function refuses(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect(port, "127.0.0.1");
    socket.once("connect", () => {
      socket.destroy();
      resolve(false);
    });
    socket.once("error", (error: NodeJS.ErrnoException) => resolve(error.code === "ECONNREFUSED"));
  });
}

/**
 * A port where TCP connects hang, as with a firewalled or vanished pod: a listener in a child
 * process that never accepts (its event loop is blocked), with its one-slot accept queue filled,
 * so the kernel drops further SYNs. `close()` kills it.
 */
export async function hangingConnectPort(): Promise<{ port: number; close(): Promise<void> }> {
  const child = spawn(
    process.execPath,
    [
      "-e",
      `const s = require("node:net").createServer();
       s.listen({ port: 0, host: "127.0.0.1", backlog: 1 }, () => {
         process.stdout.write(s.address().port + "\\n");
         Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0);
       });`,
    ],
    { stdio: ["ignore", "pipe", "inherit"] },
  );
  const port = await new Promise<number>((resolve, reject) => {
    child.once("error", reject);
    child.stdout?.once("data", (data: Buffer) => resolve(Number(String(data).trim())));
  });
  const fillers = Array.from({ length: 4 }, () => connect(port, "127.0.0.1").on("error", () => undefined));
  await new Promise((resolve) => setTimeout(resolve, 100));
  return {
    port,
    close: async () => {
      for (const socket of fillers) socket.destroy();
      const exited = new Promise((resolve) => child.once("exit", resolve));
      child.kill("SIGKILL");
      await exited;
    },
  };
}
