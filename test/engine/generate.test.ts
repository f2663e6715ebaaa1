// generate() straight on node-llama-cpp: the text-processing work deferred to "while the next
// token decodes" (as the engine runs it) must give exactly what doing it inline gives.
import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import type { LlamaContext, LlamaContextSequence, LlamaModel } from "node-llama-cpp";
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

/** Sampling with top_k, min_p and the penalties off (OpenAI's defaults). */
const NO_PENALTIES = { topK: 0, minP: 0, presencePenalty: 0, frequencyPenalty: 0 };

async function run(
  options: Omit<GenerateOptions, "sampling"> & { stop?: string[]; maxTokens?: number; prompt?: string; sequence?: LlamaContextSequence },
) {
  const sequence = options.sequence ?? context.getSequence();
  const pieces: string[] = [];
  try {
    const result = await generate(model, sequence, model.tokenize(options.prompt ?? "the small red cat"), {
      ...options,
      sampling: { ...NO_PENALTIES, maxTokens: options.maxTokens ?? 40, temperature: 0, topP: 1, seed: 1, stop: options.stop ?? [] },
      onText: (piece) => pieces.push(piece),
    });
    assert.equal(pieces.join(""), result.text, "onText pieces add up to the text");
    return result;
  } finally {
    if (options.sequence === undefined) await sequence.dispose();
  }
}

/** Defers like the engine's pool does: after the next tick of the event loop. */
const deferred = (task: () => void): void => void setImmediate(task);
/** Processing that falls several tokens behind the sampling. */
const lagging = (task: () => void): void => void setTimeout(task, 3);

describe("generate", () => {
  it("reuses the KV cells of a prompt prefix the sequence already holds, with the same text as a fresh sequence", async () => {
    const other = "the small red dog ran";
    const fresh = await run({});
    const freshOther = await run({ prompt: other });
    assert.equal(fresh.cachedPromptTokens, 0);
    const sequence = context.getSequence();
    try {
      const first = await run({ sequence });
      const again = await run({ sequence });
      const prompt = model.tokenize("the small red cat");
      assert.equal(again.cachedPromptTokens, prompt.length - 1, "all of the prompt but its last token came from the cache");
      assert.deepEqual({ ...again, cachedPromptTokens: 0 }, first);
      assert.deepEqual({ ...first, cachedPromptTokens: 0 }, fresh);
      // A prompt that shares a prefix: that much is reused, the rest (and the earlier completion) is not.
      const shared = prompt.findIndex((token, i) => token !== model.tokenize(other)[i]);
      const changed = await run({ sequence, prompt: other });
      assert.equal(changed.cachedPromptTokens, shared);
      assert.deepEqual({ ...changed, cachedPromptTokens: 0 }, freshOther);
    } finally {
      await sequence.dispose();
    }
  });

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

// A model whose tokens are single UTF-8 bytes, so characters span tokens: detokenizing a token
// alone gives U+FFFD until its character is complete. Shaped like node-llama-cpp's LlamaModel and
// LlamaContextSequence for the parts generate() uses; `eog` is a byte that is the model's end of
// generation, at which evaluate() ends its iteration unless asked to yield it (as node-llama-cpp 3.21.1's does).
function byteModel(text: string, eog?: number): { model: LlamaModel; sequence: () => LlamaContextSequence } {
  const bytes = [...Buffer.from(text, "utf8")];
  const decode = (tokens: readonly number[]) => Buffer.from(tokens).toString("utf8");
  const model = {
    isEogToken: (token: number) => token === eog,
    detokenize(tokens: readonly number[], _special?: boolean, lastTokens?: readonly number[]): string {
      if (lastTokens === undefined || lastTokens.length === 0) return decode(tokens);
      const before = decode(lastTokens);
      const all = decode([...lastTokens, ...tokens]);
      return all.startsWith(before) ? all.slice(before.length) : decode(tokens);
    },
  } as unknown as LlamaModel;
  const sequence = () =>
    ({
      contextSize: 4096,
      nextTokenIndex: 0,
      compareContextTokens: () => ({ firstDifferentIndex: 0 }),
      eraseContextTokenRanges: async () => undefined,
      async *evaluate(_tokens: readonly number[], options: { yieldEogToken?: boolean } = {}) {
        for (const byte of bytes) {
          await new Promise((resolve) => setImmediate(resolve));
          if (byte === eog && options.yieldEogToken !== true) return;
          yield byte;
        }
      },
    }) as unknown as LlamaContextSequence;
  return { model, sequence };
}

describe("generate with characters split across tokens", () => {
  const text = "héllo wörld ✓ 🙂 ok";
  const { model: bytes, sequence } = byteModel(text);
  const variants: [string, Pick<GenerateOptions, "defer" | "textIntervalMs">][] = [
    ["inline", {}],
    ["deferred, every token", { defer: deferred }],
    ["deferred, processing behind", { defer: lagging }],
    ["deferred, batched every 2 ms", { defer: deferred, textIntervalMs: 2 }],
    ["deferred, all at the end", { defer: deferred, textIntervalMs: Number.POSITIVE_INFINITY }],
  ];
  for (const [name, options] of variants) {
    it(`${name}: the text is whole and no piece holds a broken character`, async () => {
      const pieces: string[] = [];
      const result = await generate(bytes, sequence(), [], {
        ...options,
        sampling: { ...NO_PENALTIES, maxTokens: undefined, temperature: 0, topP: 1, seed: undefined, stop: [] },
        onText: (piece) => pieces.push(piece),
      });
      assert.equal(result.text, text);
      assert.equal(pieces.join(""), text);
      assert.ok(
        pieces.every((piece) => !piece.includes("\uFFFD")),
        JSON.stringify(pieces),
      );
      assert.equal(result.completionTokens, Buffer.byteLength(text));
    });
  }
});

describe("generate at the model's end of generation (fake sequence shaped like node-llama-cpp's)", () => {
  // A real model samples its end token at random (SmolLM2 at temperature 0.8: 2 streams in 30 ended
  // early), which reported finish_reason "length" with fewer than max_tokens tokens.
  it('finishes with "stop", the end token counted, nothing after it sent', async () => {
    const { model: bytes, sequence } = byteModel("all done\nnever sent", "\n".charCodeAt(0));
    const result = await generate(bytes, sequence(), [], {
      defer: deferred,
      sampling: { ...NO_PENALTIES, maxTokens: 100, temperature: 0, topP: 1, seed: undefined, stop: [] },
      onText: () => undefined,
    });
    assert.deepEqual(
      { text: result.text, finishReason: result.finishReason, completionTokens: result.completionTokens },
      { text: "all done", finishReason: "stop", completionTokens: 9 },
    );
  });
});

describe("generate when deferred work fails", () => {
  it("rejects with the error of an onText that throws, and stops generating", async () => {
    const { model: bytes, sequence } = byteModel("a long enough text to keep generating for a while");
    let calls = 0;
    await assert.rejects(
      generate(bytes, sequence(), [], {
        defer: deferred,
        sampling: { ...NO_PENALTIES, maxTokens: undefined, temperature: 0, topP: 1, seed: undefined, stop: [] },
        onText: () => {
          calls++;
          throw new Error("client went away");
        },
      }),
      /client went away/,
    );
    assert.equal(calls, 1);
  });
});
