// fromYaml reads the YAML toYaml writes a line at a time (src/write/yaml-read.ts) and leaves the rest
// to js-yaml: whatever the fast reader accepts must read exactly as js-yaml's load (core schema) reads
// it, and what js-yaml refuses it must leave to js-yaml.
import assert from "node:assert/strict";
import { readdirSync, readFileSync, statSync } from "node:fs";
import { join } from "node:path";
import { describe, it } from "node:test";
import { CORE_SCHEMA, dump, load, loadAll } from "js-yaml";
import { buildTree } from "../../src/render/build.ts";
import { readYaml, readYamlStream } from "../../src/write/yaml-read.ts";
import { toYaml } from "../../src/write/yaml.ts";
import { random, randomString, randomValue } from "../support/yaml-fuzz.ts";

type JsYaml = { value: unknown } | { error: string };

function jsYaml(text: string): JsYaml {
  try {
    return { value: load(text, { schema: CORE_SCHEMA }) };
  } catch (error) {
    return { error: (error as Error).message };
  }
}

/** The fast reader's answer, where it gives one, is js-yaml's. */
function agrees(text: string, label: string): boolean {
  const fast = readYaml(text);
  if (fast === undefined) return false;
  const reference = jsYaml(text);
  assert.ok(
    "value" in reference,
    `${label}: the fast reader accepted what js-yaml refuses (${"error" in reference ? reference.error : ""}): ${JSON.stringify(text)}`,
  );
  assert.deepEqual(fast.value, reference.value, `${label}: ${JSON.stringify(text)}`);
  return true;
}

const SNIPPETS = [
  "a:\n  b: |2\n     x\n",
  "- |2\n   x\n",
  "a:\n- 1\n- 2\n",
  "a: |\n  x\n\n  y\n\n\n",
  "a: |+\n  x\n\n",
  "a: |-\n  x\n\n",
  "a: |\n  x\n   \n  y\n",
  "a: |\n\n  x\n",
  "a: |\n    \n  x\n",
  "a: |\nb: 1\n",
  "a: |+\n\nb: 1\n",
  "1.0: a",
  "~: a",
  "__proto__: a",
  "a: 1\na: 2",
  "a: b # c",
  "a: 'it''s'",
  "a: 'x' y'",
  'a: "\\x41\\u00e9\\e\\N\\_\\L\\P\\/\\ \\t"',
  'a: "\\q"',
  'a: "x" y',
  "a: -1",
  "a: -x",
  "a: :x",
  "a: b: c",
  "a: b:",
  "- a: 1\n  b: 2\n- c: 3",
  "- - 1\n  - 2\n- 3",
  "-\n  a: 1",
  "-   a",
  "a:\n",
  "a: ",
  "a: x\n  y\n",
  "a:\n  - 1\n - 2\n",
  "  a: 1\nb: 2\n",
  "a: 1\n  b: 2\n",
  "a b: 1\na  b: 2\n",
  "a : 1",
  '"a b": 1\n"a\\u0020b": 2\n',
  "a: [1]",
  "a: {b: 1}",
  "a: &x 1",
  "a: !!str 1",
  "a: >\n  x\n",
  "a: |\n  # not a comment\n  x\n",
  "l:\n  -:  k1: x\n",
  "l:\n  -: - k7:\n      k3: -7\n",
  "&a root: 1\n",
  "# a comment\na: 1\n",
  "a: 1\n# a comment\n",
  "a:\n  b: 1\n # a comment\n  c: 2\n",
  "a: yes\nb: on\nc: 0o17\nd: 0x1f\ne: .inf\nf: 1_000\ng: 2024-01-01\n",
  // Flow collections on one line, as specs write them, and the forms left to js-yaml.
  "a: { b: 1, c: [x, 'y''s', \"z\\n\"] }",
  "a: {b: https://x.com:80/p, c: { d: e }}",
  "- { model: NVIDIA GeForce RTX 3060, memoryGiB: 12 }\n- [ ]\n- { }",
  "a: [a, {b: [c, {}]}, ~, null, -1, 0x1f, 'no']",
  "a: { b: x:y, c: a#b, d: a b  }",
  "a: { \"b c\": 1, 'd': 2 }",
  "a: [1, 2,]",
  "a: { b }",
  "a: { b: }",
  "a: { b: , c: 1 }",
  "a: [b: c]",
  "a: [b: c, d]",
  "a: { b: c: d }",
  "a: {b: c} # x",
  "a: {b: c}x",
  "a: { b: 1, b: 2 }",
  "a: { __proto__: 1 }",
  "a: { 1: x }",
  'a: { "b":c }',
  "a: { b: [c }",
  "a: { b: c\n  d: e }",
  "a: [ &x 1, *x ]",
  "a: [ !!str 1 ]",
  "a: [ - 1 ]",
  "a: [ ? b ]",
  "a: { b: 'c' d }",
  'a: [ "c" d ]',
  "a: [ 'c ]",
  "a: { b: c #d }",
  "a: [ x ] ",
];

describe("the fast YAML reader reads as js-yaml (core schema) reads, or leaves it to js-yaml", () => {
  it("on hand-picked documents at the edges of the subset", () => {
    let taken = 0;
    for (const text of SNIPPETS) if (agrees(text, "snippet")) taken++;
    assert.ok(taken >= 20, `${taken} snippets read fast`);
  });

  it("reads comment lines as comments, and a `#` line inside a literal block as its content", () => {
    for (const text of [
      "# a comment\na: 1\n",
      "a: 1\n# a comment\n",
      "a:\n  b: 1\n # a comment\n  c: 2\n",
      "a: |\n  # not a comment\n  x\n",
    ])
      assert.ok(agrees(text, "comment"), `${JSON.stringify(text)} is left to js-yaml`);
  });

  it("on toYaml's output for seeded random documents, nearly all read fast", () => {
    const next = random(71);
    let taken = 0;
    for (let i = 0; i < 3000; i++) {
      const value = { root: randomValue(next, 0), list: [randomValue(next, 1)], text: randomString(next) };
      if (agrees(toYaml(value), `case ${i}`)) taken++;
    }
    assert.ok(taken > 2500, `${taken} of 3000 read fast`);
  });

  it("on those documents damaged at random (a character dropped, or one of YAML's own inserted)", () => {
    const next = random(1206);
    const inserts = [
      "\n# c",
      "\n  # c",
      " # c\n",
      " ",
      ":",
      ": ",
      "#",
      " #",
      "-",
      "- ",
      "\n",
      '"',
      "'",
      "|",
      "|-",
      "  ",
      "\n  ",
      "\n- ",
      "&a ",
      "*a",
      "!",
      "{",
      "[",
    ];
    for (let i = 0; i < 10000; i++) {
      const text = toYaml({ root: randomValue(next, 0), text: randomString(next) });
      const at = Math.floor(next() * text.length);
      const damaged =
        next() < 0.3
          ? text.slice(0, at) + text.slice(at + 1)
          : text.slice(0, at) + (inserts[Math.floor(next() * inserts.length)] as string) + text.slice(at);
      agrees(damaged, `damaged ${i}`);
    }
  });

  it("on seeded random documents written in flow style (js-yaml's dump), undamaged and damaged", () => {
    const next = random(2206);
    let taken = 0;
    const inserts = [",", ", ", ":", ": ", "{", "}", "[", "]", " ", "#", " #", '"', "'", "\n", "\n  ", "-", "? ", "&a ", "*a"];
    for (let i = 0; i < 4000; i++) {
      const value = { root: randomValue(next, 0), list: [randomValue(next, 1)], text: randomString(next) };
      const text = dump(value, { schema: CORE_SCHEMA, flowLevel: next() < 0.5 ? 0 : 1, lineWidth: -1 });
      if (agrees(text, `flow ${i}`)) taken++;
      const at = Math.floor(next() * text.length);
      const damaged =
        next() < 0.3
          ? text.slice(0, at) + text.slice(at + 1)
          : text.slice(0, at) + (inserts[Math.floor(next() * inserts.length)] as string) + text.slice(at);
      agrees(damaged, `flow damaged ${i}`);
    }
    assert.ok(taken > 3000, `${taken} of 4000 read fast`);
  });

  it("reads the example specs fast (comment lines and one-line flow collections), as js-yaml does", () => {
    for (const file of ["examples/lab/platform.yaml", "examples/production/platform.yaml"])
      assert.ok(agrees(readFileSync(file, "utf8"), file), `${file} is left to js-yaml`);
  });

  it("on every file of the examples' rendered trees, each read fast", () => {
    for (const file of ["examples/lab/platform.yaml", "examples/production/platform.yaml"]) {
      const tree = buildTree({ file, environment: "production" });
      for (const [path, content] of tree.files) {
        if (!path.endsWith(".yaml")) continue;
        const fast = readYamlStream(content);
        assert.notEqual(fast, undefined, `${file} ${path} is left to js-yaml`);
        assert.deepEqual(fast, loadAll(content, { schema: CORE_SCHEMA }), `${file} ${path}`);
      }
    }
  });

  it("on the Kubernetes manifests under test/ (hand-written YAML), where it reads them", () => {
    const files: string[] = [];
    const walk = (dir: string) => {
      for (const entry of readdirSync(dir)) {
        const path = join(dir, entry);
        if (statSync(path).isDirectory()) walk(path);
        else if (/\.ya?ml$/.test(entry)) files.push(path);
      }
    };
    walk("test");
    for (const path of files) {
      const text = readFileSync(path, "utf8");
      let reference: unknown[];
      try {
        reference = loadAll(text, { schema: CORE_SCHEMA });
      } catch {
        assert.equal(readYamlStream(text), undefined, `${path}: js-yaml refuses it, the fast reader read it`);
        continue;
      }
      const fast = readYamlStream(text);
      if (fast !== undefined) assert.deepEqual(fast, reference, path);
    }
  });
});
