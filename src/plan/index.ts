import { servedLoras, upstreamModelFor } from "../render/engine.ts";
import type { RequiredSecret } from "../render/context.ts";
import { gib, loraHostCache, type LoraHostCache } from "../spec/lora-cache.ts";
import { adapterRoute } from "../spec/rules.ts";
import { validateObjects } from "../validate/index.ts";
import { environmentFromSpec } from "../validate/from-spec.ts";
import { Inventory } from "../validate/inventory.ts";
import { placementFor } from "../validate/rules/gpu.ts";
import type { Finding } from "../validate/types.ts";
import type { Placement } from "./placement.ts";

export interface AdapterPlan {
  readonly name: string;
  readonly route: string;
  readonly loraRank: number | null;
  /** `shared pool of N` (LoRA slots of the shared engine), `dedicated`, or `base model` (no LoRA). */
  readonly slot: string;
  readonly upstreamModel: string;
  readonly rag: string | null;
}

export interface PlanReport {
  readonly platform: string;
  readonly environment: string;
  readonly engine: string;
  readonly placement: Placement | null;
  readonly adapters: readonly AdapterPlan[];
  readonly secrets: readonly RequiredSecret[];
  /** The shared vLLM engine's LoRA cache in host memory, per replica (null for llama.cpp). */
  readonly loraHostCache: LoraHostCache | null;
  /** Errors and warnings from validate (GPU fit and everything else). */
  readonly findings: readonly Finding[];
}

/** Renders, validates and lays the GPU pods onto the declared GPUs; `shown` is the file as the user named it. */
export function planPlatform(file: string, environment: string, cwd?: string, shown?: string): PlanReport {
  const { objects, env, platform } = environmentFromSpec(file, environment, cwd, shown);
  const validation = validateObjects(objects, env);
  const spec = platform.spec;
  const engine = spec.model.engine;
  const loras = new Set(servedLoras(spec).map((a) => a.name));
  const placement = placementFor({ inventory: new Inventory(objects), env }) ?? null;
  return {
    platform: platform.name,
    environment: platform.environment,
    engine:
      engine.kind === "vllm"
        ? `vLLM ${engine.image}, ${engine.maxLoras} LoRA slots of rank ≤ ${engine.maxLoraRank}, ${engine.migProfile !== undefined ? `MIG ${engine.migProfile}` : `${engine.gpuSlices} GPU slice(s)`} × ${engine.replicas}`
        : `llama.cpp ${engine.image} on CPU, ${engine.parallel} parallel sequences`,
    placement,
    adapters: spec.adapters.map((adapter) => ({
      name: adapter.name,
      route: adapterRoute(adapter),
      loraRank: loras.has(adapter.name) ? (adapter.lora?.rank ?? null) : null,
      slot: !loras.has(adapter.name)
        ? "base model"
        : adapter.serving === "dedicated"
          ? `dedicated engine${adapter.dedicated.migProfile !== undefined ? ` (MIG ${adapter.dedicated.migProfile})` : ""}`
          : engine.kind === "vllm"
            ? `shared pool of ${engine.maxLoras}`
            : "llama.cpp LoRA",
      upstreamModel: upstreamModelFor(spec, adapter),
      rag: adapter.rag ? `${adapter.rag.collection} (top ${adapter.rag.topK}, ${adapter.rag.mode})` : null,
    })),
    secrets: env.requiredSecrets ?? [],
    loraHostCache: loraHostCache(spec) ?? null,
    findings: validation.findings.filter((f) => f.severity !== "info"),
  };
}

function table(rows: readonly (readonly string[])[]): string {
  const widths = rows[0]?.map((_, i) => Math.max(...rows.map((r) => (r[i] ?? "").length))) ?? [];
  return rows
    .map((r) =>
      r
        .map((cell, i) => cell.padEnd(widths[i] ?? 0))
        .join("  ")
        .trimEnd(),
    )
    .join("\n");
}

export function formatPlan(plan: PlanReport): string {
  const out: string[] = [`plan for ${plan.platform} (${plan.environment}): ${plan.engine}`, ""];
  const placement = plan.placement;
  if (placement) {
    out.push(`GPUs: ${placement.requestedSlices} of ${placement.totalSlices} slices requested`);
    const rows: string[][] = [["node", "gpu", "model", "memory", "slices", "pod", "needs", "gets", "fits"]];
    for (const use of placement.devices) {
      const base = [
        use.device.node,
        String(use.device.index),
        use.device.model,
        `${use.device.memoryGiB} GiB`,
        `${use.usedSlices}/${use.device.slices}`,
      ];
      if (use.pods.length === 0) rows.push([...base, "(free)", "", "", ""]);
      use.pods.forEach((p, i) => {
        const cells = i === 0 ? base : ["", "", "", "", ""];
        rows.push([
          ...cells,
          p.pod.name,
          p.pod.vllm ? `${p.pod.vllm.estimate.totalGiB} GiB` : "-",
          p.pod.vllm ? `${p.claimedGiB} GiB` : "-",
          p.fits ? "yes" : "NO",
        ]);
      });
    }
    out.push(table(rows));
    for (const p of placement.pending) out.push(`PENDING ${p.pod.name}: ${p.reason}`);
    const estimate = placement.devices.flatMap((u) => u.pods).find((p) => p.pod.vllm)?.pod.vllm;
    if (estimate) {
      const e = estimate.estimate;
      const tp = estimate.settings.tensorParallel;
      out.push(
        `VRAM per engine replica${tp > 1 ? `, on each of its ${tp} GPUs (tensor parallel)` : ""}: weights ${e.weightsGiB} + LoRA slots ${e.loraGiB} + KV cache ${e.kvCacheGiB} (${estimate.settings.maxModelLen} tokens × ${(e.kvBytesPerToken / 1024).toFixed(0)} KiB) + overhead ${e.overheadGiB} = ${e.totalGiB} GiB`,
      );
    }
  }
  if (!placement) out.push("GPUs: none declared for this environment (CPU engine, or gpu.nodes empty)");
  const cache = plan.loraHostCache;
  if (cache !== null) {
    const held = Math.min(cache.adapters, cache.capacity);
    const spread = `${cache.adapters} shared adapter(s), ${cache.copies} cop${cache.copies === 1 ? "y" : "ies"} each over ${cache.replicas} replica(s): ${cache.places} of ${cache.room} places`;
    out.push(
      `host memory per engine replica: LoRA cache of ${cache.capacity} (--max-cpu-loras); ${spread}${cache.places > cache.room ? " (swaps past them read from disk)" : ""}; the ${held} largest take ${gib(cache.bytes)} at their ranks${cache.limitBytes !== undefined ? `, beside vLLM's own, within the ${gib(cache.limitBytes)} limit` : ""}`,
    );
  }
  out.push("", "adapters:");
  out.push(
    table([
      ["name", "route", "LoRA rank", "slot", "upstream model", "RAG"],
      ...plan.adapters.map((a) => [a.name, a.route, a.loraRank === null ? "-" : String(a.loraRank), a.slot, a.upstreamModel, a.rag ?? "-"]),
    ]),
  );
  out.push("", "secrets to create before apply:");
  out.push(table([["namespace", "name", "key", "purpose"], ...plan.secrets.map((s) => [s.namespace, s.name, s.key, s.purpose])]));
  // Errors, and the warnings about GPUs and about the spec itself (the rest is validate's to show).
  const problems = plan.findings.filter((f) => f.severity === "error" || f.ruleId.startsWith("gpu/") || f.ruleId.startsWith("spec/"));
  if (problems.length > 0) {
    out.push("", "does not fit / needs attention:");
    for (const f of problems)
      out.push(`  ${f.severity} ${f.ruleId} ${f.resource}${f.file ? ` (${f.file})` : ""}: ${f.message}\n    fix: ${f.fix}`);
  }
  return `${out.join("\n")}\n`;
}
