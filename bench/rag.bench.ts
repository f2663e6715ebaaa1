// npm run bench:rag — ingest throughput (chunks/s) and query latency (embed + search, p50/p99) on both
// stores side by side, the same corpus and queries through the same code the gateway runs: the
// embedded store (LanceDB on disk) and a Qdrant server (QDRANT_BIN or ../shared/tools/qdrant, on
// loopback). Embeddings come from the local engine over HTTP (a tiny generated Llama: its vectors are
// noise, but the work per vector is real); each text is embedded once and the same vectors go to both
// stores, so the stores are compared on their own work. Prints a table and writes
// bench/results/rag.json: one row per store, with `store` "embedded" or "qdrant".
// BENCH_CHUNKS and BENCH_QUERIES scale it; BENCH_RAG_STORES=embedded runs one store.
import { mkdirSync, mkdtempSync, renameSync, rmSync, writeFileSync } from "node:fs";
import { cpus, tmpdir } from "node:os";
import { join } from "node:path";
import { pino } from "pino";
import { startEngine, writeTestModels } from "../src/engine/index.ts";
import { StructuredChunker } from "../src/rag/chunker.ts";
import { HttpEmbedder, type Embedder } from "../src/rag/embedder.ts";
import { ingestDocuments } from "../src/rag/ingest.ts";
import { LanceStore } from "../src/rag/lance-store.ts";
import { locateQdrant } from "../src/rag/qdrant-binary.ts";
import { startQdrant } from "../src/rag/qdrant-server.ts";
import { QdrantStore } from "../src/rag/qdrant-store.ts";
import { seeded } from "./routing-traffic.ts";
import type { RetrievalMode, VectorStore } from "../src/rag/store.ts";

const TARGET_CHUNKS = Number(process.env["BENCH_CHUNKS"] ?? 10_000);
const QUERIES = Number(process.env["BENCH_QUERIES"] ?? 200);
const CHUNKS_PER_DOCUMENT = 10;
const DOCUMENTS_PER_REQUEST = 50;
const WORDS_PER_PARAGRAPH = 110;

const next = seeded(42);
const syllables = ["ka", "lo", "mi", "ra", "tes", "vun", "shi", "por", "del", "an", "qu", "ix", "be", "nor", "sal"];
const vocabulary = Array.from({ length: 3000 }, () =>
  Array.from({ length: 2 + Math.floor(next() * 3) }, () => syllables[Math.floor(next() * syllables.length)]).join(""),
);
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

/** Embeds each text once (timed); later stores get the same vectors from memory. */
class OnceEmbedder implements Embedder {
  ms = 0;
  private readonly cache = new Map<string, number[]>();
  constructor(private readonly inner: Embedder) {}
  async embed(texts: readonly string[], signal?: AbortSignal): Promise<number[][]> {
    const missing = [...new Set(texts.filter((text) => !this.cache.has(text)))];
    if (missing.length > 0) {
      const start = performance.now();
      try {
        (await this.inner.embed(missing, signal)).forEach((vector, i) => this.cache.set(missing[i] as string, vector));
      } finally {
        this.ms += performance.now() - start;
      }
    }
    return texts.map((text) => this.cache.get(text) as number[]);
  }
}

const quantile = (values: readonly number[], q: number): number => {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))] ?? 0;
};
const round = (value: number, digits = 1) => Math.round(value * 10 ** digits) / 10 ** digits;

const STORES = (process.env["BENCH_RAG_STORES"] ?? "embedded,qdrant").split(",").map((s) => s.trim());
const dir = mkdtempSync(join(tmpdir(), "diatonic-bench-rag-"));
// Found before the engine starts: without it the bench says why at once.
const qdrantBinary = STORES.includes("qdrant") ? await locateQdrant() : undefined;
const files = writeTestModels(join(dir, "model"));
const engine = await startEngine({
  modelPath: files.model,
  servedModelName: "tiny",
  port: 0,
  threads: Math.max(1, cpus().length - 1),
  logger: pino({ level: "silent" }),
});
const embedder = new OnceEmbedder(new HttpEmbedder({ url: engine.url, model: "tiny", batchSize: 64 }));
const chunker = new StructuredChunker();
const documentCount = Math.ceil(TARGET_CHUNKS / CHUNKS_PER_DOCUMENT);
const texts = Array.from({ length: documentCount }, (_, i) => document(i));
const requests = Array.from({ length: Math.ceil(documentCount / DOCUMENTS_PER_REQUEST) }, (_, r) =>
  texts
    .slice(r * DOCUMENTS_PER_REQUEST, (r + 1) * DOCUMENTS_PER_REQUEST)
    .map((text, i) => ({ source: `handbook/page-${r * DOCUMENTS_PER_REQUEST + i}.md`, text, format: "markdown" as const })),
);

// Queries: a code word plus a few vocabulary words, as a user question would mix them; the same for both stores.
const modes: RetrievalMode[] = ["hybrid", "dense", "keyword"];
const queryPlan = Array.from({ length: QUERIES }, () => {
  const doc = Math.floor(next() * documentCount);
  const section = Math.floor(next() * CHUNKS_PER_DOCUMENT);
  return { doc, text: `what does code-${doc}-${section}-${Math.floor(next() * 4)} say about ${word()} and ${word()}?` };
});
// Each query embedded once, timed one by one as the gateway embeds a question.
const queryVectors: number[][] = [];
const queryEmbedMs: number[] = [];
for (const { text } of queryPlan) {
  const begin = performance.now();
  queryVectors.push((await embedder.embed([text]))[0] as number[]);
  queryEmbedMs.push(performance.now() - begin);
}

interface StoreRun {
  readonly store: "embedded" | "qdrant";
  readonly detail: string;
  open(): Promise<VectorStore>;
  /** Resolves once the store's background work after writes (Qdrant's optimizers) is done. */
  settled(): Promise<void>;
  close(): Promise<void>;
}

interface Ingested {
  readonly run: StoreRun;
  readonly store: VectorStore;
  readonly chunks: number;
  readonly storeMs: number;
  readonly reingestMs: number;
}

/** The gateway's path for each admin API request (chunk, diff against the store, embed, upsert), then the same again unchanged. */
async function ingest(run: StoreRun): Promise<Ingested> {
  const store = await run.open();
  const embedBefore = embedder.ms;
  let chunks = 0;
  const start = performance.now();
  for (const documents of requests) {
    chunks += (await ingestDocuments({ documents, deleteSources: [] }, { store, embedder, chunker, collection: "bench" })).added;
    process.stderr.write(`\r${run.store}: ingest ${chunks} chunks`);
  }
  process.stderr.write("\n");
  const storeMs = performance.now() - start - (embedder.ms - embedBefore);
  const reingestStart = performance.now();
  for (const documents of requests)
    await ingestDocuments({ documents, deleteSources: [] }, { store, embedder, chunker, collection: "bench" });
  const reingestMs = performance.now() - reingestStart;
  await run.settled();
  return { run, store, chunks, storeMs, reingestMs };
}

interface Timings {
  totals: number[];
  embeds: number[];
  searches: number[];
  hits: number;
}

/** Every query goes to each store in turn (order alternating), so both see the same load on a shared machine. */
async function queryAll(stores: readonly Ingested[]): Promise<Map<Ingested, Record<string, Timings>>> {
  const timings = new Map(
    stores.map((s) => [s, Object.fromEntries(modes.map((mode) => [mode, { totals: [], embeds: [], searches: [], hits: 0 } as Timings]))]),
  );
  for (const mode of modes) {
    for (const [q, { doc, text }] of queryPlan.entries()) {
      const order = q % 2 === 0 ? stores : [...stores].reverse();
      for (const ingested of order) {
        const t = timings.get(ingested)?.[mode] as Timings;
        const embedded = mode === "keyword" ? 0 : (queryEmbedMs[q] as number);
        const begin = performance.now();
        const found = await ingested.store.search("bench", {
          mode,
          text,
          ...(mode !== "keyword" ? { vector: queryVectors[q] as number[] } : {}),
          limit: 5,
        });
        const searched = performance.now() - begin;
        t.totals.push(embedded + searched);
        t.embeds.push(embedded);
        t.searches.push(searched);
        if (found.some((hit) => hit.source === `handbook/page-${doc}.md`)) t.hits++;
      }
    }
  }
  return timings;
}

function row(ingested: Ingested, timings: Record<string, Timings>): Record<string, unknown> {
  const { run, chunks, storeMs, reingestMs } = ingested;
  // The embedding work is the same for every store: paid once, counted for each.
  const ingestMs = storeMs + ingestEmbedMs;
  const query: Record<string, unknown> = { count: QUERIES };
  for (const mode of modes) {
    const t = timings[mode] as Timings;
    const embedSum = t.embeds.reduce((a, b) => a + b, 0);
    const totalSum = t.totals.reduce((a, b) => a + b, 0);
    query[mode] = {
      p50Ms: round(quantile(t.totals, 0.5)),
      p99Ms: round(quantile(t.totals, 0.99)),
      embedP50Ms: round(quantile(t.embeds, 0.5)),
      searchP50Ms: round(quantile(t.searches, 0.5)),
      searchP99Ms: round(quantile(t.searches, 0.99)),
      embedShare: round(embedSum / totalSum, 3),
      hitRate: round(t.hits / QUERIES, 3),
    };
  }
  return {
    store: run.store,
    storeDetail: run.detail,
    date: new Date().toISOString(),
    machine: { cpus: cpus().length, model: cpus()[0]?.model ?? "unknown", node: process.version },
    corpus: {
      documents: documentCount,
      chunks,
      chunkTokens: chunker.maxTokens,
      overlapTokens: chunker.overlapTokens,
      requestDocuments: DOCUMENTS_PER_REQUEST,
    },
    embedder:
      "local engine over HTTP, tiny generated Llama (dim 64), batches of 64; each text embedded once, the same vectors given to every store",
    ingest: {
      seconds: round(ingestMs / 1000, 2),
      chunksPerSecond: round(chunks / (ingestMs / 1000)),
      embedShare: round(ingestEmbedMs / ingestMs, 3),
      storeAndChunkShare: round(storeMs / ingestMs, 3),
      storeAndChunkChunksPerSecond: round(chunks / (storeMs / 1000)),
      reingestUnchangedSeconds: round(reingestMs / 1000, 2),
    },
    query,
  };
}

// Embed the corpus once, before either store is timed: its cost is shared.
const embedStart = embedder.ms;
for (const [r, documents] of requests.entries()) {
  await embedder.embed(documents.flatMap((d) => chunker.chunk(d.text, d.format).map((c) => c.text)));
  process.stderr.write(`\rembedding the corpus: ${r + 1}/${requests.length} requests`);
}
process.stderr.write("\n");
const ingestEmbedMs = embedder.ms - embedStart;

const runs: StoreRun[] = [];
if (STORES.includes("embedded")) {
  runs.push({
    store: "embedded",
    detail: "LanceDB on local disk: flat cosine scan + BM25 full-text index, RRF in our code",
    open: async () => new LanceStore({ path: join(dir, "vectors") }),
    settled: async () => undefined,
    close: async () => undefined,
  });
}
if (qdrantBinary !== undefined) {
  let server: Awaited<ReturnType<typeof startQdrant>> | undefined;
  const apiKey = `bench-${process.pid}`;
  runs.push({
    store: "qdrant",
    detail: `Qdrant ${qdrantBinary.version} on loopback, one node: dense (exact below its indexing threshold) + sparse with IDF, RRF in its Query API`,
    open: async () => {
      server = await startQdrant({ binary: qdrantBinary.path, dataDir: join(dir, "qdrant"), apiKey });
      return new QdrantStore({ url: server.url, apiKey });
    },
    settled: async () => {
      for (let i = 0; i < 600; i++) {
        const info = (await (await fetch(`${server?.url}/collections/bench`, { headers: { "api-key": apiKey } })).json()) as {
          result: { status: string };
        };
        if (info.result.status === "green") return;
        await new Promise((resolve) => setTimeout(resolve, 200));
      }
    },
    close: async () => server?.stop(),
  });
}
const ingested: Ingested[] = [];
for (const run of runs) ingested.push(await ingest(run));
const timings = await queryAll(ingested);
const rows = ingested.map((i) => row(i, timings.get(i) as Record<string, Timings>));
for (const { run, store } of ingested) {
  await store.close();
  await run.close();
}
await engine.close();
rmSync(dir, { recursive: true, force: true });

type Row = {
  store: string;
  corpus: { chunks: number };
  ingest: {
    chunksPerSecond: number;
    seconds: number;
    embedShare: number;
    storeAndChunkChunksPerSecond: number;
    reingestUnchangedSeconds: number;
  };
  query: Record<string, { p50Ms: number; p99Ms: number; searchP50Ms: number; searchP99Ms: number; hitRate: number }>;
};
const table = (rows as unknown as Row[]).flatMap((row) => [
  [
    row.store,
    "ingest",
    `${row.ingest.chunksPerSecond} chunks/s`,
    `${row.corpus.chunks} chunks in ${row.ingest.seconds} s (embedding ${Math.round(row.ingest.embedShare * 100)}%)`,
    `store + chunk alone: ${row.ingest.storeAndChunkChunksPerSecond} chunks/s`,
  ],
  [
    row.store,
    "re-ingest (unchanged)",
    `${round(row.corpus.chunks / row.ingest.reingestUnchangedSeconds)} chunks/s`,
    `${row.ingest.reingestUnchangedSeconds} s, nothing embedded or written`,
    "diff only",
  ],
  ...modes.map((mode) => {
    const r = row.query[mode] as Row["query"][string];
    return [
      row.store,
      `query ${mode}`,
      `p50 ${r.p50Ms} ms, p99 ${r.p99Ms} ms`,
      `search p50 ${r.searchP50Ms} ms, p99 ${r.searchP99Ms} ms`,
      `right page in top 5: ${Math.round(r.hitRate * 100)}%`,
    ];
  }),
]);
const widths = [0, 1, 2, 3, 4].map((c) => Math.max(...table.map((row) => (row[c] ?? "").length)));
console.log(
  `\nRAG stores side by side: ${(rows[0] as unknown as Row | undefined)?.corpus.chunks ?? 0} chunks (${documentCount} pages), ${QUERIES} queries per mode, ${cpus().length} CPUs; embedding the corpus once took ${round(ingestEmbedMs / 1000, 1)} s\n`,
);
for (const row of table) console.log(row.map((cell, c) => cell.padEnd(widths[c] ?? 0)).join("  "));
mkdirSync("bench/results", { recursive: true });
writeFileSync("bench/results/rag.json.tmp", `${JSON.stringify({ rows }, null, 2)}\n`);
renameSync("bench/results/rag.json.tmp", "bench/results/rag.json");
console.log("\nwrote bench/results/rag.json");
