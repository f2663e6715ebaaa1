import assert from "node:assert/strict";
import { existsSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, describe, it } from "node:test";
import { runCli } from "../support/cli.ts";

const dir = mkdtempSync(join(tmpdir(), "diatonic-engine-cli-"));
after(() => rmSync(dir, { recursive: true, force: true }));

describe("diatonic engine", () => {
  it("make-test-model writes a base model and two LoRA adapters and prints their paths", async () => {
    const run = await runCli(["engine", "make-test-model", "--out", join(dir, "models")]);
    assert.equal(run.code, 0, run.stderr);
    const lines = run.stdout.trim().split("\n");
    assert.equal(lines.length, 3);
    assert.match(lines[0] ?? "", /^model .*tiny-llama\.gguf$/);
    for (const line of lines.slice(1)) {
      const path = /^lora [\w-]+=(.*lora.*\.gguf)$/.exec(line)?.[1];
      assert.ok(path !== undefined && existsSync(path), line);
    }
    assert.match(run.stderr, /noise/);
  });

  const bad: [string, string[], RegExp][] = [
    ["no --model", ["engine"], /--model/],
    ["a model file that does not exist", ["engine", "--model", join(dir, "none.gguf")], /cannot be read/],
    ["a --lora without NAME=", ["engine", "--model", "x.gguf", "--lora", "x.gguf"], /NAME=PATH/],
    ["a port that is not a number", ["engine", "--model", "x.gguf", "--port", "eighty"], /--port/],
    ["--parallel 0", ["engine", "--model", "x.gguf", "--parallel", "0"], /--parallel/],
    ["make-test-model without --out", ["engine", "make-test-model"], /--out/],
    ["an unknown flag", ["engine", "--gpu"], /gpu/],
  ];
  for (const [name, args, message] of bad) {
    it(`exits 2 on ${name}`, async () => {
      const run = await runCli(args);
      assert.equal(run.code, 2, run.stderr);
      assert.match(run.stderr, message);
    });
  }
});
