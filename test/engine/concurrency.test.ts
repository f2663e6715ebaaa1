// Parallel sequences, the bounded queue and 503 past it, and client disconnects.
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { postJson, startTestEngine, type TestEngine } from "./helpers.ts";

let t: TestEngine;
before(async () => {
  t = await startTestEngine({ parallel: 2, maxQueue: 3 });
});
after(() => t.close());

const chat = (model: string, maxTokens: number) => ({
  model,
  messages: [{ role: "user" as const, content: "count the stones" }],
  temperature: 0,
  max_tokens: maxTokens,
});

async function metric(name: string): Promise<number> {
  const text = await (await fetch(`${t.url}/metrics`)).text();
  return Number(new RegExp(`^${name}\\{[^}]*\\} (\\S+)$`, "m").exec(text)?.[1]);
}

/** The decode-step histogram: steps in all, and steps that carried exactly `sequences`. */
async function decodeSteps(): Promise<Map<number, number>> {
  const text = await (await fetch(`${t.url}/metrics`)).text();
  const cumulative = [...text.matchAll(/^diatonic_engine_decode_batch_sequences_bucket\{le="(\d+)"\} (\d+)$/gm)].map(
    (m) => [Number(m[1]), Number(m[2])] as const,
  );
  return new Map(cumulative.map(([le, count], i) => [le, count - (cumulative[i - 1]?.[1] ?? 0)]));
}

describe("concurrency", () => {
  it("generations on one context are decoded together: each step carries every running sequence", async () => {
    const before = await decodeSteps();
    const results = await Promise.all(
      [0, 1].map(() => t.openai.completions.create({ model: "tiny", prompt: "the small red cat", max_tokens: 60, temperature: 0 })),
    );
    for (const result of results) assert.equal(result.usage?.completion_tokens, 60);
    const after = await decodeSteps();
    const steps = (sequences: number) => (after.get(sequences) ?? 0) - (before.get(sequences) ?? 0);
    // 2 × 60 tokens: the prompts (together or apart), then one step per token for both; a step
    // alone is one a sequence missed (the other then waits for it in the next).
    assert.ok(steps(2) >= 58, `steps with both sequences: ${steps(2)}, alone: ${steps(1)}`);
    assert.ok(steps(1) <= 3, `steps with both sequences: ${steps(2)}, alone: ${steps(1)}`);
  });

  it("a generation that ends first (max_tokens, a disconnect) does not hold up the others decoded with it", async () => {
    const short = t.openai.completions.create({ model: "tiny", prompt: "the small red cat", max_tokens: 5, temperature: 0 });
    const long = t.openai.completions.create({ model: "tiny", prompt: "the small red cat", max_tokens: 80, temperature: 0 });
    const controller = new AbortController();
    const dropped = fetch(`${t.url}/v1/completions`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ model: "tiny", prompt: "the large blue dog", max_tokens: 1000, stream: true }),
      signal: controller.signal,
    }).then(async (response) => {
      await response.body?.getReader().read();
      controller.abort();
    });
    assert.equal((await short).usage?.completion_tokens, 5);
    assert.equal((await long).usage?.completion_tokens, 80);
    await dropped;
  });

  it("concurrent requests over the base model and both adapters all complete", async () => {
    const models = ["tiny", "lora-a", "lora-b", "tiny", "lora-a"];
    const results = await Promise.all(models.map((model) => t.openai.chat.completions.create(chat(model, 12))));
    for (const result of results) assert.equal(result.usage?.completion_tokens, 12);
    assert.equal(await metric("vllm:num_requests_running"), 0);
    assert.equal(await metric("vllm:num_requests_waiting"), 0);
  });

  it("concurrent streams on several contexts each stream exactly their JSON answer's text", async () => {
    // One request per model: each runs alone in its context, so its decode is the same as the JSON run's.
    const models = ["tiny", "lora-a", "lora-b"];
    const expected = await Promise.all(
      models.map(async (model) => (await t.openai.chat.completions.create(chat(model, 40))).choices[0]?.message.content),
    );
    const streamed = await Promise.all(
      models.map(async (model) => {
        const stream = await t.openai.chat.completions.create({ ...chat(model, 40), stream: true });
        let text = "";
        for await (const chunk of stream) text += chunk.choices[0]?.delta.content ?? "";
        return text;
      }),
    );
    assert.deepEqual(streamed, expected);
  });

  it("past parallel + max_queue requests, the engine answers 503 and finishes the rest", async () => {
    const responses = await Promise.all(Array.from({ length: 9 }, () => postJson(`${t.url}/v1/chat/completions`, chat("tiny", 600))));
    const statuses = responses.map((r) => r.status);
    const rejected = responses.filter((r) => r.status === 503);
    assert.ok(rejected.length >= 4, `at most 2 running + 3 waiting are accepted: ${statuses.join(",")}`);
    assert.ok(
      statuses.every((s) => s === 200 || s === 503),
      statuses.join(","),
    );
    for (const r of rejected) {
      assert.equal((r.json as { error: { type: string; code: number } }).error.type, "ServiceUnavailableError");
    }
    for (const r of responses.filter((x) => x.status === 200)) {
      assert.equal((r.json as { usage: { completion_tokens: number } }).usage.completion_tokens, 600);
    }
  });

  it("a client that disconnects mid-stream frees its sequence", async () => {
    const controller = new AbortController();
    const response = await fetch(`${t.url}/v1/chat/completions`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ ...chat("lora-b", 1500), stream: true }),
      signal: controller.signal,
    });
    const reader = response.body?.getReader();
    await reader?.read();
    controller.abort();
    for (let i = 0; i < 100 && (await metric("vllm:num_requests_running")) > 0; i++) await new Promise((r) => setTimeout(r, 20));
    assert.equal(await metric("vllm:num_requests_running"), 0);
    const next = await t.openai.chat.completions.create(chat("lora-b", 4));
    assert.equal(next.usage?.completion_tokens, 4);
  });
});
