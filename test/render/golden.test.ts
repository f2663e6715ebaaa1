import assert from "node:assert/strict";
import { existsSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { describe, it } from "node:test";
import { runCli } from "../support/cli.ts";

/** Each example and where its golden files live: the lab's at the top, the others in a folder of their own. */
const EXAMPLES = [
  { spec: "examples/lab/platform.yaml", golden: "test/render/golden" },
  { spec: "examples/production/platform.yaml", golden: "test/render/golden/production" },
] as const;

for (const example of EXAMPLES) {
  describe(`golden: ${example.spec} renders to the reviewed YAML in every environment`, () => {
    for (const env of ["local", "staging", "production"]) {
      it(env, async () => {
        const run = await runCli(["render", "--spec", example.spec, "--env", env, "-o", "yaml"]);
        assert.equal(run.code, 0, run.stderr);
        const file = join(example.golden, `${env}.yaml`);
        if (process.env["UPDATE_GOLDEN"] === "1" || !existsSync(file)) {
          mkdirSync(example.golden, { recursive: true });
          writeFileSync(file, run.stdout);
          if (process.env["UPDATE_GOLDEN"] !== "1") assert.fail(`wrote missing golden file ${file}; review it and run again`);
        }
        assert.equal(
          run.stdout,
          readFileSync(file, "utf8"),
          `render differs from ${file}; if intended, run npm run golden:update and review the diff`,
        );
      });
    }
  });
}

describe("examples/production: validates clean and every GPU pod fits, in every environment", () => {
  for (const env of ["local", "staging", "production"]) {
    it(env, async () => {
      const validate = await runCli(["validate", "--spec", "examples/production/platform.yaml", "--env", env, "--format", "json"]);
      assert.equal(validate.code, 0, validate.stdout + validate.stderr);
      const result = JSON.parse(validate.stdout) as { errors: number; warnings: number };
      assert.deepEqual([result.errors, result.warnings], [0, 0], validate.stdout);
      const plan = await runCli(["plan", "--spec", "examples/production/platform.yaml", "--env", env, "--format", "json"]);
      assert.equal(plan.code, 0, plan.stdout + plan.stderr);
      const report = JSON.parse(plan.stdout) as {
        placement: { pending: unknown[]; devices: { pods: { fits: boolean }[] }[] } | null;
        findings: unknown[];
      };
      assert.deepEqual(report.findings, []);
      if (env === "local") {
        assert.equal(report.placement, null, "no GPU in local");
        return;
      }
      assert.deepEqual(report.placement?.pending, []);
      const pods = report.placement?.devices.flatMap((d) => d.pods) ?? [];
      assert.equal(pods.length, 3, "the shared engine on the A100's 3g.40gb, the legal engine's two replicas on the L4s");
      assert.ok(
        pods.every((p) => p.fits),
        JSON.stringify(pods),
      );
    });
  }
});
