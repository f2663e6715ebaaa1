// npm run bench:routing — four routing policies side by side through the same gateway code, against
// real local engines (llama.cpp, the tiny generated model), each with --max-loras 2 and 24 LoRA
// adapters registered (as the adapter agent registers them). Open-loop Poisson traffic, adapters
// drawn from Zipf(1.1), the same for every policy from a fixed seed, at about 30% and 80% of the
// measured capacity. Swaps are counted by the engines themselves (diatonic_engine_lora_swaps_total);
// the swap time is measured (cold against warm time to first token, once every LoRA's weights have
// been read). Before every run each engine unloads and loads every adapter again, which empties its
// slots, so no policy inherits another's warm slots (the engines themselves are started once per
// configuration: a start costs seconds here); the order of the policies alternates between loads, so
// that drift on a shared machine does not always fall on the same one. Prints a table per load and writes bench/results/routing.json.
// A swap in this engine costs a few ms (it makes the slot's llama.cpp context; LoRA weights stay
// loaded once read), so the same is run again, labelled apart, with engines that emulate a GPU's
// load of the LoRA on each swap (--emulate-lora-load-ms, EMULATED_LOAD_MS): swaps then cost what
// they cost on a GPU, where residency matters. BENCH_QUICK=1: fewer requests (3 minutes at most).
// --simulate: also runs the cost model calibrated from this run (the engine's own swap) for 32
// replicas × 1,000 adapters (bench/routing-sim.ts).
// Placement: after the four policies of a load, diatonic runs once more as rendered, placing adapters
// through an adapter agent beside each engine (each engine on its own loopback address, its agent at
// the same port on it, as in a pod), reported apart (`placement` of each scenario, and a table row
// "diatonic+placement"): the four are compared on routing alone, every adapter loaded everywhere. The
// agents' grace before unloading an adapter placed elsewhere is PLACEMENT_GRACE_MS here (60 s in a
// pod) so that placement shows within a run, and the traffic starts once every engine holds what its
// agent was placed (the placement with no demand yet). --no-placement: without that run.
// BENCH_REQUESTS: requests per run (default 1000; 120 with BENCH_QUICK).
import type { ChildProcess } from "node:child_process";
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { cpus, loadavg, tmpdir } from "node:os";
import { join } from "node:path";
import { pino } from "pino";
import { freePort } from "../scripts/cluster/processes.ts";
import { startAdapterAgent, type RunningAdapterAgent } from "../src/adapters/index.ts";
import { Pool } from "undici";
import { writeGgufFile } from "../src/engine/gguf/writer.ts";
import { tinyLoraAdapter, writeTestModels } from "../src/engine/tiny/model.ts";
import { GatewayConfig, type GatewayConfigInput } from "../src/gateway/config.ts";
import { lorasOf } from "../src/gateway/residency.ts";
import { POLICY_NAMES, type PolicyName } from "../src/gateway/routing/index.ts";
import { startGateway, type RunningGateway } from "../src/gateway/server.ts";
import {
  bestOtherP99,
  fewestLoads,
  fixedSplitLoads,
  floorLine,
  p99TtftFloor,
  percentile,
  table,
  traffic,
  type Arrival,
  type PolicyRow,
} from "./routing-traffic.ts";
import { simulate, type Simulation } from "./routing-sim.ts";
import { tinyAdapterSetYaml } from "../test/support/agent-replica.ts";
import { startEngineProcess as startEngine } from "../test/support/engine-process.ts";

const QUICK = process.env.BENCH_QUICK === "1";
const SIMULATE = process.argv.includes("--simulate");
const ENGINES = 3;
const MAX_LORAS = 2;
const PARALLEL = 2;
const ADAPTERS = 24;
const ZIPF_S = 1.1;
const SEED = 20261206;
const MAX_TOKENS = 16;
const REQUESTS = Number(process.env.BENCH_REQUESTS ?? (QUICK ? 120 : 1000));
const PLACEMENT = !process.argv.includes("--no-placement");
const PLACEMENT_GRACE_MS = 10_000;
/** Each engine on an address of its own (as pods have), so that its adapter agent sits at one port on every replica. */
const hostOf = (index: number) => `127.0.0.${21 + index}`;
const CAPACITY_SECONDS = QUICK ? 4 : 10;
/** The emulated LoRA load of the second configuration: tens of ms, about a short completion's time on a GPU. */
const EMULATED_LOAD_MS = 50;

const dir = mkdtempSync(join(tmpdir(), "diatonic-bench-routing-"));
const files = writeTestModels(join(dir, "model"));
const loras = Array.from({ length: ADAPTERS }, (_, i) => {
  const path = join(dir, "loras", `a${i}.gguf`);
  mkdirSync(join(dir, "loras"), { recursive: true });
  writeGgufFile(path, tinyLoraAdapter({ seed: 1000 + i, name: `a${i}` }));
  return { name: `a${i}`, path };
});
/** The adapter set every agent follows: the 24 LoRAs, as files. */
const setFile = join(dir, "adapters.yaml");
writeFileSync(
  setFile,
  tinyAdapterSetYaml(
    loras.map((lora) => ({ name: lora.name, source: { path: lora.path }, rank: 8 })),
    16,
  ),
);
const agentPort = await freePort();

interface Engine {
  readonly url: string;
  readonly child: ChildProcess;
  readonly host: string;
}

// Engines still running when the bench is interrupted (Ctrl-C, a timeout's SIGTERM) are stopped with it.
const running = new Set<ChildProcess>();
for (const signal of ["SIGINT", "SIGTERM"] as const) {
  process.once(signal, () => {
    for (const child of running) child.kill("SIGTERM");
    process.exit(130);
  });
}

async function startEngineProcess(emulatedLoadMs: number, index: number): Promise<Engine> {
  const emulate = emulatedLoadMs > 0 ? ["--emulate-lora-load-ms", String(emulatedLoadMs)] : [];
  const { url, child } = await startEngine({
    modelPath: files.model,
    host: hostOf(index),
    args: ["--max-loras", String(MAX_LORAS), "--parallel", String(PARALLEL), "--threads", "1", "--max-model-len", "512", ...emulate],
    onSpawn: (child) => {
      running.add(child);
      child.once("exit", () => running.delete(child));
    },
  });
  const engine = { url, child, host: hostOf(index) };
  await registerAdapters(engine);
  return engine;
}

async function post(url: string, body: unknown, alsoOk: readonly number[] = []): Promise<void> {
  const response = await fetch(url, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify(body) });
  if (response.status !== 200 && !alsoOk.includes(response.status)) throw new Error(`${url}: ${await response.text()}`);
  await response.body?.cancel();
}

/** Every adapter registered, as the adapter agent registers the whole set. */
async function registerAdapters(engine: Engine): Promise<void> {
  for (const lora of loras) await post(`${engine.url}/v1/load_lora_adapter`, { lora_name: lora.name, lora_path: lora.path });
}

/** Empties every engine's LoRA slots (an unload disposes the adapter's slot), then registers the adapters again. */
async function resetEngines(engines: readonly Engine[]): Promise<void> {
  await Promise.all(
    engines.map(async (engine) => {
      // 404: placement had it unloaded from this engine in the run before.
      for (const lora of loras) await post(`${engine.url}/v1/unload_lora_adapter`, { lora_name: lora.name }, [404]);
      await registerAdapters(engine);
    }),
  );
}

/** The engines of one configuration, started side by side; if one fails, the others are stopped. */
async function startEngines(emulatedLoadMs: number): Promise<Engine[]> {
  const started = await Promise.allSettled(Array.from({ length: ENGINES }, (_, i) => startEngineProcess(emulatedLoadMs, i)));
  const engines = started.flatMap((result) => (result.status === "fulfilled" ? [result.value] : []));
  const failed = started.find((result) => result.status === "rejected");
  if (failed === undefined) return engines;
  await stopEngines(engines);
  throw failed.reason;
}

async function stopEngines(engines: readonly Engine[]): Promise<void> {
  await Promise.all(
    engines.map(
      (e) =>
        new Promise<void>((resolve) =>
          e.child.exitCode !== null ? resolve() : (e.child.once("exit", () => resolve()), e.child.kill("SIGTERM")),
        ),
    ),
  );
}

async function swapsOf(engines: readonly Engine[]): Promise<number> {
  let total = 0;
  for (const engine of engines) {
    const text = await (await fetch(`${engine.url}/metrics`)).text();
    for (const match of text.matchAll(/^diatonic_engine_lora_swaps_total\{[^}]*\} (\S+)$/gm)) total += Number(match[1]);
  }
  return total;
}

function gatewayConfig(engines: readonly Engine[], policy: PolicyName, swapMs: number, placed: boolean): GatewayConfig {
  const limits = { concurrency: 64, queue: 1024, timeoutMs: 120_000, firstByteTimeoutMs: 60_000 };
  const input: GatewayConfigInput = {
    apiVersion: "diatonic.ai/v1alpha1",
    kind: "GatewayConfig",
    platform: "bench",
    server: { port: 8080, maxBodyBytes: 65_536, logPrompts: false },
    auth: { mode: "disabled" },
    rateLimits: { requestsPerMinute: 10_000_000, tokensPerMinute: 1_000_000_000 },
    upstreams: {
      engine: {
        url: engines[0]?.url ?? "",
        replicas: engines.slice(1).map((e) => e.url),
        discovery: "static",
        connectTimeoutMs: 2000,
        residency: { pollMs: 1000 },
        // As rendered: the gateway places adapters through the agents (the placement run; see withPlatform).
        ...(placed ? { placement: { agentPort, publishMs: 2000, ttlMs: 30_000, minReplicas: 2 } } : {}),
      },
    },
    routing: { policy, slots: MAX_LORAS, swapMs },
    baseModel: { name: "tiny", upstream: "engine" },
    adapters: loras.map((lora) => ({
      name: lora.name,
      route: `/${lora.name}`,
      upstreamModel: lora.name,
      upstream: "engine",
      sampling: {},
      limits,
    })),
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
      body: JSON.stringify({
        model,
        messages: [{ role: "user", content: "say something" }],
        max_tokens: MAX_TOKENS,
        temperature: 0,
        stream: true,
      }),
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

/** A fresh gateway with the policy in front of the engines, their slots emptied first; `swaps` counts the engines' swaps during `body`. */
async function withPlatform<T>(
  engines: readonly Engine[],
  policy: PolicyName,
  swapMs: number,
  body: (gateway: RunningGateway, swaps: () => Promise<number>, agents: readonly RunningAdapterAgent[]) => Promise<T>,
  placed = false,
): Promise<T> {
  await resetEngines(engines);
  const before = await swapsOf(engines);
  // With placement, an agent beside each engine loads what the gateway places there, as rendered;
  // without, there is none (as an agent without a gateway's word, every adapter is loaded: the reset).
  const agents: RunningAdapterAgent[] = [];
  if (placed)
    for (const [i, engine] of engines.entries())
      agents.push(
        await startAdapterAgent({
          configFile: setFile,
          engineUrl: engine.url,
          cacheDir: join(dir, `agent-cache-${i}`),
          host: engine.host,
          port: agentPort,
          logger: pino({ level: "silent" }),
          watch: { debounceMs: 200, pollMs: 60_000 },
          resyncMs: 200,
          placementGraceMs: PLACEMENT_GRACE_MS,
        }),
      );
  const gateway = await startGateway({
    config: gatewayConfig(engines, policy, swapMs, placed),
    port: 0,
    logger: pino({ level: "silent" }),
    defaultMetrics: false,
    watch: false,
  });
  try {
    if (placed) await settled(engines, agents);
    return await body(gateway, async () => (await swapsOf(engines)) - before, agents);
  } finally {
    await gateway.close();
    for (const agent of agents) await agent.close();
  }
}

/** The LoRAs an engine has loaded, as its /v1/models lists them (sorted). */
async function loadedLoras(engine: Engine): Promise<string[]> {
  return [...lorasOf(await (await fetch(`${engine.url}/v1/models`)).json())].sort();
}

/** Waits until every engine holds exactly the adapters its agent was placed (the agents' grace past). */
async function settled(engines: readonly Engine[], agents: readonly RunningAdapterAgent[]): Promise<void> {
  const deadline = performance.now() + PLACEMENT_GRACE_MS + 30_000;
  for (;;) {
    const done = await Promise.all(
      engines.map(async (engine, i) => {
        const status = (await (await fetch(`${agents[i]?.url ?? ""}/status`)).json()) as { placement: { placed: string[] | null } };
        const loaded = await loadedLoras(engine);
        return status.placement.placed !== null && JSON.stringify(loaded) === JSON.stringify(status.placement.placed);
      }),
    );
    if (done.every(Boolean)) return;
    if (performance.now() > deadline) throw new Error("the adapter agents did not settle on the gateway's placement");
    await new Promise((resolve) => setTimeout(resolve, 250));
  }
}

interface SwapMeasure {
  /** A swap once the LoRA's weights have been read: what routing saves. */
  readonly swapMs: number;
  readonly warmTtftMs: number;
  readonly coldTtftMs: number;
  /** The quickest first token of a request that swapped, on the idle engine: what no swapping request beats. */
  readonly coldMinTtftMs: number;
  /** The first use of a LoRA in an engine process also reads its file. */
  readonly firstLoadTtftMs: number;
}

/**
 * Swap time on one idle engine: a cold adapter's time to first token (its slot taken by two others
 * since) minus a warm one's, after every adapter has been used once (the first use also reads the
 * LoRA file, a one-off, reported apart).
 */
async function measureSwap(engine: Engine): Promise<SwapMeasure> {
  await resetEngines([engine]);
  const pool = new Pool(engine.url);
  const ttft = async (model: string) => {
    const started = performance.now();
    const response = await pool.request({
      method: "POST",
      path: "/v1/chat/completions",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ model, messages: [{ role: "user", content: "say something" }], max_tokens: 2, stream: true }),
    });
    let ms = Number.NaN;
    let text = "";
    for await (const chunk of response.body) {
      text += chunk.toString();
      if (Number.isNaN(ms) && /"content":"[^"]/.test(text)) ms = performance.now() - started;
    }
    return ms;
  };
  const first: number[] = [];
  const cold: number[] = [];
  const warm: number[] = [];
  const sample = Math.min(ADAPTERS, 12);
  for (let i = 0; i < sample; i++) first.push(await ttft(`a${i}`));
  for (let round = 0; round < 2; round++) {
    for (let i = 0; i < sample; i++) {
      cold.push(await ttft(`a${i}`)); // two others have used the two slots since: a swap
      warm.push(await ttft(`a${i}`)); // the same adapter again: already in its slot
    }
  }
  await pool.close();
  const coldTtftMs = percentile(cold, 50);
  const warmTtftMs = percentile(warm, 50);
  return {
    swapMs: Math.max(0, coldTtftMs - warmTtftMs),
    warmTtftMs,
    coldTtftMs,
    coldMinTtftMs: Math.min(...cold),
    firstLoadTtftMs: percentile(first, 50),
  };
}

/** Requests per second the platform completes with every engine slot busy (closed loop). */
async function measureCapacity(engines: readonly Engine[], swapMs: number): Promise<number> {
  return withPlatform(engines, "least-outstanding", swapMs, async (gateway) => {
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
    p50E2eMs: percentile(
      ok.map((o) => o.e2eMs),
      50,
    ),
    p99E2eMs: percentile(
      ok.map((o) => o.e2eMs),
      99,
    ),
    rps: ok.length / seconds,
    errors: outcomes.length - ok.length,
    requests: outcomes.length,
    ...(hits !== undefined ? { residencyHits: hits } : {}),
  };
}

type ScenarioName = "low" | "high";

/** One load's runs: the four policies on routing alone, and diatonic with placement through the agents, apart. */
interface Scenario {
  readonly name: ScenarioName;
  readonly rate: number;
  /** The fewest LoRA loads any router could make on this traffic in arrival order, loading on demand (Belady's MIN over all the slots; see fewestLoads). */
  readonly fewestLoads: number;
  /** The fewest a fixed split of the adapters over the engines loads, LRU slots (see fixedSplitLoads): what a router that keeps adapters where they are placed can reach. */
  readonly fixedSplitLoads: number;
  readonly policies: PolicyRow[];
  readonly placement?: PolicyRow;
}

interface Goals {
  readonly scenario: ScenarioName;
  readonly swapsVsLoraAffinity: number;
  readonly p99TtftVsBestOther: number;
  readonly rpsVsBestOther: number;
  readonly errors: number;
  /**
   * The floor no policy that loads LoRAs on demand gets under: where more than 1% of requests must
   * load theirs in arrival order (Belady's MIN), the p99 time to first token is at least the quickest first token of
   * a request that swapped on the idle engine; and that floor as a share of the best other policy's
   * p99 (above 0.80, the goal is out of reach on this layout).
   */
  readonly mustLoadShare: number;
  /** Belady's MIN as a share of lora-affinity's swaps: the lowest swaps ratio any router could reach in arrival order. */
  readonly fewestLoadsVsLoraAffinity: number;
  /** The fixed-split floor as a share of lora-affinity's swaps: the lowest swaps ratio a router that keeps adapters in place could reach. */
  readonly fixedSplitLoadsVsLoraAffinity: number;
  readonly p99TtftFloorMs: number;
  readonly p99TtftFloorVsBestOther: number;
  /** The same ratios for diatonic with placement through the agents (not a goal: placement is about what each replica loads). */
  readonly placement?: { readonly swapsVsLoraAffinity: number; readonly p99TtftVsBestOther: number; readonly errors: number };
}

/** One engine configuration: its swap measured, its capacity measured, then both loads, every policy on the same traffic. */
async function runConfiguration(
  label: string,
  emulatedLoadMs: number,
): Promise<{
  swap: SwapMeasure;
  capacityRps: number;
  scenarios: Scenario[];
  goals: Goals[];
}> {
  const engines = await startEngines(emulatedLoadMs);
  try {
    return await measureConfiguration(label, engines);
  } finally {
    await stopEngines(engines);
  }
}

async function measureConfiguration(
  label: string,
  engines: readonly Engine[],
): Promise<{
  swap: SwapMeasure;
  capacityRps: number;
  scenarios: Scenario[];
  goals: Goals[];
}> {
  const swap = await measureSwap(engines[0] as Engine);
  console.error(
    `${label}: swap ${swap.swapMs.toFixed(1)} ms (cold ${swap.coldTtftMs.toFixed(1)} ms, warm ${swap.warmTtftMs.toFixed(1)} ms time to first token; a LoRA's first use ${swap.firstLoadTtftMs.toFixed(1)} ms)`,
  );
  const capacityRps = await measureCapacity(engines, swap.swapMs);
  console.error(`${label}: capacity ${capacityRps.toFixed(1)} req/s`);
  const scenarios: Scenario[] = [];
  for (const [name, share, order] of [
    ["low", 0.3, POLICY_NAMES],
    ["high", 0.8, [...POLICY_NAMES].reverse()],
  ] as const) {
    const rate = capacityRps * share;
    const arrivals = traffic({ count: REQUESTS, rate, adapters: ADAPTERS, s: ZIPF_S, seed: SEED });
    const rows = new Map<PolicyName, PolicyRow>();
    const measure = (policy: PolicyName, placed: boolean) =>
      withPlatform(
        engines,
        policy,
        swap.swapMs,
        async (gateway, swaps, agents) => {
          const { outcomes, seconds } = await run(gateway, arrivals);
          const metrics = (await gateway.metrics.render()).body;
          const hits = Number(/^diatonic_gateway_residency_total\{result="hit"\} (\S+)$/m.exec(metrics)?.[1] ?? 0);
          const reasons = Object.fromEntries(
            [...metrics.matchAll(/^diatonic_gateway_routing_decisions_total\{policy="[^"]*",reason="([^"]*)"\} (\S+)$/gm)].map((m) => [
              m[1] ?? "",
              Number(m[2]),
            ]),
          );
          // What each engine had loaded at the end: every adapter, or (placement) those placed on it.
          const loadedPerReplica = await Promise.all(engines.map(async (engine) => (await loadedLoras(engine)).length));
          // LoRA loads the agents made during the run (placement's churn): each holds up its engine a moment.
          const agentLoads = (
            await Promise.all(
              agents.map(async (agent) =>
                Number(
                  /^diatonic_adapter_load_seconds_count(?:\{[^}]*\})? (\S+)$/m.exec(
                    await (await fetch(`${agent.url}/metrics`)).text(),
                  )?.[1] ?? 0,
                ),
              ),
            )
          ).reduce((a, b) => a + b, 0);
          return {
            ...row(placed ? `${policy}+placement` : policy, outcomes, seconds, await swaps(), hits),
            reasons,
            loadedPerReplica,
            ...(placed ? { agentLoads } : {}),
          };
        },
        placed,
      );
    const log = (result: PolicyRow & { loadedPerReplica: number[]; agentLoads?: number }) =>
      console.error(
        `  ${label} ${name} ${result.policy}: ${result.swaps} swaps, TTFT p99 ${result.p99TtftMs.toFixed(1)} ms, ${result.errors} errors; routed ${JSON.stringify(result.reasons)}; loaded per replica ${result.loadedPerReplica.join("/")}${result.agentLoads !== undefined ? `; ${result.agentLoads} loads by the agents` : ""}`,
      );
    for (const policy of order) {
      const result = await measure(policy, false);
      rows.set(policy, result);
      log(result);
    }
    const placement = PLACEMENT ? await measure("diatonic", true) : undefined;
    if (placement !== undefined) log(placement);
    // The table and the file list the policies in one order, whatever order they ran in.
    const policies = POLICY_NAMES.map((policy) => rows.get(policy) as PolicyRow);
    scenarios.push({
      name,
      rate,
      fewestLoads: fewestLoads(
        arrivals.map((a) => a.adapter),
        ENGINES * MAX_LORAS,
      ),
      fixedSplitLoads: fixedSplitLoads(
        arrivals.map((a) => a.adapter),
        ENGINES,
        MAX_LORAS,
      ),
      policies,
      ...(placement !== undefined ? { placement } : {}),
    });
    console.log(
      `\n${table(`${label}, ${name} load: ${rate.toFixed(1)} req/s (${share * 100}% of ${capacityRps.toFixed(1)}); swap ${swap.swapMs.toFixed(1)} ms`, [...policies, ...(placement !== undefined ? [placement] : [])])}`,
    );
  }
  const goals = scenarios.map((scenario): Goals => {
    const ours = scenario.policies.find((p) => p.policy === "diatonic") as PolicyRow;
    const others = scenario.policies.filter((p) => p.policy !== "diatonic");
    const affinity = others.find((p) => p.policy === "lora-affinity") as PolicyRow;
    const bestP99 = bestOtherP99(scenario.policies);
    const p99TtftFloorMs = p99TtftFloor(scenario.fewestLoads, REQUESTS, swap.coldMinTtftMs);
    return {
      scenario: scenario.name,
      swapsVsLoraAffinity: ours.swaps / Math.max(1, affinity.swaps),
      p99TtftVsBestOther: ours.p99TtftMs / bestP99,
      rpsVsBestOther: ours.rps / Math.max(...others.map((p) => p.rps)),
      errors: ours.errors,
      mustLoadShare: scenario.fewestLoads / REQUESTS,
      fewestLoadsVsLoraAffinity: scenario.fewestLoads / Math.max(1, affinity.swaps),
      fixedSplitLoadsVsLoraAffinity: scenario.fixedSplitLoads / Math.max(1, affinity.swaps),
      p99TtftFloorMs,
      p99TtftFloorVsBestOther: p99TtftFloorMs / bestP99,
      ...(scenario.placement !== undefined
        ? {
            placement: {
              swapsVsLoraAffinity: scenario.placement.swaps / Math.max(1, affinity.swaps),
              p99TtftVsBestOther: scenario.placement.p99TtftMs / bestP99,
              errors: scenario.placement.errors,
            },
          }
        : {}),
    };
  });
  return { swap, capacityRps, scenarios, goals };
}

/** The issue's goals, each said met or NOT met. Throughput: no loss beyond 2%, the run-to-run noise of req/s at a fixed arrival rate. */
function goalLines(label: string, goals: readonly Goals[]): string[] {
  const verdict = (ok: boolean) => (ok ? "met" : "NOT met");
  return goals.flatMap((g) => [
    ...(g.scenario === "low"
      ? [
          `${label}, low: swaps ${g.swapsVsLoraAffinity.toFixed(2)}× lora-affinity's (goal ≤ 0.50): ${verdict(g.swapsVsLoraAffinity <= 0.5)}; the fewest any router could make in arrival order: ${g.fewestLoadsVsLoraAffinity.toFixed(2)}× (Belady's MIN); with each adapter kept on its engines (LRU slots): ${g.fixedSplitLoadsVsLoraAffinity.toFixed(2)}×`,
        ]
      : []),
    `${label}, ${g.scenario}: TTFT p99 ${g.p99TtftVsBestOther.toFixed(2)}× the best other policy's (goal ≤ 0.80): ${verdict(g.p99TtftVsBestOther <= 0.8)}`,
    `${label}, ${g.scenario}: ${floorLine({ mustLoadShare: g.mustLoadShare, slots: ENGINES * MAX_LORAS, floorMs: g.p99TtftFloorMs, floorVsBestOther: g.p99TtftFloorVsBestOther, quickest: "the quickest first token of a request that swapped, on an idle engine" })}`,
    `${label}, ${g.scenario}: req/s ${g.rpsVsBestOther.toFixed(2)}× the best other's (goal: no loss, ≥ 0.98): ${verdict(g.rpsVsBestOther >= 0.98)}; errors ${g.errors} (goal 0): ${verdict(g.errors === 0)}`,
    ...(g.placement !== undefined
      ? [
          `${label}, ${g.scenario}, diatonic+placement (for comparison): swaps ${g.placement.swapsVsLoraAffinity.toFixed(2)}× lora-affinity's, TTFT p99 ${g.placement.p99TtftVsBestOther.toFixed(2)}× the best other's, errors ${g.placement.errors}`,
        ]
      : []),
  ]);
}

/** The floor line of a simulated load, and MIN's loads against lora-affinity's swaps. */
function simulatedFloor(slots: number, scenario: Simulation["scenarios"][number]): string {
  const affinity = scenario.policies.find((p) => p.policy === "lora-affinity");
  const requests = scenario.policies[0]?.requests ?? 1;
  const line = floorLine({
    mustLoadShare: scenario.fewestLoads / requests,
    slots,
    floorMs: scenario.p99TtftFloorMs,
    floorVsBestOther: scenario.p99TtftFloorMs / bestOtherP99(scenario.policies),
    quickest: "a swap, then the shortest prompt",
  });
  const affinitySwaps = Math.max(1, affinity?.swaps ?? 1);
  return `${line}; MIN is ${(scenario.fewestLoads / affinitySwaps).toFixed(2)}× lora-affinity's swaps, a fixed split over LRU slots ${(scenario.fixedSplitLoads / affinitySwaps).toFixed(2)}×`;
}

async function main(): Promise<void> {
  const began = performance.now();
  console.error(
    `bench:routing: ${ENGINES} engines × --max-loras ${MAX_LORAS}, --parallel ${PARALLEL}; ${ADAPTERS} adapters, Zipf ${ZIPF_S}; ${REQUESTS} requests per run${QUICK ? " (BENCH_QUICK)" : ""}`,
  );
  const plain = await runConfiguration("engine swap", 0);
  const emulated = await runConfiguration(`emulated ${EMULATED_LOAD_MS} ms LoRA load`, EMULATED_LOAD_MS);
  console.log("");
  for (const line of [...goalLines("engine swap", plain.goals), ...goalLines(`emulated ${EMULATED_LOAD_MS} ms load`, emulated.goals)])
    console.log(line);
  // Calibrated from this run: the engine's swap time, and a request's time on a warm slot at low load.
  const warmService = plain.scenarios[0]?.policies.find((p) => p.policy === "diatonic")?.p50E2eMs ?? plain.swap.warmTtftMs;
  const simulation = SIMULATE ? simulate({ swapMs: plain.swap.swapMs, serviceMs: warmService, quick: QUICK }) : undefined;
  if (simulation !== undefined)
    for (const scenario of simulation.scenarios)
      console.log(
        `\n${table(`simulated ${simulation.replicas} replicas × ${simulation.adapters} adapters, ${scenario.name} load (swap ${simulation.calibration.swapMs.toFixed(1)} ms, service ${simulation.calibration.serviceMs.toFixed(1)} ms)`, scenario.policies)}\n${simulatedFloor(simulation.replicas * simulation.calibration.slots, scenario)}\npolicy's own time choosing (this host's CPU): ${scenario.policies.map((p) => `${p.policy} ${p.policyMeanUs?.toFixed(1) ?? "?"} µs a request, longest ${p.policyMaxMs?.toFixed(1) ?? "?"} ms`).join("; ")}`,
      );
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
    placement: PLACEMENT ? { agents: true, minReplicas: 2, publishMs: 2000, agentGraceMs: PLACEMENT_GRACE_MS } : false,
    quick: QUICK,
    swap: plain.swap,
    capacityRps: plain.capacityRps,
    scenarios: plain.scenarios,
    goals: plain.goals,
    // The same, labelled apart: engines run with --emulate-lora-load-ms (a GPU's LoRA load, emulated).
    emulatedLoad: {
      emulatedLoadMs: EMULATED_LOAD_MS,
      swap: emulated.swap,
      capacityRps: emulated.capacityRps,
      scenarios: emulated.scenarios,
      goals: emulated.goals,
    },
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
