// The access log's destination: lines batched into few writes, never lost at exit, never blocking
// the gateway when the log reader stalls (a real FIFO nobody reads, so writes meet EAGAIN).
import assert from "node:assert/strict";
import { execFileSync, spawn, spawnSync } from "node:child_process";
import { closeSync, constants, mkdtempSync, openSync, readFileSync, readSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, describe, it } from "node:test";
import { setTimeout as sleep } from "node:timers/promises";
import { pino } from "pino";
import { accessLogFor, BatchedLines, createGatewayLogger } from "../../src/gateway/logging.ts";
import { tool, unmet } from "../support/needs.ts";

const dir = mkdtempSync(join(tmpdir(), "diatonic-log-"));
after(() => rmSync(dir, { recursive: true, force: true }));

function lines(file: string): string[] {
  return readFileSync(file, "utf8")
    .split("\n")
    .filter((line) => line !== "");
}

/** Reads a non-blocking descriptor until, once `finished()`, `quietReads` reads in a row (10 ms apart) find nothing. */
async function readUntilQuiet(fd: number, quietReads: number, finished: () => boolean = () => true): Promise<string> {
  let received = "";
  const buffer = Buffer.alloc(65_536);
  for (let idle = 0; idle < quietReads;) {
    let read = 0;
    try {
      read = readSync(fd, buffer, 0, buffer.length, null);
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== "EAGAIN") throw error;
    }
    if (read > 0) {
      received += buffer.toString("utf8", 0, read);
      idle = 0;
    } else {
      if (finished()) idle++; // empty reads count only once the writer is done
      await sleep(10);
    }
  }
  return received;
}

// The stalled-reader cases make a named pipe with mkfifo.
const fifoSkip = unmet("the stalled-pipe cases", [tool("mkfifo", "coreutils")]) ?? false;

describe("BatchedLines", () => {
  it("writes a batch once it is full, a partial one after flushMs or on flush, in order", async () => {
    const file = join(dir, "batches.log");
    const fd = openSync(file, "w");
    try {
      const out = new BatchedLines(fd, { batchChars: 100, flushMs: 50, maxPendingChars: 10_000 });
      out.write(`${"a".repeat(40)}\n`);
      out.write(`${"b".repeat(40)}\n`);
      assert.deepEqual(lines(file), [], "under a batch: nothing written yet");
      out.write(`${"c".repeat(40)}\n`);
      assert.deepEqual(lines(file), ["a".repeat(40), "b".repeat(40), "c".repeat(40)], "a full batch goes out in the same call");
      out.write("d\n");
      await sleep(120);
      assert.equal(lines(file).at(-1), "d", "a partial batch goes out after flushMs");
      out.write("é 🎉\n");
      await new Promise<void>((resolve) => out.flush(() => resolve()));
      assert.equal(lines(file).at(-1), "é 🎉");
    } finally {
      closeSync(fd);
    }
  });

  it("writes what is pending when the process exits, even on process.exit()", () => {
    const child = spawnSync(
      process.execPath,
      [
        "--import",
        "tsx",
        "--input-type=module",
        "-e",
        `import { createGatewayLogger } from ${JSON.stringify(new URL("../../src/gateway/logging.ts", import.meta.url).href)};
         const log = createGatewayLogger({ flushMs: 60_000 });
         for (let i = 0; i < 5; i++) log.info({ i }, "request");
         process.exit(0);`,
      ],
      { encoding: "utf8" },
    );
    assert.equal(child.status, 0, child.stderr);
    const written = child.stdout
      .split("\n")
      .filter((line) => line !== "")
      .map((line) => JSON.parse(line) as { i: number; msg: string; component: string });
    assert.deepEqual(
      written.map((line) => line.i),
      [0, 1, 2, 3, 4],
    );
    assert.equal(written[0]?.component, "gateway");
  });

  it(
    "at exit, a batch stalled on a full pipe goes out first, from where it stopped: nothing lost, nothing out of order",
    { skip: fifoSkip },
    async () => {
      const fifo = join(dir, "exit.fifo");
      execFileSync("mkfifo", [fifo]);
      const reader = openSync(fifo, constants.O_RDONLY | constants.O_NONBLOCK);
      try {
        // The child fills the pipe (64 kB) several times over, then exits at once: the batch the pipe
        // refused and every line after it are still waiting when process.exit() runs.
        const child = spawn(
          process.execPath,
          [
            "--import",
            "tsx",
            "--input-type=module",
            "-e",
            `import { openSync, constants } from "node:fs";
           import { BatchedLines } from ${JSON.stringify(new URL("../../src/gateway/logging.ts", import.meta.url).href)};
           const out = new BatchedLines(openSync(${JSON.stringify(fifo)}, constants.O_WRONLY | constants.O_NONBLOCK), { batchChars: 4096, flushMs: 60_000, maxPendingChars: 10_000_000 });
           for (let i = 0; i < 3000; i++) out.write(JSON.stringify({ i, pad: "x".repeat(80) }) + "\\n");
           process.exit(0);`,
          ],
          { stdio: ["ignore", "ignore", "pipe"] },
        );
        let stderr = "";
        child.stderr.on("data", (chunk: Buffer) => (stderr += chunk.toString()));
        const exited = new Promise<number | null>((resolve) => child.once("exit", resolve));
        let done = false;
        void exited.then(() => (done = true));
        await sleep(300); // the reader is slow to start: the child meets EAGAIN
        const received = await readUntilQuiet(reader, 5, () => done);
        assert.equal(await exited, 0, stderr);
        const numbers = received
          .split("\n")
          .filter((text) => text !== "")
          .map((text) => (JSON.parse(text) as { i: number }).i);
        assert.deepEqual(
          numbers,
          Array.from({ length: 3000 }, (_, i) => i),
        );
      } finally {
        closeSync(reader);
      }
    },
  );

  it(
    "when the reader stalls, keeps serving: writes wait, lines beyond the cap are dropped and counted, the rest arrive once it reads",
    { skip: fifoSkip },
    async () => {
      const fifo = join(dir, "stalled.fifo");
      execFileSync("mkfifo", [fifo]);
      const reader = openSync(fifo, constants.O_RDONLY | constants.O_NONBLOCK);
      const writer = openSync(fifo, constants.O_WRONLY | constants.O_NONBLOCK);
      try {
        const out = new BatchedLines(writer, { batchChars: 4096, flushMs: 10, maxPendingChars: 200_000 });
        const line = `${JSON.stringify({ pad: "x".repeat(90) })}\n`;
        const total = 5000; // ~500 kB: the pipe holds 64 kB, the cap 200 kB
        const started = performance.now();
        for (let i = 0; i < total; i++) out.write(line);
        assert.ok(performance.now() - started < 1000, "writing never blocked on the full pipe");
        const received = await readUntilQuiet(reader, 40);
        const got = received.split("\n").filter((text) => text !== "");
        const note = got.map((text) => JSON.parse(text) as { dropped?: number; msg?: string }).find((entry) => entry.dropped !== undefined);
        assert.ok(note, "a line says how many were dropped");
        const kept = got.filter((text) => text === line.trimEnd()).length;
        assert.equal(kept + (note.dropped ?? 0), total, "every line is either written or counted as dropped");
        assert.ok(kept * line.length > 200_000, `at least the cap's worth arrived (${kept} lines)`);
      } finally {
        closeSync(writer);
        closeSync(reader);
      }
    },
  );
});

describe("the access log", () => {
  it("writes, on the gateway's own logger, the line pino would write for the same record", async () => {
    const file = join(dir, "access.log");
    const fd = openSync(file, "w");
    const entries: Record<string, unknown>[] = [
      {
        requestId: "r-1",
        method: "POST",
        path: "/v1/chat/completions",
        status: 200,
        ms: 0.4,
        adapter: "code",
        stream: true,
        promptTokens: 7,
      },
      {
        requestId: 'odd "id"\n\u2028é🎉',
        method: "GET",
        path: "/x\\y",
        status: 499,
        ms: 12,
        error: "client_closed",
        skipped: undefined,
        retrieval: "skipped",
      },
      { requestId: "r-3", status: 200, ms: Number.NaN, prompt: [{ role: "user", content: 'say "hi"' }] },
    ];
    try {
      const logger = createGatewayLogger({ fd, batchChars: 1 });
      const log = accessLogFor(logger);
      for (const entry of entries) log(entry);
      logger.level = "warn";
      log({ requestId: "not-logged" });
      const reference: string[] = [];
      const viaPino = pino({ base: { component: "gateway" } }, { write: (line: string) => reference.push(line) });
      for (const entry of entries) viaPino.info(entry, "request");
      const withoutTime = (line: string) => ({ ...(JSON.parse(line) as Record<string, unknown>), time: 0 });
      const written = lines(file);
      assert.equal(written.length, entries.length, "nothing below the logger's level");
      assert.deepEqual(written.map(withoutTime), reference.map(withoutTime));
      assert.deepEqual(
        Object.keys(JSON.parse(written[0] as string) as object),
        Object.keys(JSON.parse(reference[0] as string) as object),
        "same field order",
      );
    } finally {
      closeSync(fd);
    }
  });

  it("goes through pino itself on any other logger", () => {
    const seen: unknown[] = [];
    const logger = pino({ base: null }, { write: (line: string) => seen.push(JSON.parse(line)) });
    accessLogFor(logger)({ requestId: "r-9", status: 201 });
    assert.deepEqual(
      seen.map((line) => ({ ...(line as object), time: 0 })),
      [{ level: 30, time: 0, requestId: "r-9", status: 201, msg: "request" }],
    );
  });
});
