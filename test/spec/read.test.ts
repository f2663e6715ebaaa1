// The spec is read by js-yaml (fast, for every cold command) and falls back to the `yaml` package
// (positions, errors, anchors). Both must read the same values, or which parser ran would change
// what a spec means.
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { describe, it } from "node:test";
import { parseDocument } from "yaml";
import { loadPlatform } from "../../src/spec/load.ts";
import { fromYaml } from "../../src/write/yaml.ts";

/** Scalars where YAML 1.1, YAML 1.2 and go-yaml disagree, and other shapes a spec may use. */
const SNIPPETS = [
  "a: n",
  "a: yes",
  "a: on",
  "a: 0o17",
  "a: 0x1f",
  "a: 017",
  "a: 1e3",
  "a: 1.5e3",
  "a: .inf",
  "a: -.Inf",
  "a: .nan",
  "a: ~",
  "a: Null",
  "a: TRUE",
  "a: 2024-01-01",
  "a: 12:30",
  "a: 1_000",
  "a: +12",
  "a: 0.",
  "a: '1'",
  "a: |\n  x\n  y\n",
  "a: >-\n  x\n  y\n",
  "1: a",
  "a:\n- 1\n- b",
  "a: !!str 1",
  "a: [1, 'x', {b: c}]",
  "? a\n: b",
  "a: x # c",
  "a: x#c",
  "a:",
  "a: 0b101",
];

const yamlPackage = (text: string): unknown => {
  const doc = parseDocument(text, { uniqueKeys: true });
  assert.deepEqual(doc.errors, [], text);
  return doc.toJS();
};

describe("spec reading: js-yaml's fast path and the yaml package agree", () => {
  it("on every scalar form and shape listed", () => {
    for (const text of SNIPPETS) assert.deepEqual(fromYaml(text), yamlPackage(text), JSON.stringify(text));
  });

  it("on the example specs", () => {
    for (const file of ["examples/lab/platform.yaml", "examples/production/platform.yaml"]) {
      const text = readFileSync(file, "utf8");
      assert.deepEqual(fromYaml(text), yamlPackage(text), file);
    }
  });

  it("both refuse duplicate keys and a second document (the yaml package then reports where)", () => {
    for (const text of ["a: 1\na: 2", "a: 1\n---\nb: 2"]) {
      assert.throws(() => fromYaml(text), JSON.stringify(text));
      assert.notEqual(parseDocument(text, { uniqueKeys: true }).errors.length, 0, JSON.stringify(text));
    }
  });

  it("a spec with anchors and aliases (the yaml package's path) means what it means written out", () => {
    const text = readFileSync("examples/lab/platform.yaml", "utf8");
    const [first, second] = ["sampling: { temperature: 0.2, maxTokens: 1024 }", "sampling: { temperature: 0.3, maxTokens: 1024 }"];
    assert.ok(text.includes(first) && text.includes(second), "the lab example's sampling lines moved");
    const written = text.replace(second, first);
    const aliased = text.replace(first, "sampling: &same { temperature: 0.2, maxTokens: 1024 }").replace(second, "sampling: *same");
    assert.deepEqual(
      loadPlatform({ file: "platform.yaml", environment: "local", text: aliased }),
      loadPlatform({ file: "platform.yaml", environment: "local", text: written }),
    );
  });
});
