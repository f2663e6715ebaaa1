// npm run bench:routing — four routing policies side by side through the same gateway code, against
// real local engines (llama.cpp, the tiny generated model), each with --max-loras 2 and 24 LoRA
// adapters registered (as the adapter agent registers them). Open-loop Poisson traffic, adapters
// drawn from Zipf(1.1), the same for every policy from a fixed seed, at about 30% and 80% of the
// measured capacity. Swaps are counted by the engines themselves (diatonic_engine_lora_swaps_total);
// the swap time is measured (cold against warm time to first token). Engines are started afresh for
// every run, so no policy inherits another's warm slots. Prints a table per load and writes
// bench/results/routing.json. BENCH_QUICK=1: fewer requests (3 minutes at most). --simulate: also
// runs the cost model calibrated from this run for 32 replicas × 1,000 adapters (bench/routing-sim.ts).
import { spawn, type ChildProcess } from "node:child_process";
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { cpus, loadavg, tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { pino } from "pino";
import { Pool } from "undici";
import { writeGgufFile } from "../src/engine/gguf/writer.ts";
import { tinyLoraAdapter, writeTestModels } from "../src/engine/tiny/model.ts";
import { GatewayConfig, type GatewayConfigInput } from "../src/gateway/config.ts";
import { POLICY_NAMES, type PolicyName } from "../src/gateway/routing/index.ts";
import { startGateway, type RunningGateway } from "../src/gateway/server.ts";
import { percentile, table, traffic, type Arrival, type PolicyRow } from "./routing-traffic.ts";
import { simulate } from "./routing-sim.ts";

const QUICK = process.env.BENCH_QUICK === "1";
const SIMULATE = process.argv.includes("--simulate");
const ENGINES = 3;
const MAX_LORAS = 2;
const PARALLEL = 2;
const ADAPTERS = 24;
const ZIPF_S = 1.1;
const SEED = 20261206;
const MAX_TOKENS = 16;
const REQUESTS = QUICK ? 120 : 500;
const CAPACITY_SECONDS = QUICK ? 5 : 10;
const BIN = fileURLToPath(new URL("../bin/diatonic.js", import.meta.url));

const dir = mkdtempSync(join(tmpdir(), "diatonic-bench-routing-"));
const files = writeTestModels(join(dir, "model"));
const loras = Array.from({ length: ADAPTERS }, (_, i) => {
  const path = join(dir, "loras", `a${i}.gguf`);
  mkdirSync(join(dir, "loras"), { recursive: true });
  writeGgufFile(path, tinyLoraAdapter({ seed: 1000 + i, name: `a${i}` }));
  return { name: `a${i}`, path };
});

interface Engine {
  readonly url: string;
  readonly child: ChildProcess;
}

// Engines still running when the bench is interrupted (Ctrl-C, a timeout's SIGTERM) are stopped with it.
const running = new Set<ChildProcess>();
for (const signal of ["SIGINT", "SIGTERM"] as const) {
  process.once(signal, () => {
    for (const child of running) child.kill("SIGTERM");
    process.exit(130);
  });
}

async function startEngineProcess(): Promise<Engine> {
  const child = spawn(process.execPath, [BIN, "engine", "--model", files.model, "--served-model-name", "tiny", "--max-loras", String(MAX_LORAS), "--parallel", String(PARALLEL), "--threads", "1", "--port", "0", "--max-model-len", "512"], {
    stdio: ["ignore", "ignore", "pipe"],
    env: { ...process.env, NODE_NO_WARNINGS: "1" },
  });
  running.add(child);
  child.once("exit", () => running.delete(child));
  const url = await new Promise<string>((resolve, reject) => {
    let text = "";
    child.stderr?.on("data", (chunk: Buffer) => {
      text += chunk.toString();
      const found = /engine ready at (http:\/\/\S+)\/v1/.exec(text);
      if (found?.[1]) resolve(found[1]);
    });
    child.once("exit", (code) => reject(new Error(`engine exited ${String(code)}: ${text}`)));
  });
  // Every adapter registered, as the adapter agent registers the whole set.
  for (const lora of loras) {
    const response = await fetch(`${url}/v1/load_lora_adapter`, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify({ lora_name: lora.name, lora_path: lora.path }) });
    if (response.status !== 200) throw new Error(`loading ${lora.name}: ${await response.text()}`);
  }
  return { url, child };
}

async function stopEngines(engines: readonly Engine[]): Promise<void> {
  await Promise.all(engines.map((e) => new Promise<void>((resolve) => (e.child.exitCode !== null ? resolve() : (e.child.once("exit", () => resolve()), e.child.kill("SIGTERM"))))));
}

async function swapsOf(engines: readonly Engine[]): Promise<number> {
  let total = 0;
  for (const engine of engines) {
    const text = await (await fetch(`${engine.url}/metrics`)).text();
    for (const match of text.matchAll(/^diatonic_engine_lora_swaps_total\{[^}]*\} (\S+)$/gm)) total += Number(match[1]);
  }
  return total;
}

function gatewayConfig(engines: readonly Engine[], policy: PolicyName, swapMs: number): GatewayConfig {
  const limits = { concurrency: 64, queue: 1024, timeoutMs: 120_000, firstByteTimeoutMs: 60_000 };
  const input: GatewayConfigInput = {
    apiVersion: "diatonic.ai/v1alpha1",
    kind: "GatewayConfig",
    platform: "bench",
    server: { port: 8080, maxBodyBytes: 65_536, logPrompts: false },
    auth: { mode: "disabled" },
    rateLimits: { requestsPerMinute: 10_000_000, tokensPerMinute: 1_000_000_000 },
    upstreams: { engine: { url: engines[0]?.url ?? "", replicas: engines.slice(1).map((e) => e.url), discovery: "static", connectTimeoutMs: 2000, residency: { pollMs: 1000 } } },
    routing: { policy, slots: MAX_LORAS, swapMs },
    baseModel: { name: "tiny", upstream: "engine" },
    adapters: loras.map((lora) => ({ name: lora.name, route: `/${lora.name}`, upstreamModel: lora.name, upstream: "engine", sampling: {}, limits })),
  };
  return GatewayConfig.parse(input);
}

interface Outcome {
  readonly ok: boolean;
  readonly ttftMs: number;
  readonly e2eMs: number;
}

/** One streamed chat through the gateway: time to the first content token, and to the end. */
async function chat(pool: Pool, model: string): Promise<Outcome> {
  const started = performance.now();
  try {
    const response = await pool.request({
      method: "POST",
      path: "/v1/chat/completions",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ model, messages: [{ role: "user", content: "say something" }], max_tokens: MAX_TOKENS, temperature: 0, stream: true }),
    });
    let ttftMs = Number.NaN;
    let text = "";
    for await (const chunk of response.body) {
      text += chunk.toString();
      if (Number.isNaN(ttftMs) && /"content":"[^"]/.test(text)) ttftMs = performance.now() - started;
    }
    return { ok: response.statusCode === 200 && text.includes("[DONE]"), ttftMs, e2eMs: performance.now() - started };
  } catch {
    return { ok: false, ttftMs: Number.NaN, e2eMs: performance.now() - started };
  }
}

/** Sends the arrivals open-loop: each at its time, whatever the earlier ones are doing. */
async function run(gateway: RunningGateway, arrivals: readonly Arrival[]): Promise<{ outcomes: Outcome[]; seconds: number }> {
  const pool = new Pool(gateway.url, { connections: 256 });
  const start = performance.now();
  const outcomes = await Promise.all(
    arrivals.map(async (arrival) => {
      const wait = arrival.at - (performance.now() - start);
      if (wait > 0) await new Promise((resolve) => setTimeout(resolve, wait));
      return chat(pool, `a${arrival.adapter}`);
    }),
  );
  const seconds = (performance.now() - start) / 1000;
  await pool.close();
  return { outcomes, seconds };
}

async function withPlatform<T>(policy: PolicyName, swapMs: number, body: (gateway: RunningGateway, engines: readonly Engine[]) => Promise<T>): Promise<T> {
  const engines: Engine[] = [];
  for (let i = 0; i < ENGINES; i++) engines.push(await startEngineProcess());
  const gateway = await startGateway({ config: gatewayConfig(engines, policy, swapMs), port: 0, logger: pino({ level: "silent" }), defaultMetrics: false, watch: false });
  try {
    return await body(gateway, engines);
  } finally {
    await gateway.close();
    await stopEngines(engines);
  }
}

/** Swap time: a cold adapter's time to first token minus a warm one's, on one idle engine. */
async function measureSwap(): Promise<{ swapMs: number; warmTtftMs: number; coldTtftMs: number }> {
  const engine = await startEngineProcess();
  const pool = new Pool(engine.url);
  const ttft = async (model: string) => {
    const started = performance.now();
    const response = await pool.request({ method: "POST", path: "/v1/chat/completions", headers: { "content-type": "application/json" }, body: JSON.stringify({ model, messages: [{ role: "user", content: "say something" }], max_tokens: 2, stream: true }) });
    let ms = Number.NaN;
    let text = "";
    for await (const chunk of response.body) {
      text += chunk.toString();
      if (Number.isNaN(ms) && /"content":"[^"]/.test(text)) ms = performance.now() - started;
    }
    return ms;
  };
  const cold: number[] = [];
  const warm: number[] = [];
  for (let i = 0; i < Math.min(ADAPTERS, 12); i++) {
    cold.push(await ttft(`a${i}`)); // a new slot for it (evicting the oldest of the two)
    warm.push(await ttft(`a${i}`)); // the same adapter again: already in its slot
  }
  await pool.close();
  await stopEngines([engine]);
  const coldTtftMs = percentile(cold, 50);
  const warmTtftMs = percentile(warm, 50);
  return { swapMs: Math.max(0, coldTtftMs - warmTtftMs), warmTtftMs, coldTtftMs };
}

/** Requests per second the platform completes with every engine slot busy (closed loop). */
async function measureCapacity(): Promise<number> {
  return withPlatform("least-outstanding", 50, async (gateway) => {
    const pool = new Pool(gateway.url, { connections: 64 });
    const picks = traffic({ count: 100_000, rate: 1, adapters: ADAPTERS, s: ZIPF_S, seed: SEED + 1 });
    let done = 0;
    let next = 0;
    const deadline = performance.now() + CAPACITY_SECONDS * 1000;
    const worker = async () => {
      while (performance.now() < deadline) {
        const outcome = await chat(pool, `a${picks[next++ % picks.length]?.adapter ?? 0}`);
        if (outcome.ok) done++;
      }
    };
    const started = performance.now();
    await Promise.all(Array.from({ length: ENGINES * PARALLEL * 2 }, worker));
    const seconds = (performance.now() - started) / 1000;
    await pool.close();
    return done / seconds;
  });
}

function row(policy: string, outcomes: readonly Outcome[], seconds: number, swaps: number, hits: number | undefined): PolicyRow {
  const ok = outcomes.filter((o) => o.ok);
  const ttft = ok.map((o) => o.ttftMs).filter((ms) => !Number.isNaN(ms));
  return {
    policy,
    swaps,
    p50TtftMs: percentile(ttft, 50),
    p99TtftMs: percentile(ttft, 99),
    p50E2eMs: percentile(ok.map((o) => o.e2eMs), 50),
    p99E2eMs: percentile(ok.map((o) => o.e2eMs), 99),
    rps: ok.length / seconds,
    errors: outcomes.length - ok.length,
    requests: outcomes.length,
    ...(hits !== undefined ? { residencyHits: hits } : {}),
  };
}

async function main(): Promise<void> {
  const began = performance.now();
  console.error(`bench:routing: ${ENGINES} engines × --max-loras ${MAX_LORAS}, --parallel ${PARALLEL}; ${ADAPTERS} adapters, Zipf ${ZIPF_S}; ${REQUESTS} requests per run${QUICK ? " (BENCH_QUICK)" : ""}`);
  const swap = await measureSwap();
  console.error(`swap: ${swap.swapMs.toFixed(1)} ms (cold ${swap.coldTtftMs.toFixed(1)} ms, warm ${swap.warmTtftMs.toFixed(1)} ms time to first token)`);
  const capacity = await measureCapacity();
  console.error(`capacity: ${capacity.toFixed(1)} req/s`);
  const scenarios: { name: "low" | "high"; rate: number; policies: PolicyRow[] }[] = [];
  for (const [name, share] of [["low", 0.3], ["high", 0.8]] as const) {
    const rate = capacity * share;
    const arrivals = traffic({ count: REQUESTS, rate, adapters: ADAPTERS, s: ZIPF_S, seed: SEED });
    const policies: PolicyRow[] = [];
    for (const policy of POLICY_NAMES) {
      const result = await withPlatform(policy, swap.swapMs, async (gateway, engines) => {
        const { outcomes, seconds } = await run(gateway, arrivals);
        const metrics = (await gateway.metrics.render()).body;
        const hits = Number(/^diatonic_gateway_residency_total\{result="hit"\} (\S+)$/m.exec(metrics)?.[1] ?? 0);
        const reasons = Object.fromEntries([...metrics.matchAll(/^diatonic_gateway_routing_decisions_total\{policy="[^"]*",reason="([^"]*)"\} (\S+)$/gm)].map((m) => [m[1] ?? "", Number(m[2])]));
        return { ...row(policy, outcomes, seconds, await swapsOf(engines), hits), reasons };
      });
      policies.push(result);
      console.error(`  ${name} ${policy}: ${result.swaps} swaps, TTFT p99 ${result.p99TtftMs.toFixed(1)} ms, ${result.errors} errors; routed ${JSON.stringify(result.reasons)}`);
    }
    scenarios.push({ name, rate, policies });
    console.log(`\n${table(`${name} load: ${rate.toFixed(1)} req/s (${share * 100}% of ${capacity.toFixed(1)})`, policies)}`);
  }
  const goals = scenarios.map((scenario) => {
    const ours = scenario.policies.find((p) => p.policy === "diatonic") as PolicyRow;
    const others = scenario.policies.filter((p) => p.policy !== "diatonic");
    const affinity = others.find((p) => p.policy === "lora-affinity") as PolicyRow;
    const bestOtherP99 = Math.min(...others.map((p) => p.p99TtftMs));
    const bestOtherRps = Math.max(...others.map((p) => p.rps));
    return {
      scenario: scenario.name,
      swapsVsLoraAffinity: ours.swaps / Math.max(1, affinity.swaps),
      p99TtftVsBestOther: ours.p99TtftMs / bestOtherP99,
      rpsVsBestOther: ours.rps / bestOtherRps,
      errors: ours.errors,
    };
  });
  for (const g of goals) {
    console.log(
      `${g.scenario}: swaps ${g.swapsVsLoraAffinity.toFixed(2)}× lora-affinity's (goal at low: ≤ 0.5), TTFT p99 ${g.p99TtftVsBestOther.toFixed(2)}× the best other's (goal ≤ 0.8), req/s ${g.rpsVsBestOther.toFixed(2)}× (no loss), errors ${g.errors}`,
    );
  }
  // Calibrated from this run: the swap time measured above, and a request's time on a warm slot at low load.
  const warmService = scenarios[0]?.policies.find((p) => p.policy === "diatonic")?.p50E2eMs ?? swap.warmTtftMs;
  const simulation = SIMULATE ? simulate({ swapMs: swap.swapMs, serviceMs: warmService, quick: QUICK }) : undefined;
  if (simulation !== undefined) for (const scenario of simulation.scenarios) console.log(`\n${table(`simulated ${simulation.replicas} replicas × ${simulation.adapters} adapters, ${scenario.name} load`, scenario.policies)}`);
  mkdirSync("bench/results", { recursive: true });
  const result = {
    date: new Date().toISOString(),
    cpus: cpus().length,
    cpuModel: cpus()[0]?.model ?? "",
    loadAverage: loadavg(),
    engines: ENGINES,
    maxLoras: MAX_LORAS,
    parallel: PARALLEL,
    adapters: ADAPTERS,
    zipfS: ZIPF_S,
    seed: SEED,
    requestsPerRun: REQUESTS,
    quick: QUICK,
    swap,
    capacityRps: capacity,
    scenarios,
    goals,
    ...(simulation !== undefined ? { simulation } : {}),
    seconds: (performance.now() - began) / 1000,
  };
  writeFileSync("bench/results/routing.json", `${JSON.stringify(result, null, 2)}\n`);
  console.log(`\nwrote bench/results/routing.json in ${result.seconds.toFixed(0)} s`);
}

try {
  await main();
} finally {
  rmSync(dir, { recursive: true, force: true });
}
