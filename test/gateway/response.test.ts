// Reading usage from a whole JSON answer without parsing it, and renaming its model, on bytes.
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { modelRename, renameModelIn, SseRelay, usageInJson } from "../../src/gateway/sse.ts";

const bytes = (value: unknown) => Buffer.from(typeof value === "string" ? value : JSON.stringify(value));

describe("usage from a JSON answer", () => {
  it("reads vLLM's and OpenAI's shapes: compact or spaced, with nested details, usage after the choices", () => {
    const usage = { prompt_tokens: 7, completion_tokens: 6, total_tokens: 13, prompt_tokens_details: { cached_tokens: 2 } };
    const answer = {
      id: "chatcmpl-1",
      object: "chat.completion",
      model: "code-lora",
      choices: [{ index: 0, message: { role: "assistant", content: "hi" } }],
      usage,
      prompt_logprobs: null,
    };
    assert.deepEqual(usageInJson(bytes(answer)), { promptTokens: 7, completionTokens: 6 });
    assert.deepEqual(usageInJson(bytes(JSON.stringify(answer, null, 2))), { promptTokens: 7, completionTokens: 6 });
    // Embeddings report prompt and total only.
    assert.deepEqual(usageInJson(bytes({ object: "list", data: [], usage: { prompt_tokens: 3, total_tokens: 3 } })), {
      promptTokens: 3,
      completionTokens: 0,
    });
  });

  it("is not fooled by generated text that looks like usage, or by strings with braces and escaped quotes", () => {
    const content = 'Here: "usage": {"prompt_tokens": 999} and } { \\" "';
    const usage = {
      note: 'a "}" and \\ inside',
      prompt_tokens_details: { prompt_tokens: 999, list: [1, { total_tokens: 2 }] },
      prompt_tokens: 5,
      completion_tokens: 1,
    };
    const answer = { choices: [{ message: { content } }], usage };
    assert.deepEqual(usageInJson(bytes(answer)), { promptTokens: 5, completionTokens: 1 });
    const withoutUsage = { choices: [{ message: { content: 'the text says "usage": {"prompt_tokens": 999}' } }] };
    assert.equal(usageInJson(bytes(withoutUsage)), undefined, "a quoted key inside a string is escaped, so it is never taken for one");
  });

  it("gives nothing for null, missing, malformed or non-usage objects, and handles UTF-8 text before the usage", () => {
    assert.equal(usageInJson(bytes({ usage: null })), undefined);
    assert.equal(usageInJson(bytes({ choices: [] })), undefined);
    assert.equal(usageInJson(bytes('{"usage": {"prompt_tokens": 3,')), undefined);
    assert.equal(usageInJson(bytes({ usage: { tokens: 3 } })), undefined);
    assert.deepEqual(
      usageInJson(bytes({ choices: [{ message: { content: "héllo — 你好 🎉" } }], usage: { prompt_tokens: 2, completion_tokens: 4 } })),
      { promptTokens: 2, completionTokens: 4 },
    );
  });
});

describe("model rename on bytes", () => {
  it("renames the answer's model and leaves everything else byte for byte, multi-byte text included", () => {
    const rename = modelRename("code-lora", "code");
    assert.ok(rename);
    const answer = { id: "x", model: "code-lora", choices: [{ message: { content: '"model":"code-lora" — é' } }] };
    const out = renameModelIn(bytes(answer), rename);
    assert.deepEqual(JSON.parse(out.toString("utf8")), { ...answer, model: "code" });
    const untouched = bytes({ id: "x", model: "other" });
    assert.equal(renameModelIn(untouched, rename), untouched, "no copy when there is nothing to rename");
    assert.equal(modelRename("same", "same"), undefined);
  });
});

// vLLM 0.34's answers as its pydantic models serialize them (compact), and the same with spacing, as
// another OpenAI-compatible server may send: the fast paths take the first, a parse the second.
const VLLM_ANSWER =
  '{"id":"chatcmpl-a1","object":"chat.completion","created":1765000000,"model":"code-lora","choices":[{"index":0,"message":{"role":"assistant","content":"Hello!","refusal":null,"audio":null,"function_call":null,"reasoning":null},"logprobs":null,"finish_reason":"stop","stop_reason":null,"token_ids":null,"routed_experts":null,"weight_versions":null}],"service_tier":null,"system_fingerprint":"vllm-0.34.0-62d4bc3c","usage":{"prompt_tokens":10,"total_tokens":13,"completion_tokens":3,"completion_tokens_details":null},"prompt_logprobs":null,"prompt_token_ids":null,"prompt_text":null,"kv_transfer_params":null,"ec_transfer_params":null,"metrics":null}';

describe("vLLM's shapes and other spacings", () => {
  it("reads usage and renames the model in vLLM 0.34's compact answer and in a pretty-printed one alike", () => {
    const rename = modelRename("code-lora", "code");
    assert.ok(rename);
    for (const text of [
      VLLM_ANSWER,
      JSON.stringify(JSON.parse(VLLM_ANSWER), null, 2),
      VLLM_ANSWER.replaceAll('":', '": ').replaceAll(',"', ', "'),
    ]) {
      assert.deepEqual(usageInJson(bytes(text)), { promptTokens: 10, completionTokens: 3 });
      const renamed = JSON.parse(renameModelIn(bytes(text), rename).toString("utf8")) as { model: string; choices: unknown[] };
      assert.equal(renamed.model, "code", text.slice(0, 60));
      assert.deepEqual(renamed.choices, (JSON.parse(VLLM_ANSWER) as { choices: unknown[] }).choices);
    }
  });

  it("relays vLLM's stream and a spaced one the same: renamed, the usage-only chunk dropped when the client did not ask", () => {
    const rename = modelRename("code-lora", "code");
    const chunks = [
      {
        id: "c",
        object: "chat.completion.chunk",
        created: 1,
        model: "code-lora",
        choices: [{ index: 0, delta: { role: "assistant", content: "" }, logprobs: null, finish_reason: null }],
        usage: null,
      },
      {
        id: "c",
        object: "chat.completion.chunk",
        created: 1,
        model: "code-lora",
        choices: [{ index: 0, delta: { content: "Hi" }, logprobs: null, finish_reason: "stop", stop_reason: null }],
        usage: null,
      },
      {
        id: "c",
        object: "chat.completion.chunk",
        created: 1,
        model: "code-lora",
        choices: [],
        usage: { prompt_tokens: 4, completion_tokens: 1, total_tokens: 5 },
      },
    ];
    for (const spacing of [undefined, 1]) {
      const stream =
        chunks.map((chunk) => `data: ${JSON.stringify(chunk, null, spacing).replaceAll("\n", "")}\n\n`).join("") + "data: [DONE]\n\n";
      const relay = new SseRelay(false, undefined, rename);
      const out = relay.push(stream) + relay.flush();
      const events = out
        .split("\n\n")
        .filter((e) => e.startsWith("data: ") && !e.includes("[DONE]"))
        .map((e) => JSON.parse(e.slice(6)) as Record<string, unknown>);
      assert.equal(events.length, 2, `spacing ${String(spacing)}: the usage-only chunk is dropped`);
      assert.ok(
        events.every((e) => e.model === "code" && !("usage" in e)),
        `spacing ${String(spacing)}: ${out}`,
      );
      assert.deepEqual(relay.usage, { promptTokens: 4, completionTokens: 1 });
    }
  });
});
