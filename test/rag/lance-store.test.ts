// The embedded store's keyword half on its own (LanceDB on disk, no server): Chinese and Japanese are
// found by the character pairs a question shares with them, through several collections of one
// store, and a table made before the `terms` column existed keeps answering from its `text` index.
import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { connect } from "@lancedb/lancedb";
import { Field, FixedSizeList, Float32, Int32, Schema, Utf8 } from "apache-arrow";
import type { AdapterRoute } from "../../src/gateway/config.ts";
import { LanceStore } from "../../src/rag/lance-store.ts";
import { RagService } from "../../src/rag/service.ts";
import type { StoredChunk } from "../../src/rag/store.ts";

const chunk = (id: number, source: string, text: string): StoredChunk => ({
  id: `00000000-0000-4000-8000-${String(id).padStart(12, "0")}`,
  source,
  chunk: 0,
  hash: String(id),
  text,
  vector: [1, 0, 0, 0],
});
const CHUNKS = [
  chunk(1, "weather.md", "明天的天气预报说北京会下雨，气温十二度。"),
  chunk(2, "office.md", "会議室の予約は総務部の山田さんに連絡してください。"),
  chunk(3, "menu.md", "The canteen serves ramen on Fridays and curry on Mondays."),
  chunk(4, "meeting.md", "ถ้าต้องการจองห้องประชุมให้ติดต่อฝ่ายธุรการ"),
  // No combining mark: a run a term of its own would hold the whole phrase, which no question repeats.
  chunk(5, "cafe.md", "กาแฟราคาเยอะ"),
];
const keyword = (store: LanceStore, collection: string, text: string) =>
  store.search(collection, { mode: "keyword", text, limit: 3 }).then((hits) => hits.map((hit) => hit.source));

/** A table of the schema from before the `terms` column, as an earlier version made it. */
async function createPreTermsTable(dir: string, name: string): Promise<void> {
  const db = await connect(join(dir, "vectors"));
  await db.createEmptyTable(
    name,
    new Schema([
      new Field("id", new Utf8(), false),
      new Field("source", new Utf8(), false),
      new Field("chunk", new Int32(), false),
      new Field("hash", new Utf8(), false),
      new Field("text", new Utf8(), false),
      new Field("vector", new FixedSizeList(4, new Field("item", new Float32(), true)), false),
    ]),
  );
}

describe("the embedded store's keyword search (LanceDB)", () => {
  let dir: string;
  let store: LanceStore;
  before(() => {
    dir = mkdtempSync(join(tmpdir(), "diatonic-lance-"));
    store = new LanceStore({ path: join(dir, "vectors") });
  });
  after(async () => {
    await store?.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it("finds Chinese, Japanese and Thai by the words a question shares with them, in each of two collections", async () => {
    for (const collection of ["first", "second"]) {
      await store.ensureCollection(collection, 4);
      await store.upsert(collection, CHUNKS);
      assert.equal((await keyword(store, collection, "北京明天的天气预报怎么样？"))[0], "weather.md", collection);
      assert.equal((await keyword(store, collection, "会議室を予約したい"))[0], "office.md", collection);
      assert.deepEqual(await keyword(store, collection, "ramen"), ["menu.md"], collection);
      assert.equal((await keyword(store, collection, "ฉันอยากจองห้องประชุม"))[0], "meeting.md", collection);
      assert.equal((await keyword(store, collection, "ราคากาแฟ"))[0], "cafe.md", collection);
    }
  });

  it("keeps answering from a table made before the terms column existed, and takes new chunks into it", async () => {
    await createPreTermsTable(dir, "old");
    const old = new LanceStore({ path: join(dir, "vectors") });
    try {
      await old.ensureCollection("old", 4);
      await old.upsert("old", CHUNKS);
      assert.deepEqual(await keyword(old, "old", "curry on Mondays"), ["menu.md"]);
    } finally {
      await old.close();
    }
  });

  it("reindexKeywords gives a table from before the terms column its terms: a Thai and a Chinese question it missed are found", async () => {
    await createPreTermsTable(dir, "older");
    const older = new LanceStore({ path: join(dir, "vectors") });
    try {
      await older.upsert("older", CHUNKS);
      // Lance's own tokenizer over `text`: a run of Thai or Chinese is one word.
      assert.notEqual((await keyword(older, "older", "ราคากาแฟ"))[0], "cafe.md");
      assert.notEqual((await keyword(older, "older", "北京明天的天气预报怎么样？"))[0], "weather.md");
      assert.equal(await older.reindexKeywords("older"), CHUNKS.length);
      assert.equal((await keyword(older, "older", "ราคากาแฟ"))[0], "cafe.md");
      assert.equal((await keyword(older, "older", "北京明天的天气预报怎么样？"))[0], "weather.md");
      assert.deepEqual(await keyword(older, "older", "curry on Mondays"), ["menu.md"]);
      // The vectors and the rest are as they were.
      const dense = await older.search("older", { mode: "dense", text: "", vector: [1, 0, 0, 0], limit: 10 });
      assert.equal(dense.length, CHUNKS.length);
      assert.equal(await older.reindexKeywords("missing"), 0);
    } finally {
      await older.close();
    }
  });

  it("a gateway without an embeddings model may still reindex and delete (they embed nothing), but not ingest", async () => {
    const service = new RagService({ store });
    await store.ensureCollection("plain", 4);
    await store.upsert("plain", CHUNKS);
    const adapter = {
      name: "rag",
      rag: { collection: "plain", topK: 3, scoreThreshold: 0, mode: "keyword", onFailure: "fail" },
    } as unknown as AdapterRoute;
    const signal = new AbortController().signal;
    const counts = await service.ingest(adapter, { documents: [], deleteSources: ["menu.md"], reindex: true }, signal);
    assert.equal(counts.removed, 1);
    assert.equal(counts.reindexed, CHUNKS.length - 1);
    await assert.rejects(
      async () => service.ingest(adapter, { documents: [{ source: "a.md", text: "alpha", format: "text" }], deleteSources: [] }, signal),
      /ingest needs an embeddings model/,
    );
  });
});
