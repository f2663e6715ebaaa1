import assert from "node:assert/strict";
import { describe, it } from "node:test";
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
