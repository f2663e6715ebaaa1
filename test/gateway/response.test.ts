// Reading usage from a whole JSON answer without parsing it, and renaming its model, on bytes.
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { modelRename, renameModelIn, usageInJson } from "../../src/gateway/sse.ts";

const bytes = (value: unknown) => Buffer.from(typeof value === "string" ? value : JSON.stringify(value));

describe("usage from a JSON answer", () => {
  it("reads vLLM's and OpenAI's shapes: compact or spaced, with nested details, usage after the choices", () => {
    const usage = { prompt_tokens: 7, completion_tokens: 6, total_tokens: 13, prompt_tokens_details: { cached_tokens: 2 } };
    const answer = { id: "chatcmpl-1", object: "chat.completion", model: "code-lora", choices: [{ index: 0, message: { role: "assistant", content: "hi" } }], usage, prompt_logprobs: null };
    assert.deepEqual(usageInJson(bytes(answer)), { promptTokens: 7, completionTokens: 6 });
    assert.deepEqual(usageInJson(bytes(JSON.stringify(answer, null, 2))), { promptTokens: 7, completionTokens: 6 });
    // Embeddings report prompt and total only.
    assert.deepEqual(usageInJson(bytes({ object: "list", data: [], usage: { prompt_tokens: 3, total_tokens: 3 } })), { promptTokens: 3, completionTokens: 0 });
  });

  it("is not fooled by generated text that looks like usage, or by strings with braces and escaped quotes", () => {
    const content = 'Here: "usage": {"prompt_tokens": 999} and } { \\" "';
    const usage = { note: 'a "}" and \\ inside', prompt_tokens_details: { prompt_tokens: 999, list: [1, { total_tokens: 2 }] }, prompt_tokens: 5, completion_tokens: 1 };
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
    assert.deepEqual(usageInJson(bytes({ choices: [{ message: { content: "héllo — 你好 🎉" } }], usage: { prompt_tokens: 2, completion_tokens: 4 } })), { promptTokens: 2, completionTokens: 4 });
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
