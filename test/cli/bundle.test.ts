// The CLI bundle (what bin/diatonic.js runs in a checkout) swaps a few modules for lighter ones
// (bin/cli-build.mjs, SUBSTITUTES). Built here into a folder of its own, it must leave the heavy
// originals out and still report schema and spec errors in English, as the sources do.
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { buildCliBundle } from "../../bin/cli-build.mjs";
import { PACKAGE_ROOT } from "../../src/paths.ts";

describe("the CLI bundle's substitutes", () => {
  // Inside the package, so that the bundle finds node_modules as dist/bundle/ does.
  const cache = join(PACKAGE_ROOT, "node_modules", ".cache");
  mkdirSync(cache, { recursive: true });
  const dir = mkdtempSync(join(cache, "cli-bundle-"));
  let inputs: string[] = [];
  before(async () => {
    inputs = Object.keys((await buildCliBundle(join(dir, "bundle"))).inputs);
    // The bin's entry test looks for a script named diatonic.js.
    writeFileSync(join(dir, "diatonic.js"), 'await import("./bundle/main.mjs");\n');
  });
  after(() => rmSync(dir, { recursive: true, force: true }));

  const cli = (...args: string[]) =>
    spawnSync(process.execPath, [join(dir, "diatonic.js"), ...args], { encoding: "utf8", cwd: PACKAGE_ROOT });

  it("leaves out every language's index of ajv-i18n and zod, and kubernetes-models' eager RE2", () => {
    for (const left of [
      "ajv-i18n/localize/index.js",
      "zod/v4/locales/index.js",
      "zod/v4/locales/fr.js",
      "@kubernetes-models/validate/dist/runtime/re2.mjs",
    ])
      assert.ok(!inputs.some((input) => input.endsWith(left)), `${left} is in the bundle`);
    for (const taken of ["src/bundle/ajv-i18n-en.ts", "src/bundle/zod-locales-en.ts", "src/validate/lazy-re2.ts", "zod/v4/locales/en.js"])
      assert.ok(
        inputs.some((input) => input.endsWith(taken)),
        `${taken} is not in the bundle`,
      );
  });

  it("reports a Kubernetes schema error in English (ajv-i18n's English, through the substitute)", () => {
    const file = join(dir, "bad-deployment.yaml");
    writeFileSync(
      file,
      [
        "apiVersion: apps/v1",
        "kind: Deployment",
        "metadata: { name: web, namespace: demo }",
        "spec:",
        "  replicas: two",
        "  selector: { matchLabels: { app: web } }",
        "  template:",
        "    metadata: { labels: { app: web } }",
        "    spec: { containers: [{ name: web, image: nginx:1.27 }] }",
        "",
      ].join("\n"),
    );
    const run = cli("validate", file);
    assert.equal(run.status, 1, run.stderr);
    assert.match(run.stdout, /at spec\.replicas\n\s+schema: must be integer/);
  });

  it("reports a spec error in English (zod's English locale, through the substitute), with its line", () => {
    const text = readFileSync(join(PACKAGE_ROOT, "examples", "lab", "platform.yaml"), "utf8");
    assert.ok(text.includes("    replicas: 2\n"), "the lab example's gateway replicas moved");
    const file = join(dir, "platform.yaml");
    writeFileSync(file, text.replace("    replicas: 2\n", "    replicas: two\n"));
    const line = text.split("\n").indexOf("    replicas: 2") + 1;
    const run = cli("render", "--spec", file, "--env", "local", "-o", "yaml");
    assert.equal(run.status, 2, run.stderr);
    assert.match(run.stderr, new RegExp(`platform\\.yaml:${line}:5: spec\\.gateway\\.replicas: expected number, got string "two"`));
  });

  it("renders and validates the lab example", () => {
    const out = join(dir, "out");
    const render = cli("render", "--spec", "examples/lab/platform.yaml", "--env", "production", "--out", out);
    assert.equal(render.status, 0, render.stderr);
    const validate = cli("validate", join(out, "overlays", "production"));
    assert.equal(validate.status, 0, validate.stdout + validate.stderr);
    assert.match(validate.stdout, /0 error\(s\)/);
  });
});
