// Contract tests of QdrantStore: no Qdrant server can run on this machine (none is published to a
// registry it reaches), so the official client talks to a stand-in that validates every request
// against Qdrant's published request models and executes it with qdrant-client's local engine.
// These prove the requests are well-formed and the semantics (sparse IDF, RRF fusion, filters) hold;
// they are not a test against a real Qdrant server.
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { StructuredChunker } from "../../src/rag/chunker.ts";
import type { Embedder } from "../../src/rag/embedder.ts";
import { ingestDocuments } from "../../src/rag/ingest.ts";
import { QdrantStore } from "../../src/rag/qdrant-store.ts";
import { StoreMismatchError, type StoredChunk } from "../../src/rag/store.ts";
import { startContractQdrant, type ContractQdrant } from "./support/qdrant-contract.ts";

const KEY = "contract-key";
const DIM = 4;

const chunk = (id: string, source: string, index: number, text: string, vector: number[]): StoredChunk => ({ id, source, chunk: index, hash: `h-${id}`, text, vector });
const uuid = (n: number) => `00000000-0000-4000-8000-${String(n).padStart(12, "0")}`;

/** A deterministic stand-in embedder: a 4-bucket bag of words, enough for ingest bookkeeping. */
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

describe("QdrantStore contract (stand-in validating Qdrant's published request schema)", { timeout: 900_000 }, () => {
  let qdrant: ContractQdrant;
  let store: QdrantStore;
  before(async () => {
    qdrant = await startContractQdrant(KEY);
    store = new QdrantStore({ url: qdrant.url, apiKey: KEY });
  });
  after(async () => {
    const violations = await qdrant?.violations();
    qdrant?.close();
    assert.deepEqual(violations, [], "every request matched Qdrant's schema");
  });

  it("creates the collection once with named dense (cosine) and sparse (IDF) vectors; a wrong key is refused", async () => {
    assert.equal(await store.dimension("handbook"), undefined);
    await store.ensureCollection("handbook", DIM);
    await store.ensureCollection("handbook", DIM);
    assert.equal(await store.dimension("handbook"), DIM);
    await assert.rejects(store.ensureCollection("handbook", DIM + 1), StoreMismatchError);
    const info = (await (await fetch(`${qdrant.url}/collections/handbook`, { headers: { "api-key": KEY } })).json()) as {
      result: { config: { params: { vectors: Record<string, { distance: string }>; sparse_vectors: Record<string, { modifier: string }> } }; payload_schema: Record<string, unknown> };
    };
    assert.equal(info.result.config.params.vectors.dense?.distance, "Cosine");
    assert.equal(info.result.config.params.sparse_vectors.sparse?.modifier, "idf");
    await assert.rejects(new QdrantStore({ url: qdrant.url, apiKey: "wrong" }).dimension("handbook"), /Unauthorized|401/);
  });

  it("upserts, lists and searches: keyword finds exact codes, dense finds the nearest vector, hybrid fuses both, filters narrow", async () => {
    await store.upsert("handbook", [
      chunk(uuid(1), "errors.txt", 0, "E-4711 means the scratch volume is full", [1, 0, 0, 0]),
      chunk(uuid(2), "onboarding.md", 0, "New staff collect their laptop on day one", [0, 1, 0, 0]),
      chunk(uuid(3), "onboarding.md", 1, "Finish the security course before Friday", [0, 0, 1, 0]),
    ]);
    const refs = await store.chunkRefs("handbook");
    assert.deepEqual(refs.map((r) => r.id).sort(), [uuid(1), uuid(2), uuid(3)]);
    assert.deepEqual((await store.chunkRefs("handbook", { sources: ["onboarding.md"] })).map((r) => r.chunk).sort(), [0, 1]);

    const keyword = await store.search("handbook", { mode: "keyword", text: "what is E-4711?", limit: 2 });
    assert.equal(keyword[0]?.source, "errors.txt");
    assert.match(keyword[0]?.text ?? "", /scratch volume/);
    const dense = await store.search("handbook", { mode: "dense", text: "", vector: [0, 0.9, 0.1, 0], limit: 1, scoreThreshold: 0.5 });
    assert.deepEqual(dense.map((h) => [h.source, h.chunk]), [["onboarding.md", 0]]);
    const hybrid = await store.search("handbook", { mode: "hybrid", text: "E-4711", vector: [0, 1, 0, 0], limit: 3 });
    assert.deepEqual(hybrid.slice(0, 2).map((h) => h.source).sort(), ["errors.txt", "onboarding.md"], "each half contributes its best hit");
    const filtered = await store.search("handbook", { mode: "hybrid", text: "E-4711 laptop", vector: [1, 0, 0, 0], limit: 3, filter: { sources: ["onboarding.md"] } });
    assert.ok(filtered.length > 0 && filtered.every((h) => h.source === "onboarding.md"));
    assert.deepEqual(await store.search("missing", { mode: "keyword", text: "x", limit: 3 }), []);
  });

  it("deletes by id and by source", async () => {
    await store.deleteIds("handbook", [uuid(3)]);
    await store.deleteBySource("handbook", ["errors.txt"]);
    assert.deepEqual((await store.chunkRefs("handbook")).map((r) => r.id), [uuid(2)]);
  });

  it("ingest through the Qdrant store is idempotent and prunes by source", async () => {
    const embedder = new BucketEmbedderStandIn();
    const options = { store, embedder, chunker: new StructuredChunker(), collection: "wiki" };
    const documents = [
      { source: "a.md", text: "# A\n\nAlpha text.", format: "markdown" as const },
      { source: "b.md", text: "# B\n\nBravo text.", format: "markdown" as const },
    ];
    assert.deepEqual(await ingestDocuments({ documents, deleteSources: [] }, options), { added: 2, updated: 0, unchanged: 0, removed: 0 });
    assert.deepEqual(await ingestDocuments({ documents, deleteSources: [] }, options), { added: 0, updated: 0, unchanged: 2, removed: 0 });
    assert.equal(embedder.calls, 2, "unchanged chunks are not embedded again");
    const edited = [{ ...documents[0], text: "# A\n\nAlpha, edited." } as (typeof documents)[number]];
    assert.deepEqual(await ingestDocuments({ documents: edited, deleteSources: ["b.md"] }, options), { added: 0, updated: 1, unchanged: 0, removed: 1 });
    assert.deepEqual((await store.chunkRefs("wiki")).map((r) => r.source), ["a.md"]);
  });
});
