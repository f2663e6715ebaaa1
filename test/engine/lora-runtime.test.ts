// Loading and unloading LoRA adapters while the engine runs (vLLM's /v1/load_lora_adapter API).
import assert from "node:assert/strict";
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { writeGgufFile } from "../../src/engine/gguf/writer.ts";
import { TINY_MODEL_SHAPE, tinyLoraAdapter } from "../../src/engine/tiny/model.ts";
import { postJson, startTestEngine, type TestEngine } from "./helpers.ts";

let t: TestEngine;
before(async () => {
  t = await startTestEngine({ withLoras: false, maxLoras: 1, maxLoraRank: 8 });
});
after(() => t.close());

/** LoRA files the engine must refuse: one of rank 16 (its maximum is 8), one made for a wider model. */
function badLoras(): { tooHighRank: string; otherModel: string } {
  const dir = mkdtempSync(join(tmpdir(), "bad-lora-"));
  const tooHighRank = join(dir, "rank16.gguf");
  writeGgufFile(tooHighRank, tinyLoraAdapter({ seed: 7, rank: 16 }));
  const otherModel = join(dir, "wide.gguf");
  writeGgufFile(otherModel, tinyLoraAdapter({ seed: 8, shape: { ...TINY_MODEL_SHAPE, embedding: 96 } }));
  return { tooHighRank, otherModel };
}

const request = { messages: [{ role: "user", content: "what is a pod" }], temperature: 0, max_tokens: 16 };

async function modelIds(): Promise<string[]> {
  return (await t.openai.models.list()).data.map((m) => m.id);
}

async function answer(model: string): Promise<{ status: number; text: string }> {
  const response = await postJson(`${t.url}/v1/chat/completions`, { model, ...request });
  const content = (response.json as { choices?: { message: { content: string } }[] }).choices?.[0]?.message.content;
  return { status: response.status, text: content ?? response.text };
}

describe("LoRA adapters at run time", () => {
  it("load adds the adapter to /v1/models and runs it; unload removes it", async () => {
    const [a, b] = t.files.loras;
    assert.ok(a && b);
    assert.deepEqual(await modelIds(), ["tiny"]);
    const base = await answer("tiny");
    assert.equal((await answer("support")).status, 404);

    const loaded = await postJson(`${t.url}/v1/load_lora_adapter`, { lora_name: "support", lora_path: a.path });
    assert.equal(loaded.status, 200, loaded.text);
    assert.match(loaded.text, /^Success/);
    assert.deepEqual(await modelIds(), ["tiny", "support"]);
    const withA = await answer("support");
    assert.equal(withA.status, 200);
    assert.notEqual(withA.text, base.text);

    // A second adapter with max_loras 1: the idle context of the first is replaced, both still answer.
    assert.equal((await postJson(`${t.url}/v1/load_lora_adapter`, { lora_name: "sales", lora_path: b.path })).status, 200);
    const withB = await answer("sales");
    assert.notEqual(withB.text, withA.text);
    assert.equal((await answer("support")).text, withA.text);

    const unloaded = await postJson(`${t.url}/v1/unload_lora_adapter`, { lora_name: "support" });
    assert.equal(unloaded.status, 200, unloaded.text);
    assert.deepEqual(await modelIds(), ["tiny", "sales"]);
    assert.equal((await answer("support")).status, 404);
    assert.equal((await answer("tiny")).text, base.text, "the base model is unchanged by adapters coming and going");

    assert.equal((await postJson(`${t.url}/v1/load_lora_adapter`, { lora_name: "support", lora_path: a.path })).status, 200);
    assert.equal((await answer("support")).text, withA.text, "reloaded under the same name, it answers as before");

    // A second load of the name is refused unless in place (vLLM's load_inplace); in place, the new weights answer.
    const again = await postJson(`${t.url}/v1/load_lora_adapter`, { lora_name: "support", lora_path: b.path });
    assert.equal(again.status, 400);
    assert.match(again.text, /already been loaded.*load_inplace/);
    const inplace = await postJson(`${t.url}/v1/load_lora_adapter`, { lora_name: "support", lora_path: b.path, load_inplace: true });
    assert.equal(inplace.status, 200, inplace.text);
    assert.equal((await answer("support")).text, withB.text, "after a load in place the adapter answers with the new weights");
    assert.deepEqual(await modelIds(), ["tiny", "sales", "support"]);
  });

  it("refuses LoRAs of too high a rank or for another model, and the engine serves on unaffected", async () => {
    const base = await answer("tiny");
    const bad = badLoras();
    const rank = await postJson(`${t.url}/v1/load_lora_adapter`, { lora_name: "big", lora_path: bad.tooHighRank });
    assert.equal(rank.status, 400);
    assert.match(rank.text, /LoRA rank 16 is greater than max_lora_rank 8/);
    const other = await postJson(`${t.url}/v1/load_lora_adapter`, { lora_name: "wide", lora_path: bad.otherModel });
    assert.equal(other.status, 400);
    assert.match(other.text, /LoRA for another model/);
    assert.ok(!(await modelIds()).some((id) => id === "big" || id === "wide"));
    assert.equal((await answer("tiny")).text, base.text);
  });

  it("rejects bad loads and unloads with OpenAI-shaped errors", async () => {
    const cases: [string, unknown, number][] = [
      ["/v1/load_lora_adapter", { lora_name: "x", lora_path: "/no/such/file.gguf" }, 404],
      ["/v1/load_lora_adapter", { lora_name: "x", lora_path: t.files.model }, 400],
      ["/v1/load_lora_adapter", { lora_name: "tiny", lora_path: t.files.loras[0]?.path }, 400],
      ["/v1/load_lora_adapter", { lora_name: "" }, 400],
      ["/v1/unload_lora_adapter", { lora_name: "never-loaded" }, 404],
    ];
    for (const [path, body, status] of cases) {
      const response = await postJson(`${t.url}${path}`, body);
      assert.equal(response.status, status, `${path} ${JSON.stringify(body)}: ${response.text}`);
      assert.equal((response.json as { error: { code: number } }).error.code, status);
    }
  });
});

describe("more adapters in flight than --max-loras", () => {
  it("requests for other adapters wait for an idle context, then all complete", async () => {
    const [a, b] = t.files.loras;
    assert.ok(a && b);
    await postJson(`${t.url}/v1/load_lora_adapter`, { lora_name: "first", lora_path: a.path });
    await postJson(`${t.url}/v1/load_lora_adapter`, { lora_name: "second", lora_path: b.path });
    const models = ["first", "second", "first", "tiny", "second", "first"];
    const answers = await Promise.all(models.map((model) => postJson(`${t.url}/v1/chat/completions`, { model, ...request })));
    assert.deepEqual(
      answers.map((r) => r.status),
      models.map(() => 200),
    );
    const text = (i: number): string =>
      (answers[i]?.json as { choices: { message: { content: string } }[] }).choices[0]?.message.content ?? "";
    // Batched sequences may differ from a lone one in the last float bits, so only adapters are compared.
    assert.notEqual(text(0), text(1));
  });
});
