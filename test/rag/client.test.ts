// `diatonic ingest`'s client against a fake gateway (node:http, recording requests, refusing what the
// gateway refuses: a body over its limit, a request its schema refuses): batches under the gateway's
// limits, prune only under the given paths, and a failed batch reported with what was already stored;
// then against the real gateway and store with a fake embedder that fails once.
import assert from "node:assert/strict";
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import { createServer as createHttpsServer } from "node:https";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { PassThrough } from "node:stream";
import { pino } from "pino";
import { main } from "../../src/cli/main.ts";
import { InputError, WorldError } from "../../src/errors.ts";
import { keylessGatewayConfig, ragAdapter } from "../gateway/support/harness.ts";
import { DocumentsRequest } from "../../src/gateway/documents.ts";
import { startGateway } from "../../src/gateway/server.ts";
import { StructuredChunker } from "../../src/rag/chunker.ts";
import { BATCH_CHUNKS, ingestPaths, type IngestProgress } from "../../src/rag/client.ts";
import { EmbeddingError } from "../../src/rag/embedder.ts";
import { IngestInputError, ingestDocuments } from "../../src/rag/ingest.ts";
import { LanceStore } from "../../src/rag/lance-store.ts";
import { RagService } from "../../src/rag/service.ts";
import { runCli } from "../support/cli.ts";
import { tool, unmet } from "../support/needs.ts";
import { selfSignedCertificate } from "../support/tls.ts";

describe("ingest client (fake gateway)", () => {
  let server: Server;
  let url: string;
  let dir: string;
  const posts: Array<{ documents: Array<{ source: string }>; deleteSources: string[] }> = [];
  let failPost = -1;
  const storedAtFirst = [
    { source: "docs/gone.md", chunks: 2 },
    { source: "other/keep.md", chunks: 1 },
  ];
  let stored = storedAtFirst;
  const refuse = (res: ServerResponse, status: number, message: string, code: string) =>
    res.writeHead(status).end(JSON.stringify({ error: { message, type: "invalid_request_error", param: null, code } }));
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
          res.end(JSON.stringify({ collection: "c", maxBodyBytes: 6000, sources: stored }));
          return;
        }
        if (Buffer.byteLength(raw) > 6000) return refuse(res, 413, "request body is larger than 6000 bytes", "request_too_large");
        const checked = DocumentsRequest.safeParse(JSON.parse(raw));
        if (!checked.success)
          return refuse(res, 400, `invalid documents request: ${checked.error.issues[0]?.message}`, "invalid_documents");
        posts.push(JSON.parse(raw) as (typeof posts)[number]);
        if (posts.length - 1 === failPost) {
          res.writeHead(502).end(JSON.stringify({ error: { message: "the vector store failed: boom", code: "vector_store_failed" } }));
          return;
        }
        res.end(
          JSON.stringify({
            added: JSON.parse(raw).documents.length,
            updated: 0,
            unchanged: 0,
            removed: JSON.parse(raw).deleteSources.length,
          }),
        );
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
    assert.deepEqual(
      posts.map((p) => p.deleteSources),
      [...posts.slice(1).map(() => []), ["docs/gone.md"]],
    );
    assert.equal(summary.files, 6);
    assert.deepEqual(summary.pruned, ["docs/gone.md"]);
  });

  it("a failed batch is reported with how many files were stored before it, never dropped silently", async () => {
    posts.length = 0;
    failPost = 1;
    const failure = await ingestPaths({ adapter: "rag", paths: ["docs"], cwd: dir, gateway: url }).catch((error: unknown) => error);
    assert.ok(failure instanceof WorldError);
    assert.match(
      failure.message,
      /batch 2 of \d+ .* failed after 2 of 6 files were stored: the gateway refused: the vector store failed: boom/,
    );
    assert.match(failure.fix ?? "", /run the same command again/);
  });

  it("stores sources by their name under the path given, never the ingesting machine's path (citations show them to every user)", async () => {
    posts.length = 0;
    failPost = -1;
    const elsewhere = mkdtempSync(join(tmpdir(), "diatonic-ingest-cwd-"));
    const sent = () => posts.flatMap((p) => p.documents.map((d) => d.source)).sort();
    // An absolute path from another folder: relative to the cwd it would be ../../tmp/…, so it was sent as /tmp/….
    await ingestPaths({ adapter: "rag", paths: [join(dir, "docs")], cwd: elsewhere, gateway: url });
    assert.deepEqual(
      sent(),
      [0, 1, 2, 3, 4, 5].map((i) => `docs/page-${i}.md`),
    );
    posts.length = 0;
    const run = await runCli(
      ["ingest", "--adapter", "rag", join(dir, "docs"), "--as", "handbook/v2", "--gateway", url, "--prune"],
      elsewhere,
    );
    assert.equal(run.code, 0, run.stderr);
    assert.deepEqual(
      sent(),
      [0, 1, 2, 3, 4, 5].map((i) => `handbook/v2/page-${i}.md`),
    );
    assert.deepEqual(posts.at(-1)?.deleteSources, [], "prunes only under handbook/v2/");
    posts.length = 0;
    await ingestPaths({ adapter: "rag", paths: [join(dir, "docs", "page-1.md")], cwd: elsewhere, gateway: url });
    assert.deepEqual(sent(), ["page-1.md"]);
    assert.ok(
      posts.every((p) => !JSON.stringify(p).includes(dir)),
      "no host path is sent",
    );
    const twoWithOneName = await runCli(["ingest", "--adapter", "rag", "docs", "docs", "--as", "x", "--gateway", url], dir);
    assert.equal(twoWithOneName.code, 2);
    assert.match(twoWithOneName.stderr, /--as names one PATH, and 2 are given/);
    const badName = await runCli(["ingest", "--adapter", "rag", "docs", "--as", "/srv/docs", "--gateway", url], dir);
    assert.equal(badName.code, 2);
    assert.match(badName.stderr, /docs: --as "\/srv\/docs" is a path on the ingesting machine: name it with --as NAME/);
  });

  it("two folders of one name would mix their files: refused before anything is sent, naming both", async () => {
    posts.length = 0;
    mkdirSync(join(dir, "a", "docs"), { recursive: true });
    writeFileSync(join(dir, "a", "docs", "page-0.md"), "# Other page 0\n");
    const failure = await ingestPaths({ adapter: "rag", paths: ["docs", "a/docs"], cwd: dir, gateway: url }).catch(
      (error: unknown) => error,
    );
    assert.ok(failure instanceof InputError);
    assert.match(failure.message, /a\/docs\/page-0\.md: would be stored as docs\/page-0\.md, like docs\/page-0\.md/);
    assert.equal(posts.length, 0);
  });

  it("the gateway refuses a source that is a host path, whoever sends it", async () => {
    const store = new LanceStore({ path: join(dir, "lance") });
    const options = {
      store,
      embedder: { embed: () => Promise.reject(new Error("not reached")) },
      chunker: new StructuredChunker(),
      collection: "c",
    };
    for (const source of ["/home/ana/handbook/intro.md", "C:\\Users\\ana\\intro.md", "~/intro.md", "handbook/../../etc/passwd"]) {
      await assert.rejects(
        ingestDocuments({ documents: [{ source, text: "# Intro", format: "markdown" }], deleteSources: [] }, options),
        (error: unknown) => error instanceof IngestInputError && error.message.includes("citations show it to every user"),
        source,
      );
    }
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

  it("a file that fits the limit on disk but not as JSON (newlines, quotes escaped) is refused before anything is sent, naming it (fake gateway)", async () => {
    posts.length = 0;
    failPost = -1;
    mkdirSync(join(dir, "escaped"));
    writeFileSync(join(dir, "escaped", "a.md"), "# A\n\nFine.\n");
    // 3,500 bytes on disk, under the 3,952-byte limit per file; about 7 KB once each newline and quote is escaped.
    writeFileSync(join(dir, "escaped", "b.md"), `# B\n${'"\n'.repeat(1748)}`);
    const failure = await ingestPaths({ adapter: "rag", paths: ["escaped"], cwd: dir, gateway: url }).catch((error: unknown) => error);
    assert.ok(failure instanceof InputError, String(failure));
    assert.match(
      failure.message,
      /nothing was ingested; a file has a problem:\n {2}escaped\/b\.md: is 3\.4 KB, and 6\.9 KB in a request \(JSON escapes its newlines, quotes/,
    );
    assert.match(failure.message, /the limit is 3\.9 KB per file .*: split it into smaller files/);
    assert.equal(posts.length, 0, "nothing is half-stored");
  });

  it("every file's source name is checked before anything is sent: a backslash, or a name past the gateway's 1,024 characters (fake gateway)", async () => {
    posts.length = 0;
    failPost = -1;
    const deep = join(dir, "names", ..."abcde".split("").map((letter) => letter.repeat(220)));
    mkdirSync(deep, { recursive: true });
    writeFileSync(join(dir, "names", "ok.md"), "# Ok\n");
    writeFileSync(join(dir, "names", "win\\dows.md"), "# Backslash\n");
    writeFileSync(join(deep, "deep.md"), "# Deep\n");
    const failure = await ingestPaths({ adapter: "rag", paths: ["names"], cwd: dir, gateway: url }).catch((error: unknown) => error);
    assert.ok(failure instanceof InputError, String(failure));
    assert.match(failure.message, /2 files have problems/);
    assert.match(
      failure.message,
      /names\/win\\dows\.md: would be stored as "names\/win\\\\dows\.md", which holds a backslash .*: rename the file/,
    );
    assert.match(
      failure.message,
      /names\/a+\/b+\/c+\/d+\/e+\/deep\.md: would be stored under a name of 1118 characters, and the gateway takes 1024 at most: /,
    );
    assert.doesNotMatch(failure.message, /ok\.md/);
    assert.equal(posts.length, 0, "nothing is half-stored");
  });

  it("a long --prune list is split under the body limit, after every file is stored (fake gateway)", async () => {
    posts.length = 0;
    failPost = -1;
    const gone = Array.from({ length: 600 }, (_, i) => `docs/gone-${String(i).padStart(3, "0")}.md`);
    stored = gone.map((source) => ({ source, chunks: 1 }));
    try {
      const summary = await ingestPaths({ adapter: "rag", paths: ["docs"], cwd: dir, gateway: url, prune: true });
      assert.equal(summary.pruned.length, 600);
      assert.deepEqual(
        posts.flatMap((p) => p.deleteSources),
        gone,
      );
      const firstPrune = posts.findIndex((p) => p.deleteSources.length > 0);
      assert.ok(
        posts.slice(firstPrune).every((p) => p.documents.length === 0 || p === posts[firstPrune]),
        "prunes come last",
      );
      assert.equal(posts.flatMap((p) => p.documents).length, 6);
    } finally {
      stored = storedAtFirst;
    }
  });

  it("on a terminal, an error starts on its own line, not glued to the progress line (fake gateway)", async () => {
    posts.length = 0;
    failPost = 1;
    const stdout = new PassThrough();
    const stderr = Object.assign(new PassThrough(), { isTTY: true });
    let written = "";
    stderr.on("data", (chunk: Buffer) => (written += chunk.toString()));
    const code = await main(["ingest", "--adapter", "rag", "docs", "--gateway", url], { stdout, stderr, cwd: dir, env: {} });
    failPost = -1;
    assert.equal(code, 1);
    assert.match(written, /\r ?ingest \[#+ +\] 2\/6 files\nerror: batch 2 of \d+ /);
    assert.doesNotMatch(written, /fileserror/);
  });

  it("--gateway without a scheme is bad input (exit 2) naming the flag, with the URL to give", async () => {
    for (const [given, fixed] of [
      ["127.0.0.1:8080", "http://127.0.0.1:8080"],
      ["localhost:8080", "http://localhost:8080"],
      ["ftp://gateway.example:8080", "http://gateway.example:8080"],
    ] as const) {
      const run = await runCli(["ingest", "--adapter", "rag", "docs", "--gateway", given], dir);
      assert.equal(run.code, 2, run.stderr);
      assert.ok(run.stderr.includes(`error: --gateway "${given}" is not an http:// or https:// URL`), run.stderr);
      assert.ok(run.stderr.includes(`fix: give the gateway's URL with its scheme, e.g. --gateway ${fixed}`), run.stderr);
    }
  });
});

/**
 * A fake gateway's documents API: GET lists nothing, POST is checked against `schema` (400 as the
 * gateway words it), its body handed to `onPost`, and answered with the documents counted as added.
 */
async function fakeGateway(
  schema: {
    safeParse(
      data: unknown,
    ):
      { success: true; data: { documents: unknown[] } } | { success: false; error: { issues: { path: PropertyKey[]; message: string }[] } };
  },
  onPost: (raw: string) => void = () => undefined,
): Promise<{ server: Server; url: string }> {
  const server = createServer((req, res) => {
    let raw = "";
    req.on("data", (chunk: Buffer) => (raw += chunk.toString()));
    req.on("end", () => {
      res.setHeader("content-type", "application/json");
      if (req.method === "GET") return res.end(JSON.stringify({ collection: "c", maxBodyBytes: 4 * 1024 * 1024, sources: [] }));
      const checked = schema.safeParse(JSON.parse(raw));
      if (!checked.success) {
        const issue = checked.error.issues[0];
        return res.writeHead(400).end(
          JSON.stringify({
            error: { message: `invalid documents request: ${issue?.path.join(".")}: ${issue?.message}`, code: "invalid_documents" },
          }),
        );
      }
      onPost(raw);
      res.end(JSON.stringify({ added: checked.data.documents.length, updated: 0, unchanged: 0, removed: 0 }));
    });
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  return { server, url: `http://127.0.0.1:${(server.address() as { port: number }).port}` };
}

describe("ingest client: batches small enough to finish and show progress (fake gateway checking the gateway's own schema)", () => {
  const dir = mkdtempSync(join(tmpdir(), "diatonic-ingest-many-"));
  const posts: string[] = [];
  let server: Server;
  let url: string;
  before(async () => {
    ({ server, url } = await fakeGateway(DocumentsRequest, (raw) => posts.push(raw)));
  });
  after(() => {
    server.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it("--reindex against a gateway older than the CLI (a fake whose schema has no reindex): it names the cause, says the files went in, and how to fix it", async () => {
    mkdirSync(join(dir, "old"));
    writeFileSync(join(dir, "old", "a.md"), "# A\n\nAlpha.\n");
    const older = DocumentsRequest.omit({ reindex: true }).strict();
    const { server: oldServer, url: oldUrl } = await fakeGateway(older);
    try {
      const failure = await ingestPaths({ adapter: "rag", paths: ["old"], cwd: dir, gateway: oldUrl, reindex: true }).catch(
        (error: unknown) => error,
      );
      assert.ok(failure instanceof WorldError, String(failure));
      assert.match(failure.message, /does not know reindex: it is older than this CLI \(the 1 files were ingested\)/);
      assert.match(failure.fix ?? "", /upgrade the gateway/);
    } finally {
      oldServer.close();
    }
  });

  it("a folder goes in requests of a few dozen chunks even under a 4 MB limit, and progress moves with each (fake gateway)", async () => {
    posts.length = 0;
    mkdirSync(join(dir, "mixed"));
    // Small pages and long ones (each long one ~12 KB, several chunks): one 4 MB request before.
    for (let i = 0; i < 90; i++) {
      writeFileSync(
        join(dir, "mixed", `page-${String(i).padStart(2, "0")}.md`),
        `# Page ${i}\n\n${"words ".repeat(i % 10 === 0 ? 2000 : 40)}\n`,
      );
    }
    const progress: IngestProgress[] = [];
    const summary = await ingestPaths({ adapter: "rag", paths: ["mixed"], cwd: dir, gateway: url, onProgress: (p) => progress.push(p) });
    assert.equal(summary.files, 90);
    assert.ok(posts.length >= 4, `${posts.length} requests`);
    for (const body of posts) {
      assert.ok((JSON.parse(body) as { documents: unknown[] }).documents.length <= BATCH_CHUNKS);
      assert.ok(Buffer.byteLength(body) <= (BATCH_CHUNKS + 1) * 1024, `${Buffer.byteLength(body)} bytes`);
    }
    assert.deepEqual(progress[0], { filesDone: 0, filesTotal: 90 }, "the total shows before the first batch is sent");
    assert.equal(progress.length, posts.length + 1);
    assert.deepEqual(progress.at(-1), { filesDone: 90, filesTotal: 90 });
  });

  it("more than the gateway's 10,000 documents a request are all stored (fake gateway)", async () => {
    posts.length = 0;
    mkdirSync(join(dir, "many"));
    for (let i = 0; i < 10_001; i++) writeFileSync(join(dir, "many", `note-${i}.txt`), `note ${i}\n`);
    const summary = await ingestPaths({ adapter: "rag", paths: ["many"], cwd: dir, gateway: url });
    assert.equal(summary.files, 10_001);
    assert.equal(summary.added, 10_001);
    assert.ok(posts.every((body) => (JSON.parse(body) as { documents: unknown[] }).documents.length <= BATCH_CHUNKS));
  });
});

describe("ingest client: a failed batch keeps the batches before it (real gateway and store, fake embedder that fails once)", () => {
  const dir = mkdtempSync(join(tmpdir(), "diatonic-ingest-resume-"));
  const embedded: string[][] = [];
  let calls = 0;
  let failCall = 0;
  const store = new LanceStore({ path: join(dir, "vectors") });
  const embedder = {
    embed(texts: readonly string[]): Promise<number[][]> {
      calls++;
      if (calls === failCall) return Promise.reject(new EmbeddingError("the fake embedder fails this once"));
      embedded.push([...texts]);
      return Promise.resolve(texts.map((text) => [(text.length % 7) + 1, 1, 0.5]));
    },
  };
  let gateway: Awaited<ReturnType<typeof startGateway>> | undefined;
  before(async () => {
    const limits = { concurrency: 2, queue: 8, timeoutMs: 30_000, firstByteTimeoutMs: 20_000 };
    gateway = await startGateway({
      config: keylessGatewayConfig({
        upstreams: { engine: { url: "http://127.0.0.1:1" } },
        baseModel: { name: "tiny", upstream: "engine" },
        adapters: [ragAdapter("rag", { collection: "notes", topK: 2, mode: "keyword" }, limits)],
      }),
      documents: new RagService({ store, embedder }),
      port: 0,
      logger: pino({ level: "silent" }),
      watch: false,
      defaultMetrics: false,
    });
    mkdirSync(join(dir, "notes"));
    for (let i = 0; i < 40; i++)
      writeFileSync(join(dir, "notes", `note-${String(i).padStart(2, "0")}.md`), `# Note ${i}\n\nThe ${i}th note.\n`);
  });
  after(async () => {
    await gateway?.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it("the first batch stays stored when the second fails, and running again embeds only the rest", async () => {
    const ingest = () => ingestPaths({ adapter: "rag", paths: ["notes"], cwd: dir, gateway: gateway?.url ?? "" });
    failCall = 2;
    const failure = await ingest().catch((error: unknown) => error);
    assert.ok(failure instanceof WorldError, String(failure));
    assert.match(
      failure.message,
      /^batch 2 of 2 \(8 files from notes\/note-32\.md\) failed after 32 of 40 files were stored: the gateway refused: the fake embedder fails this once/,
    );
    assert.match(failure.fix ?? "", /run the same command again: stored files are skipped as unchanged/);
    embedded.length = 0;
    const again = await ingest();
    assert.deepEqual([again.added, again.unchanged, again.updated, again.removed], [8, 32, 0, 0]);
    assert.deepEqual(
      embedded.flat().map((text) => /# Note (\d+)/.exec(text)?.[1]),
      ["32", "33", "34", "35", "36", "37", "38", "39"],
      "only the files the failed batch carried are embedded",
    );
  });
});

/** Serves `answer` (as JSON, or a string as it is) to every request, over TLS when given a key and certificate. */
async function answering(answer: unknown, tls?: { key: string; cert: string }, status = 200): Promise<{ url: string; close: () => void }> {
  const handler = (_req: IncomingMessage, res: ServerResponse) =>
    res.writeHead(status, { "content-type": "application/json" }).end(typeof answer === "string" ? answer : JSON.stringify(answer));
  const server = tls ? createHttpsServer(tls, handler) : createServer(handler);
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  return { url: `${tls ? "https" : "http"}://localhost:${(server.address() as { port: number }).port}`, close: () => server.close() };
}

describe("ingest client: a server that is not the gateway, or not trusted", () => {
  const dir = mkdtempSync(join(tmpdir(), "diatonic-ingest-who-"));
  writeFileSync(join(dir, "doc.md"), "# Doc\n\nSome words.\n");
  after(() => rmSync(dir, { recursive: true, force: true }));

  it("a JSON answer of another shape is named as not the gateway's (it printed 'collection undefined' and NaN counts)", async () => {
    const other = await answering({ status: "ok" });
    try {
      const failure = await ingestPaths({ adapter: "rag", paths: ["doc.md"], cwd: dir, gateway: other.url }).catch(
        (error: unknown) => error,
      );
      assert.ok(failure instanceof WorldError, String(failure));
      assert.match(failure.message, /answered 200, but not as a diatonic gateway's documents API does \(collection: /);
      assert.match(failure.fix ?? "", /point --gateway at the diatonic gateway/);
    } finally {
      other.close();
    }
  });

  it("a 404 that is not the gateway's own error (a web server, the engine, Qdrant) says the URL does not look like a Diatonic gateway (fake servers)", async () => {
    for (const [body, shown] of [
      ["Not Found", /answered 404 with something that is not JSON \(Not Found\): it does not look like a Diatonic gateway/],
      [
        '{"detail":"Not Found"}',
        /answered 404 with \{"detail":"Not Found"\}, not the gateway's \{"error": \{\.\.\.\}\}: it does not look like a Diatonic gateway/,
      ],
      [
        '{"status":{"error":"Not found: Collection `v1` doesn\'t exist!"},"time":0.0}',
        /answered 404 with \{"status".*: it does not look like a Diatonic gateway/,
      ],
    ] as const) {
      const other = await answering(body, undefined, 404);
      try {
        const failure = await ingestPaths({ adapter: "rag", paths: ["doc.md"], cwd: dir, gateway: other.url }).catch(
          (error: unknown) => error,
        );
        assert.ok(failure instanceof WorldError, String(failure));
        assert.match(failure.message, shown);
        assert.match(failure.fix ?? "", /point --gateway at the Diatonic gateway's base URL .*e\.g\. --gateway http:\/\/127\.0\.0\.1:8080/);
      } finally {
        other.close();
      }
    }
  });

  it(
    "a gateway slower to answer than the timeout is named as slow, with the fix, not as 'no gateway answers' (fake gateway that never answers a POST)",
    { timeout: 60_000 },
    async () => {
      const held: ServerResponse[] = [];
      const slow = createServer((req, res) => {
        if (req.method === "GET") {
          res
            .writeHead(200, { "content-type": "application/json" })
            .end(JSON.stringify({ collection: "c", maxBodyBytes: 6000, sources: [] }));
          return;
        }
        req.resume();
        held.push(res);
      });
      await new Promise<void>((resolve) => slow.listen(0, "127.0.0.1", resolve));
      try {
        const gateway = `http://127.0.0.1:${(slow.address() as { port: number }).port}`;
        const failure = await ingestPaths({ adapter: "rag", paths: ["doc.md"], cwd: dir, gateway, timeoutMs: 1000 }).catch(
          (error: unknown) => error,
        );
        assert.ok(failure instanceof WorldError, String(failure));
        assert.match(
          failure.message,
          /batch 1 of 1 .* failed after 0 of 1 files were stored: the gateway at http:\/\/127\.0\.0\.1:\d+ took longer than 1 s to answer$/,
        );
        assert.doesNotMatch(failure.message, /no gateway answers/);
        assert.match(failure.fix ?? "", /embeds every new chunk of a batch before it answers.*GPU.*; then run the same command again/);
      } finally {
        for (const res of held) res.destroy();
        slow.close();
      }
    },
  );

  it(
    "a certificate from a private CA is named as untrusted, with NODE_EXTRA_CA_CERTS as the fix (not 'no gateway answers')",
    { skip: unmet("the private-CA case", [tool("openssl", "openssl")]) ?? false },
    async () => {
      const tlsDir = mkdtempSync(join(tmpdir(), "diatonic-ingest-tls-"));
      const certificate = selfSignedCertificate(tlsDir, "localhost", "DNS:localhost");
      const server = await answering({ collection: "c", maxBodyBytes: 6000, sources: [] }, certificate);
      try {
        const failure = await ingestPaths({ adapter: "rag", paths: ["doc.md"], cwd: dir, gateway: server.url }).catch(
          (error: unknown) => error,
        );
        assert.ok(failure instanceof WorldError, String(failure));
        assert.match(
          failure.message,
          /the gateway at https:\/\/localhost:\d+ answers, but its TLS certificate is not trusted here \(DEPTH_ZERO_SELF_SIGNED_CERT\)/,
        );
        assert.match(failure.fix ?? "", /NODE_EXTRA_CA_CERTS=ca\.crt/);
      } finally {
        server.close();
        rmSync(tlsDir, { recursive: true, force: true });
      }
    },
  );
});
