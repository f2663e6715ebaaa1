// The same corpus and queries through both stores: Qdrant (real server, its Query API with RRF) and
// the embedded LanceDB store. Dense search is exact in both and must agree exactly. The keyword half
// matches the same chunks in both (the same terms are asked for), but ranks them by different BM25
// length normalization: our sparse weights assume a fixed 256-term chunk so that stored weights never
// go stale, LanceDB uses the table's real average. So ranks may differ among close candidates; the
// test pins that down instead of hiding it. The embedder is a stand-in (hashed bag of words, named
// as such): the stores, not the model, are under test.
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { StructuredChunker } from "../../src/rag/chunker.ts";
import type { Embedder } from "../../src/rag/embedder.ts";
import { ingestDocuments } from "../../src/rag/ingest.ts";
import { LanceStore } from "../../src/rag/lance-store.ts";
import { QdrantStore } from "../../src/rag/qdrant-store.ts";
import { QdrantClient } from "@qdrant/js-client-rest";
import type { RetrievalMode, SearchHit, VectorStore } from "../../src/rag/store.ts";
import { keywordTerms } from "../../src/rag/tokens.ts";
import { HANDBOOK } from "./fixtures.ts";
import { findTestQdrant, startTestQdrant, type TestQdrant } from "./support/qdrant.ts";

const found = await findTestQdrant();
const DIM = 64;

/** A stand-in embedder: each term adds a signed weight to one of 64 buckets (from its sha256); normalized. */
class HashedWordsEmbedderStandIn implements Embedder {
  async embed(texts: readonly string[]): Promise<number[][]> {
    return texts.map((text) => {
      const vector = new Array<number>(DIM).fill(0);
      for (const term of keywordTerms(text)) {
        const h = createHash("sha256").update(term).digest();
        vector[(h[0] as number) % DIM] = (vector[(h[0] as number) % DIM] ?? 0) + ((h[1] as number) / 255) * ((h[2] as number) % 2 ? 1 : -1);
      }
      const norm = Math.hypot(...vector) || 1;
      return vector.map((v) => v / norm);
    });
  }
}

/** A seeded corpus: 30 pages of invented words, each paragraph ending in a marker word found nowhere else. */
function corpus(): { documents: Array<{ source: string; text: string; format: "text" | "markdown" | "html" }>; queries: string[] } {
  let seed = 7;
  const random = () => (seed = (seed * 1103515245 + 12345) % 2147483648) / 2147483648;
  const syllables = ["ka", "lo", "mi", "ra", "tes", "vun", "shi", "por", "del", "an"];
  const vocabulary = Array.from({ length: 300 }, () =>
    Array.from({ length: 2 + Math.floor(random() * 2) }, () => syllables[Math.floor(random() * syllables.length)]).join(""),
  );
  const word = () => vocabulary[Math.floor(random() ** 2 * vocabulary.length)] as string;
  const marker = (page: number, paragraph: number) =>
    `zq${String.fromCharCode(97 + Math.floor(page / 10), 97 + (page % 10), 97 + paragraph)}`;
  const documents = Object.entries(HANDBOOK).map(([source, text]) => ({
    source,
    text,
    format: source.endsWith(".html") ? ("html" as const) : source.endsWith(".md") ? ("markdown" as const) : ("text" as const),
  }));
  for (let page = 0; page < 30; page++) {
    const paragraphs = Array.from(
      { length: 4 },
      (_, p) => `${Array.from({ length: 15 + Math.floor(random() * 60) }, word).join(" ")} ${marker(page, p)}.`,
    );
    documents.push({ source: `gen/${page}.txt`, text: paragraphs.join("\n\n"), format: "text" });
  }
  const queries = [
    "What does E-4711 mean?",
    "Who is Quillon at the east door?",
    "quota service unreachable retry",
    "yellow badge visitors",
  ];
  for (let i = 0; i < 40; i++)
    queries.push(
      i % 2 ? `${word()} ${word()} ${word()}` : `what about ${marker(Math.floor(random() * 30), Math.floor(random() * 4))} and ${word()}`,
    );
  return { documents, queries };
}

const show = (hits: readonly SearchHit[]) => hits.map((h) => `${h.source}#${h.chunk} ${h.score.toFixed(4)}`).join(", ");

describe("Qdrant and the embedded store answer the same corpus alike", { skip: found.skip, timeout: 300_000 }, () => {
  let dir: string;
  let qdrant: TestQdrant;
  let stores: { qdrant: VectorStore; embedded: VectorStore };
  const embedder = new HashedWordsEmbedderStandIn();
  const { documents, queries } = corpus();
  const search = async (mode: RetrievalMode, text: string, limit: number) => {
    const [vector] = await embedder.embed([text]);
    const request = { mode, text, ...(vector ? { vector } : {}), limit };
    return { qdrant: await stores.qdrant.search("corpus", request), embedded: await stores.embedded.search("corpus", request) };
  };

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), "diatonic-rag-parity-"));
    qdrant = await startTestQdrant(found.binary as NonNullable<typeof found.binary>);
    stores = {
      qdrant: new QdrantStore({ url: qdrant.url, apiKey: qdrant.apiKey }),
      embedded: new LanceStore({ path: join(dir, "vectors") }),
    };
    const chunker = new StructuredChunker({ maxTokens: 80, overlapTokens: 0 });
    for (const store of Object.values(stores)) {
      const counts = await ingestDocuments({ documents, deleteSources: [] }, { store, embedder, chunker, collection: "corpus" });
      assert.equal(counts.added, 95, "both stores hold the same 95 chunks");
    }
  });
  after(async () => {
    await stores?.embedded.close();
    await qdrant?.close();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it("dense: the same chunks in the same order with the same cosine scores", async () => {
    for (const text of queries) {
      const { qdrant, embedded } = await search("dense", text, 5);
      assert.deepEqual(
        qdrant.map((h) => h.id),
        embedded.map((h) => h.id),
        `${text}\n qdrant:   ${show(qdrant)}\n embedded: ${show(embedded)}`,
      );
      qdrant.forEach((hit, i) => assert.ok(Math.abs(hit.score - (embedded[i]?.score ?? NaN)) < 1e-5, text));
    }
  });

  for (const mode of ["keyword", "hybrid"] as const) {
    it(`${mode}: the same chunks match; each store's best hit is in the other's top 5, and mostly first too (ranks differ by BM25 length normalization)`, async () => {
      let sameTop = 0;
      for (const text of queries) {
        const all = await search(mode, text, 500);
        assert.deepEqual(all.qdrant.map((h) => h.id).sort(), all.embedded.map((h) => h.id).sort(), `${text}: the matching chunks`);
        const { qdrant, embedded } = await search(mode, text, 5);
        const why = `${text}\n qdrant:   ${show(qdrant)}\n embedded: ${show(embedded)}`;
        assert.ok(embedded.some((h) => h.id === qdrant[0]?.id) && qdrant.some((h) => h.id === embedded[0]?.id), why);
        if (qdrant[0]?.id === embedded[0]?.id) sameTop++;
      }
      assert.ok(sameTop >= queries.length * 0.8, `${mode}: the same best hit for ${sameTop} of ${queries.length} queries`);
    });
  }

  it("keyword: Chinese, Japanese and Thai, written without spaces, are found by the words a question shares with them, in both stores", async () => {
    const cjk = [
      { source: "weather.md", text: "# 天气\n\n明天的天气预报说北京会下雨，气温十二度。", format: "markdown" as const },
      { source: "office.md", text: "# 事務所\n\n会議室の予約は総務部の山田さんに連絡してください。", format: "markdown" as const },
      { source: "menu.md", text: "# Canteen\n\nThe canteen serves ramen on Fridays and curry on Mondays.", format: "markdown" as const },
      { source: "meeting.md", text: "# ห้องประชุม\n\nถ้าต้องการจองห้องประชุมให้ติดต่อฝ่ายธุรการ", format: "markdown" as const },
      { source: "cafe.md", text: "กาแฟราคาเยอะ", format: "text" as const },
    ];
    for (const store of Object.values(stores))
      await ingestDocuments(
        { documents: cjk, deleteSources: [] },
        { store, embedder, chunker: new StructuredChunker(), collection: "cjk" },
      );
    for (const [text, source] of [
      ["北京明天的天气预报怎么样？", "weather.md"],
      ["会議室を予約したい", "office.md"],
      ["ramen", "menu.md"],
      ["ฉันอยากจองห้องประชุม", "meeting.md"],
      ["ราคากาแฟ", "cafe.md"],
    ] as const) {
      const [vector] = await embedder.embed([text]);
      const request = { mode: "keyword" as const, text, ...(vector ? { vector } : {}), limit: 3 };
      const hits = { qdrant: await stores.qdrant.search("cjk", request), embedded: await stores.embedded.search("cjk", request) };
      assert.deepEqual([hits.qdrant[0]?.source, hits.embedded[0]?.source], [source, source], `${text}: ${JSON.stringify(hits)}`);
    }
  });

  it("reindexKeywords rewrites Qdrant's keyword vectors from the stored text, and leaves the dense ones as they were", async () => {
    const store = stores.qdrant as QdrantStore;
    const [vector] = await embedder.embed(["placeholder"]);
    const id = "00000000-0000-4000-8000-000000000777";
    await store.ensureCollection("stale", (vector as number[]).length);
    await store.upsert("stale", [{ id, source: "cafe.md", chunk: 0, hash: "h", text: "placeholder", vector: vector as number[] }]);
    // The text changes under the point, its keyword vector does not: as terms from an older tokenizer.
    const client = new QdrantClient({ url: qdrant.url, apiKey: qdrant.apiKey, checkCompatibility: false });
    await client.setPayload("stale", { points: [id], payload: { text: "กาแฟราคาเยอะ" }, wait: true });
    const keyword = async (text: string) => (await store.search("stale", { mode: "keyword", text, limit: 3 })).map((hit) => hit.source);
    assert.deepEqual(await keyword("ราคากาแฟ"), []);
    assert.equal(await store.reindexKeywords("stale"), 1);
    assert.deepEqual(await keyword("ราคากาแฟ"), ["cafe.md"]);
    const dense = await store.search("stale", { mode: "dense", text: "", vector: vector as number[], limit: 3 });
    assert.ok((dense[0]?.score ?? 0) > 0.999, JSON.stringify(dense));
    assert.equal(await store.reindexKeywords("none-such"), 0);
  });

  it("keyword: a question naming a word found in one chunk only gets that chunk first from both", async () => {
    for (const [text, source] of [
      ["What does E-4711 mean?", "errors.txt"],
      ["Who is Quillon?", "badges.html"],
      ["where is zqcbd", "gen/21.txt"],
    ] as const) {
      const { qdrant, embedded } = await search("keyword", text, 3);
      assert.deepEqual([qdrant[0]?.source, embedded[0]?.source], [source, source], text);
      assert.deepEqual(
        qdrant.map((h) => h.id),
        embedded.map((h) => h.id),
        text,
      );
    }
  });
});
