import assert from "node:assert/strict";
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
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

  describe("a model file that is not a usable base model: exit 2, named, no stack trace", () => {
    const models = join(dir, "unusable");
    before(async () => {
      assert.equal((await runCli(["engine", "make-test-model", "--out", models])).code, 0);
      writeFileSync(join(models, "notes.gguf"), "not a model at all\n");
      writeFileSync(join(models, "truncated.gguf"), readFileSync(join(models, "tiny-llama.gguf")).subarray(0, 100_000));
    });
    const cases: [string, string, RegExp][] = [
      [
        "not GGUF",
        "notes.gguf",
        /model \S+notes\.gguf is not a GGUF file: .*magic[\s\S]*fix: pass --model with the path of a GGUF model file/,
      ],
      [
        "a LoRA adapter",
        "tiny-lora-a.gguf",
        /model \S+tiny-lora-a\.gguf is a LoRA adapter, not a base model[\s\S]*fix: pass the base model as --model and the adapter as --lora NAME=PATH/,
      ],
      ["truncated", "truncated.gguf", /model \S+truncated\.gguf could not be loaded by llama\.cpp[\s\S]*fix: check the file is complete/],
    ];
    for (const [name, file, message] of cases) {
      it(name, async () => {
        const run = await runCli(["engine", "--model", join(models, file), "--port", "0"]);
        assert.equal(run.code, 2, run.stderr);
        assert.match(run.stderr, message);
        assert.doesNotMatch(run.stderr, /\n\s+at /, "no stack trace");
      });
    }
  });

  const bad: [string, string[], RegExp][] = [
    ["no --model", ["engine"], /--model/],
    ["a model file that does not exist", ["engine", "--model", join(dir, "none.gguf")], /cannot be read/],
    ["a --lora without NAME=", ["engine", "--model", "x.gguf", "--lora", "x.gguf"], /NAME=PATH/],
    [
      "a --lora named as the base model (checked before any load)",
      ["engine", "--model", "tiny-llama.gguf", "--lora", "tiny-llama=a.gguf"],
      /--lora tiny-llama=\S+a\.gguf: tiny-llama is the base model's name[\s\S]*fix: give the LoRA another NAME/,
    ],
    [
      "a --lora name given twice",
      ["engine", "--model", "x.gguf", "--lora", "a=a.gguf", "--lora", "a=b.gguf"],
      /--lora a is given twice[\s\S]*fix: give each LoRA its own NAME/,
    ],
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
