// npm run bench:render — render + schema check of 10, 100 and 1000 adapters in one warm process; and
// what a user feels, each command a fresh process (cold): `diatonic render --out`, `diatonic validate`
// of the written overlay, and `kubectl kustomize` of the same overlay, side by side (wall and CPU
// time, median of 3). The cold rounds run the CLI as a user's second run does (V8's code cache written
// by the first, bin/code-cache.mjs); beside them, the same commands without it (DIATONIC_CODE_CACHE=0)
// and the first run after a build. Prints a table and writes bench/results/render.json.
import { execFileSync, spawnSync } from "node:child_process";
import { existsSync, mkdirSync, mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { cpus, loadavg, tmpdir } from "node:os";
import { join } from "node:path";
import { parseDocument } from "yaml";
import { BUNDLE_DIR } from "../bin/cli-build.mjs";
import { removeCodeCaches } from "../bin/code-cache.mjs";
import { kubectlPath } from "../scripts/cluster/build.ts";
import { median } from "./stats.ts";

const SIZES = [10, 100, 1000];
const ENV = "production";
const dir = mkdtempSync(join(tmpdir(), "diatonic-bench-"));

function specWith(adapters: number): string {
  const doc = parseDocument(readFileSync("examples/lab/platform.yaml", "utf8"));
  const list = Array.from({ length: adapters }, (_, i) => ({
    name: `adapter-${String(i).padStart(4, "0")}`,
    lora: { source: { huggingFace: { repo: `acme/adapter-${i}`, revision: "0123456789abcdef0123456789abcdef01234567" } }, rank: 8 },
    systemPrompt: `You are adapter ${i}.`,
    sampling: { temperature: 0.2 },
    ...(i % 5 === 0 ? { rag: { collection: `docs-${i}`, topK: 4 } } : {}),
  }));
  doc.setIn(["spec", "adapters"], doc.createNode(list));
  doc.deleteIn(["environments", "local", "adapters"]);
  const file = join(dir, `platform-${adapters}.yaml`);
  writeFileSync(file, doc.toString());
  return file;
}

// The test cluster's kubectl when it was built (npm run cluster:build), else the PATH's.
const KUBECTL = existsSync(kubectlPath()) ? kubectlPath() : "kubectl";

interface Cold {
  readonly ms: number;
  readonly cpuMs: number;
  readonly peakRssMiB: number;
}

/** One fresh process: wall time, CPU time (user + system: steadier than wall on a busy host), peak RSS. */
function cold(command: string, args: readonly string[], env: NodeJS.ProcessEnv = process.env): Cold {
  const started = performance.now();
  const run = spawnSync("/usr/bin/time", ["-f", "%U %S %M", command, ...args], { encoding: "utf8", maxBuffer: 512 * 1024 * 1024, env });
  const ms = performance.now() - started;
  if (run.status !== 0) throw new Error(`${command} ${args.join(" ")} failed: ${run.stderr}`);
  const [user = "0", system = "0", kb = "0"] = (run.stderr.trim().split("\n").pop() ?? "").split(" ");
  return { ms, cpuMs: (Number(user) + Number(system)) * 1000, peakRssMiB: Number(kb) / 1024 };
}

/** Rounds of the cold commands, each round kustomize, render --out and validate one after another (a busy moment hits all three). */
const coldRounds = (adapters: number) => Number(process.env["BENCH_COLD_ROUNDS"] ?? (adapters >= 1000 ? 3 : 7));

const CLI = ["bin/diatonic.js"];
/** The CLI without V8's code cache: every command from the ES module bundle (bin/code-cache.mjs). */
const NO_CODE_CACHE = { ...process.env, DIATONIC_CODE_CACHE: "0" };

interface Row {
  adapters: number;
  objects: number;
  files: number;
  renderMs: number;
  renderMsPerAdapter: number;
  renderValidateMs: number;
  findings: number;
  treeMs: number;
  peakRssMiB: number;
  kustomizeMs: number;
  kustomizeCpuMs: number;
  kustomizePeakRssMiB: number;
  /** Whole processes, cold: `diatonic render --out` and `diatonic validate DIR`, medians over the rounds. */
  coldRenderMs: number;
  coldRenderCpuMs: number;
  coldValidateMs: number;
  coldValidateCpuMs: number;
  /** render --out + validate, the median over the rounds of their sum. */
  coldBothMs: number;
  /** render --out + validate right after a build (no code cache yet: this run writes it), one round. */
  coldFirstRunMs: number;
  /** render --out + validate without the code cache (DIATONIC_CODE_CACHE=0: the ES module bundle), the median, and that ÷ kustomize. */
  coldNoCodeCacheMs: number;
  coldNoCodeCacheRatio: number;
  /** Of which starting: `render --help` + `validate --help` (Node, and each command's code loaded; no work), and that ÷ kustomize. */
  coldStartMs: number;
  coldStartRatio: number;
  coldRounds: number;
  /** (render --out + validate) ÷ kustomize, each round's own; the median, and the spread. */
  coldRatio: number;
  coldRatioMin: number;
  coldRatioMax: number;
  coldCpuRatio: number;
}

const rows: Row[] = [];
for (const adapters of SIZES) {
  const file = specWith(adapters);
  const out = join(dir, `out-${adapters}`);
  const worker = spawnSync(process.execPath, ["--import", "tsx", "bench/render-worker.ts", file, ENV, out, adapters >= 1000 ? "3" : "5"], {
    encoding: "utf8",
  });
  if (worker.status !== 0) throw new Error(worker.stderr);
  const measured = JSON.parse(worker.stdout) as {
    objects: number;
    files: number;
    renderMs: number;
    renderValidateMs: number;
    findings: number;
    treeMs: number;
    peakRssMiB: number;
  };
  const overlay = join(out, "overlays", ENV);
  const cliOut = join(dir, `cli-${adapters}`);
  const renderArgs = [...CLI, "render", "--spec", file, "--env", ENV, "--out", cliOut];
  const validateArgs = [...CLI, "validate", join(cliOut, "overlays", ENV)];
  // The first run after a build parses the whole CommonJS bundle and writes each command's code cache.
  removeCodeCaches(BUNDLE_DIR);
  const firstRunMs = cold(process.execPath, renderArgs).ms + cold(process.execPath, validateArgs).ms;
  const rounds = Array.from({ length: coldRounds(adapters) }, () => {
    const k = cold(KUBECTL, ["kustomize", overlay]);
    const r = cold(process.execPath, renderArgs);
    const v = cold(process.execPath, validateArgs);
    // The same two processes doing no work: Node started and each command's code loaded (--help loads it, then prints).
    const start = cold(process.execPath, [...CLI, "render", "--help"]).ms + cold(process.execPath, [...CLI, "validate", "--help"]).ms;
    // And both commands without the code cache, as ES modules: what the cache saves, side by side.
    const esm = cold(process.execPath, renderArgs, NO_CODE_CACHE).ms + cold(process.execPath, validateArgs, NO_CODE_CACHE).ms;
    return { k, r, v, start, esm, ratio: (r.ms + v.ms) / k.ms, cpuRatio: (r.cpuMs + v.cpuMs) / k.cpuMs };
  });
  const of = (pick: (round: (typeof rounds)[number]) => number) => median(rounds.map(pick));
  const ratios = rounds.map((round) => round.ratio);
  rows.push({
    adapters,
    ...measured,
    renderMsPerAdapter: measured.renderMs / adapters,
    kustomizeMs: of((round) => round.k.ms),
    kustomizeCpuMs: of((round) => round.k.cpuMs),
    kustomizePeakRssMiB: of((round) => round.k.peakRssMiB),
    coldRenderMs: of((round) => round.r.ms),
    coldRenderCpuMs: of((round) => round.r.cpuMs),
    coldValidateMs: of((round) => round.v.ms),
    coldValidateCpuMs: of((round) => round.v.cpuMs),
    coldBothMs: of((round) => round.r.ms + round.v.ms),
    coldStartMs: of((round) => round.start),
    coldStartRatio: of((round) => round.start / round.k.ms),
    coldFirstRunMs: firstRunMs,
    coldNoCodeCacheMs: of((round) => round.esm),
    coldNoCodeCacheRatio: of((round) => round.esm / round.k.ms),
    coldRounds: rounds.length,
    coldRatio: median(ratios),
    coldRatioMin: Math.min(...ratios),
    coldRatioMax: Math.max(...ratios),
    coldCpuRatio: of((round) => round.cpuRatio),
  });
}

const kubectlVersion = execFileSync(KUBECTL, ["version", "--client", "-o", "json"], { encoding: "utf8" });
const fmt = (n: number, digits = 1) => n.toFixed(digits).padStart(9);
console.log(`render + schema check (${ENV} overlay of the lab example), median of repeated runs in one warm process`);
console.log(
  "adapters  objects  files   render ms  ms/adapter  +validate ms  tree+write ms  peak RSS MiB | kustomize ms  kustomize RSS MiB",
);
for (const r of rows) {
  console.log(
    `${String(r.adapters).padStart(8)} ${String(r.objects).padStart(8)} ${String(r.files).padStart(6)} ${fmt(r.renderMs)}   ${fmt(r.renderMsPerAdapter, 3)} ${fmt(r.renderValidateMs)}    ${fmt(r.treeMs)}      ${fmt(r.peakRssMiB)}    | ${fmt(r.kustomizeMs)}    ${fmt(r.kustomizePeakRssMiB)}`,
  );
}
const at100 = rows.find((r) => r.adapters === 100);
const growth = (rows[2]?.renderMs ?? 0) / (rows[1]?.renderMs ?? 1);
const validateGrowth = (rows[2]?.renderValidateMs ?? 0) / (rows[1]?.renderValidateMs ?? 1);
console.log(
  `goal: 100 adapters render + schema check < 1000 ms: ${at100 && at100.renderMs < 1000 ? "met" : "NOT met"} (${at100?.renderMs.toFixed(1)} ms); growth 100→1000 adapters: ×${growth.toFixed(1)} (linear = ×10)`,
);
console.log(
  `goal: 100 adapters render + validate < 1000 ms: ${at100 && at100.renderValidateMs < 1000 ? "met" : "NOT met"} (${at100?.renderValidateMs.toFixed(1)} ms); growth 100→1000 adapters: ×${validateGrowth.toFixed(1)}`,
);
console.log("");
console.log(
  `cold, one fresh process per command (rounds of kubectl kustomize, render --out and validate one after another, medians; render --out writes over the tree of the round before; ${process.env.DIATONIC_USE_DIST === "0" ? "TypeScript sources through tsx" : "the compiled CLI when dist/ is current"}), wall / CPU ms`,
);
console.log(
  "adapters | rounds | render --out     | validate DIR     | both             | kubectl kustomize | both ÷ kustomize, each round's (wall: median, range; CPU)",
);
for (const r of rows) {
  console.log(
    `${String(r.adapters).padStart(8)} | ${String(r.coldRounds).padStart(6)} | ${fmt(r.coldRenderMs, 0)} /${fmt(r.coldRenderCpuMs, 0)} | ${fmt(r.coldValidateMs, 0)} /${fmt(r.coldValidateCpuMs, 0)} | ${fmt(r.coldBothMs, 0)} /${fmt(r.coldRenderCpuMs + r.coldValidateCpuMs, 0)} | ${fmt(r.kustomizeMs, 0)} /${fmt(r.kustomizeCpuMs, 0)}  | ×${r.coldRatio.toFixed(2)} (×${r.coldRatioMin.toFixed(2)}–${r.coldRatioMax.toFixed(2)}), ×${r.coldCpuRatio.toFixed(2)}`,
  );
}
const at1000 = rows.find((r) => r.adapters === 1000);
const coldRatio = at100?.coldRatio ?? Infinity;
const cold1000 = at1000?.coldBothMs ?? Infinity;
console.log(
  `goal: 100 adapters, render --out + validate within 1.5× of kubectl kustomize of the same tree: ${coldRatio <= 1.5 ? "met" : "NOT met"} (wall ×${coldRatio.toFixed(2)}, the median of ${at100?.coldRounds ?? 0} rounds, ×${at100?.coldRatioMin.toFixed(2)}–${at100?.coldRatioMax.toFixed(2)}; CPU ×${at100?.coldCpuRatio.toFixed(2)})`,
);
console.log(
  `of which starting the two processes (render --help + validate --help: Node, and each command's code loaded, no work): ${rows.map((r) => `${r.coldStartMs.toFixed(0)} ms = ×${r.coldStartRatio.toFixed(2)} of kustomize at ${r.adapters}`).join("; ")}`,
);
console.log(
  `without V8's code cache (DIATONIC_CODE_CACHE=0, the ES module bundle), median: ${rows.map((r) => `${r.coldNoCodeCacheMs.toFixed(0)} ms = ×${r.coldNoCodeCacheRatio.toFixed(2)} of kustomize at ${r.adapters}`).join("; ")}`,
);
console.log(
  `the first run after a build (it writes the code cache), one round: ${rows.map((r) => `${r.coldFirstRunMs.toFixed(0)} ms at ${r.adapters}`).join("; ")}`,
);
console.log(
  `goal: 1000 adapters, render --out + validate under 2 s: ${cold1000 < 2000 ? "met" : "NOT met"} (${(cold1000 / 1000).toFixed(2)} s wall, ${at1000 ? ((at1000.coldRenderCpuMs + at1000.coldValidateCpuMs) / 1000).toFixed(2) : "?"} s CPU)`,
);
mkdirSync("bench/results", { recursive: true });
writeFileSync(
  "bench/results/render.json",
  `${JSON.stringify({ benchmark: "render", environment: ENV, node: process.version, cpus: cpus().length, cpu: cpus()[0]?.model, kubectl: (JSON.parse(kubectlVersion) as { clientVersion: { gitVersion: string } }).clientVersion.gitVersion, date: new Date().toISOString(), loadAverage: loadavg(), goals: { coldRenderValidateWithin1_5xKustomize: coldRatio <= 1.5, cold1000Under2s: cold1000 < 2000 }, rows }, null, 2)}\n`,
);
console.log("wrote bench/results/render.json");
