// The gateway on a real Qdrant (its config's vectorStore, the API key from a file as the mounted
// Secret gives it) and the local engine: ingest and cited answers work; with a wrong key or with
// Qdrant down, each adapter's rag.onFailure decides: `fail` → 502 retrieval_failed naming the cause,
// `answerWithoutContext` → an answer with x-diatonic-retrieval: skipped.
import assert from "node:assert/strict";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { pino } from "pino";
import { startEngine, writeTestModels, type RunningEngine } from "../../src/engine/index.ts";
import { keylessGatewayConfig } from "../gateway/support/harness.ts";
import { startGateway, type RunningGateway } from "../../src/gateway/server.ts";
import { ingestPaths } from "../../src/rag/client.ts";
import { writeHandbook } from "./fixtures.ts";
import { findTestQdrant, startTestQdrant, type TestQdrant } from "./support/qdrant.ts";

const found = await findTestQdrant();

interface ChatAnswer {
  status: number;
  retrieval: string | null;
  body: { diatonic?: { citations: Array<{ source: string }> }; error?: { code?: string; message?: string }; choices?: unknown[] };
}

describe("the gateway on a real Qdrant: retrieval, and each adapter's failure policy", { skip: found.skip, timeout: 300_000 }, () => {
  let dir: string;
  let qdrant: TestQdrant;
  let engine: RunningEngine;
  const gateways: Record<string, RunningGateway> = {};

  const start = async (name: string, keyFile: string): Promise<void> => {
    const limits = { concurrency: 2, queue: 8, timeoutMs: 30_000, firstByteTimeoutMs: 20_000 };
    const adapter = (adapterName: string, onFailure: "fail" | "answerWithoutContext") => ({
      name: adapterName,
      route: `/${adapterName}`,
      upstreamModel: "tiny",
      upstream: "engine",
      sampling: { temperature: 0, maxTokens: 2 },
      rag: { collection: "handbook", topK: 2, mode: "keyword" as const, onFailure },
      limits,
    });
    gateways[name] = await startGateway({
      config: keylessGatewayConfig({
        upstreams: { engine: { url: engine.url } },
        baseModel: { name: "tiny", upstream: "engine" },
        embeddings: { upstream: "engine", model: "tiny" },
        vectorStore: { kind: "qdrant", url: qdrant.url, apiKeyFile: keyFile },
        adapters: [adapter("strict", "fail"), adapter("lenient", "answerWithoutContext")],
      }),
      port: 0,
      logger: pino({ level: "silent" }),
      watch: false,
      defaultMetrics: false,
    });
  };
  const ask = async (gateway: string, model: string, question: string): Promise<ChatAnswer> => {
    const response = await fetch(`${gateways[gateway]?.url}/v1/chat/completions`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ model, messages: [{ role: "user", content: question }] }),
    });
    return {
      status: response.status,
      retrieval: response.headers.get("x-diatonic-retrieval"),
      body: (await response.json()) as ChatAnswer["body"],
    };
  };

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), "diatonic-rag-qdrant-gw-"));
    qdrant = await startTestQdrant(found.binary as NonNullable<typeof found.binary>);
    const files = writeTestModels(join(dir, "models"));
    engine = await startEngine({ modelPath: files.model, servedModelName: "tiny", port: 0, threads: 1, logger: pino({ level: "silent" }) });
    writeFileSync(join(dir, "right.key"), `${qdrant.apiKey}\n`, { mode: 0o600 });
    writeFileSync(join(dir, "wrong.key"), "a-key-qdrant-never-saw\n", { mode: 0o600 });
    await start("right", join(dir, "right.key"));
    await start("wrong", join(dir, "wrong.key"));
    writeHandbook(dir);
  });
  after(async () => {
    for (const gateway of Object.values(gateways)) await gateway.close();
    await engine?.close();
    await qdrant?.close();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it("ingests through the admin API into Qdrant and answers with citations from it", async () => {
    const summary = await ingestPaths({ adapter: "strict", paths: ["handbook"], cwd: dir, gateway: gateways.right?.url as string });
    assert.equal(summary.files, 3);
    assert.ok(summary.added >= 3);
    const points = (await (await fetch(`${qdrant.url}/collections/handbook`, { headers: { "api-key": qdrant.apiKey } })).json()) as {
      result: { points_count: number };
    };
    assert.equal(points.result.points_count, summary.added, "the chunks are in Qdrant");
    const answer = await ask("right", "strict", "What does error E-4711 mean?");
    assert.equal(answer.status, 200);
    assert.equal(answer.retrieval, null);
    assert.equal(answer.body.diatonic?.citations[0]?.source, "handbook/errors.txt");
  });

  it("a wrong API key: `fail` answers 502 retrieval_failed naming Qdrant's refusal (not the key); `answerWithoutContext` answers, marked skipped", async () => {
    const strict = await ask("wrong", "strict", "What does error E-4711 mean?");
    assert.equal(strict.status, 502);
    assert.equal(strict.body.error?.code, "retrieval_failed");
    assert.match(
      strict.body.error?.message ?? "",
      new RegExp(`retrieval for adapter strict failed: Qdrant at ${qdrant.url} refused the API key \\(401\\)`),
    );
    assert.doesNotMatch(JSON.stringify(strict.body), /a-key-qdrant-never-saw/);
    const lenient = await ask("wrong", "lenient", "What does error E-4711 mean?");
    assert.equal(lenient.status, 200);
    assert.equal(lenient.retrieval, "skipped");
    assert.equal(lenient.body.choices?.length, 1);
    assert.equal(lenient.body.diatonic, undefined, "no citations without retrieval");
  });

  it("Qdrant down: `fail` answers 502 naming the unreachable server; `answerWithoutContext` answers, marked skipped", async () => {
    await qdrant.server.stop();
    const strict = await ask("right", "strict", "What does error E-4711 mean?");
    assert.equal(strict.status, 502);
    assert.equal(strict.body.error?.code, "retrieval_failed");
    assert.match(
      strict.body.error?.message ?? "",
      new RegExp(`no Qdrant answers at ${qdrant.url} while searching handbook \\(keyword\\): ECONNREFUSED`),
    );
    const lenient = await ask("right", "lenient", "What does error E-4711 mean?");
    assert.equal(lenient.status, 200);
    assert.equal(lenient.retrieval, "skipped");
  });
});
