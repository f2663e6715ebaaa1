import assert from "node:assert/strict";
import { mkdtempSync, readFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, it } from "node:test";
import { Ajv } from "ajv";
import { parse } from "yaml";
import { platformJsonSchema } from "../../src/spec/json-schema.ts";
import { runCli } from "../support/cli.ts";

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

  it("diatonic schema --out writes it and says where, with the line that points an editor at it", async () => {
    const file = join(mkdtempSync(join(tmpdir(), "schema-")), "platform.schema.json");
    const run = await runCli(["schema", "--out", file]);
    assert.equal(run.code, 0, run.stderr);
    assert.equal(run.stdout, `wrote the JSON Schema of platform.yaml to ${file} (editors: # yaml-language-server: $schema=${file})\n`);
    assert.deepEqual(JSON.parse(readFileSync(file, "utf8")), JSON.parse(JSON.stringify(platformJsonSchema())));
  });
});
