// The side-by-side part of `npm run bench:engine`: our engine (`diatonic engine`, its own process)
// against llama.cpp's own serving as people run it on a laptop, llama-cpp-python's server, on the
// same GGUF, the same threads and the same request bodies. Both are child processes of the bench,
// and one client (node:http, keep-alive) drives both, alternating between them.
import { spawn, type ChildProcess } from "node:child_process";
import { createServer, type AddressInfo } from "node:net";
import { Agent, request } from "node:http";
import { fileURLToPath } from "node:url";
import { pythonWith } from "../src/python-venv.ts";
import { median } from "./stats.ts";

export const PEER = { name: "llama-cpp-python", version: "0.3.36" } as const;
/** How the peer was measured in the issue: built from source on the machine, for its CPU. */
export const PEER_CMAKE_ARGS = "-DGGML_NATIVE=ON";

export interface Server {
  readonly url: string;
  stop(): Promise<void>;
}

export interface StreamSample {
  readonly ttftMs: number;
  readonly totalMs: number;
  readonly tokens: number;
  readonly finishReason: string | null;
}

/**
 * llama-cpp-python's server in a venv of its own, built from source for this CPU once
 * (`CMAKE_ARGS=-DGGML_NATIVE=ON`, about 11 minutes on 2 cores), then reused.
 */
export function peerPython(log: (line: string) => void): string {
  return pythonWith(`llama-cpp-python-${PEER.version}-venv`, `llama-cpp-python[server]==${PEER.version}`, "llama_cpp.server", {
    // No wheel cache: a wheel built for another CPU or with other flags must not be reused.
    env: { CMAKE_ARGS: PEER_CMAKE_ARGS, PIP_NO_CACHE_DIR: "1" },
    onInstall: (event) =>
      log(
        event.phase === "start"
          ? `building ${PEER.name} ${PEER.version} from source (CMAKE_ARGS=${PEER_CMAKE_ARGS}) into ~/.cache/diatonic: about 11 minutes on 2 cores, once`
          : `built ${PEER.name} ${PEER.version} in ${(event.ms / 60_000).toFixed(1)} minutes`,
      ),
  });
}

async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as AddressInfo;
  await new Promise((resolve) => server.close(resolve));
  return port;
}

/** Starts a server process and waits until `readyPath` answers 200 (the model is loaded). */
async function startProcess(
  label: string,
  command: string,
  args: readonly string[],
  readyPath: string,
  port: number,
  env: NodeJS.ProcessEnv = process.env,
): Promise<Server> {
  const child: ChildProcess = spawn(command, args, { stdio: ["ignore", "ignore", "pipe"], env });
  let stderr = "";
  child.stderr?.setEncoding("utf8").on("data", (chunk: string) => {
    stderr = (stderr + chunk).slice(-4000);
  });
  const exited = new Promise<number | null>((resolve) => child.once("exit", resolve));
  const url = `http://127.0.0.1:${port}`;
  const deadline = performance.now() + 120_000;
  for (;;) {
    const code = await Promise.race([exited, new Promise<undefined>((resolve) => setTimeout(() => resolve(undefined), 200))]);
    if (code !== undefined) throw new Error(`${label} exited (${String(code)}) before it served:\n${stderr}`);
    const ok = await fetch(`${url}${readyPath}`).then(
      (r) => r.ok,
      () => false,
    );
    if (ok) break;
    if (performance.now() > deadline) {
      child.kill("SIGKILL");
      throw new Error(`${label} did not answer ${readyPath} within 120 s:\n${stderr}`);
    }
  }
  return {
    url,
    stop: async () => {
      if (child.exitCode !== null) return;
      child.kill("SIGTERM");
      const timer = setTimeout(() => child.kill("SIGKILL"), 10_000);
      await exited;
      clearTimeout(timer);
    },
  };
}

export async function startPeer(python: string, modelPath: string, threads: number, contextSize: number): Promise<Server> {
  const port = await freePort();
  const args = ["-m", "llama_cpp.server", "--model", modelPath, "--model_alias", "bench", "--host", "127.0.0.1", "--port", String(port)];
  args.push("--n_threads", String(threads), "--n_threads_batch", String(threads), "--n_ctx", String(contextSize));
  // Its default cuts a running stream short when another request comes (`[DONE]` after one token):
  // each request is served to its end instead (it serves one request at a time).
  args.push("--interrupt_requests", "false");
  return startProcess(PEER.name, python, args, "/v1/models", port);
}

const DIATONIC = fileURLToPath(new URL("../bin/diatonic.js", import.meta.url));

/** `nodeArgs` go before the script (a CPU profile: `--cpu-prof`). */
export async function startOurs(
  modelPath: string,
  threads: number,
  parallel: number,
  contextSize: number,
  nodeArgs: readonly string[] = [],
): Promise<Server> {
  const port = await freePort();
  const args = [...nodeArgs, DIATONIC, "engine", "--model", modelPath, "--served-model-name", "bench", "--port", String(port)];
  args.push("--threads", String(threads), "--parallel", String(parallel), "--max-model-len", String(contextSize));
  return startProcess("diatonic engine", process.execPath, args, "/health", port);
}

const agent = new Agent({ keepAlive: true, maxSockets: 16 });

/**
 * One streamed /v1/completions request. Time to first token is when the first event with text
 * arrives. Tokens: the usage the server reports at the end of the stream where it does (ours, with
 * stream_options.include_usage); llama-cpp-python sends no usage in a stream but one event per
 * token, so its events with text are counted (a run that ends by length has max_tokens of them,
 * which the bench checks).
 */
export function streamCompletion(url: string, body: Record<string, unknown>): Promise<StreamSample> {
  const payload = JSON.stringify({ ...body, stream: true, stream_options: { include_usage: true } });
  return new Promise((resolve, reject) => {
    const begin = performance.now();
    let ttftMs = Number.NaN;
    let buffered = "";
    let textEvents = 0;
    let usageTokens: number | undefined;
    let finishReason: string | null = null;
    const onEvent = (data: string): void => {
      if (data === "[DONE]") return;
      const event = JSON.parse(data) as {
        choices?: { text?: string; finish_reason?: string | null }[];
        usage?: { completion_tokens?: number } | null;
      };
      const choice = event.choices?.[0];
      if (choice?.text !== undefined && choice.text.length > 0) {
        if (Number.isNaN(ttftMs)) ttftMs = performance.now() - begin;
        textEvents++;
      }
      if (typeof choice?.finish_reason === "string") finishReason = choice.finish_reason;
      if (typeof event.usage?.completion_tokens === "number") usageTokens = event.usage.completion_tokens;
    };
    const req = request(
      `${url}/v1/completions`,
      { method: "POST", agent, headers: { "content-type": "application/json", "content-length": Buffer.byteLength(payload) } },
      (res) => {
        if (res.statusCode !== 200) {
          res.resume();
          reject(new Error(`${url}: HTTP ${res.statusCode ?? "?"}`));
          return;
        }
        res.setEncoding("utf8");
        res.on("data", (chunk: string) => {
          buffered += chunk;
          // Both servers end events with a blank line (llama-cpp-python's sse-starlette with \r\n).
          for (let end = buffered.search(/\r?\n\r?\n/); end !== -1; end = buffered.search(/\r?\n\r?\n/)) {
            const block = buffered.slice(0, end);
            buffered = buffered.slice(end).replace(/^\r?\n\r?\n/, "");
            for (const line of block.split(/\r?\n/)) if (line.startsWith("data: ")) onEvent(line.slice(6));
          }
        });
        res.on("end", () => resolve({ ttftMs, totalMs: performance.now() - begin, tokens: usageTokens ?? textEvents, finishReason }));
        res.on("error", reject);
      },
    );
    req.on("error", reject);
    req.end(payload);
  });
}

/** `streams` requests at once; tokens/s over the round's wall time, each request's own TTFT. */
export async function concurrentRound(
  url: string,
  body: Record<string, unknown>,
  streams: number,
): Promise<{ tokensPerSecond: number; samples: StreamSample[] }> {
  const begin = performance.now();
  const samples = await Promise.all(Array.from({ length: streams }, () => streamCompletion(url, body)));
  const tokens = samples.reduce((sum, s) => sum + s.tokens, 0);
  return { tokensPerSecond: (tokens / (performance.now() - begin)) * 1000, samples };
}

export interface SideRow {
  readonly streams: number;
  /** Median over rounds: one stream's tokens over its request time, or all streams' tokens over the round's wall time. */
  readonly tokensPerSecond: number;
  /** Median time to first token over every request of every round. */
  readonly ttftMs: number;
}

export interface Spread {
  readonly median: number;
  readonly min: number;
  readonly max: number;
}

export interface SideBySideResult {
  readonly ours: { readonly name: string; readonly rows: SideRow[] };
  readonly peer: { readonly name: string; readonly version: string; readonly cmakeArgs: string; readonly rows: SideRow[] };
  /** Ours over the peer, paired round by round (each round runs both, the order alternating). */
  readonly ratios: { readonly streams: number; readonly tokensPerSecond: Spread; readonly ttftMs: Spread }[];
  readonly rounds: number;
}

export interface SideBySideOptions {
  readonly modelPath: string;
  readonly threads: number;
  readonly parallel: number;
  readonly contextSize: number;
  readonly streams: readonly number[];
  readonly rounds: number;
  readonly warmup: number;
  readonly body: Record<string, unknown>;
  readonly python: string;
  readonly log: (line: string) => void;
}

const spread = (values: readonly number[]): Spread => ({ median: median(values), min: Math.min(...values), max: Math.max(...values) });

/** Every stream must have ended by itself, and a peer stream ended by length must have counted max_tokens events. */
function checkSamples(side: string, samples: readonly StreamSample[], maxTokens: number): void {
  for (const sample of samples) {
    if (sample.finishReason !== "length" && sample.finishReason !== "stop")
      throw new Error(`${side}: a stream ended without a finish reason (cut short?) after ${sample.tokens} tokens`);
    if (sample.finishReason === "length" && sample.tokens !== maxTokens)
      throw new Error(`${side}: a stream ended by length with ${sample.tokens} tokens counted, not ${maxTokens}`);
  }
}

/**
 * Both servers up at once (each idle while the other is measured), then rounds: in each, one
 * stream and then `streams` at once on each side, the side that goes first alternating by round.
 */
export async function sideBySide(options: SideBySideOptions): Promise<SideBySideResult> {
  const { modelPath, threads, parallel, contextSize, body } = options;
  const maxTokens = Number(body["max_tokens"]);
  const ours = await startOurs(modelPath, threads, parallel, contextSize);
  const peer = await startPeer(options.python, modelPath, threads, contextSize).catch(async (error: unknown) => {
    await ours.stop();
    throw error;
  });
  const sides = [
    { name: "ours", server: ours },
    { name: "peer", server: peer },
  ] as const;
  type Side = (typeof sides)[number]["name"];
  const perRound = new Map<string, { tps: number[]; ttft: number[]; allTtft: number[] }>();
  const record = (side: Side, streams: number, tps: number, ttfts: readonly number[]): void => {
    const key = `${side}/${streams}`;
    const entry = perRound.get(key) ?? { tps: [], ttft: [], allTtft: [] };
    entry.tps.push(tps);
    entry.ttft.push(median(ttfts));
    entry.allTtft.push(...ttfts);
    perRound.set(key, entry);
  };
  try {
    for (const { server } of sides)
      for (let i = 0; i < options.warmup; i++) await concurrentRound(server.url, body, Math.max(...options.streams));
    for (let round = 0; round < options.rounds; round++) {
      const order = round % 2 === 0 ? sides : [...sides].reverse();
      const line: string[] = [];
      for (const streams of options.streams) {
        for (const { name, server } of order) {
          const { tokensPerSecond, samples } = await concurrentRound(server.url, body, streams);
          checkSamples(name, samples, maxTokens);
          record(
            name,
            streams,
            tokensPerSecond,
            samples.map((s) => s.ttftMs),
          );
          line.push(`${name} ×${streams} ${tokensPerSecond.toFixed(0)} tok/s`);
        }
      }
      options.log(`  round ${round + 1}/${options.rounds}: ${line.join(", ")}`);
    }
  } finally {
    await Promise.all([ours.stop(), peer.stop()]);
  }
  const rows = (side: Side): SideRow[] =>
    options.streams.map((streams) => {
      const entry = perRound.get(`${side}/${streams}`);
      return { streams, tokensPerSecond: median(entry?.tps ?? []), ttftMs: median(entry?.allTtft ?? []) };
    });
  const ratios = options.streams.map((streams) => {
    const mine = perRound.get(`ours/${streams}`);
    const theirs = perRound.get(`peer/${streams}`);
    const paired = (a: readonly number[] = [], b: readonly number[] = []) => a.map((value, i) => value / (b[i] ?? Number.NaN));
    return { streams, tokensPerSecond: spread(paired(mine?.tps, theirs?.tps)), ttftMs: spread(paired(mine?.ttft, theirs?.ttft)) };
  });
  return {
    ours: { name: "diatonic engine", rows: rows("ours") },
    peer: { name: PEER.name, version: PEER.version, cmakeArgs: PEER_CMAKE_ARGS, rows: rows("peer") },
    ratios,
    rounds: options.rounds,
  };
}
