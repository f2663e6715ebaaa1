// npm run bench:render — render + schema check of 10, 100 and 1000 adapters, and kubectl kustomize
// building the written tree, side by side. Prints a table and writes bench/results/render.json.
import { execFileSync, spawnSync } from "node:child_process";
import { mkdirSync, mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { cpus, tmpdir } from "node:os";
import { join } from "node:path";
import { parseDocument } from "yaml";

const SIZES = [10, 100, 1000];
const ENV = "production";
const dir = mkdtempSync(join(tmpdir(), "diatonic-bench-"));

function specWith(adapters: number): string {
  const doc = parseDocument(readFileSync("examples/lab/platform.yaml", "utf8"));
  const list = Array.from({ length: adapters }, (_, i) => ({
    name: `adapter-${String(i).padStart(4, "0")}`,
    lora: { source: { path: `adapter-${i}` }, rank: 8 },
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

function kustomize(path: string): { ms: number; peakRssMiB: number } {
  const started = performance.now();
  const run = spawnSync("/usr/bin/time", ["-f", "%M", "kubectl", "kustomize", path], { encoding: "utf8", maxBuffer: 512 * 1024 * 1024 });
  const ms = performance.now() - started;
  if (run.status !== 0) throw new Error(`kubectl kustomize failed: ${run.stderr}`);
  const kb = Number(run.stderr.trim().split("\n").pop());
  return { ms, peakRssMiB: kb / 1024 };
}

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
  kustomizePeakRssMiB: number;
}

const rows: Row[] = [];
for (const adapters of SIZES) {
  const file = specWith(adapters);
  const out = join(dir, `out-${adapters}`);
  const worker = spawnSync(process.execPath, ["--import", "tsx", "bench/render-worker.ts", file, ENV, out, adapters >= 1000 ? "3" : "5"], { encoding: "utf8" });
  if (worker.status !== 0) throw new Error(worker.stderr);
  const measured = JSON.parse(worker.stdout) as { objects: number; files: number; renderMs: number; renderValidateMs: number; findings: number; treeMs: number; peakRssMiB: number };
  const k = kustomize(join(out, "overlays", ENV));
  rows.push({ adapters, ...measured, renderMsPerAdapter: measured.renderMs / adapters, kustomizeMs: k.ms, kustomizePeakRssMiB: k.peakRssMiB });
}

const kubectlVersion = execFileSync("kubectl", ["version", "--client", "-o", "json"], { encoding: "utf8" });
const fmt = (n: number, digits = 1) => n.toFixed(digits).padStart(9);
console.log(`render + schema check (${ENV} overlay of the lab example), median of repeated runs in one warm process`);
console.log("adapters  objects  files   render ms  ms/adapter  +validate ms  tree+write ms  peak RSS MiB | kustomize ms  kustomize RSS MiB");
for (const r of rows) {
  console.log(
    `${String(r.adapters).padStart(8)} ${String(r.objects).padStart(8)} ${String(r.files).padStart(6)} ${fmt(r.renderMs)}   ${fmt(r.renderMsPerAdapter, 3)} ${fmt(r.renderValidateMs)}    ${fmt(r.treeMs)}      ${fmt(r.peakRssMiB)}    | ${fmt(r.kustomizeMs)}    ${fmt(r.kustomizePeakRssMiB)}`,
  );
}
const at100 = rows.find((r) => r.adapters === 100);
const growth = (rows[2]?.renderMs ?? 0) / (rows[1]?.renderMs ?? 1);
const validateGrowth = (rows[2]?.renderValidateMs ?? 0) / (rows[1]?.renderValidateMs ?? 1);
console.log(`goal: 100 adapters render + schema check < 1000 ms: ${at100 && at100.renderMs < 1000 ? "met" : "NOT met"} (${at100?.renderMs.toFixed(1)} ms); growth 100→1000 adapters: ×${growth.toFixed(1)} (linear = ×10)`);
console.log(`goal: 100 adapters render + validate < 1000 ms: ${at100 && at100.renderValidateMs < 1000 ? "met" : "NOT met"} (${at100?.renderValidateMs.toFixed(1)} ms); growth 100→1000 adapters: ×${validateGrowth.toFixed(1)}`);
mkdirSync("bench/results", { recursive: true });
writeFileSync(
  "bench/results/render.json",
  `${JSON.stringify({ benchmark: "render", environment: ENV, node: process.version, cpus: cpus().length, cpu: cpus()[0]?.model, kubectl: (JSON.parse(kubectlVersion) as { clientVersion: { gitVersion: string } }).clientVersion.gitVersion, date: new Date().toISOString(), rows }, null, 2)}\n`,
);
console.log("wrote bench/results/render.json");
