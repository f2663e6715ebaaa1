// The engine through HTTP with the official OpenAI SDK and raw requests: real llama.cpp inference
// on a tiny generated model (random weights, so the text is noise but deterministic).
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { APIError, BadRequestError, NotFoundError } from "openai";
import { pino } from "pino";
import { createEngineServer } from "../../src/engine/server.ts";
import { postJson, sseEvents, startTestEngine, type TestEngine } from "./helpers.ts";

let t: TestEngine;
before(async () => {
  t = await startTestEngine();
});
after(() => t.close());

const greedy = { temperature: 0, seed: 1, max_tokens: 24 } as const;
const messages = [
  { role: "system" as const, content: "You are terse." },
  { role: "user" as const, content: "hello the world" },
];

async function chatText(model: string, extra: Record<string, unknown> = {}): Promise<string> {
  const completion = await t.openai.chat.completions.create({ model, messages, ...greedy, ...extra });
  return completion.choices[0]?.message.content ?? "";
}

describe("models and adapters", () => {
  it("/v1/models lists the base model and each LoRA with the base as parent", async () => {
    const page = await t.openai.models.list();
    const models = page.data.map((m) => ({ id: m.id, parent: (m as unknown as { parent: string | null }).parent }));
    assert.deepEqual(models, [
      { id: "tiny", parent: null },
      { id: "lora-a", parent: "tiny" },
      { id: "lora-b", parent: "tiny" },
    ]);
  });

  it("the base model and each LoRA give different outputs for the same seeded greedy request", async () => {
    const base = await chatText("tiny");
    const a = await chatText("lora-a");
    const b = await chatText("lora-b");
    assert.ok(base.length > 0 && a.length > 0 && b.length > 0);
    assert.notEqual(base, a);
    assert.notEqual(base, b);
    assert.notEqual(a, b);
    assert.equal(await chatText("lora-a"), a, "the same request gives the same text again");
  });
});

describe("chat completions", () => {
  it("returns vLLM/OpenAI's shape with usage and finish_reason length at max_tokens", async () => {
    const completion = await t.openai.chat.completions.create({ model: "tiny", messages, ...greedy, max_tokens: 5 });
    assert.match(completion.id, /^chatcmpl-/);
    assert.equal(completion.object, "chat.completion");
    assert.equal(completion.choices[0]?.message.role, "assistant");
    assert.equal(completion.choices[0]?.finish_reason, "length");
    assert.equal(completion.usage?.completion_tokens, 5);
    assert.ok((completion.usage?.prompt_tokens ?? 0) > 10, "the prompt went through the Llama 3 chat template");
  });

  it("streaming gives the same text as non-streaming, then usage when asked", async () => {
    const whole = await chatText("lora-b");
    const stream = await t.openai.chat.completions.create({
      model: "lora-b",
      messages,
      ...greedy,
      stream: true,
      stream_options: { include_usage: true },
    });
    let text = "";
    let finish: string | null | undefined;
    let usage: { completion_tokens: number } | null | undefined;
    let first = true;
    for await (const chunk of stream) {
      if (first) assert.equal(chunk.choices[0]?.delta.role, "assistant");
      first = false;
      text += chunk.choices[0]?.delta.content ?? "";
      finish = chunk.choices[0]?.finish_reason ?? finish;
      if (chunk.usage) usage = chunk.usage;
    }
    assert.equal(text, whole);
    assert.equal(finish, "length");
    assert.equal(usage?.completion_tokens, greedy.max_tokens);
  });

  it("stops at a stop string and leaves it out", async () => {
    const whole = await chatText("tiny");
    const stop = whole.slice(8, 11);
    const cut = whole.indexOf(stop);
    const completion = await t.openai.chat.completions.create({ model: "tiny", messages, ...greedy, stop: [stop] });
    assert.equal(completion.choices[0]?.message.content, whole.slice(0, cut));
    assert.equal(completion.choices[0]?.finish_reason, "stop");
  });

  it("a stop string ends a stream where it ends the JSON answer, with the same token count", async () => {
    const whole = await chatText("tiny");
    const stop = whole.slice(10, 13);
    const body = { model: "tiny", messages, ...greedy, stop: [stop] };
    const json = await t.openai.chat.completions.create(body);
    const stream = await t.openai.chat.completions.create({ ...body, stream: true, stream_options: { include_usage: true } });
    let text = "";
    let finish: string | null | undefined;
    let completionTokens: number | undefined;
    for await (const chunk of stream) {
      text += chunk.choices[0]?.delta.content ?? "";
      finish = chunk.choices[0]?.finish_reason ?? finish;
      if (chunk.usage) completionTokens = chunk.usage.completion_tokens;
    }
    assert.equal(text, whole.slice(0, whole.indexOf(stop)));
    assert.equal(text, json.choices[0]?.message.content);
    assert.equal(finish, "stop");
    assert.equal(completionTokens, json.usage?.completion_tokens);
    assert.ok((completionTokens ?? 0) < greedy.max_tokens, "the tokens after the stop string are not counted");
  });

  it("the same seed gives the same sampled text at temperature 1", async () => {
    const sampled = { temperature: 1, top_p: 0.9, seed: 42, max_tokens: 16 };
    assert.equal(await chatText("tiny", sampled), await chatText("tiny", sampled));
  });
});

describe("sampling: penalties, top_k, min_p", () => {
  const completion = async (extra: Record<string, unknown>): Promise<string> =>
    (await t.openai.completions.create({ model: "tiny", prompt: "the small red cat", max_tokens: 40, temperature: 0, ...extra })).choices[0]
      ?.text ?? "";
  const distinctShare = (text: string) => new Set(text.split(/\s+/)).size / text.split(/\s+/).length;

  it("presence and frequency penalties steer away from the completion's own repeats (they were ignored)", async () => {
    const plain = await completion({});
    const penalised = await completion({ presence_penalty: 2, frequency_penalty: 2 });
    assert.notEqual(penalised, plain);
    assert.ok(distinctShare(penalised) >= distinctShare(plain), `${JSON.stringify(penalised)} repeats less than ${JSON.stringify(plain)}`);
    assert.equal(await completion({ presence_penalty: 2, frequency_penalty: 2 }), penalised, "deterministic");
  });

  it("top_k 1 and min_p 1 keep only the likeliest token: at temperature 1 they give the greedy text (they were ignored)", async () => {
    const greedyText = await completion({ max_tokens: 16 });
    const sampled = { temperature: 1, seed: 3, max_tokens: 16 };
    assert.notEqual(await completion(sampled), greedyText, "sampling at temperature 1 differs from greedy");
    assert.equal(await completion({ ...sampled, top_k: 1 }), greedyText);
    assert.equal(await completion({ ...sampled, min_p: 1 }), greedyText);
  });
});

describe("text completions", () => {
  it("streams the same text as the JSON answer, ending with data: [DONE]", async () => {
    const body = { model: "lora-a", prompt: "the cat", temperature: 0, max_tokens: 12 };
    const whole = await t.openai.completions.create(body);
    assert.equal(whole.object, "text_completion");
    assert.equal(whole.usage?.completion_tokens, 12);
    const raw = await postJson(`${t.url}/v1/completions`, { ...body, stream: true, stream_options: { include_usage: true } });
    assert.equal(raw.status, 200);
    assert.ok(raw.text.endsWith("data: [DONE]\n\n"));
    const events = sseEvents(raw.text) as {
      choices: { text: string; finish_reason: string | null }[];
      usage?: { total_tokens: number } | null;
    }[];
    assert.equal(events.map((e) => e.choices[0]?.text ?? "").join(""), whole.choices[0]?.text);
    assert.equal(events.at(-2)?.choices[0]?.finish_reason, "length");
    assert.equal(events.at(-1)?.choices.length, 0);
    assert.equal(events.at(-1)?.usage?.total_tokens, whole.usage?.total_tokens);
  });

  it("defaults max_tokens to 16 as OpenAI does", async () => {
    const completion = await t.openai.completions.create({ model: "tiny", prompt: "one two", temperature: 0 });
    assert.equal(completion.usage?.completion_tokens, 16);
  });
});

describe("embeddings", () => {
  it("returns one vector per input from the base model", async () => {
    const result = await t.openai.embeddings.create({ model: "tiny", input: ["hello world", "the red cat"], encoding_format: "float" });
    assert.equal(result.data.length, 2);
    assert.equal(result.data[0]?.embedding.length, 64);
    assert.notDeepEqual(result.data[0]?.embedding, result.data[1]?.embedding);
    assert.ok(result.usage.prompt_tokens > 0);
  });
});

describe("bad requests get OpenAI-shaped errors", () => {
  const cases: [string, string, unknown, number, string | null, RegExp?][] = [
    ["no messages", "/v1/chat/completions", { model: "tiny", messages: [] }, 400, "messages"],
    ["temperature out of range", "/v1/chat/completions", { model: "tiny", messages, temperature: 7 }, 400, "temperature"],
    ["n > 1", "/v1/chat/completions", { model: "tiny", messages, n: 2 }, 400, "n", /^n: .*one choice per request.*send n requests/],
    ["not JSON", "/v1/chat/completions", "{nope", 400, null],
    [
      "prompt token arrays",
      "/v1/completions",
      { model: "tiny", prompt: [[1, 2]] },
      400,
      "prompt",
      /^prompt: .*token ids.*one request per prompt/,
    ],
    ["batched prompts", "/v1/completions", { model: "tiny", prompt: ["a", "b"] }, 400, "prompt", /batches prompts/],
    [
      "log probabilities (chat)",
      "/v1/chat/completions",
      { model: "tiny", messages, logprobs: true, top_logprobs: 2 },
      400,
      "logprobs",
      /^logprobs: .*no log probabilities/,
    ],
    [
      "log probabilities (completions)",
      "/v1/completions",
      { model: "tiny", prompt: "x", logprobs: 2 },
      400,
      "logprobs",
      /no log probabilities/,
    ],
    ["echo", "/v1/completions", { model: "tiny", prompt: "x", echo: true }, 400, "echo", /does not echo the prompt/],
    [
      "tools",
      "/v1/chat/completions",
      { model: "tiny", messages, tools: [{ type: "function", function: { name: "f", parameters: { type: "object" } } }] },
      400,
      "tools",
      /does not call tools/,
    ],
    [
      "JSON mode",
      "/v1/chat/completions",
      { model: "tiny", messages, response_format: { type: "json_object" } },
      400,
      "response_format",
      /free text only/,
    ],
    ["a penalty out of OpenAI's range", "/v1/completions", { model: "tiny", prompt: "x", presence_penalty: 3 }, 400, "presence_penalty"],
    [
      "repetition_penalty",
      "/v1/completions",
      { model: "tiny", prompt: "x", repetition_penalty: 1.2 },
      400,
      "repetition_penalty",
      /does not serve repetition_penalty.*presence_penalty or frequency_penalty/,
    ],
    ["too long for the model", "/v1/completions", { model: "tiny", prompt: "x", max_tokens: 100000 }, 400, "max_tokens"],
    ["unknown model", "/v1/chat/completions", { model: "nope", messages }, 404, "model"],
    [
      "a user message without content",
      "/v1/chat/completions",
      { model: "tiny", messages: [{ role: "user" }] },
      400,
      "messages.0.content",
      /is required for a system, developer or user message/,
    ],
    [
      "an image part",
      "/v1/chat/completions",
      { model: "tiny", messages: [{ role: "user", content: [{ type: "image_url", image_url: { url: "data:," } }] }] },
      400,
      "messages.0.content",
      /reads text only.*image, audio and file parts are not served/,
    ],
    ["best_of", "/v1/completions", { model: "tiny", prompt: "x", best_of: 3 }, 400, "best_of", /one completion per request/],
    ["suffix", "/v1/completions", { model: "tiny", prompt: "x", suffix: "end" }, 400, "suffix", /leave suffix out/],
    ["an empty prompt", "/v1/completions", { model: "tiny", prompt: "" }, 400, "prompt", /^prompt: is empty/],
  ];
  for (const [name, path, body, status, param, message] of cases) {
    it(name, async () => {
      const response = await postJson(`${t.url}${path}`, body);
      assert.equal(response.status, status, response.text);
      const error = (response.json as { error: { message: string; type: string; param: string | null; code: number } }).error;
      assert.equal(error.code, status);
      assert.equal(error.type, status === 400 ? "BadRequestError" : "NotFoundError");
      assert.equal(error.param, param);
      assert.ok(error.message.length > 0);
      if (message !== undefined) assert.match(error.message, message);
    });
  }

  it("the SDK raises its typed errors", async () => {
    await assert.rejects(t.openai.chat.completions.create({ model: "tiny", messages, temperature: 9 }), BadRequestError);
    await assert.rejects(t.openai.chat.completions.create({ model: "missing", messages }), NotFoundError);
    await assert.rejects(t.openai.completions.create({ model: "tiny", prompt: "x", max_tokens: -1 }), APIError);
  });

  it("unknown paths are 404 and wrong methods 405", async () => {
    assert.equal((await fetch(`${t.url}/v2/whatever`)).status, 404);
    assert.equal((await fetch(`${t.url}/v1/chat/completions`)).status, 405);
  });
});

describe("health and metrics", () => {
  it("answers /health, /healthz and /readyz", async () => {
    assert.equal((await fetch(`${t.url}/health`)).status, 200);
    assert.deepEqual(await (await fetch(`${t.url}/healthz`)).json(), { status: "ok" });
    assert.deepEqual(await (await fetch(`${t.url}/readyz`)).json(), { status: "ready" });
  });

  it("exports vLLM's metric names", async () => {
    await chatText("lora-a", { max_tokens: 3 });
    const text = await (await fetch(`${t.url}/metrics`)).text();
    for (const name of ["vllm:num_requests_running", "vllm:num_requests_waiting", "vllm:time_to_first_token_seconds_bucket"]) {
      assert.match(text, new RegExp(`^${name}\\{`, "m"));
    }
    const counter = (name: string): number => Number(new RegExp(`^${name}\\{model_name="tiny"\\} (\\S+)$`, "m").exec(text)?.[1]);
    assert.ok(counter("vllm:prompt_tokens_total") > 0);
    assert.ok(counter("vllm:generation_tokens_total") >= 3);
    assert.match(text, /^vllm:lora_requests_info\{running_lora_adapters="",waiting_lora_adapters="",max_lora="4"\} \d/m);
  });
});

describe("while the model loads", () => {
  it("/health and /readyz say 503, /healthz 200, and API calls get a 503 error", async () => {
    const server = createEngineServer(() => undefined, pino({ level: "silent" }));
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
    const address = server.address();
    assert.ok(address !== null && typeof address === "object");
    const url = `http://127.0.0.1:${address.port}`;
    try {
      assert.equal((await fetch(`${url}/health`)).status, 503);
      assert.equal((await fetch(`${url}/readyz`)).status, 503);
      assert.equal((await fetch(`${url}/healthz`)).status, 200);
      const response = await postJson(`${url}/v1/chat/completions`, { model: "tiny", messages });
      assert.equal(response.status, 503);
      assert.equal((response.json as { error: { type: string } }).error.type, "ServiceUnavailableError");
    } finally {
      server.close();
    }
  });
});
