// `diatonic ingest`'s client against a stand-in gateway (node:http, recording requests): batches under
// the gateway's body limit, prune only under the given paths, and a failed batch reported with what
// was already stored.
import assert from "node:assert/strict";
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { createServer, type Server } from "node:http";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { WorldError } from "../../src/errors.ts";
import { ingestPaths } from "../../src/rag/client.ts";
import { runCli } from "../support/cli.ts";

describe("ingest client (stand-in gateway)", () => {
  let server: Server;
  let url: string;
  let dir: string;
  const posts: Array<{ documents: Array<{ source: string }>; deleteSources: string[] }> = [];
  let failPost = -1;
  before(async () => {
    dir = mkdtempSync(join(tmpdir(), "diatonic-ingest-client-"));
    mkdirSync(join(dir, "docs"));
    for (let i = 0; i < 6; i++) writeFileSync(join(dir, "docs", `page-${i}.md`), `# Page ${i}\n\n${"words ".repeat(300)}\n`);
    server = createServer((req, res) => {
      let raw = "";
      req.on("data", (chunk: Buffer) => (raw += chunk.toString()));
      req.on("end", () => {
        res.setHeader("content-type", "application/json");
        if (req.method === "GET") {
          res.end(JSON.stringify({ collection: "c", maxBodyBytes: 6000, sources: [{ source: "docs/gone.md", chunks: 2 }, { source: "other/keep.md", chunks: 1 }] }));
          return;
        }
        posts.push(JSON.parse(raw) as (typeof posts)[number]);
        if (posts.length - 1 === failPost) {
          res.writeHead(502).end(JSON.stringify({ error: { message: "the vector store failed: boom", code: "vector_store_failed" } }));
          return;
        }
        res.end(JSON.stringify({ added: JSON.parse(raw).documents.length, updated: 0, unchanged: 0, removed: JSON.parse(raw).deleteSources.length }));
      });
    });
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
    url = `http://127.0.0.1:${(server.address() as { port: number }).port}`;
  });
  after(() => {
    server.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it("sends batches under the gateway's limit and prunes only sources under the given paths, in the last batch", async () => {
    posts.length = 0;
    failPost = -1;
    const summary = await ingestPaths({ adapter: "rag", paths: ["docs"], cwd: dir, gateway: url, prune: true });
    assert.ok(posts.length >= 3, `${posts.length} batches`);
    assert.ok(posts.every((p) => Buffer.byteLength(JSON.stringify(p)) <= 6000));
    assert.deepEqual(posts.map((p) => p.deleteSources), [...posts.slice(1).map(() => []), ["docs/gone.md"]]);
    assert.equal(summary.files, 6);
    assert.deepEqual(summary.pruned, ["docs/gone.md"]);
  });

  it("a failed batch is reported with how many files were stored before it, never dropped silently", async () => {
    posts.length = 0;
    failPost = 1;
    const failure = await ingestPaths({ adapter: "rag", paths: ["docs"], cwd: dir, gateway: url }).catch((error: unknown) => error);
    assert.ok(failure instanceof WorldError);
    assert.match(failure.message, /batch 2 of \d+ .* failed after 2 of 6 files were stored: the gateway refused: the vector store failed: boom/);
    assert.match(failure.fix ?? "", /run the same command again/);
  });

  it("diatonic ingest prints progress and a summary; bad flags exit 2, no gateway exits 1 with the fix", async () => {
    posts.length = 0;
    failPost = -1;
    const ok = await runCli(["ingest", "--adapter", "rag", "docs", "--gateway", url], dir);
    assert.equal(ok.code, 0, ok.stderr);
    assert.match(ok.stderr, /ingest \[#+\] 6\/6 files/);
    assert.match(ok.stdout, /ingested 6 files into adapter rag \(collection c\)/);
    assert.match(ok.stdout, /chunks: 6 added, 0 updated, 0 unchanged, 0 removed/);
    const noAdapter = await runCli(["ingest", "docs"], dir);
    assert.equal(noAdapter.code, 2);
    assert.match(noAdapter.stderr, /missing required flag --adapter/);
    const noGateway = await runCli(["ingest", "--adapter", "rag", "docs", "--gateway", "http://127.0.0.1:1"], dir);
    assert.equal(noGateway.code, 1);
    assert.match(noGateway.stderr, /no gateway answers at http:\/\/127\.0\.0\.1:1/);
  });
});
