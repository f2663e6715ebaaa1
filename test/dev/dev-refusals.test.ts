// `diatonic dev` with a bad file or flag: an input error that names it and says how to fix it (exit 2,
// no stack trace), said before anything loads. Each run names a model file that does not exist: a
// check that came after the model's would report the model instead.
import assert from "node:assert/strict";
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { createServer, type Server } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Writable } from "node:stream";
import { after, before, describe, it } from "node:test";
import { devLogger, startDevStack } from "../../src/dev/stack.ts";
import { writeTestModels } from "../../src/engine/index.ts";
import { freePort } from "../../scripts/cluster/processes.ts";
import { runCli, type CliRun } from "../support/cli.ts";
import { tinySpec } from "./tiny-spec.ts";

const BROKEN_YAML = "apiVersion: diatonic.ai/v1alpha1\nkind: Platform\nmetadata: { name: [broken\nspec: {}\n";

describe("diatonic dev refuses bad input before it loads anything", () => {
  const work = mkdtempSync(join(tmpdir(), "diatonic-dev-refusals-"));
  const missingModel = join(work, "no-such-model.gguf");
  after(() => rmSync(work, { recursive: true, force: true }));

  /** `diatonic dev ARGS` in a folder of its own (no platform.yaml unless the case writes one). */
  async function dev(args: readonly string[], setup?: (cwd: string) => void): Promise<CliRun & { cwd: string }> {
    const cwd = mkdtempSync(join(work, "cwd-"));
    setup?.(cwd);
    const withData = args.includes("--data") ? [] : ["--data", join(cwd, "data")];
    return { ...(await runCli(["dev", "--model", missingModel, ...withData, ...args], cwd)), cwd };
  }

  function assertInputError(run: CliRun, message: RegExp, fix: RegExp): void {
    assert.doesNotMatch(run.stderr, /internal error|\n\s+at /, run.stderr);
    assert.doesNotMatch(run.stderr, /no-such-model/, "refused before the model is looked at, or named");
    assert.match(run.stderr, message);
    assert.match(run.stderr, fix);
    assert.equal(run.code, 2, run.stderr);
  }

  it("a --spec that does not exist", async () => {
    assertInputError(await dev(["--spec", "nope.yaml"]), /^error: spec file .*nope\.yaml does not exist$/m, /^ {2}fix: pass --spec FILE/m);
  });

  it("a --spec with a YAML syntax error, placed as validate places it", async () => {
    const run = await dev(["--spec", "broken.yaml"], (cwd) => writeFileSync(join(cwd, "broken.yaml"), BROKEN_YAML));
    assertInputError(run, /^broken\.yaml:4:\d+: .*YAML syntax/m, /fix: fix the YAML syntax at this position/);
  });

  it("a broken ./platform.yaml, which dev (and npm run demo) runs without --spec", async () => {
    const run = await dev([], (cwd) => writeFileSync(join(cwd, "platform.yaml"), BROKEN_YAML));
    assertInputError(run, /^platform\.yaml:4:\d+: .*YAML syntax/m, /fix: fix the YAML syntax at this position/);
  });

  it("a --spec that is a folder, pointing at the platform.yaml inside", async () => {
    const run = await dev(["--spec", "specs"], (cwd) => {
      mkdirSync(join(cwd, "specs"));
      writeFileSync(join(cwd, "specs", "platform.yaml"), BROKEN_YAML);
    });
    assertInputError(run, /^error: spec file specs is a folder$/m, /^ {2}fix: pass --spec specs\/platform\.yaml$/m);
    assertInputError(await dev(["--spec", "."]), /^error: spec file .+ is a folder$/m, /^ {2}fix: pass --spec FILE/m);
  });

  it("a --data that is a file, not a folder", async () => {
    const run = await dev(["--data", "package.json"], (cwd) => writeFileSync(join(cwd, "package.json"), "{}\n"));
    assertInputError(run, /^error: --data package\.json is not a folder: a file is there$/m, /^ {2}fix: pass --data DIR/m);
  });

  it("an --api-key that is empty or has spaces around it (no client could send it)", async () => {
    for (const key of ["", " ", " sk-dev "]) {
      const run = await dev(["--api-key", key]);
      assertInputError(
        run,
        /^error: --api-key (is empty|has spaces or a line break around it): no client could send it$/m,
        /fix: pass --api-key KEY/,
      );
      if (key.trim() !== "") assert.doesNotMatch(run.stderr, /sk-dev/, "the key is not echoed");
    }
  });

  it("a --port that is empty or blank (which Number() reads as 0)", async () => {
    for (const port of ["", " "]) {
      assertInputError(
        await dev(["--port", port]),
        new RegExp(`^error: --port ${JSON.stringify(port)} is not a port number$`, "m"),
        /^ {2}fix: pass --port 0\.\.65535/m,
      );
    }
  });
});

describe("diatonic dev on a port in use", () => {
  let busy: Server;
  let port: number;
  const work = mkdtempSync(join(tmpdir(), "diatonic-dev-port-"));
  before(async () => {
    busy = createServer();
    await new Promise<void>((resolve) => busy.listen(0, "127.0.0.1", resolve));
    port = (busy.address() as { port: number }).port;
  });
  after(async () => {
    await new Promise((resolve) => busy.close(resolve));
    rmSync(work, { recursive: true, force: true });
  });

  it("names the port and --port before the model loads", async () => {
    const run = await runCli(
      ["dev", "--model", join(work, "no-such-model.gguf"), "--port", String(port), "--data", join(work, "data")],
      work,
    );
    assert.doesNotMatch(run.stderr, /internal error|no-such-model/, run.stderr);
    assert.match(run.stderr, new RegExp(`^error: cannot listen on 127\\.0\\.0\\.1:${port}: the port is in use$`, "m"));
    assert.match(run.stderr, new RegExp(`^ {2}fix: pass --port N \\(0 picks a free port\\), or stop what listens on ${port}$`, "m"));
    assert.equal(run.code, 1, run.stderr);
  });
});

describe("diatonic dev on a spec of its own", () => {
  it("runs the spec's local overlay, and its gateway takes over the port held while the model loaded", async () => {
    const work = mkdtempSync(join(tmpdir(), "diatonic-dev-local-"));
    const models = writeTestModels(join(work, "models"));
    writeFileSync(join(work, "platform.yaml"), tinySpec("local-env", " []", ["environments:", "  prod: {}", "  local: {}"]));
    const port = await freePort();
    const stack = await startDevStack({
      cwd: work,
      model: models.model,
      port,
      dataDir: join(work, "data"),
      logger: devLogger(new Writable({ write: (_c, _e, done) => done() })),
    });
    try {
      assert.equal(stack.environment, "local");
      assert.equal(stack.platform, "local-env");
      assert.equal(stack.gatewayUrl, `http://127.0.0.1:${port}`);
      assert.equal((await fetch(`${stack.gatewayUrl}/readyz`)).status, 200);
    } finally {
      await stack.close();
      rmSync(work, { recursive: true, force: true });
    }
  });
});
