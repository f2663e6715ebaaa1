// `diatonic dev` as a user runs it: one process, the example spec, a key; chat with the OpenAI SDK,
// ingest a document into the RAG adapter and get it cited; Ctrl-C stops everything and frees the port.
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { copyFileSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { Writable } from "node:stream";
import { join } from "node:path";
import { after, describe, it } from "node:test";
import OpenAI from "openai";
import { InputError } from "../../src/errors.ts";
import { devLogger, startDevStack, type DevStack } from "../../src/dev/stack.ts";
import { writeTestModels } from "../../src/engine/index.ts";
import { ingestPaths } from "../../src/rag/client.ts";
import { freePort } from "../../scripts/cluster/processes.ts";
import { tinySpec, writeFailingLoraSpec } from "./tiny-spec.ts";

function portIsFree(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const server = createServer();
    server.once("error", () => resolve(false));
    server.listen(port, "127.0.0.1", () => server.close(() => resolve(true)));
  });
}

async function waitReady(url: string, child: { exitCode: number | null }): Promise<void> {
  const deadline = Date.now() + 60_000;
  while (Date.now() < deadline) {
    if (child.exitCode !== null) throw new Error(`diatonic dev exited with ${child.exitCode}`);
    try {
      if ((await fetch(`${url}/readyz`)).status === 200) return;
    } catch {
      // Not listening yet.
    }
    await new Promise((resolve) => setTimeout(resolve, 200));
  }
  throw new Error("diatonic dev did not become ready in 60 s");
}

/** Waits up to 30 s for `check`; a timeout says what the stack's agent holds, and `more`. */
function waiter(stack: DevStack, more: () => string = () => ""): (what: string, check: () => Promise<boolean>) => Promise<void> {
  return async (what, check) => {
    const deadline = Date.now() + 30_000;
    while (!(await check())) {
      assert.ok(Date.now() < deadline, `timed out waiting for ${what}; agent: ${JSON.stringify(stack.adapterStatus())}${more()}`);
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
  };
}

describe("diatonic dev", () => {
  const dir = mkdtempSync(join(tmpdir(), "diatonic-dev-test-"));
  after(() => rmSync(dir, { recursive: true, force: true }));

  it("serves the example's adapters, ingests into the RAG adapter, and exits 0 on SIGINT with the port freed", async () => {
    const port = await freePort();
    const key = "sk-dev-test";
    const child = spawn(
      process.execPath,
      [
        "bin/diatonic.js",
        "dev",
        "--model",
        "tiny",
        "--embeddings",
        "engine",
        "--port",
        String(port),
        "--api-key",
        key,
        "--data",
        join(dir, "data"),
      ],
      { stdio: ["ignore", "pipe", "pipe"] },
    );
    let stdout = "";
    let stderr = "";
    child.stdout.on("data", (chunk: Buffer) => (stdout += chunk.toString()));
    child.stderr.on("data", (chunk: Buffer) => (stderr += chunk.toString()));
    const exited = new Promise<number | null>((resolve) => child.once("exit", resolve));
    const url = `http://127.0.0.1:${port}`;
    try {
      await waitReady(url, child);
      assert.match(stderr, /tiny test model \(its output is noise\)/);
      await new Promise((resolve) => setTimeout(resolve, 100));
      assert.match(stdout, /^diatonic dev: platform lab from examples\/lab\/platform\.yaml \(environment local\) on this machine$/m);
      assert.match(stdout, new RegExp(`curl -s ${url}/v1/chat/completions`));
      assert.match(stdout, /new OpenAI\(\{ baseURL: /);
      assert.match(stdout, new RegExp(`^  console    ${url}/console/ `, "m"));
      const consolePage = await fetch(`${url}/console/`);
      assert.equal(consolePage.status, 200, "the web console is served (npm run deps builds it)");
      assert.match(consolePage.headers.get("content-type") ?? "", /^text\/html/);

      const client = new OpenAI({ baseURL: `${url}/v1`, apiKey: key, maxRetries: 0 });
      const completion = await client.chat.completions.create({
        model: "code",
        messages: [{ role: "user", content: "hello" }],
        max_tokens: 4,
      });
      assert.equal(completion.model, "code");
      assert.equal(completion.choices[0]?.message.role, "assistant");
      const models = await client.models.list();
      assert.deepEqual(models.data.map((m) => m.id).sort(), [
        "architecture",
        "chatbot",
        "code",
        "llama-3-8b-instruct",
        "rag",
        "summarization",
      ]);

      writeFileSync(join(dir, "runbook.md"), "# Runbook\n\nThe pager rotation is kept in the spreadsheet called heliotrope-roster.\n");
      const withoutKey = await ingestPaths({ adapter: "rag", paths: ["runbook.md"], cwd: dir, gateway: url }).catch(
        (error: unknown) => error,
      );
      assert.ok(withoutKey instanceof InputError && /missing API key/.test(withoutKey.message));
      const summary = await ingestPaths({ adapter: "rag", paths: ["runbook.md"], cwd: dir, gateway: url, apiKey: key });
      assert.equal(summary.added, 1);
      const answer = (await client.chat.completions.create({
        model: "rag",
        messages: [{ role: "user", content: "Where is the heliotrope-roster kept?" }],
        max_tokens: 4,
      })) as OpenAI.ChatCompletion & {
        diatonic?: { citations: Array<{ source: string }> };
      };
      assert.equal(answer.diatonic?.citations[0]?.source, "runbook.md");

      // A real document's passages fit too: the tiny model spends ~4 tokens a word, so the top
      // passages of this project's README overflowed its old 2,048-token context (a 400 each time).
      await ingestPaths({ adapter: "rag", paths: ["README.md"], cwd: process.cwd(), gateway: url, apiKey: key });
      const long = (await client.chat.completions.create({
        model: "rag",
        messages: [{ role: "user", content: "How do I deploy the platform to production?" }],
        max_tokens: 4,
      })) as OpenAI.ChatCompletion & {
        diatonic?: { citations: Array<{ source: string }> };
      };
      assert.ok((long.usage?.prompt_tokens ?? 0) > 2048, `prompt tokens: ${long.usage?.prompt_tokens}`);
      assert.ok(long.diatonic?.citations.some((citation) => citation.source === "README.md"));
    } finally {
      child.kill("SIGINT");
    }
    assert.equal(await exited, 0, stderr);
    assert.ok(await portIsFree(port), "the gateway's port is free after exit");
  });
});

describe("the dev stack's log", () => {
  it("names each line's part once (pino writes a base binding and a child's of the same name both)", () => {
    const lines: string[] = [];
    const logger = devLogger({ write: (line: string) => void lines.push(line) });
    logger.child({ component: "gateway" }).warn("careful");
    logger.child({ component: "engine" }).info("not shown at warn");
    assert.equal(lines.length, 1);
    const line = lines[0] as string;
    assert.equal(line.match(/"component":/g)?.length, 1, line);
    assert.equal((JSON.parse(line) as { component: string }).component, "gateway");
  });
});

describe("diatonic dev follows the spec file's adapters", () => {
  it("loads an added LoRA and unloads a removed one while the engine keeps running, and keeps serving through a broken edit", async () => {
    const work = mkdtempSync(join(tmpdir(), "diatonic-dev-follow-"));
    const models = writeTestModels(join(work, "models"));
    const spec = join(work, "platform.yaml");
    const specText = (adapters: string): string => tinySpec("follow", adapters);
    // LoRA files on this machine, relative to the spec file: what `path` is for.
    const alpha = "\n    - { name: alpha, lora: { source: { path: models/tiny-lora-a.gguf }, rank: 4 } }";
    const beta = "\n    - { name: beta, lora: { source: { path: models/tiny-lora-b.gguf }, rank: 4 } }";
    writeFileSync(spec, specText(alpha));
    const changes: string[] = [];
    const stack = await startDevStack({
      cwd: work,
      spec,
      model: models.model,
      port: 0,
      dataDir: join(work, "data"),
      logger: devLogger(new Writable({ write: (_c, _e, done) => done() })),
      onSpecChange: (line) => changes.push(line),
      watch: { debounceMs: 20, pollMs: 100 },
    });
    const until = waiter(stack, () => `; changes: ${changes.join(" | ")}`);
    const engineModels = async () =>
      ((await (await fetch(`${stack.engineUrl}/v1/models`)).json()) as { data: { id: string; created: number }[] }).data;
    const chat = (model: string) =>
      fetch(`${stack.gatewayUrl}/v1/chat/completions`, {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify({ model, messages: [{ role: "user", content: "hi" }], max_tokens: 4, temperature: 0 }),
      });
    try {
      await until("alpha loaded", async () => (await chat("alpha")).status === 200);
      const baseCard = (await engineModels()).find((m) => m.id === "tiny");

      writeFileSync(spec, specText(beta));
      await until("beta served and alpha gone", async () => (await chat("beta")).status === 200 && (await chat("alpha")).status === 404);
      assert.deepEqual((await engineModels()).map((m) => m.id).sort(), ["beta", "tiny"], "alpha unloaded from the engine, beta loaded");
      assert.deepEqual(
        (await engineModels()).find((m) => m.id === "tiny"),
        baseCard,
        "the same engine, never restarted",
      );
      assert.deepEqual(
        stack.adapters.map((a) => a.name),
        ["beta"],
      );
      assert.ok(
        changes.some((line) => /added beta; removed alpha/.test(line)),
        changes.join("\n"),
      );

      writeFileSync(spec, specText(beta).replace("kind: llamacpp", "kind: llamacp"));
      await until("the broken edit reported", async () => changes.some((line) => /has a problem, so the running adapters stay/.test(line)));
      assert.equal((await chat("beta")).status, 200, "still serving after a broken edit");
    } finally {
      await stack.close();
      rmSync(work, { recursive: true, force: true });
    }
  });
});

describe("diatonic dev: a LoRA that cannot load", () => {
  it("answers 503 adapter_failed, not adapter_loading for ever, and the admin API says why; the mended file serves", async () => {
    const work = mkdtempSync(join(tmpdir(), "diatonic-dev-failed-"));
    const { spec, model, broken: brokenFile } = writeFailingLoraSpec(work);
    const stack = await startDevStack({
      cwd: work,
      spec,
      model,
      port: 0,
      dataDir: join(work, "data"),
      logger: devLogger(new Writable({ write: (_c, _e, done) => done() })),
      watch: { debounceMs: 20, pollMs: 100 },
    });
    const chat = async (model: string) => {
      const response = await fetch(`${stack.gatewayUrl}/v1/chat/completions`, {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify({ model, messages: [{ role: "user", content: "hi" }], max_tokens: 4, temperature: 0 }),
      });
      const body = (await response.json()) as { error?: { code?: string } };
      return { status: response.status, code: body.error?.code };
    };
    const until = waiter(stack);
    try {
      await until("alpha serving", async () => (await chat("alpha")).status === 200);
      await until("503 adapter_failed for broken", async () => (await chat("broken")).code === "adapter_failed");
      const view = (await (await fetch(`${stack.gatewayUrl}/v1/admin/adapters`)).json()) as {
        data: { name: string; state: string; failure?: { reason: string } }[];
      };
      const broken = view.data.find((adapter) => adapter.name === "broken");
      assert.equal(broken?.state, "failed", JSON.stringify(broken));
      assert.match(broken.failure?.reason ?? "", /GGUF|refused/);
      assert.equal(view.data.find((adapter) => adapter.name === "alpha")?.state, "loaded");

      // Mended in place: the spec names the same file, so the agent's next try (its backoff) loads it.
      copyFileSync(join(work, "models", "tiny-lora-b.gguf"), brokenFile);
      await until("the mended LoRA serving", async () => (await chat("broken")).status === 200);
    } finally {
      await stack.close();
      rmSync(work, { recursive: true, force: true });
    }
  });
});

describe("diatonic dev's demo LoRAs", () => {
  it("gives adapters without a LoRA a demo LoRA the agent loads into the engine, the new ones of an edit too", async () => {
    const work = mkdtempSync(join(tmpdir(), "diatonic-dev-demo-loras-"));
    const models = writeTestModels(join(work, "models"));
    const spec = join(work, "platform.yaml");
    const specText = (adapters: string): string =>
      tinySpec(
        "demo",
        `\n    - { name: own, lora: { source: { path: models/tiny-lora-a.gguf }, rank: 4 } }\n    - { name: plain }${adapters}`,
      );
    writeFileSync(spec, specText(""));
    const progress: string[] = [];
    const stack = await startDevStack({
      cwd: work,
      spec,
      model: models.model,
      demoLoras: true,
      port: 0,
      dataDir: join(work, "data"),
      logger: devLogger(new Writable({ write: (_c, _e, done) => done() })),
      onProgress: (line) => progress.push(line),
      watch: { debounceMs: 20, pollMs: 100 },
    });
    const engineModels = async () =>
      ((await (await fetch(`${stack.engineUrl}/v1/models`)).json()) as { data: { id: string; root: string }[] }).data;
    const until = waiter(stack);
    const ask = (url: string, model: string) =>
      fetch(`${url}/v1/chat/completions`, {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify({ model, messages: [{ role: "user", content: "what is a pod" }], max_tokens: 24, temperature: 0 }),
      });
    const answer = async (url: string, model: string) =>
      ((await (await ask(url, model)).json()) as { choices: { message: { content: string } }[] }).choices[0]?.message.content;
    try {
      assert.deepEqual(stack.demoLoras, ["plain"]);
      assert.ok(
        progress.some((line) => /^writing demo LoRAs for plain \(synthetic: random weights/.test(line)),
        progress.join("\n"),
      );
      await until("plain served on its demo LoRA", async () => (await ask(stack.gatewayUrl, "plain")).status === 200);
      assert.equal(stack.adapterStatus().find((a) => a.name === "plain")?.state, "loaded");
      const plain = (await engineModels()).find((m) => m.id === "plain");
      assert.match(plain?.root ?? "", /\/data\/demo-loras\/plain-[0-9a-f]{12}\.gguf$/);
      assert.match(stack.adapterStatus().find((a) => a.name === "plain")?.source ?? "", /demo-loras\/plain-/);
      assert.notEqual(
        await answer(stack.gatewayUrl, "plain"),
        await answer(stack.engineUrl, "tiny"),
        "the gateway sends plain to its LoRA",
      );

      writeFileSync(spec, specText("\n    - { name: added }"));
      await until("added's demo LoRA loaded", async () => (await engineModels()).some((m) => m.id === "added"));
      assert.deepEqual(stack.demoLoras, ["plain", "added"]);
      assert.deepEqual((await engineModels()).map((m) => m.id).sort(), ["added", "own", "plain", "tiny"]);
    } finally {
      await stack.close();
      rmSync(work, { recursive: true, force: true });
    }
  });
});
