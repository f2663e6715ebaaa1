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
import { promptAloneTooLong } from "../../src/gateway/proxy.ts";
import { startFixedUpstream } from "./support/fixed-upstream.ts";
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

describe("a prompt that alone fills the context (fixed-upstream fake answering vLLM's refusal)", () => {
  it("is refused once: no retry without the adapter's max_tokens, which could not fit either (the engine read the prompt twice)", async () => {
    const upstream = await startFixedUpstream();
    const gw = await startTestGateway(upstream.url);
    try {
      const refusal =
        "This model's maximum context length is 8192 tokens. However, you requested 9100 tokens (9000 in the messages, 100 in the completion). Please reduce the length of the messages or completion.";
      upstream.behaviour = { kind: "status", status: 400, message: refusal };
      const before = upstream.requests.length;
      const error = await apiError(gw.client().chat.completions.create({ model: "code", messages: [{ role: "user", content: "long" }] }));
      assert.equal(error.status, 400);
      assert.match(error.message, /9000 in the messages/);
      assert.equal(upstream.requests.length - before, 1, "sent once");
      // Room for the answer but not for the adapter's default: retried without it, as before.
      upstream.behaviour = { kind: "status", status: 400, message: refusal.replace("9000 in the messages", "8000 in the messages") };
      const again = upstream.requests.length;
      await apiError(gw.client().chat.completions.create({ model: "code", messages: [{ role: "user", content: "long" }] }));
      assert.equal(upstream.requests.length - again, 2, "sent again without max_tokens");
    } finally {
      await gw.close();
      await upstream.close();
    }
  });

  it("reads the prompt's size from vLLM's wordings and our engine's", () => {
    assert.equal(
      promptAloneTooLong(
        "maximum context length is 100 tokens. However, you requested 130 tokens (120 in the messages, 10 in the completion).",
      ),
      true,
    );
    assert.equal(
      promptAloneTooLong(
        "maximum context length is 100 tokens. However, you requested 110 tokens (90 in the messages, 20 in the completion).",
      ),
      false,
    );
    assert.equal(
      promptAloneTooLong("This model's maximum context length is 100 tokens. However, your request has 150 input tokens."),
      true,
    );
    assert.equal(
      promptAloneTooLong("This model's maximum context length is 100 tokens. However, you requested 101 tokens in the messages."),
      true,
    );
    assert.equal(promptAloneTooLong("maximum context length exceeded"), false, "no numbers: retried as before");
  });
});
