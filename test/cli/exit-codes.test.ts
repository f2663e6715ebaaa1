import assert from "node:assert/strict";
import { chmodSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { describe, it } from "node:test";
import { InputError } from "../../src/errors.ts";
import { outputPathError } from "../../src/write/atomic.ts";
import { runCli, type CliRun } from "../support/cli.ts";

const LAB = resolve("examples/lab/platform.yaml");

/** A user's error: exit 2, what is wrong and the fix, no stack trace. */
function refusedAsInput(run: CliRun, ...says: readonly string[]): void {
  assert.equal(run.code, 2, run.stdout + run.stderr);
  assert.doesNotMatch(run.stderr, /internal error|\n\s+at /, "no stack trace");
  assert.match(run.stderr, /\n {2}fix: /, "says how to fix it");
  for (const phrase of says) assert.ok(run.stderr.includes(phrase), `should say ${JSON.stringify(phrase)}:\n${run.stderr}`);
}

/** A kubeconfig, in a folder of its own, whose cluster refuses every connection (port 1). */
function unreachableCluster(): { dir: string; kubeconfig: string } {
  const dir = mkdtempSync(join(tmpdir(), "diatonic-unreachable-"));
  const kubeconfig = join(dir, "kubeconfig");
  writeFileSync(
    kubeconfig,
    [
      "apiVersion: v1",
      "kind: Config",
      "clusters: [{ name: c, cluster: { server: https://127.0.0.1:1, insecure-skip-tls-verify: true } }]",
      "users: [{ name: u, user: { token: abc } }]",
      "contexts: [{ name: ctx, context: { cluster: c, user: u } }]",
      "current-context: ctx",
      "",
    ].join("\n"),
  );
  return { dir, kubeconfig };
}

describe("diff's exit code tells a cluster it cannot reach from changes", () => {
  it("exits 4, not 1 (changes exist), when the cluster refuses the connection", async () => {
    const { dir, kubeconfig } = unreachableCluster();
    const run = await runCli(["diff", "--spec", LAB, "--env", "local", "--kubeconfig", kubeconfig], dir);
    assert.equal(run.code, 4, run.stdout + run.stderr);
    assert.match(run.stderr, /error: cannot reach the cluster at https:\/\/127\.0\.0\.1:1/);
    assert.doesNotMatch(run.stderr, /\n\s+at /);
    assert.equal(run.stdout, "", "no diff is printed");
  });

  it("still exits 2 for bad input", async () => {
    const run = await runCli(["diff", "--spec", LAB, "--env", "qa"]);
    refusedAsInput(run, 'environment "qa" is not defined');
  });
});

describe("--output json: a deploy command that fails ends its stdout with a JSON error line", () => {
  /** The last line of stdout, which must be the error event. */
  function errorEvent(run: CliRun): {
    type: string;
    message: string;
    fix?: string;
    exitCode: number;
    issues?: { file: string; line: number }[];
  } {
    const line = run.stdout.trim().split("\n").at(-1) ?? "";
    const event = JSON.parse(line) as {
      type: string;
      message: string;
      fix?: string;
      exitCode: number;
      issues?: { file: string; line: number }[];
    };
    assert.equal(event.type, "error", line);
    assert.equal(event.exitCode, run.code, "the event carries the exit code");
    return event;
  }

  it("a bad flag, before anything is read: exit 2 and the fix, in JSON on stdout and in words on stderr", async () => {
    const run = await runCli(["apply", "--output", "json", "--envv", "local"]);
    const event = errorEvent(run);
    assert.equal(event.exitCode, 2);
    assert.match(event.message, /Unknown option '--envv'/);
    assert.match(event.fix ?? "", /did you mean --env\?/);
    refusedAsInput(run, "Unknown option '--envv'");
  });

  it("a spec error: its issues, each with its file and line", async () => {
    const dir = mkdtempSync(join(tmpdir(), "diatonic-json-error-"));
    const spec = join(dir, "platform.yaml");
    writeFileSync(spec, readFileSync(LAB, "utf8").replace("    storage: 20Gi\n", "    storage: 20GB\n"));
    const run = await runCli(["apply", "--spec", spec, "--env", "production", "--output=json", "--kubeconfig", "/nonexistent"]);
    const event = errorEvent(run);
    assert.equal(event.exitCode, 2);
    assert.ok((event.issues ?? []).length >= 1, run.stdout);
    assert.equal(event.issues?.[0]?.file, spec);
    assert.ok((event.issues?.[0]?.line ?? 0) > 1);
  });

  it("a cluster it cannot reach: diff's exit 4 in the event; without --output json, stdout stays empty", async () => {
    const { dir, kubeconfig } = unreachableCluster();
    const json = await runCli(["diff", "--spec", LAB, "--env", "local", "--kubeconfig", kubeconfig, "--output", "json"], dir);
    assert.equal(json.code, 4, json.stderr);
    assert.match(errorEvent(json).message, /cannot reach the cluster at https:\/\/127\.0\.0\.1:1/);
    // The last --output counts, as for every flag.
    const human = await runCli(
      ["status", "--spec", LAB, "--env", "local", "--output=json", "--kubeconfig", kubeconfig, "--output", "human"],
      dir,
    );
    assert.equal(human.code, 1, human.stderr);
    assert.equal(human.stdout, "");
  });
});

describe("an --out that cannot be written: the path, what is wrong and the fix, exit 2, nothing written", () => {
  const dir = mkdtempSync(join(tmpdir(), "diatonic-out-"));
  const file = join(dir, "afile");
  writeFileSync(file, "mine\n");
  mkdirSync(join(dir, "emptydir"));
  const listing = () => readdirSync(dir, { recursive: true }).sort();
  const before = listing();

  const cases: { readonly args: readonly string[]; readonly says: readonly string[] }[] = [
    {
      args: ["render", "--spec", LAB, "--env", "local", "--out", "afile"],
      says: [`output directory ${file} is a file, not a directory`, `or remove the file ${file}`],
    },
    {
      args: ["render", "--spec", LAB, "--env", "local", "--out", "afile/sub"],
      says: [`cannot create output directory ${join(file, "sub")}: ${file} is a file, not a directory`],
    },
    { args: ["quickstart", "--out", "afile"], says: [`output directory ${file} is a file, not a directory`] },
    {
      args: ["schema", "--out", "emptydir"],
      says: [`output file ${join(dir, "emptydir")} is a directory`, "fix: name a file to write for --out"],
    },
    { args: ["schema", "--out", "afile/schema.json"], says: [`${file} is a file, not a directory`] },
  ];
  for (const { args, says } of cases) {
    it(args.filter((arg) => arg !== LAB).join(" "), async () => {
      refusedAsInput(await runCli(args, dir), ...says);
      assert.deepEqual(listing(), before, "nothing written, no temp file left");
    });
  }

  it(
    "render --out into a folder it cannot write",
    { skip: process.getuid?.() === 0 ? "root writes anywhere: the next test covers this with a fake EACCES" : false },
    async () => {
      const locked = join(dir, "locked");
      mkdirSync(locked);
      chmodSync(locked, 0o555);
      try {
        const run = await runCli(["render", "--spec", LAB, "--env", "local", "--out", "locked/out"], dir);
        refusedAsInput(run, `cannot write output directory ${join(locked, "out")}: ${locked} is not writable`);
      } finally {
        chmodSync(locked, 0o755);
      }
    },
  );

  it("a folder it cannot write (a fake EACCES: root writes anywhere) is the user's error, naming the folder", () => {
    const target = join(dir, "emptydir", "out");
    const denied = Object.assign(new Error("EACCES: permission denied"), { code: "EACCES", path: join(dir, "emptydir", ".out.tmp-1") });
    const error = outputPathError(denied, target, "directory");
    assert.ok(error instanceof InputError);
    assert.equal(error.message, `cannot write output directory ${target}: ${join(dir, "emptydir")} is not writable (EACCES)`);
    assert.match(error.fix ?? "", /choose an --out path you can write to/);
  });
});

describe("validate with a spec as its PATH", () => {
  it("says to validate a spec with --spec and --env, and exits 2 (it passed silently as an unknown kind)", async () => {
    const run = await runCli(["validate", "examples/lab/platform.yaml"]);
    refusedAsInput(
      run,
      "examples/lab/platform.yaml is a diatonic spec (kind: Platform), not rendered Kubernetes objects",
      "diatonic validate --spec examples/lab/platform.yaml --env ENV (one of: local, staging, production)",
    );
    assert.equal(run.stdout, "");
  });
});
