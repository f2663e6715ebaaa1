import { mkdir } from "node:fs/promises";
import { Field, FixedSizeList, Float32, Int32, Schema, Utf8 } from "apache-arrow";
import { connect, Index, type Connection, type Table } from "@lancedb/lancedb";
import { keywordTerms } from "./tokens.ts";
import {
  reciprocalRankFusion,
  StoreMismatchError,
  type ChunkRef,
  type SearchFilter,
  type SearchHit,
  type SearchRequest,
  type StoredChunk,
  type VectorStore,
} from "./store.ts";

export interface LanceStoreOptions {
  /** Folder of the database; created if missing. */
  readonly path: string;
}

/** SQL string literal for LanceDB's DataFusion predicates. */
const literal = (value: string): string => `'${value.replace(/'/g, "''")}'`;

function sourceFilter(filter: SearchFilter | undefined): string | undefined {
  if (filter?.sources === undefined) return undefined;
  if (filter.sources.length === 0) return "false";
  return `source IN (${filter.sources.map(literal).join(", ")})`;
}

/**
 * The column the keyword half searches: `terms` (the keyword terms, space-separated, as Qdrant's
 * sparse vectors hold them: Chinese and Japanese as character pairs), or `text` in a table made
 * before that column existed (Lance's own tokenizer: words, with a run of Chinese as one word).
 */
type KeywordColumn = "terms" | "text";

/** The full-text index of each keyword column (a new one each time: LanceDB consumes it). */
/** Chunks read and written back at a time by reindexKeywords. */
const REINDEX_BATCH = 1000;

const FTS = {
  terms: () => Index.fts({ baseTokenizer: "whitespace", withPosition: false, stem: false, removeStopWords: false, lowercase: false }),
  text: () => Index.fts({ withPosition: false, stem: false, removeStopWords: false, lowercase: true }),
} as const;

interface Row {
  id: string;
  source: string;
  chunk: number;
  text: string;
  _distance?: number;
  _score?: number;
}

/**
 * The embedded store for `local` and `diatonic dev`: LanceDB on disk, one table per collection, a
 * flat cosine scan for the dense half (exact; fine to ~100k chunks) and Lance's BM25 full-text index
 * for the keyword half, fused by RRF. Writes to a table are serialized in this process.
 */
export class LanceStore implements VectorStore {
  private connection: Promise<Connection> | undefined;
  private readonly tables = new Map<string, Promise<Table | undefined>>();
  private readonly queues = new Map<string, Promise<unknown>>();
  private readonly keywordColumns = new WeakMap<Table, Promise<KeywordColumn>>();

  constructor(private readonly options: LanceStoreOptions) {}

  private db(): Promise<Connection> {
    this.connection ??= (async () => {
      await mkdir(this.options.path, { recursive: true });
      return connect(this.options.path);
    })();
    return this.connection;
  }

  private async table(collection: string): Promise<Table | undefined> {
    let table = this.tables.get(collection);
    if (table === undefined) {
      table = (async () => {
        const db = await this.db();
        return (await db.tableNames()).includes(collection) ? db.openTable(collection) : undefined;
      })();
      this.tables.set(collection, table);
      table.catch(() => this.tables.delete(collection));
    }
    return table;
  }

  private serialize<T>(collection: string, job: () => Promise<T>): Promise<T> {
    const previous = this.queues.get(collection) ?? Promise.resolve();
    const next = previous.then(job, job);
    this.queues.set(
      collection,
      next.catch(() => undefined),
    );
    return next;
  }

  /**
   * `terms` where the table has the column and its index, else `text`: a table from before the column,
   * or one whose reindex (which adds the column first and the index last) has not finished.
   */
  private keywordColumn(table: Table): Promise<KeywordColumn> {
    let column = this.keywordColumns.get(table);
    if (column === undefined) {
      column = (async () => {
        if (!(await table.schema()).fields.some((f) => f.name === "terms")) return "text";
        const indices = await table.listIndices();
        return indices.some((index) => index.columns.includes("terms")) || (await table.countRows()) === 0 ? "terms" : "text";
      })();
      this.keywordColumns.set(table, column);
    }
    return column;
  }

  async dimension(collection: string): Promise<number | undefined> {
    const table = await this.table(collection);
    if (table === undefined) return undefined;
    const field = (await table.schema()).fields.find((f) => f.name === "vector");
    // Checked by shape: the schema comes from LanceDB's copy of Arrow, not necessarily this module's.
    const listSize = (field?.type as { listSize?: unknown } | undefined)?.listSize;
    return typeof listSize === "number" ? listSize : undefined;
  }

  ensureCollection(collection: string, dimension: number): Promise<void> {
    return this.serialize(collection, async () => {
      const existing = await this.dimension(collection);
      if (existing !== undefined) {
        if (existing !== dimension) {
          throw new StoreMismatchError(
            `collection ${collection} holds ${existing}-dimensional vectors, the embedding model gives ${dimension}: re-create it (delete ${this.options.path}/${collection}.lance) and ingest again`,
          );
        }
        return;
      }
      const schema = new Schema([
        new Field("id", new Utf8(), false),
        new Field("source", new Utf8(), false),
        new Field("chunk", new Int32(), false),
        new Field("hash", new Utf8(), false),
        new Field("text", new Utf8(), false),
        // Nullable: a gateway rolled back to a version before this column writes rows without it.
        new Field("terms", new Utf8(), true),
        new Field("vector", new FixedSizeList(dimension, new Field("item", new Float32(), true)), false),
      ]);
      const db = await this.db();
      const table = await db.createEmptyTable(collection, schema, { mode: "create", existOk: true });
      this.tables.set(collection, Promise.resolve(table));
    });
  }

  upsert(collection: string, chunks: readonly StoredChunk[]): Promise<void> {
    if (chunks.length === 0) return Promise.resolve();
    return this.serialize(collection, async () => {
      const table = await this.required(collection);
      const column = await this.keywordColumn(table);
      const rows = chunks.map((c) => ({
        id: c.id,
        source: c.source,
        chunk: c.chunk,
        hash: c.hash,
        text: c.text,
        ...(column === "terms" ? { terms: keywordTerms(c.text).join(" ") } : {}),
        vector: [...c.vector],
      }));
      await table.mergeInsert("id").whenMatchedUpdateAll().whenNotMatchedInsertAll().execute(rows);
      await this.reindex(table, column);
    });
  }

  /** The full-text index covers new rows only after it is rebuilt or optimized. */
  private async reindex(table: Table, column: KeywordColumn): Promise<void> {
    const indices = await table.listIndices();
    if (!indices.some((index) => index.columns.includes(column))) {
      await table.createIndex(column, { config: FTS[column](), replace: true });
    } else {
      await table.optimize({ cleanupOlderThan: new Date(Date.now() - 60_000) });
    }
  }

  deleteIds(collection: string, ids: readonly string[]): Promise<void> {
    if (ids.length === 0) return Promise.resolve();
    return this.serialize(collection, async () => {
      const table = await this.table(collection);
      if (table === undefined) return;
      for (let start = 0; start < ids.length; start += 500)
        await table.delete(
          `id IN (${ids
            .slice(start, start + 500)
            .map(literal)
            .join(", ")})`,
        );
    });
  }

  deleteBySource(collection: string, sources: readonly string[]): Promise<void> {
    if (sources.length === 0) return Promise.resolve();
    return this.serialize(collection, async () => {
      const table = await this.table(collection);
      if (table === undefined) return;
      await table.delete(sourceFilter({ sources }) as string);
    });
  }

  reindexKeywords(collection: string): Promise<number> {
    return this.serialize(collection, async () => {
      const table = await this.table(collection);
      if (table === undefined) return 0;
      // A table from before the terms column gets it (nullable), and keyword search moves to it.
      // Searches go on over `text` until the index over `terms` is built (keywordColumn).
      if (!(await table.schema()).fields.some((field) => field.name === "terms"))
        await table.addColumns([{ name: "terms", valueSql: "CAST(NULL AS STRING)" }]);
      // The ids first (small), then the rows a batch at a time: rewriting while paging by offset could skip rows.
      const ids = ((await table.query().select(["id"]).toArray()) as { id: string }[]).map((row) => row.id);
      for (let start = 0; start < ids.length; start += REINDEX_BATCH) {
        const batch = ids.slice(start, start + REINDEX_BATCH);
        const rows = (await table
          .query()
          .where(`id IN (${batch.map(literal).join(", ")})`)
          .select(["id", "source", "chunk", "hash", "text", "vector"])
          .toArray()) as { id: string; source: string; chunk: number; hash: string; text: string; vector: Iterable<number> }[];
        await table
          .mergeInsert("id")
          .whenMatchedUpdateAll()
          .execute(
            rows.map((row) => ({
              id: row.id,
              source: row.source,
              chunk: Number(row.chunk),
              hash: row.hash,
              text: row.text,
              terms: keywordTerms(row.text).join(" "),
              vector: [...row.vector],
            })),
          );
      }
      // Rebuilt rather than optimized: the index may be new, or hold terms of the old tokenizer.
      await table.createIndex("terms", { config: FTS.terms(), replace: true });
      this.keywordColumns.delete(table);
      // Each batch left a version behind: compact them, as upserts do.
      await table.optimize({ cleanupOlderThan: new Date(Date.now() - 60_000) });
      return ids.length;
    });
  }

  async chunkRefs(collection: string, filter?: SearchFilter): Promise<ChunkRef[]> {
    const table = await this.table(collection);
    if (table === undefined) return [];
    let query = table.query().select(["id", "source", "chunk", "hash"]);
    const where = sourceFilter(filter);
    if (where !== undefined) query = query.where(where);
    const rows = (await query.toArray()) as ChunkRef[];
    return rows.map((row) => ({ id: row.id, source: row.source, chunk: Number(row.chunk), hash: row.hash }));
  }

  async search(collection: string, request: SearchRequest): Promise<SearchHit[]> {
    const table = await this.table(collection);
    if (table === undefined) return [];
    const where = sourceFilter(request.filter);
    const candidates = request.mode === "hybrid" ? Math.max(request.limit * 4, 20) : request.limit;
    const lists: SearchHit[][] = [];
    if (request.mode !== "keyword") {
      if (request.vector === undefined) throw new Error("dense search needs the query vector");
      let query = table
        .vectorSearch([...request.vector])
        .distanceType("cosine")
        .select(["id", "source", "chunk", "text", "_distance"])
        .limit(candidates);
      if (where !== undefined) query = query.where(where);
      const threshold = request.scoreThreshold ?? 0;
      lists.push(
        ((await query.toArray()) as Row[])
          .map((row) => ({ id: row.id, source: row.source, chunk: Number(row.chunk), text: row.text, score: 1 - (row._distance ?? 1) }))
          // Strictly above, as Qdrant's score_threshold keeps (measured on 1.19): both stores drop a chunk exactly at it.
          .filter((hit) => hit.score > threshold),
      );
    }
    // The keyword half asks for the terms Qdrant's sparse vectors hold (stop words left out), so both stores match the same words.
    const terms = keywordTerms(request.text).join(" ");
    if (request.mode !== "dense" && terms !== "") {
      let query = table
        .query()
        .fullTextSearch(terms, { columns: [await this.keywordColumn(table)] })
        .select(["id", "source", "chunk", "text", "_score"])
        .limit(candidates);
      if (where !== undefined) query = query.where(where);
      lists.push(
        ((await query.toArray()) as Row[]).map((row) => ({
          id: row.id,
          source: row.source,
          chunk: Number(row.chunk),
          text: row.text,
          score: row._score ?? 0,
        })),
      );
    }
    if (request.mode === "hybrid") return reciprocalRankFusion(lists, request.limit);
    return (lists[0] ?? []).slice(0, request.limit);
  }

  private async required(collection: string): Promise<Table> {
    const table = await this.table(collection);
    if (table === undefined) throw new Error(`collection ${collection} does not exist: ensureCollection first`);
    return table;
  }

  async close(): Promise<void> {
    await Promise.all([...this.queues.values()]);
    for (const table of this.tables.values()) (await table.catch(() => undefined))?.close();
    this.tables.clear();
    if (this.connection !== undefined) (await this.connection).close();
    this.connection = undefined;
  }
}
