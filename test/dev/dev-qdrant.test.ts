// `diatonic dev --vector-store qdrant` as a user runs it: the stack on a real Qdrant server kept in the
// data folder; ingest and a cited answer; Ctrl-C leaves no Qdrant process; the data is there on the
// next start. Without a binary, a clear error that names QDRANT_BIN, before anything starts.
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { existsSync, mkdtempSync, readdirSync, readlinkSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, describe, it } from "node:test";
import { ingestPaths } from "../../src/rag/client.ts";
import { freeLoopbackPort } from "../../src/rag/qdrant-server.ts";
import { findTestQdrant } from "../rag/support/qdrant.ts";

const found = await findTestQdrant();

/** Processes whose working folder is `dir` (Qdrant runs in its data folder). */
function processesIn(dir: string): number[] {
  const pids: number[] = [];
  for (const entry of readdirSync("/proc")) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      if (readlinkSync(`/proc/${entry}/cwd`) === dir) pids.push(Number(entry));
    } catch {
      // Gone, or not ours to read.
    }
  }
  return pids;
}

function runDev(args: string[], env: NodeJS.ProcessEnv = process.env) {
  const child = spawn(process.execPath, ["bin/diatonic.js", "dev", ...args], { stdio: ["ignore", "pipe", "pipe"], env });
  const output = { stdout: "", stderr: "" };
  child.stdout.on("data", (chunk: Buffer) => (output.stdout += chunk.toString()));
  child.stderr.on("data", (chunk: Buffer) => (output.stderr += chunk.toString()));
  const exited = new Promise<number | null>((resolve) => child.once("exit", resolve));
  return { child, output, exited };
}

async function waitReady(url: string, run: ReturnType<typeof runDev>): Promise<void> {
  const deadline = Date.now() + 90_000;
  while (Date.now() < deadline) {
    if (run.child.exitCode !== null) throw new Error(`diatonic dev exited with ${run.child.exitCode}: ${run.output.stderr}`);
    try {
      if ((await fetch(`${url}/readyz`)).status === 200) return;
    } catch {
      // Not listening yet.
    }
    await new Promise((resolve) => setTimeout(resolve, 200));
  }
  throw new Error("diatonic dev did not become ready in 90 s");
}

describe("diatonic dev --vector-store qdrant", { timeout: 300_000 }, () => {
  const dir = mkdtempSync(join(tmpdir(), "diatonic-dev-qdrant-"));
  after(() => rmSync(dir, { recursive: true, force: true }));

  it(
    "runs the stack on Qdrant with its data in the data folder; Ctrl-C stops Qdrant too; a restart finds the documents",
    { skip: found.skip },
    async () => {
      const data = join(dir, "data");
      // A folder per embedding model: vectors of one model never meet another's.
      const qdrantData = join(data, "qdrant-llama-3-8b-instruct");
      writeFileSync(join(dir, "runbook.md"), "# Runbook\n\nThe pager rotation is kept in the spreadsheet called heliotrope-roster.\n");
      for (const round of ["first", "second"]) {
        const port = await freeLoopbackPort();
        const url = `http://127.0.0.1:${port}`;
        // The tiny model, embedding too: this is about the store (the demo tier runs the real models).
        const run = runDev([
          "--port",
          String(port),
          "--data",
          data,
          "--vector-store",
          "qdrant",
          "--model",
          "tiny",
          "--embeddings",
          "engine",
        ]);
        try {
          await waitReady(url, run);
          await new Promise((resolve) => setTimeout(resolve, 100));
          assert.match(
            run.output.stdout,
            /^ {2}vectors {4}http:\/\/127\.0\.0\.1:\d+ {3}\(Qdrant 1\.19\.0, data in .*\/data\/qdrant-llama-3-8b-instruct\)$/m,
          );
          assert.match(run.output.stdout, /Ctrl-C stops everything, Qdrant too\./);
          assert.deepEqual(processesIn(qdrantData).length, 1, "one Qdrant process, running in the data folder");
          if (round === "first") {
            const summary = await ingestPaths({ adapter: "rag", paths: ["runbook.md"], cwd: dir, gateway: url });
            assert.equal(summary.added, 1);
          }
          const answer = (await (
            await fetch(`${url}/v1/chat/completions`, {
              method: "POST",
              headers: { "content-type": "application/json" },
              body: JSON.stringify({
                model: "rag",
                messages: [{ role: "user", content: "Where is the heliotrope-roster kept?" }],
                max_tokens: 4,
              }),
            })
          ).json()) as {
            diatonic?: { citations: Array<{ source: string }> };
          };
          assert.equal(answer.diatonic?.citations[0]?.source, "runbook.md", `${round} run: cited from Qdrant`);
        } finally {
          run.child.kill("SIGINT");
        }
        assert.equal(await run.exited, 0, run.output.stderr);
        assert.deepEqual(processesIn(qdrantData), [], "no Qdrant process is left after Ctrl-C");
      }
      assert.ok(existsSync(join(qdrantData, "storage", "collections")), "Qdrant's storage is in the data folder");
    },
  );

  it("without a binary: exits 1 before starting anything, naming QDRANT_BIN and the path it looked at", async () => {
    const missing = join(dir, "no-qdrant-here");
    const run = runDev(["--port", "0", "--data", join(dir, "data-missing"), "--vector-store", "qdrant"], {
      ...process.env,
      QDRANT_BIN: missing,
    });
    assert.equal(await run.exited, 1);
    assert.match(
      run.output.stderr,
      new RegExp(`QDRANT_BIN names ${missing}, which does not exist or holds no qdrant-X\\.Y\\.Z-x86_64-linux\\(\\.gz\\)`),
    );
    assert.match(run.output.stderr, /point QDRANT_BIN at a Qdrant server binary/);
    assert.doesNotMatch(run.output.stderr, /loading|at .*\.ts:\d+/, "no engine started, no stack trace");
    const bad = runDev(["--vector-store", "chroma"]);
    assert.equal(await bad.exited, 2);
    assert.match(bad.output.stderr, /--vector-store "chroma" is not one of embedded, qdrant/);
  });
});
