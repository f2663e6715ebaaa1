// The CLI bundle swaps kubernetes-models' RE2 runtime for one compiled on first use
// (src/validate/lazy-re2.ts): the swap must keep RE2's (Go's) pattern syntax and the schema checks it serves.
import assert from "node:assert/strict";
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { describe, it } from "node:test";
import { pathToFileURL } from "node:url";
import { build } from "esbuild";
import { substitutes } from "../../bin/cli-build.mjs";
import { PACKAGE_ROOT } from "../../src/paths.ts";
import LazyRE2, { re2Loaded } from "../../src/validate/lazy-re2.ts";

describe("lazy RE2 (the CLI bundle's substitute for kubernetes-models' RE2 runtime)", () => {
  it("loads re2-wasm on the first test, not on construction, and reads Go's syntax as RE2 does", () => {
    // `(?i)` inside a pattern is Go's syntax: JavaScript's RegExp refuses it.
    const source = "^(?i)(abort|warn)?$";
    assert.throws(() => new RegExp(source, "u"));
    const pattern = new LazyRE2(source, "u");
    assert.equal(re2Loaded(), false);
    assert.equal(pattern.test("WARN"), true);
    assert.equal(re2Loaded(), true);
    assert.equal(pattern.test("abort"), true);
    assert.equal(pattern.test("retry"), false);
  });

  it("a bundle built with the substitute still checks PrometheusRule's RE2 pattern", async () => {
    // Inside the package, so the bundle's createRequire finds re2-wasm in node_modules as dist/bundle's does.
    const cache = join(PACKAGE_ROOT, "node_modules", ".cache");
    mkdirSync(cache, { recursive: true });
    const dir = mkdtempSync(join(cache, "lazy-re2-"));
    try {
      const entry = join(dir, "entry.mjs");
      writeFileSync(
        entry,
        'export { PrometheusRule } from "@kubernetes-models/prometheus-operator/monitoring.coreos.com/v1/PrometheusRule";\n',
      );
      const result = await build({
        entryPoints: [entry],
        outfile: join(dir, "out.mjs"),
        bundle: true,
        format: "esm",
        platform: "node",
        plugins: [substitutes],
        banner: { js: "import { createRequire as __r } from 'node:module'; const require = __r(import.meta.url);" },
        metafile: true,
        logLevel: "error",
      });
      const inputs = Object.keys(result.metafile.inputs);
      assert.ok(
        inputs.some((input) => input.endsWith("src/validate/lazy-re2.ts")),
        "the substitute is in the bundle",
      );
      assert.ok(!inputs.some((input) => input.includes("runtime/re2")), "kubernetes-models' eager RE2 runtime is not");
      const { PrometheusRule } = (await import(pathToFileURL(join(dir, "out.mjs")).href)) as {
        PrometheusRule: new (value: unknown) => { validate(): void };
      };
      const rule = (strategy: string) =>
        new PrometheusRule({
          apiVersion: "monitoring.coreos.com/v1",
          kind: "PrometheusRule",
          metadata: { name: "r" },
          spec: { groups: [{ name: "g", partial_response_strategy: strategy, rules: [{ record: "x", expr: "up" }] }] },
        });
      rule("WARN").validate();
      assert.throws(() => rule("retry").validate(), /partial_response_strategy/);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
