// One measurement in a fresh process, so peak memory belongs to this N alone. Prints JSON.
import { buildEnvironment, buildTree } from "../src/render/build.ts";
import { environmentFromSpec } from "../src/validate/from-spec.ts";
import { validateObjects } from "../src/validate/index.ts";
import { writeTreeAtomically } from "../src/write/atomic.ts";

const [file, env, outDir, repeatText] = process.argv.slice(2);
if (!file || !env || !outDir) throw new Error("usage: render-worker FILE ENV OUTDIR [REPEAT]");
const repeat = Number(repeatText ?? "3");

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)] ?? 0;
}

// Warm-up: module loading and JIT are start-up cost, not render cost.
buildEnvironment({ file, environment: env });
const renderMs: number[] = [];
let objects = 0;
for (let i = 0; i < repeat; i++) {
  const started = performance.now();
  objects = buildEnvironment({ file, environment: env }).result.placed.length;
  renderMs.push(performance.now() - started);
}
const validateMs: number[] = [];
let findings = 0;
for (let i = 0; i < repeat; i++) {
  const started = performance.now();
  const { objects: rendered, env: context } = environmentFromSpec(file, env);
  findings = validateObjects(rendered, context).findings.length;
  validateMs.push(performance.now() - started);
}
const started = performance.now();
const tree = buildTree({ file, environment: env });
writeTreeAtomically(outDir, tree.files);
const treeMs = performance.now() - started;
process.stdout.write(
  JSON.stringify({
    objects,
    files: tree.files.size,
    renderMs: median(renderMs),
    renderValidateMs: median(validateMs),
    findings,
    treeMs,
    peakRssMiB: process.resourceUsage().maxRSS / 1024,
  }),
);
