// Ingest → query end to end with real parts: `diatonic ingest`'s library → the gateway's admin API →
// chunker, the local engine's embeddings (llama.cpp on a tiny generated model) and the embedded
// LanceDB store; then chat through the gateway with the OpenAI SDK and check the citations.
// The tiny model's embeddings are noise, so retrieval quality is asserted on the keyword half.
import assert from "node:assert/strict";
import { chmodSync, mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import OpenAI from "openai";
import { pino } from "pino";
import { startEngine, writeTestModels, type RunningEngine } from "../../src/engine/index.ts";
import { InputError } from "../../src/errors.ts";
import { keylessGatewayConfig, ragAdapter } from "../gateway/support/harness.ts";
import { startGateway, type RunningGateway } from "../../src/gateway/server.ts";
import { ingestPaths, type IngestPathsOptions } from "../../src/rag/client.ts";
import { runCli } from "../support/cli.ts";
import { writeHandbook } from "./fixtures.ts";

interface Cited {
  diatonic?: { citations: Array<{ source: string; chunk: number; score: number }> };
}

describe("RAG through the gateway: ingest, then chat with citations (engine embeddings, embedded store)", () => {
  let dir: string;
  let engine: RunningEngine;
  let gateway: RunningGateway;
  let client: OpenAI;
  let ingest: (paths: string[], extra?: Partial<IngestPathsOptions>) => ReturnType<typeof ingestPaths>;

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), "diatonic-rag-"));
    const files = writeTestModels(join(dir, "models"));
    engine = await startEngine({
      modelPath: files.model,
      servedModelName: "tiny",
      loras: [],
      port: 0,
      threads: 1,
      logger: pino({ level: "silent" }),
    });
    const limits = { concurrency: 2, queue: 8, timeoutMs: 30_000, firstByteTimeoutMs: 20_000 };
    const sampling = { temperature: 0, maxTokens: 4 };
    gateway = await startGateway({
      config: keylessGatewayConfig({
        server: { port: 8080, maxBodyBytes: 256 * 1024 },
        upstreams: { engine: { url: engine.url } },
        baseModel: { name: "tiny", upstream: "engine" },
        embeddings: { upstream: "engine", model: "tiny" },
        vectorStore: { kind: "embedded", path: join(dir, "vectors") },
        adapters: [
          ragAdapter("rag", { collection: "handbook", topK: 2, mode: "keyword" }, limits),
          ragAdapter("hybrid", { collection: "handbook", topK: 3, mode: "hybrid" }, limits),
          { name: "code", route: "/code", upstreamModel: "tiny", upstream: "engine", sampling, limits },
        ],
      }),
      port: 0,
      logger: pino({ level: "silent" }),
      watch: false,
      defaultMetrics: false,
    });
    client = new OpenAI({ baseURL: `${gateway.url}/v1`, apiKey: "unused", maxRetries: 0 });
    writeHandbook(dir);
    ingest = (paths, extra = {}) => ingestPaths({ adapter: "rag", paths, cwd: dir, gateway: gateway.url, ...extra });
  });
  after(async () => {
    await gateway?.close();
    await engine?.close();
    rmSync(dir, { recursive: true, force: true });
  });

  const ask = async (model: string, question: string) =>
    (await client.chat.completions.create({ model, messages: [{ role: "user", content: question }] })) as OpenAI.ChatCompletion & Cited;

  it("ingests a folder of Markdown, text and HTML and counts what it added", async () => {
    const progress: number[] = [];
    const summary = await ingest(["handbook"], { onProgress: (p) => progress.push(p.filesDone) });
    assert.equal(summary.files, 3);
    assert.equal(summary.collection, "handbook");
    assert.ok(summary.added >= 3, `added ${summary.added}`);
    assert.deepEqual([summary.updated, summary.unchanged, summary.removed], [0, 0, 0]);
    assert.equal(progress.at(-1), 3);
  });

  it("answers with citations that name the file holding the answer (keyword retrieval)", async () => {
    const cases: Array<[string, string]> = [
      ["What does error E-4711 mean?", "handbook/errors.txt"],
      ["Which VPN profile, aurora-gate, do I ask for?", "handbook/onboarding.md"],
      ["Who is Quillon at the east door?", "handbook/badges.html"],
    ];
    for (const [question, source] of cases) {
      const answer = await ask("rag", question);
      assert.equal(answer.diatonic?.citations[0]?.source, source, question);
    }
  });

  it("hybrid retrieval (noise embeddings fused with keywords) still cites the right file", async () => {
    const answer = await ask("hybrid", "E-5120 quota service unreachable");
    assert.ok(
      answer.diatonic?.citations.some((c) => c.source === "handbook/errors.txt"),
      JSON.stringify(answer.diatonic),
    );
  });

  it("a second ingest of the same tree writes nothing; editing one file replaces only its chunks", async () => {
    const again = await ingest(["handbook"]);
    assert.equal(again.added + again.updated + again.removed, 0);
    assert.ok(again.unchanged >= 3);
    writeFileSync(join(dir, "handbook", "errors.txt"), "Storage error codes\n\nE-4711 now means the archive tier is offline.\n");
    const edited = await ingest(["handbook"]);
    assert.equal(edited.updated, 1, "the one chunk of errors.txt changed");
    assert.equal(edited.unchanged, again.unchanged - 1);
    assert.equal(edited.added + edited.removed, 0);
    const answer = await ask("rag", "What does E-4711 mean?");
    assert.equal(answer.diatonic?.citations[0]?.source, "handbook/errors.txt");
  });

  it("--prune removes the chunks of deleted files, and only under the ingested paths", async () => {
    rmSync(join(dir, "handbook", "badges.html"));
    const withoutPrune = await ingest(["handbook"]);
    assert.equal(withoutPrune.removed, 0);
    const pruned = await ingest(["handbook"], { prune: true });
    assert.deepEqual(pruned.pruned, ["handbook/badges.html"]);
    assert.ok(pruned.removed >= 1);
    const answer = await ask("rag", "Who is Quillon at the east door?");
    assert.ok(!answer.diatonic?.citations.some((c) => c.source === "handbook/badges.html"));
  });

  it("diatonic ingest --reindex, with no PATH, works out every chunk's keyword terms again through the gateway and says how many", async () => {
    const listed = (await (await fetch(`${gateway.url}/v1/adapters/rag/documents`)).json()) as { sources: { chunks: number }[] };
    const chunks = listed.sources.reduce((sum, source) => sum + source.chunks, 0);
    assert.ok(chunks > 0);
    const run = await runCli(["ingest", "--adapter", "rag", "--reindex", "--gateway", gateway.url], dir);
    assert.equal(run.code, 0, run.stderr);
    assert.match(run.stdout, new RegExp(`keyword index: worked out again for all ${chunks} chunks of the collection`));
    assert.match(run.stdout, /chunks: 0 added, 0 updated, 0 unchanged, 0 removed/);
    const answer = await ask("rag", "What does E-4711 mean?");
    assert.equal(answer.diatonic?.citations[0]?.source, "handbook/errors.txt", "keyword retrieval still finds it");
    const nothing = await runCli(["ingest", "--adapter", "rag", "--gateway", gateway.url], dir);
    assert.equal(nothing.code, 2);
    assert.match(nothing.stderr, /no files or folders to ingest\n {2}fix: pass one or more PATHs, or --reindex alone/);
  });

  it("bad input: each a clear message, and nothing is written", async () => {
    const bad = join(dir, "bad");
    mkdirSync(bad);
    writeFileSync(join(bad, "good.md"), "# Fine\n\nThe word zephyrine appears only here.\n");
    writeFileSync(join(bad, "blob.md"), Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x00, 0x01, 0x02]));
    writeFileSync(join(bad, "menu.txt"), Buffer.from("caf\xe9 cr\xe8me br\xfbl\xe9e\n", "latin1"));
    writeFileSync(join(bad, "locked.txt"), "secret");
    chmodSync(join(bad, "locked.txt"), 0o000);
    writeFileSync(join(bad, "big.txt"), Buffer.alloc(50 * 1024 * 1024, "a"));
    writeFileSync(join(bad, "empty.md"), "  \n");
    const failure = await ingest(["bad"]).catch((error: unknown) => error);
    assert.ok(failure instanceof InputError);
    assert.match(failure.message, /nothing was ingested/);
    assert.match(failure.message, /bad\/blob\.md: is a binary file, not text/);
    assert.match(failure.message, /bad\/menu\.txt: is not UTF-8 text \(another encoding, such as Latin-1 .*iconv -f WINDOWS-1252 -t UTF-8/);
    assert.match(failure.message, /bad\/big\.txt: is 50\.0 MB; the limit is/);
    if (process.getuid?.() !== 0) assert.match(failure.message, /bad\/locked\.txt: cannot be read: permission denied/);
    assert.doesNotMatch(failure.message, /good\.md|empty\.md/);
    const answer = await ask("rag", "zephyrine");
    assert.ok(!answer.diatonic?.citations.some((c) => c.source.startsWith("bad/")), "nothing of the bad folder was stored");

    rmSync(join(bad, "blob.md"));
    rmSync(join(bad, "menu.txt"));
    rmSync(join(bad, "big.txt"));
    rmSync(join(bad, "locked.txt"));
    const ok = await ingest(["bad"]);
    assert.deepEqual(ok.skipped, [{ path: "bad/empty.md", reason: "empty" }]);

    const unknown = await ingestPaths({ adapter: "nope", paths: ["handbook"], cwd: dir, gateway: gateway.url }).catch(
      (error: unknown) => error,
    );
    assert.ok(unknown instanceof InputError);
    assert.match(unknown.message, /the adapter "nope" does not exist/);
    const notRag = await ingestPaths({ adapter: "code", paths: ["handbook"], cwd: dir, gateway: gateway.url }).catch(
      (error: unknown) => error,
    );
    assert.ok(notRag instanceof InputError);
    assert.match(notRag.message, /does not use RAG/);
    assert.match(notRag.fix ?? "", /rag binding/);
    const missing = await ingest(["no-such-dir"]).catch((error: unknown) => error);
    assert.ok(missing instanceof InputError);
    assert.match(missing.message, /no-such-dir: does not exist/);
  });

  it("reads UTF-16 text (Windows' 'Unicode'); inside a folder a symbolic link is not followed but noted, and read when given as a path of its own", async () => {
    const linked = join(dir, "linked");
    const outside = join(dir, "outside");
    mkdirSync(join(outside, "more"), { recursive: true });
    mkdirSync(linked);
    writeFileSync(
      join(linked, "notes.txt"),
      Buffer.concat([Buffer.from([0xff, 0xfe]), Buffer.from("The code word is marigold.\n", "utf16le")]),
    );
    // A link planted to a file outside (as ../../.aws/credentials could be) must not be stored under the link's name.
    writeFileSync(join(outside, "secret.md"), "The password hint is tangerine.\n");
    writeFileSync(join(outside, "more", "deep.txt"), "The meeting room smells of lavender.\n");
    symlinkSync(join(outside, "secret.md"), join(linked, "shared.md"));
    symlinkSync(join(outside, "more"), join(linked, "more"));
    symlinkSync(join(outside, "missing.md"), join(linked, "gone.md"));
    const notFollowed =
      "a symbolic link, not followed inside a folder (its target may lie outside it): give the target as a path of its own to ingest it";
    const summary = await ingest(["linked"]);
    assert.equal(summary.files, 1);
    assert.deepEqual(summary.skipped, [
      { path: "linked/gone.md", reason: "a symbolic link to nothing (its target is gone)" },
      { path: "linked/more", reason: notFollowed },
      { path: "linked/shared.md", reason: notFollowed },
    ]);
    assert.equal((await ask("rag", "marigold")).diatonic?.citations[0]?.source, "linked/notes.txt");
    assert.ok(
      !(await ask("rag", "tangerine")).diatonic?.citations.some((c) => c.source === "linked/shared.md"),
      "the outside file was not stored",
    );
    // Given by its own path, a link is read as what it points at.
    const given = await ingest(["linked/more"]);
    assert.equal(given.files, 1);
    assert.equal((await ask("rag", "lavender")).diatonic?.citations[0]?.source, "more/deep.txt");
  });
});
