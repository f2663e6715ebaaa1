import assert from "node:assert/strict";
import { existsSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { describe, it } from "node:test";
import { runCli } from "../support/cli.ts";

const EXAMPLE = "examples/lab/platform.yaml";
const GOLDEN = "test/render/golden";

describe("golden: the lab example renders to the reviewed YAML in every environment", () => {
  for (const env of ["local", "staging", "production"]) {
    it(env, async () => {
      const run = await runCli(["render", "--spec", EXAMPLE, "--env", env, "-o", "yaml"]);
      assert.equal(run.code, 0, run.stderr);
      const file = join(GOLDEN, `${env}.yaml`);
      if (process.env["UPDATE_GOLDEN"] === "1" || !existsSync(file)) {
        writeFileSync(file, run.stdout);
        if (process.env["UPDATE_GOLDEN"] !== "1") assert.fail(`wrote missing golden file ${file}; review it and run again`);
      }
      assert.equal(run.stdout, readFileSync(file, "utf8"), `render differs from ${file}; if intended, run npm run golden:update and review the diff`);
    });
  }
});
