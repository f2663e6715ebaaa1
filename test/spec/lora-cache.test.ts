import assert from "node:assert/strict";
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, it } from "node:test";
import { estimateVram } from "../../src/plan/vram.ts";
import { LLAMA3_ARCHITECTURES } from "../../src/spec/architectures.ts";
import { loadPlatform } from "../../src/spec/load.ts";
import { loraBytes, loraHostCache } from "../../src/spec/lora-cache.ts";
import { quantityValue } from "../../src/spec/schema-common.ts";
import { runCli } from "../support/cli.ts";
import { LAB_EXAMPLE, labSpec } from "../support/lab-spec.ts";

const EXAMPLE = LAB_EXAMPLE;
const dir = mkdtempSync(join(tmpdir(), "diatonic-lora-cache-"));

/** The lab with `count` more LoRA adapters of `rank` on the shared engine, `engine` lines added to its vLLM engine, and `replicas` of it. */
function lab(name: string, count: number, rank: number, engine = "", replicas = 1): string {
  const file = join(dir, `${name}.yaml`);
  writeFileSync(file, labSpec({ adapters: count, rank, engine, replicas }));
  return file;
}

const warningsOf = (file: string) =>
  loadPlatform({ file, environment: "production" }).warnings.map((w) => `${w.path}: ${w.message} | ${w.fix}`);

describe("the vLLM engine's LoRA cache in host memory", () => {
  it("sizes a LoRA as the VRAM plan sizes a slot: Llama 3 8B at rank 16 is 80 MiB", () => {
    const arch = LLAMA3_ARCHITECTURES.get(8);
    assert.ok(arch);
    // A and B of q, k, v, o (4096 → 4096 / 1024), gate, up (4096 → 14336) and down, 32 layers, 16-bit.
    assert.equal(loraBytes(arch, 16), 16 * (4096 * 4 + (4096 + 1024) * 2 + (4096 + 14336) * 3) * 32 * 2);
    assert.equal(loraBytes(arch, 16), 80 * 1024 ** 2);
    const settings = {
      gpuMemoryUtilization: 0.9,
      maxModelLen: 8192,
      tensorParallel: 1,
      maxLoras: 4,
      maxLoraRank: 16,
      loraEnabled: true,
      quantization: "none",
      dtype: "auto",
    };
    assert.equal(estimateVram(arch, settings).loraGiB, Math.round(((4 * loraBytes(arch, 16)) / 1024 ** 3) * 100) / 100);
    assert.deepEqual(
      ["32Gi", "500Mi", "1.5G", "2", "250m", "16Gix"].map((q) => quantityValue(q)),
      [32 * 1024 ** 3, 500 * 1024 ** 2, 1.5e9, 2, 0.25, undefined],
    );
  });

  it("counts the shared engine's LoRAs at their own ranks, the largest first where the cache holds fewer", () => {
    const cache = loraHostCache(loadPlatform({ file: lab("ranks", 70, 8, "      maxCpuLoras: 66\n"), environment: "production" }).spec);
    assert.ok(cache);
    // The lab's five (ranks 16, 16, 8, 16, 8) and 70 of rank 8: the cache holds the three of rank 16 and 63 of rank 8.
    assert.equal(cache.adapters, 75);
    assert.equal(cache.capacity, 66);
    const mib = 1024 ** 2;
    assert.equal(cache.bytes, 3 * 80 * mib + 63 * 40 * mib);
    assert.equal(cache.allBytes, 3 * 80 * mib + 72 * 40 * mib);
    assert.equal(
      loraHostCache(loadPlatform({ file: EXAMPLE, environment: "local" }).spec),
      undefined,
      "llama.cpp keeps every LoRA it read",
    );
  });

  it("warns when the engine's replicas keep fewer adapters in host memory than placement puts on them, with the count and its memory as the fix", () => {
    const many = warningsOf(lab("many", 65, 16));
    const warning = many.find((w) => w.startsWith("spec.model.engine.maxCpuLoras"));
    assert.ok(warning, many.join("\n"));
    assert.match(
      warning,
      /70 LoRA adapters share the engine, each kept loaded on 1 of its 1 replica\(s\): 70 places, but each replica keeps 64 in host memory \(maxCpuLoras\), 64 in all/,
    );
    assert.match(warning, /reads a LoRA's weights from disk again on each swap/);
    assert.match(
      warning,
      /set model\.engine\.maxCpuLoras to 70 \(5\.39 GiB of host memory per replica at their ranks\), or run more engine replicas/,
    );
    const none = (w: string) => !w.includes("(maxCpuLoras)");
    assert.ok(warningsOf(lab("enough", 65, 16, "      maxCpuLoras: 70\n")).every(none));
    assert.ok(warningsOf(lab("few", 59, 16)).every(none), "64 adapters fit the default");
    // Three replicas with two copies of each adapter: 140 places in 3 × 64, spread by placement.
    assert.ok(warningsOf(lab("spread", 65, 16, "", 3)).every(none));
    const two = warningsOf(lab("two", 65, 16, "", 2)).find((w) => w.startsWith("spec.model.engine.maxCpuLoras")) ?? "";
    assert.match(two, /each kept loaded on 2 of its 2 replica\(s\): 140 places, .* 128 in all/);
    assert.match(two, /set model\.engine\.maxCpuLoras to 70 /);
  });

  it("warns past half the engine's memory limit, and refuses a cache past the limit, naming the limit and both fixes", async () => {
    // 65 more of rank 16 with a cache of 70: 5.39 GiB per replica.
    const half = warningsOf(lab("half", 65, 16, "      maxCpuLoras: 70\n      resources: { limits: { memory: 8Gi } }\n"));
    const warning = half.find((w) => w.startsWith("spec.model.engine.resources.limits.memory"));
    assert.ok(warning, half.join("\n"));
    assert.match(
      warning,
      /the 70 LoRAs an engine replica keeps in host memory take 5\.39 GiB at their ranks, more than half its memory limit 8Gi/,
    );
    assert.match(
      warning,
      /raise model\.engine\.resources\.limits\.memory to at least 10\.78 GiB, or set model\.engine\.maxCpuLoras to 51 /,
    );
    assert.ok(
      !warningsOf(lab("roomy", 65, 16, "      maxCpuLoras: 70\n      resources: { limits: { memory: 11Gi } }\n")).some((w) =>
        w.includes("limits.memory"),
      ),
    );
    const file = lab("over", 65, 16, "      maxCpuLoras: 70\n      resources: { limits: { memory: 4Gi } }\n");
    const run = await runCli(["plan", "--spec", file, "--env", "production"], dir);
    assert.equal(run.code, 2, run.stdout + run.stderr);
    assert.match(
      run.stderr,
      /spec\.model\.engine\.resources\.limits\.memory: the 70 LoRAs an engine replica keeps in host memory take 5\.39 GiB at their ranks, past its memory limit 4Gi/,
    );
    assert.match(
      run.stderr,
      /fix: raise model\.engine\.resources\.limits\.memory to at least 10\.78 GiB, or set model\.engine\.maxCpuLoras to 25 /,
    );
  });

  it("plan shows the cache, the places placement needs in it, and what the adapters take", async () => {
    const run = await runCli(["plan", "--spec", lab("plan", 65, 16), "--env", "production"], dir);
    assert.equal(run.code, 0, run.stderr);
    assert.match(
      run.stdout,
      /^host memory per engine replica: LoRA cache of 64 \(--max-cpu-loras\); 70 shared adapter\(s\), 1 copy each over 1 replica\(s\): 70 of 64 places \(swaps past them read from disk\); the 64 largest take 5\.00 GiB at their ranks, beside vLLM's own, within the 32\.00 GiB limit$/m,
    );
    const json = await runCli(["plan", "--spec", lab("plan", 65, 16), "--env", "production", "--format", "json"], dir);
    assert.equal(json.code, 0, json.stderr);
    const report = JSON.parse(json.stdout) as { loraHostCache: { capacity: number; adapters: number; places: number; room: number } };
    assert.deepEqual(
      [report.loraHostCache.capacity, report.loraHostCache.adapters, report.loraHostCache.places, report.loraHostCache.room],
      [64, 70, 70, 64],
    );
    const spread = await runCli(["plan", "--spec", lab("plan-spread", 65, 16, "", 3), "--env", "production"], dir);
    assert.match(
      spread.stdout,
      /; 70 shared adapter\(s\), 2 copies each over 3 replica\(s\): 140 of 192 places; the 64 largest take 5\.00 GiB/,
    );
  });
});
