// QdrantStore against a real Qdrant server (1.19, through the official REST client): the collection
// as hybrid search needs it, writes, deletes, idempotent ingest and prune, filters, the retriever's
// view per adapter, and the errors a wrong key or a dead server give.
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { GatewayConfig } from "../../src/gateway/config.ts";
import { StructuredChunker } from "../../src/rag/chunker.ts";
import type { Embedder } from "../../src/rag/embedder.ts";
import { ingestDocuments } from "../../src/rag/ingest.ts";
import { QdrantStoreError } from "../../src/rag/qdrant-errors.ts";
import { freeLoopbackPort } from "../../src/rag/qdrant-server.ts";
import { QdrantStore } from "../../src/rag/qdrant-store.ts";
import { RagService } from "../../src/rag/service.ts";
import { StoreMismatchError, type StoredChunk } from "../../src/rag/store.ts";
import { findTestQdrant, startTestQdrant, type TestQdrant } from "./support/qdrant.ts";

const found = await findTestQdrant();
const DIM = 4;

const chunk = (id: string, source: string, index: number, text: string, vector: number[]): StoredChunk => ({
  id,
  source,
  chunk: index,
  hash: `h-${id}`,
  text,
  vector,
});
const uuid = (n: number) => `00000000-0000-4000-8000-${String(n).padStart(12, "0")}`;

/** A deterministic stand-in embedder (a 4-bucket bag of words): enough for ingest bookkeeping. */
class BucketEmbedderStandIn implements Embedder {
  calls = 0;
  async embed(texts: readonly string[]): Promise<number[][]> {
    this.calls += texts.length;
    return texts.map((text) => {
      const v = [0.01, 0.01, 0.01, 0.01];
      for (const word of text.toLowerCase().split(/\W+/)) if (word) v[word.length % DIM] = (v[word.length % DIM] ?? 0) + 1;
      return v;
    });
  }
}

interface CollectionInfo {
  result: {
    config: {
      params: {
        vectors: Record<string, { size: number; distance: string }>;
        sparse_vectors: Record<string, { modifier: string }>;
        shard_number: number;
        replication_factor: number;
        write_consistency_factor: number;
      };
    };
    payload_schema: Record<string, { data_type: string }>;
  };
}

describe("QdrantStore against a real Qdrant server", { skip: found.skip, timeout: 300_000 }, () => {
  let qdrant: TestQdrant;
  let store: QdrantStore;
  const info = async (collection: string) =>
    (await (await fetch(`${qdrant.url}/collections/${collection}`, { headers: { "api-key": qdrant.apiKey } })).json()) as CollectionInfo;

  before(async () => {
    qdrant = await startTestQdrant(found.binary as NonNullable<typeof found.binary>);
    store = new QdrantStore({ url: qdrant.url, apiKey: qdrant.apiKey });
  });
  after(async () => {
    await store?.close();
    await qdrant?.close();
  });

  it("creates the collection once, with a cosine dense vector, a sparse vector with the IDF modifier and a keyword index on source", async () => {
    assert.equal(await store.dimension("handbook"), undefined);
    await store.ensureCollection("handbook", DIM);
    await store.ensureCollection("handbook", DIM);
    assert.equal(await store.dimension("handbook"), DIM);
    await assert.rejects(
      store.ensureCollection("handbook", DIM + 1),
      (error: Error) =>
        error instanceof StoreMismatchError && /holds 4-dimensional vectors, the embedding model gives 5/.test(error.message),
    );
    const { config, payload_schema } = (await info("handbook")).result;
    assert.deepEqual(config.params.vectors.dense, { size: DIM, distance: "Cosine" });
    assert.equal(config.params.sparse_vectors.sparse?.modifier, "idf");
    assert.equal(payload_schema.source?.data_type, "keyword");
  });

  it("passes shard number, replication and write consistency factors to the collections it creates", async () => {
    const replicated = new QdrantStore({
      url: qdrant.url,
      apiKey: qdrant.apiKey,
      shardNumber: 2,
      replicationFactor: 1,
      writeConsistencyFactor: 1,
    });
    await replicated.ensureCollection("sharded", DIM);
    const { params } = (await info("sharded")).result.config;
    assert.deepEqual([params.shard_number, params.replication_factor, params.write_consistency_factor], [2, 1, 1]);
    const config = GatewayConfig.shape.vectorStore.safeParse({
      kind: "qdrant",
      url: qdrant.url,
      replicationFactor: 3,
      writeConsistencyFactor: 4,
    });
    assert.ok(
      !config.success && /writeConsistencyFactor must be at most replicationFactor/.test(config.error.message),
      "the gateway config refuses a write quorum larger than the copies",
    );
  });

  it("upserts, lists and searches: keyword finds exact codes, dense the nearest vector, hybrid fuses both, a source filter narrows", async () => {
    await store.upsert("handbook", [
      chunk(uuid(1), "errors.txt", 0, "E-4711 means the scratch volume is full", [1, 0, 0, 0]),
      chunk(uuid(2), "onboarding.md", 0, "New staff collect their laptop on day one", [0, 1, 0, 0]),
      chunk(uuid(3), "onboarding.md", 1, "Finish the security course before Friday", [0, 0, 1, 0]),
    ]);
    assert.deepEqual((await store.chunkRefs("handbook")).map((r) => r.id).sort(), [uuid(1), uuid(2), uuid(3)]);
    assert.deepEqual((await store.chunkRefs("handbook", { sources: ["onboarding.md"] })).map((r) => r.chunk).sort(), [0, 1]);

    const keyword = await store.search("handbook", { mode: "keyword", text: "what is E-4711?", limit: 2 });
    assert.deepEqual(
      keyword.map((h) => h.source),
      ["errors.txt"],
      "only the chunk holding the code matches",
    );
    assert.match(keyword[0]?.text ?? "", /scratch volume/);
    const dense = await store.search("handbook", { mode: "dense", text: "", vector: [0, 0.9, 0.1, 0], limit: 3, scoreThreshold: 0.5 });
    assert.deepEqual(
      dense.map((h) => [h.source, h.chunk]),
      [["onboarding.md", 0]],
      "the threshold drops the far vectors",
    );
    // Dense ranks onboarding#0, then errors (onboarding#1 is orthogonal: cosine 0, not above the default
    // threshold 0); keyword finds errors alone: fused, errors leads.
    const hybrid = await store.search("handbook", { mode: "hybrid", text: "E-4711", vector: [0.2, 1, 0, 0], limit: 3 });
    assert.deepEqual(
      hybrid.map((h) => [h.source, h.chunk]),
      [
        ["errors.txt", 0],
        ["onboarding.md", 0],
      ],
    );
    const rrf = (...ranks: number[]) => ranks.reduce((sum, rank) => sum + 1 / (60 + rank), 0);
    assert.deepEqual(
      hybrid.map((h) => h.score.toFixed(6)),
      [rrf(1, 2), rrf(1)].map((s) => s.toFixed(6)),
      "RRF with k = 60 and 1-based ranks, as the embedded store fuses",
    );
    const filtered = await store.search("handbook", {
      mode: "hybrid",
      text: "E-4711 laptop",
      vector: [1, 0, 0, 0],
      limit: 3,
      filter: { sources: ["onboarding.md"] },
    });
    assert.ok(filtered.length > 0 && filtered.every((h) => h.source === "onboarding.md"), JSON.stringify(filtered));
    assert.deepEqual(await store.search("missing", { mode: "keyword", text: "x", limit: 3 }), [], "a collection not made yet has no hits");
  });

  it("deletes by id and by source", async () => {
    await store.deleteIds("handbook", [uuid(3)]);
    await store.deleteBySource("handbook", ["errors.txt"]);
    assert.deepEqual(
      (await store.chunkRefs("handbook")).map((r) => r.id),
      [uuid(2)],
    );
    await store.deleteBySource("never-made", ["a.md"]);
  });

  it("ingest is idempotent: unchanged chunks are neither embedded nor written; an edit replaces one chunk; prune removes a source", async () => {
    const embedder = new BucketEmbedderStandIn();
    const options = { store, embedder, chunker: new StructuredChunker(), collection: "wiki" };
    const documents = [
      { source: "a.md", text: "# A\n\nAlpha text.", format: "markdown" as const },
      { source: "b.md", text: "# B\n\nBravo text.", format: "markdown" as const },
    ];
    assert.deepEqual(await ingestDocuments({ documents, deleteSources: [] }, options), {
      added: 2,
      updated: 0,
      unchanged: 0,
      removed: 0,
      reindexed: 0,
    });
    const before = await store.chunkRefs("wiki");
    assert.deepEqual(await ingestDocuments({ documents, deleteSources: [] }, options), {
      added: 0,
      updated: 0,
      unchanged: 2,
      removed: 0,
      reindexed: 0,
    });
    assert.equal(embedder.calls, 2, "unchanged chunks are not embedded again");
    assert.deepEqual(
      (await store.chunkRefs("wiki")).sort((a, b) => a.id.localeCompare(b.id)),
      before.sort((a, b) => a.id.localeCompare(b.id)),
      "the same points, same ids",
    );
    const edited = [{ ...documents[0], text: "# A\n\nAlpha, edited." } as (typeof documents)[number]];
    assert.deepEqual(await ingestDocuments({ documents: edited, deleteSources: ["b.md"] }, options), {
      added: 0,
      updated: 1,
      unchanged: 0,
      removed: 1,
      reindexed: 0,
    });
    assert.deepEqual(
      (await store.chunkRefs("wiki")).map((r) => r.source),
      ["a.md"],
    );
    assert.match((await store.search("wiki", { mode: "keyword", text: "edited", limit: 1 }))[0]?.text ?? "", /Alpha, edited/);
  });

  it("each adapter retrieves from the collection its binding names, and only from it", async () => {
    const embedder = new BucketEmbedderStandIn();
    const chunker = new StructuredChunker();
    await ingestDocuments(
      {
        documents: [{ source: "hr.md", text: "Holiday requests go to the people team via the form called sunflower.", format: "markdown" }],
        deleteSources: [],
      },
      { store, embedder, chunker, collection: "people" },
    );
    await ingestDocuments(
      {
        documents: [{ source: "ops.md", text: "Pager duty is arranged in the form called sunflower too.", format: "markdown" }],
        deleteSources: [],
      },
      { store, embedder, chunker, collection: "ops" },
    );
    const service = new RagService({ store, embedder });
    const adapter = (name: string, collection: string) => ({
      name,
      route: `/${name}`,
      upstreamModel: "m",
      upstream: "engine",
      description: "",
      sampling: {},
      rag: { collection, topK: 3, scoreThreshold: 0, mode: "hybrid" as const, onFailure: "fail" as const },
      limits: { concurrency: 1, queue: 0, timeoutMs: 1000, firstByteTimeoutMs: 1000 },
    });
    const signal = new AbortController().signal;
    const people = await service.retrieve(adapter("hr", "people"), "sunflower form", signal);
    const ops = await service.retrieve(adapter("oncall", "ops"), "sunflower form", signal);
    assert.deepEqual(
      people.chunks.map((c) => c.source),
      ["hr.md"],
    );
    assert.deepEqual(
      ops.chunks.map((c) => c.source),
      ["ops.md"],
    );
  });

  it("a wrong API key is refused with a message that names the server and the fix, and not the key", async () => {
    const wrong = new QdrantStore({ url: qdrant.url, apiKey: "not-the-key" });
    const error = await wrong.search("handbook", { mode: "keyword", text: "E-4711", limit: 1 }).catch((e: unknown) => e);
    assert.ok(error instanceof QdrantStoreError, String(error));
    assert.equal(error.status, 401);
    assert.match(
      error.message,
      new RegExp(`^Qdrant at ${qdrant.url} refused the API key \\(401\\) while searching handbook \\(keyword\\)$`),
    );
    assert.match(error.fix ?? "", /QDRANT__SERVICE__API_KEY/);
    assert.doesNotMatch(`${error.message} ${error.fix}`, /not-the-key/);
    const none = await new QdrantStore({ url: qdrant.url }).dimension("handbook").catch((e: unknown) => e);
    assert.ok(none instanceof QdrantStoreError && none.status === 401, "no key at all is refused the same way");
    const unreadable = await new QdrantStore({ url: qdrant.url, apiKeyFile: "/nonexistent/qdrant-api-key" })
      .dimension("handbook")
      .catch((e: unknown) => e);
    assert.ok(unreadable instanceof QdrantStoreError, String(unreadable));
    assert.equal(unreadable.message, `cannot read the API key for Qdrant at ${qdrant.url} from /nonexistent/qdrant-api-key: ENOENT`);
  });

  it("an unreachable server gives an error naming its URL and the connection failure", async () => {
    const url = `http://127.0.0.1:${await freeLoopbackPort()}`;
    const error = await new QdrantStore({ url, apiKey: qdrant.apiKey }).chunkRefs("handbook").catch((e: unknown) => e);
    assert.ok(error instanceof QdrantStoreError, String(error));
    assert.equal(error.status, undefined);
    assert.match(error.message, new RegExp(`^no Qdrant answers at ${url} while checking collection handbook: ECONNREFUSED$`));
    assert.match(error.fix ?? "", /vectorStore\.url/);
  });
});
