import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { mkdirSync, mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, it } from "node:test";
import { commands } from "../../src/cli/commands/index.ts";
import { runCli } from "../support/cli.ts";
import { tool, unmet } from "../support/needs.ts";

describe("the diatonic command list", () => {
  it("loads, for each listed name, the command of that name", async () => {
    assert.equal(new Set(commands.map((entry) => entry.name)).size, commands.length, "a name is listed twice");
    for (const entry of commands) {
      const command = await entry.load();
      assert.equal(command.name, entry.name);
      assert.match(command.usage, new RegExp(`^diatonic ${entry.name}\\b`));
    }
  });

  it("--help lists every command with its summary", async () => {
    const run = await runCli(["--help"]);
    assert.equal(run.code, 0);
    const width = Math.max(...commands.map((entry) => entry.name.length));
    for (const entry of commands) assert.ok(run.stdout.includes(`  ${entry.name.padEnd(width)}  ${entry.summary}\n`), entry.name);
  });

  it("<command> --help prints the command's usage and summary", async () => {
    const run = await runCli(["gateway", "--help"]);
    assert.equal(run.code, 0);
    assert.equal(
      run.stdout,
      "usage: diatonic gateway --config FILE [--host H] [--port N]\n\nRun the OpenAI-compatible adapter gateway from a rendered gateway config\n",
    );
  });

  it("an unknown command exits 2 and shows the list", async () => {
    const run = await runCli(["gatway"]);
    assert.equal(run.code, 2);
    assert.match(run.stderr, /unknown command "gatway": did you mean gateway\?/);
    assert.match(run.stderr, /gateway +Run the OpenAI-compatible/);
    assert.doesNotMatch((await runCli(["xyzzy"])).stderr, /did you mean/, "no guess when nothing is near");
  });

  it("--version prints the version (package.json's, which the rendered labels carry too)", async () => {
    const { version } = JSON.parse(readFileSync("package.json", "utf8")) as { version: string };
    for (const flag of ["--version", "-V", "version"]) {
      const run = await runCli([flag]);
      assert.equal(run.code, 0, flag);
      assert.equal(run.stdout, `diatonic ${version}\n`);
    }
  });

  it(
    "a reader that stops early (| head) ends it quietly, with no stack trace",
    { skip: unmet("the pipe case", [tool("bash", "bash"), tool("head", "coreutils")]) ?? false },
    () => {
      // 86 KB of YAML into a real pipe (64 KB): the rest is written after head has gone.
      const script =
        'node bin/diatonic.js render --spec examples/lab/platform.yaml --env production -o yaml 2>"$ERR" | head -c 10 >/dev/null; echo "${PIPESTATUS[0]}"';
      const err = join(mkdtempSync(join(tmpdir(), "epipe-")), "stderr.txt");
      const status = execFileSync("bash", ["-c", script], { encoding: "utf8", env: { ...process.env, ERR: err } }).trim();
      const stderr = readFileSync(err, "utf8");
      assert.doesNotMatch(stderr, /EPIPE|\n\s+at /);
      assert.equal(status, "0", stderr);
    },
  );

  it("rollback --to that is no revision number is refused before the cluster is asked (it may be unreachable)", async () => {
    for (const to of ["abc", "0", "1.5", "-1"]) {
      const run = await runCli([
        "rollback",
        "--spec",
        "examples/lab/platform.yaml",
        "--env",
        "local",
        `--to=${to}`,
        "--kubeconfig",
        "/nonexistent",
      ]);
      assert.equal(run.code, 2, to);
      assert.doesNotMatch(run.stderr, /cannot read kubeconfig/, "refused before the cluster is asked");
      assert.match(
        run.stderr,
        new RegExp(`--to "${to.replace(".", "\\.")}" is not a revision number\\n\\s+fix: pass the number of a recorded revision`),
        run.stderr,
      );
    }
  });

  it("an unknown flag names the nearest known one", async () => {
    const run = await runCli(["plan", "--envv", "production"]);
    assert.equal(run.code, 2);
    assert.match(run.stderr, /Unknown option '--envv'\n {2}fix: did you mean --env\? usage: diatonic plan/);
  });
});

describe("paths in messages are the paths as the user typed them", () => {
  // A spec and manifests outside the cwd, named by absolute paths: relative to the cwd they would read ../../…
  const elsewhere = mkdtempSync(join(tmpdir(), "diatonic-typed-"));
  const cwd = mkdtempSync(join(tmpdir(), "diatonic-cwd-"));
  const spec = join(elsewhere, "platform.yaml");
  writeFileSync(spec, readFileSync("examples/lab/platform.yaml", "utf8").replace("    storage: 20Gi\n", "    storage: 20GB\n"));

  for (const command of [["render", "-o", "yaml"], ["plan"], ["validate"]]) {
    it(`${command[0]}: a spec error names --spec as given, not ../../…`, async () => {
      const run = await runCli([...command, "--spec", spec, "--env", "production"], cwd);
      assert.equal(run.code, 2, run.stderr);
      assert.ok(run.stderr.includes(`${spec}:`), run.stderr);
      assert.doesNotMatch(run.stderr, /\.\.\//);
    });
  }

  it("validate names each manifest file under the directory given", async () => {
    const dir = join(elsewhere, "manifests");
    mkdirSync(dir);
    writeFileSync(
      join(dir, "pod.yaml"),
      "apiVersion: v1\nkind: Pod\nmetadata: { name: p, namespace: x }\nspec: { containers: [{ name: c, image: busybox }] }\n",
    );
    const run = await runCli(["validate", dir], cwd);
    assert.equal(run.code, 1, run.stdout + run.stderr);
    assert.ok(run.stdout.includes(`(${join(dir, "pod.yaml")})`), run.stdout);
    assert.doesNotMatch(run.stdout, /\.\.\//);
  });
});
