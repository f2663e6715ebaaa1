// The CLI bundle (what bin/diatonic.js runs in a checkout) swaps a few modules for lighter ones
// (bin/cli-build.mjs, SUBSTITUTES). Built here into a folder of its own, it must leave the heavy
// originals out and still report schema and spec errors in English, as the sources do. Its CommonJS
// build runs the commands that load no package with V8's code cache (bin/code-cache.mjs), the others
// run as ES modules: the bin here chooses as bin/diatonic.js does.
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { pathToFileURL } from "node:url";
import { after, before, describe, it } from "node:test";
import { buildCliBundle, commandModules } from "../../bin/cli-build.mjs";
import { CACHED_DIR, codeCacheFile } from "../../bin/code-cache.mjs";
import { commands } from "../../src/cli/commands/index.ts";
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
    const runner = pathToFileURL(join(PACKAGE_ROOT, "bin", "code-cache.mjs")).href;
    writeFileSync(
      join(dir, "diatonic.js"),
      `import { runCached } from ${JSON.stringify(runner)};\n` +
        `if (!runCached(${JSON.stringify(join(dir, "bundle"))}, process.argv[2])) await import("./bundle/main.mjs");\n`,
    );
  });
  after(() => rmSync(dir, { recursive: true, force: true }));

  const cli = (...args: string[]) =>
    spawnSync(process.execPath, [join(dir, "diatonic.js"), ...args], { encoding: "utf8", cwd: PACKAGE_ROOT });
  const esModules = (...args: string[]) =>
    spawnSync(process.execPath, [join(dir, "diatonic.js"), ...args], {
      encoding: "utf8",
      cwd: PACKAGE_ROOT,
      env: { ...process.env, DIATONIC_CODE_CACHE: "0" },
    });
  const cached = join(dir, "bundle", CACHED_DIR);
  const cacheOf = (command: string) => codeCacheFile(join(dir, "bundle"), command);

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

  it("renders and validates the lab example, from the CommonJS build and as ES modules alike", () => {
    for (const run of [cli, esModules]) {
      const out = join(dir, `out-${run.name}`);
      const render = run("render", "--spec", "examples/lab/platform.yaml", "--env", "production", "--out", out);
      assert.equal(render.status, 0, render.stderr);
      const validate = run("validate", join(out, "overlays", "production"));
      assert.equal(validate.status, 0, validate.stdout + validate.stderr);
      assert.match(validate.stdout, /0 error\(s\)/);
    }
  });

  it("runs from the CommonJS build exactly the commands that load no package from node_modules", () => {
    assert.deepEqual(
      commandModules().map(({ name }) => name),
      commands.map(({ name }) => name),
      "bin/cli-build.mjs reads src/cli/commands/index.ts's list differently",
    );
    const served = (JSON.parse(readFileSync(join(cached, "commands.json"), "utf8")) as { commands: string[] }).commands;
    for (const command of ["quickstart", "render", "validate", "plan", "schema"])
      assert.ok(served.includes(command), `${command} is not served`);
    for (const command of ["apply", "status", "engine", "adapter-agent", "gateway", "ingest", "dev"])
      assert.ok(!served.includes(command), `${command} loads packages, yet the CommonJS build runs it`);
    // The others' modules are left out of the CommonJS build: none of the packages they load is required there.
    const script = readFileSync(join(cached, "main.cjs"), "utf8");
    for (const left of ["@kubernetes/client-node", "node-llama-cpp", "undici", "pino"])
      assert.ok(!script.includes(`require("${left}")`), `the CommonJS build requires ${left}`);
    // The engine's llama.cpp package is an ES module graph with top-level await: require() of it fails,
    // so this runs only as an ES module.
    const model = join(dir, "model");
    const made = cli("engine", "make-test-model", "--out", model);
    assert.equal(made.status, 0, made.stderr);
    assert.ok(existsSync(join(model, "tiny-llama.gguf")));
  });

  it("writes a command's code cache on its first run that succeeds, takes it on the next, and writes it again when V8 rejects it", () => {
    const spec = ["--spec", "examples/lab/platform.yaml", "--env", "local", "-o", "yaml"];
    rmSync(cacheOf("render"), { force: true });
    const help = cli("plan", "--help");
    assert.equal(help.status, 0, help.stderr);
    assert.ok(!existsSync(cacheOf("plan")), "a --help run wrote plan's cache");
    const failed = cli("plan", "--spec", "examples/lab/platform.yaml", "--env", "nowhere");
    assert.equal(failed.status, 2, failed.stderr);
    assert.ok(!existsSync(cacheOf("plan")), "a run stopped by bad input wrote plan's cache");
    const first = cli("render", ...spec);
    assert.equal(first.status, 0, first.stderr);
    const written = statSync(cacheOf("render"));
    assert.ok(written.size > 100_000, `render's cache is ${written.size} bytes`);
    const again = cli("render", ...spec);
    assert.equal(again.stdout, first.stdout);
    // Written again, it would be a new file (written aside, then renamed over).
    assert.equal(statSync(cacheOf("render")).ino, written.ino, "an accepted cache was written again");
    writeFileSync(cacheOf("render"), Buffer.from("not a code cache"));
    const rejected = cli("render", ...spec);
    assert.equal(rejected.status, 0, rejected.stderr);
    assert.equal(rejected.stdout, first.stdout);
    assert.ok(readFileSync(cacheOf("render")).length > 100_000, "a rejected cache was not written again");
    assert.deepEqual(
      readdirSync(cached).filter((name) => name.endsWith(".tmp")),
      [],
      "a partial cache file was left",
    );
    const off = esModules("render", ...spec);
    assert.equal(off.stdout, first.stdout);
  });
});
