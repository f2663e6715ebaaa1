// The embeddings server down, with real parts: a gateway whose RAG adapter embeds with an upstream
// where nothing listens yet, then a local engine (llama.cpp, tiny generated model) started on that
// address. The gateway's embedder goes through its upstream pool, so the dead server is ejected and
// reported (/readyz degraded, diatonic_gateway_upstream_healthy_replicas 0), ingest fails naming it,
// and once the server answers its health probe, ingest and hybrid retrieval work without a restart.
import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { createServer } from "node:http";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { pino } from "pino";
import { freePort } from "../../scripts/cluster/processes.ts";
import { startEngine, writeTestModels, type RunningEngine } from "../../src/engine/index.ts";
import { poolTransport } from "../../src/gateway/embeddings-transport.ts";
import { UpstreamPool } from "../../src/gateway/upstream.ts";
import { EmbeddingError } from "../../src/rag/embedder.ts";
import { startGateway, type RunningGateway } from "../../src/gateway/server.ts";
import { ingestPaths } from "../../src/rag/client.ts";
import { eventually, keylessGatewayConfig, ragAdapter } from "../gateway/support/harness.ts";
import { writeHandbook } from "./fixtures.ts";

interface Readiness {
  status: string;
  degraded: string[];
}

describe("RAG with its embeddings server down, then up (real gateway, engine and embedded store)", () => {
  let dir: string;
  let modelPath: string;
  let engine: RunningEngine;
  let embedder: RunningEngine | undefined;
  let embeddingsPort: number;
  let gateway: RunningGateway;

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), "diatonic-embeddings-down-"));
    modelPath = writeTestModels(join(dir, "models")).model;
    engine = await startEngine({ modelPath, servedModelName: "tiny", port: 0, threads: 1, logger: pino({ level: "silent" }) });
    embeddingsPort = await freePort();
    const limits = { concurrency: 2, queue: 8, timeoutMs: 30_000, firstByteTimeoutMs: 20_000 };
    gateway = await startGateway({
      config: keylessGatewayConfig({
        server: { port: 8080, maxBodyBytes: 256 * 1024 },
        upstreams: {
          engine: { url: engine.url },
          emb: {
            // Written as an OpenAI base URL, as a hand-made config may: the embedder asks …/v1/embeddings, not …/v1/v1/embeddings.
            url: `http://127.0.0.1:${embeddingsPort}/v1`,
            discovery: "static",
            connectTimeoutMs: 500,
            health: { ejectAfterFailures: 2, ejectionMs: 100, maxEjectionMs: 400 },
          },
        },
        baseModel: { name: "tiny", upstream: "engine" },
        embeddings: { upstream: "emb", model: "tiny" },
        vectorStore: { kind: "embedded", path: join(dir, "vectors") },
        adapters: [ragAdapter("hybrid", { collection: "handbook", topK: 3, mode: "hybrid" }, limits)],
      }),
      port: 0,
      logger: pino({ level: "silent" }),
      watch: false,
      defaultMetrics: false,
    });
    writeHandbook(dir);
  });
  after(async () => {
    await gateway?.close();
    await embedder?.close();
    await engine?.close();
    rmSync(dir, { recursive: true, force: true });
  });

  const ingest = () => ingestPaths({ adapter: "hybrid", paths: ["handbook"], cwd: dir, gateway: gateway.url });
  const readiness = async () => (await (await fetch(`${gateway.url}/readyz`)).json()) as Readiness;
  const healthyEmbeddings = async () => {
    const metrics = await (await fetch(`${gateway.url}/metrics`)).text();
    return /^diatonic_gateway_upstream_healthy_replicas\{upstream="emb"\} (\d+)$/m.exec(metrics)?.[1];
  };

  it("ingest fails naming the embeddings server, and /readyz and the healthy-replicas gauge say it is down", async () => {
    const failure = await ingest().catch((error: unknown) => error);
    assert.ok(failure instanceof Error, "ingest without an embeddings server fails");
    assert.match(failure.message, /embeddings server/);
    await eventually(async () => (await readiness()).status === "degraded", 10_000, "/readyz degraded");
    const ready = await readiness();
    assert.ok(
      ready.degraded.some((line) => /^embeddings: no healthy replica of upstream emb/.test(line)),
      JSON.stringify(ready.degraded),
    );
    assert.equal(await healthyEmbeddings(), "0");
  });

  it("once the server answers its health probe, it is back in the pool: ingest and hybrid retrieval work", async () => {
    embedder = await startEngine({
      modelPath,
      servedModelName: "tiny",
      host: "127.0.0.1",
      port: embeddingsPort,
      threads: 1,
      logger: pino({ level: "silent" }),
    });
    await eventually(async () => (await readiness()).status === "ready", 10_000, "/readyz ready again");
    assert.equal(await healthyEmbeddings(), "1");
    const summary = await ingest();
    assert.equal(summary.files, 3);
    assert.ok(summary.added >= 3, `added ${summary.added}`);
  });
});

describe("an embeddings server that holds requests past their time (fake server that never answers)", () => {
  it("is counted against its replica and ejected, and the embedder may try again (not a final error)", async () => {
    const hung = createServer(() => {
      // Reads the request and never answers.
    });
    await new Promise<void>((resolve) => hung.listen(0, "127.0.0.1", resolve));
    const address = hung.address();
    const url = `http://127.0.0.1:${typeof address === "object" && address !== null ? address.port : 0}`;
    const config = keylessGatewayConfig({
      upstreams: { emb: { url, discovery: "static", health: { ejectAfterFailures: 1, ejectionMs: 60_000, maxEjectionMs: 60_000 } } },
      baseModel: { name: "m", upstream: "emb" },
      adapters: [],
    });
    const pool = new UpstreamPool("emb", config.upstreams.emb as NonNullable<(typeof config.upstreams)["emb"]>);
    await pool.start();
    try {
      const failure = await poolTransport(() => pool)(JSON.stringify({ model: "m", input: ["x"] }), { timeoutMs: 300 }).catch(
        (error: unknown) => error,
      );
      assert.ok(failure instanceof Error && !(failure instanceof EmbeddingError), String(failure));
      assert.match(failure.message, /the embeddings server \(upstream emb\) did not answer within 300 ms/);
      assert.equal(pool.healthyCount(), 0, "the replica is ejected");
    } finally {
      await pool.close();
      hung.closeAllConnections();
      hung.close();
    }
  });
});
