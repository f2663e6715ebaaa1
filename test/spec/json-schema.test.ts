import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { describe, it } from "node:test";
import { Ajv } from "ajv";
import { parse } from "yaml";
import { platformJsonSchema } from "../../src/spec/json-schema.ts";

describe("JSON Schema for editors", () => {
  it("the committed schema/platform.schema.json is the current export (npm run schema)", () => {
    const committed: unknown = JSON.parse(readFileSync("schema/platform.schema.json", "utf8"));
    assert.deepEqual(committed, JSON.parse(JSON.stringify(platformJsonSchema())));
  });

  it("accepts the lab example, overlays with null included, and rejects an unknown key", () => {
    const validate = new Ajv({ strict: false, allErrors: true }).compile(platformJsonSchema());
    const example: unknown = parse(readFileSync("examples/lab/platform.yaml", "utf8"));
    assert.equal(validate(example), true, JSON.stringify(validate.errors, null, 2));
    const broken = structuredClone(example) as { spec: Record<string, unknown> };
    broken.spec["modle"] = {};
    assert.equal(validate(broken), false);
  });
});
