import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { readFileSync } from "node:fs";
import { loadPlatform } from "../../src/spec/load.ts";
import { applyOverlay, originOf } from "../../src/spec/overlay.ts";
import { applyPatch, diffJson } from "../../src/write/json-patch.ts";

describe("environment overlays", () => {
  it("merge objects, remove keys set to null, and merge adapters by name", () => {
    const base = { gateway: { replicas: 2, auth: "required" }, adapters: [{ name: "a", lora: { rank: 8 } }, { name: "b" }] };
    const overlay = { gateway: { replicas: 3 }, adapters: [{ name: "b", systemPrompt: "hi" }, { name: "c" }, { name: "a", lora: null }] };
    const merged = applyOverlay(base, ["spec"], overlay, ["environments", "local"]);
    assert.deepEqual(merged.value, {
      gateway: { replicas: 3, auth: "required" },
      adapters: [{ name: "a" }, { name: "b", systemPrompt: "hi" }, { name: "c" }],
    });
    assert.deepEqual(originOf(merged, ["gateway", "replicas"]), ["environments", "local", "gateway", "replicas"]);
    assert.deepEqual(originOf(merged, ["gateway", "auth"]), ["spec", "gateway", "auth"]);
    assert.deepEqual(originOf(merged, ["adapters", 1, "systemPrompt"]), ["environments", "local", "adapters", 0, "systemPrompt"]);
    assert.deepEqual(originOf(merged, ["adapters", 2, "name"]), ["environments", "local", "adapters", 1, "name"]);
  });

  it("replace an object whose kind or mode changes, so the other form's fields do not leak", () => {
    const base = { engine: { kind: "vllm", maxLoras: 4 }, sharing: { mode: "timeSlicing", replicas: 4 } };
    const merged = applyOverlay(base, ["spec"], { engine: { kind: "llamacpp", parallel: 2 }, sharing: { mode: "none" } }, [
      "environments",
      "local",
    ]);
    assert.deepEqual(merged.value, { engine: { kind: "llamacpp", parallel: 2 }, sharing: { mode: "none" } });
  });

  it("replace scalar lists instead of merging them", () => {
    const merged = applyOverlay({ args: ["a", "b"] }, ["spec"], { args: ["c"] }, ["environments", "x"]);
    assert.deepEqual(merged.value, { args: ["c"] });
  });

  it("replace every list but adapters, named items and an empty list included", () => {
    const base = { gpu: { nodes: [{ name: "a", gpus: [{ model: "L4" }] }, { name: "b" }] } };
    const replaced = applyOverlay(base, ["spec"], { gpu: { nodes: [{ name: "c" }] } }, ["environments", "x"]);
    assert.deepEqual(replaced.value, { gpu: { nodes: [{ name: "c" }] } });
    const emptied = applyOverlay(base, ["spec"], { gpu: { nodes: [] } }, ["environments", "x"]);
    assert.deepEqual(emptied.value, { gpu: { nodes: [] } });
  });

  it("place a key the overlay's replacement lacks at the overlay, not at the base's line it no longer comes from", () => {
    const base = { gpu: { nodes: [{ name: "a", gpus: [{ model: "L4", memoryGiB: 24 }] }] }, model: { source: { huggingFace: {} } } };
    const merged = applyOverlay(base, ["spec"], { gpu: { nodes: [{ gpus: [{ model: "L4" }] }] }, model: { source: null } }, [
      "environments",
      "x",
    ]);
    assert.deepEqual(originOf(merged, ["gpu", "nodes", 0, "name"]), ["environments", "x", "gpu", "nodes", 0, "name"]);
    assert.deepEqual(originOf(merged, ["gpu", "nodes", 0, "gpus", 0, "memoryGiB"]), [
      "environments",
      "x",
      "gpu",
      "nodes",
      0,
      "gpus",
      0,
      "memoryGiB",
    ]);
    assert.deepEqual(originOf(merged, ["model", "source"]), ["environments", "x", "model", "source"]);
  });

  it("keep merging adapters by name when an entry has no name: it is appended, not a replacement of the list", () => {
    const base = { adapters: [{ name: "a", systemPrompt: "A" }, { name: "b" }] };
    const merged = applyOverlay(base, ["spec"], { adapters: [{ name: "b", systemPrompt: "B" }, { systemPrompt: "?" }] }, [
      "environments",
      "x",
    ]);
    assert.deepEqual(merged.value, {
      adapters: [{ name: "a", systemPrompt: "A" }, { name: "b", systemPrompt: "B" }, { systemPrompt: "?" }],
    });
    assert.deepEqual(originOf(merged, ["adapters", 2, "name"]), ["environments", "x", "adapters", 1, "name"]);
  });
});

describe("environment overlays in a spec", () => {
  it("gpu.nodes: [] in an environment declares no GPU nodes (the production example's local)", () => {
    const local = loadPlatform({ file: "examples/production/platform.yaml", environment: "local" });
    assert.deepEqual(local.spec.gpu.nodes, []);
    const production = loadPlatform({ file: "examples/production/platform.yaml", environment: "production" });
    assert.equal(production.spec.gpu.nodes.length, 3);
  });

  it("an environment's gpu.nodes replaces the base's: a base node it does not list is gone", () => {
    const text = readFileSync("examples/production/platform.yaml", "utf8").replace(
      "  staging:\n",
      "  staging:\n    gpu:\n      nodes: [{ name: gpu-l4-9, gpus: [{ model: NVIDIA L4, memoryGiB: 24 }] }]\n",
    );
    assert.ok(text.includes("gpu-l4-9"), "the production example's staging moved");
    const staging = loadPlatform({ file: "platform.yaml", environment: "staging", text });
    assert.deepEqual(
      staging.spec.gpu.nodes.map((node) => node.name),
      ["gpu-l4-9"],
    );
  });
});

describe("JSON patches between renders", () => {
  it("turn one object into the other", () => {
    const pairs: [unknown, unknown][] = [
      [
        { a: 1, b: { c: [1, 2] }, d: "x" },
        { a: 2, b: { c: [1], e: true }, f: null },
      ],
      [{ "x/y": { "m~n": 1 } }, { "x/y": { "m~n": 2 } }],
      [{ spec: { replicas: 1 } }, { spec: {} }],
    ];
    for (const [from, to] of pairs) assert.deepEqual(applyPatch(from, diffJson(from, to)), to);
    assert.deepEqual(diffJson({ a: 1 }, { a: 1 }), []);
  });
});
