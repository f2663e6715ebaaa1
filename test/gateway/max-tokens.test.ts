// An adapter's default max_tokens beside a long prompt, against the real local engine with a short
// context: the client set none, so the answer gets the room that is left (as vLLM gives when the
// field is unset); a client's own max_tokens that does not fit stays the engine's 400.
import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { pino } from "pino";
import { startEngine, writeTestModels, type RunningEngine } from "../../src/engine/index.ts";
import { apiError, startTestGateway, type TestGateway } from "./support/harness.ts";

const CONTEXT = 160;

describe("an adapter's default max_tokens that does not fit beside the prompt", () => {
  let engine: RunningEngine;
  let gw: TestGateway;
  let dir: string;
  before(async () => {
    dir = mkdtempSync(join(tmpdir(), "diatonic-max-tokens-"));
    const files = writeTestModels(dir);
    engine = await startEngine({
      modelPath: files.model,
      servedModelName: "tiny",
      port: 0,
      threads: 1,
      maxModelLen: CONTEXT,
      logger: pino({ level: "silent" }),
    });
    const limits = { concurrency: 2, queue: 8, timeoutMs: 20_000, firstByteTimeoutMs: 10_000 };
    gw = await startTestGateway(engine.url, {
      baseModel: { name: "tiny", upstream: "engine" },
      adapters: [
        {
          name: "wordy",
          route: "/wordy",
          upstreamModel: "tiny",
          upstream: "engine",
          systemPrompt: "Answer.",
          sampling: { temperature: 0, maxTokens: 120 },
          limits,
        },
      ],
    });
  });
  after(async () => {
    await gw?.close();
    await engine?.close();
    rmSync(dir, { recursive: true, force: true });
  });

  const longPrompt = "tell me about pods and nodes ".repeat(3);

  it("the client set none: the answer gets the room left, not a 400", async () => {
    const answer = await gw.client().chat.completions.create({ model: "wordy", messages: [{ role: "user", content: longPrompt }] });
    const usage = answer.usage;
    assert.ok(usage);
    assert.ok(
      usage.prompt_tokens + 120 > CONTEXT,
      `the prompt (${usage.prompt_tokens} tokens) plus the default 120 must not fit ${CONTEXT}: the case under test`,
    );
    assert.ok(
      usage.prompt_tokens + usage.completion_tokens <= CONTEXT,
      `${usage.prompt_tokens} + ${usage.completion_tokens} fits the context`,
    );
    assert.ok(usage.completion_tokens > 0);
  });

  it("the client asked for too many itself: the engine's 400 stays", async () => {
    const error = await apiError(
      gw.client().chat.completions.create({ model: "wordy", messages: [{ role: "user", content: longPrompt }], max_tokens: 120 }),
    );
    assert.equal(error.status, 400);
    assert.match(error.message, /maximum context length is 160 tokens/);
  });
});
