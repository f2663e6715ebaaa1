// generate() straight on node-llama-cpp: the text-processing work deferred to "while the next
// token decodes" (as the engine runs it) must give exactly what doing it inline gives.
import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import type { LlamaContext, LlamaModel } from "node-llama-cpp";
import { generate, type GenerateOptions } from "../../src/engine/generate.ts";
import { loadLlamaRuntime } from "../../src/engine/llama-runtime.ts";
import { writeTestModels } from "../../src/engine/index.ts";

const dir = mkdtempSync(join(tmpdir(), "diatonic-generate-"));
let model: LlamaModel;
let context: LlamaContext;
before(async () => {
  const files = writeTestModels(dir);
  const llama = await loadLlamaRuntime({ threads: 1 });
  model = await llama.loadModel({ modelPath: files.model });
  context = await model.createContext({ contextSize: 256, sequences: 1, threads: 1 });
});
after(async () => {
  await context.dispose();
  await model.dispose();
  rmSync(dir, { recursive: true, force: true });
});

async function run(options: Omit<GenerateOptions, "sampling"> & { stop?: string[]; maxTokens?: number }) {
  const sequence = context.getSequence();
  const pieces: string[] = [];
  try {
    const result = await generate(model, sequence, model.tokenize("the small red cat"), {
      ...options,
      sampling: { maxTokens: options.maxTokens ?? 40, temperature: 0, topP: 1, seed: 1, stop: options.stop ?? [] },
      onText: (piece) => pieces.push(piece),
    });
    assert.equal(pieces.join(""), result.text, "onText pieces add up to the text");
    return result;
  } finally {
    await sequence.dispose();
  }
}

/** Defers like the engine's pool does: after the next tick of the event loop. */
const deferred = (task: () => void): void => void setImmediate(task);
/** Processing that falls several tokens behind the sampling. */
const lagging = (task: () => void): void => void setTimeout(task, 3);

describe("generate", () => {
  it("gives the same text, finish reason and token count with deferred text processing", async () => {
    const inline = await run({});
    assert.equal(inline.completionTokens, 40);
    assert.deepEqual(await run({ defer: deferred }), inline);
    assert.deepEqual(await run({ defer: lagging }), inline);
  });

  it("stops at a stop string at the same token whether processing is deferred or not", async () => {
    const whole = (await run({})).text;
    for (const at of [3, 12, 25]) {
      const stop = whole.slice(at, at + 3);
      const inline = await run({ stop: [stop] });
      assert.equal(inline.text, whole.slice(0, whole.indexOf(stop)));
      assert.equal(inline.finishReason, "stop");
      assert.deepEqual(await run({ stop: [stop], defer: deferred }), inline, `stop string at ${at}`);
      assert.deepEqual(await run({ stop: [stop], defer: lagging }), inline, `stop string at ${at}, processing behind`);
    }
  });
});
