// toYaml writes the document's structure itself and must match js-yaml's dump byte for byte: every
// rendered object of the examples, and seeded random values full of YAML's awkward characters.
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { renderPlatform } from "../../src/render/index.ts";
import { loadSpec } from "../../src/spec/load.ts";
import { emitDocument, toYaml, toYamlByJsYaml } from "../../src/write/yaml.ts";
import { random, randomString, randomValue } from "../support/yaml-fuzz.ts";

describe("toYaml: js-yaml's dump, byte for byte, with the structure written here", () => {
  it("on seeded random documents full of YAML's awkward characters", () => {
    const next = random(20261206);
    let emitted = 0;
    for (let i = 0; i < 4000; i++) {
      const value = { root: randomValue(next, 0), list: [randomValue(next, 1)], text: randomString(next) };
      const expected = toYamlByJsYaml(value);
      assert.equal(toYaml(value), expected, `case ${i}: ${JSON.stringify(value)}`);
      if (emitDocument(value) !== undefined) emitted++;
    }
    // Nearly all are written here, not left to js-yaml (which would make the comparison say little).
    assert.ok(emitted > 3600, `${emitted} of 4000 written here`);
  });

  it("on every object rendered from the examples, each written here", () => {
    for (const file of ["examples/lab/platform.yaml", "examples/production/platform.yaml"]) {
      const first = loadSpec({ file, environment: "local" });
      for (const platform of [first.base, ...first.environments.values()]) {
        for (const { object } of renderPlatform(platform).placed) {
          const text = emitDocument(object);
          assert.notEqual(text, undefined, `${file} ${platform.environment} ${object.kind}/${object.metadata.name} is left to js-yaml`);
          assert.equal(text, toYamlByJsYaml(object), `${file} ${platform.environment} ${object.kind}/${object.metadata.name}`);
        }
      }
    }
  });
});
