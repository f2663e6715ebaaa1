// npm run bench:rag — ingest throughput (chunks/s) and query latency (embed + search, p50/p99) on the
// embedded store (LanceDB on disk) with embeddings from the local engine over HTTP (a tiny generated
// Llama: its vectors are noise, but the work per vector is real), and the share of time in each.
// Prints a table and writes bench/results/rag.json. BENCH_CHUNKS and BENCH_QUERIES scale it.
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { cpus, tmpdir } from "node:os";
import { join } from "node:path";
import { pino } from "pino";
import { startEngine, writeTestModels } from "../src/engine/index.ts";
import { StructuredChunker } from "../src/rag/chunker.ts";
import { HttpEmbedder, type Embedder } from "../src/rag/embedder.ts";
import { ingestDocuments } from "../src/rag/ingest.ts";
import { LanceStore } from "../src/rag/lance-store.ts";
import type { RetrievalMode, VectorStore } from "../src/rag/store.ts";

const TARGET_CHUNKS = Number(process.env["BENCH_CHUNKS"] ?? 10_000);
const QUERIES = Number(process.env["BENCH_QUERIES"] ?? 200);
const CHUNKS_PER_DOCUMENT = 10;
const DOCUMENTS_PER_REQUEST = 50;
const WORDS_PER_PARAGRAPH = 110;

/** A seeded generator, so every run ingests the same corpus. */
function random(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const next = random(42);
const syllables = ["ka", "lo", "mi", "ra", "tes", "vun", "shi", "por", "del", "an", "qu", "ix", "be", "nor", "sal"];
const vocabulary = Array.from({ length: 3000 }, () => Array.from({ length: 2 + Math.floor(next() * 3) }, () => syllables[Math.floor(next() * syllables.length)]).join(""));
const word = () => vocabulary[Math.floor(next() ** 2 * vocabulary.length)] as string;

/** A handbook page: a title, then sections of a heading and paragraphs, each with a code word. */
function document(index: number): string {
  const sections: string[] = [`# Page ${index}`];
  for (let s = 0; s < CHUNKS_PER_DOCUMENT; s++) {
    sections.push(`## Section ${index}.${s}`);
    for (let p = 0; p < 4; p++) sections.push(`${Array.from({ length: WORDS_PER_PARAGRAPH }, word).join(" ")} code-${index}-${s}-${p}.`);
  }
  return sections.join("\n\n");
}

class TimedEmbedder implements Embedder {
  ms = 0;
  constructor(private readonly inner: Embedder) {}
  async embed(texts: readonly string[], signal?: AbortSignal): Promise<number[][]> {
    const start = performance.now();
    try {
      return await this.inner.embed(texts, signal);
    } finally {
      this.ms += performance.now() - start;
    }
  }
}

const quantile = (values: readonly number[], q: number): number => {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))] ?? 0;
};
const round = (value: number, digits = 1) => Math.round(value * 10 ** digits) / 10 ** digits;

const dir = mkdtempSync(join(tmpdir(), "diatonic-bench-rag-"));
const files = writeTestModels(join(dir, "model"));
const engine = await startEngine({ modelPath: files.model, servedModelName: "tiny", port: 0, threads: Math.max(1, cpus().length - 1), logger: pino({ level: "silent" }) });
const embedder = new TimedEmbedder(new HttpEmbedder({ url: engine.url, model: "tiny", batchSize: 64 }));
const store: VectorStore = new LanceStore({ path: join(dir, "vectors") });
const chunker = new StructuredChunker();

// Ingest: the gateway's path for each admin API request (chunk, diff against the store, embed, upsert).
const documentCount = Math.ceil(TARGET_CHUNKS / CHUNKS_PER_DOCUMENT);
const texts = Array.from({ length: documentCount }, (_, i) => document(i));
let chunks = 0;
const ingestStart = performance.now();
for (let start = 0; start < documentCount; start += DOCUMENTS_PER_REQUEST) {
  const documents = texts.slice(start, start + DOCUMENTS_PER_REQUEST).map((text, i) => ({ source: `handbook/page-${start + i}.md`, text, format: "markdown" as const }));
  const counts = await ingestDocuments({ documents, deleteSources: [] }, { store, embedder, chunker, collection: "bench" });
  chunks += counts.added;
  process.stderr.write(`\ringest ${chunks} chunks`);
}
process.stderr.write("\n");
const ingestMs = performance.now() - ingestStart;
const ingestEmbedMs = embedder.ms;

// Re-ingest of the same corpus: nothing to embed or write, only the diff.
const reingestStart = performance.now();
for (let start = 0; start < documentCount; start += DOCUMENTS_PER_REQUEST) {
  const documents = texts.slice(start, start + DOCUMENTS_PER_REQUEST).map((text, i) => ({ source: `handbook/page-${start + i}.md`, text, format: "markdown" as const }));
  await ingestDocuments({ documents, deleteSources: [] }, { store, embedder, chunker, collection: "bench" });
}
const reingestMs = performance.now() - reingestStart;

// Queries: a code word plus a few vocabulary words, as a user question would mix them.
const modes: RetrievalMode[] = ["hybrid", "dense", "keyword"];
const queryResults: Record<string, { p50Ms: number; p99Ms: number; embedP50Ms: number; searchP50Ms: number; embedShare: number; hitRate: number }> = {};
for (const mode of modes) {
  const totals: number[] = [];
  const embeds: number[] = [];
  const searches: number[] = [];
  let hits = 0;
  for (let q = 0; q < QUERIES; q++) {
    const doc = Math.floor(next() * documentCount);
    const section = Math.floor(next() * CHUNKS_PER_DOCUMENT);
    const code = `code-${doc}-${section}-${Math.floor(next() * 4)}`;
    const text = `what does ${code} say about ${word()} and ${word()}?`;
    const begin = performance.now();
    const vector = mode === "keyword" ? undefined : (await embedder.embed([text]))[0];
    const embedded = performance.now();
    const found = await store.search("bench", { mode, text, ...(vector ? { vector } : {}), limit: 5 });
    const end = performance.now();
    totals.push(end - begin);
    embeds.push(embedded - begin);
    searches.push(end - embedded);
    if (found.some((hit) => hit.source === `handbook/page-${doc}.md`)) hits++;
  }
  const embedSum = embeds.reduce((a, b) => a + b, 0);
  const totalSum = totals.reduce((a, b) => a + b, 0);
  queryResults[mode] = {
    p50Ms: round(quantile(totals, 0.5)),
    p99Ms: round(quantile(totals, 0.99)),
    embedP50Ms: round(quantile(embeds, 0.5)),
    searchP50Ms: round(quantile(searches, 0.5)),
    embedShare: round(embedSum / totalSum, 3),
    hitRate: round(hits / QUERIES, 3),
  };
}

await store.close();
await engine.close();
rmSync(dir, { recursive: true, force: true });

const result = {
  date: new Date().toISOString(),
  machine: { cpus: cpus().length, model: cpus()[0]?.model ?? "unknown", node: process.version },
  corpus: { documents: documentCount, chunks, chunkTokens: chunker.maxTokens, overlapTokens: chunker.overlapTokens, requestDocuments: DOCUMENTS_PER_REQUEST },
  embedder: "local engine over HTTP, tiny generated Llama (dim 64), batches of 64",
  store: "LanceDB on local disk: flat cosine scan + BM25 full-text index, RRF in hybrid",
  ingest: {
    seconds: round(ingestMs / 1000, 2),
    chunksPerSecond: round(chunks / (ingestMs / 1000)),
    embedShare: round(ingestEmbedMs / ingestMs, 3),
    storeAndChunkShare: round(1 - ingestEmbedMs / ingestMs, 3),
    reingestUnchangedSeconds: round(reingestMs / 1000, 2),
  },
  query: { count: QUERIES, ...queryResults },
};

const rows = [
  ["ingest", `${result.ingest.chunksPerSecond} chunks/s`, `${chunks} chunks in ${result.ingest.seconds} s`, `embedding ${Math.round(result.ingest.embedShare * 100)}% / chunk+store ${Math.round(result.ingest.storeAndChunkShare * 100)}%`],
  ["re-ingest (unchanged)", `${round(chunks / (reingestMs / 1000))} chunks/s`, `${result.ingest.reingestUnchangedSeconds} s, nothing embedded or written`, "diff only"],
  ...modes.map((mode) => {
    const r = queryResults[mode] as NonNullable<(typeof queryResults)[string]>;
    return [`query ${mode}`, `p50 ${r.p50Ms} ms, p99 ${r.p99Ms} ms`, `embed p50 ${r.embedP50Ms} ms + search p50 ${r.searchP50Ms} ms`, `embedding ${Math.round(r.embedShare * 100)}% / store ${Math.round((1 - r.embedShare) * 100)}%; right page in top 5: ${Math.round(r.hitRate * 100)}%`];
  }),
];
const widths = [0, 1, 2, 3].map((c) => Math.max(...rows.map((row) => (row[c] ?? "").length)));
console.log(`\nRAG on the embedded store: ${chunks} chunks (${documentCount} pages), ${QUERIES} queries per mode, ${cpus().length} CPUs\n`);
for (const row of rows) console.log(row.map((cell, c) => cell.padEnd(widths[c] ?? 0)).join("  "));
mkdirSync("bench/results", { recursive: true });
writeFileSync("bench/results/rag.json", `${JSON.stringify(result, null, 2)}\n`);
console.log("\nwrote bench/results/rag.json");
