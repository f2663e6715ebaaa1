// Where the RAG tests and `diatonic dev --vector-store qdrant` find Qdrant: QDRANT_BIN, the shared
// tools folder beside the checkout (checked against SHA256SUMS), else the pinned official release.
// The release server cannot be reached here, so its download is tested against a loopback stand-in
// serving a stand-in archive; the real binary is tested where ../shared/tools/qdrant has it.
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { chmodSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { createServer, type Server } from "node:http";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, describe, it } from "node:test";
import { gzipSync } from "node:zlib";
import { c as createTar } from "tar";
import { locateQdrant, PACKAGE_ROOT, QDRANT_RELEASE, QdrantNotFoundError, sharedQdrantDir } from "../../src/rag/qdrant-binary.ts";
import { freeLoopbackPort } from "../../src/rag/qdrant-server.ts";
import { findTestQdrant } from "./support/qdrant.ts";

const sha256 = (data: Buffer | string) => createHash("sha256").update(data).digest("hex");
const STAND_IN = "#!/bin/sh\necho 'qdrant 1.19.0'\n";

describe("locating the Qdrant binary", () => {
  const dir = mkdtempSync(join(tmpdir(), "diatonic-qdrant-bin-"));
  after(() => rmSync(dir, { recursive: true, force: true }));
  const cacheDir = join(dir, "cache");
  /** A checkout with no ../shared beside it. */
  const lonelyRepo = join(dir, "alone", "repo");
  mkdirSync(lonelyRepo, { recursive: true });

  it("the official release is pinned by version, asset name and archive checksum", () => {
    assert.equal(QDRANT_RELEASE.url, "https://github.com/qdrant/qdrant/releases/download/v1.19.0/qdrant-x86_64-unknown-linux-gnu.tar.gz");
    assert.match(QDRANT_RELEASE.sha256, /^[0-9a-f]{64}$/);
  });

  it("takes a gzipped binary named by QDRANT_BIN, unpacked into the cache after its SHA256SUMS entry matched", async () => {
    const tools = join(dir, "tools-good");
    mkdirSync(tools);
    writeFileSync(join(tools, "qdrant-1.19.0-x86_64-linux.gz"), gzipSync(STAND_IN));
    writeFileSync(join(tools, "SHA256SUMS"), `${sha256(STAND_IN)}  qdrant-1.19.0-x86_64-linux\n`);
    const found = await locateQdrant({ binary: tools, repoRoot: lonelyRepo, cacheDir, release: false });
    assert.equal(found.version, "1.19.0");
    assert.match(found.origin, /^QDRANT_BIN=.*tools-good \(sha256 checked\)$/);
    assert.equal(readFileSync(found.path, "utf8"), STAND_IN);
    assert.ok(found.path.startsWith(cacheDir));
  });

  it("refuses a binary whose SHA256SUMS entry does not match, naming both sums", async () => {
    const tools = join(dir, "tools-bad");
    mkdirSync(tools);
    writeFileSync(join(tools, "qdrant-1.19.0-x86_64-linux.gz"), gzipSync(`${STAND_IN}# damaged\n`));
    writeFileSync(join(tools, "SHA256SUMS"), `${sha256(STAND_IN)}  qdrant-1.19.0-x86_64-linux\n`);
    await assert.rejects(
      locateQdrant({ binary: tools, repoRoot: lonelyRepo, cacheDir: join(dir, "cache-bad"), release: false }),
      new RegExp(`sha256 ${sha256(`${STAND_IN}# damaged\n`)} after unpacking, SHA256SUMS beside it says ${sha256(STAND_IN)}`),
    );
  });

  it("a QDRANT_BIN that names nothing is an error naming it", async () => {
    await assert.rejects(
      locateQdrant({ binary: join(dir, "nope"), repoRoot: lonelyRepo, cacheDir, release: false }),
      (error: Error) => error instanceof QdrantNotFoundError && error.message.includes(`QDRANT_BIN names ${join(dir, "nope")}`),
    );
  });

  it("with nothing found and no download, the error names QDRANT_BIN and the folder looked at", async () => {
    const error = await locateQdrant({ repoRoot: lonelyRepo, cacheDir, release: false }).catch((e: unknown) => e);
    assert.ok(error instanceof QdrantNotFoundError);
    assert.equal(error.message, `QDRANT_BIN is not set and ${sharedQdrantDir(lonelyRepo)} holds no Qdrant binary`);
    assert.match(error.fix ?? "", /set QDRANT_BIN to a Qdrant 1\.19\.0 server binary/);
  });

  describe("download of the release (a loopback stand-in for the release server)", () => {
    let server: Server;
    let archive: Buffer;
    const serve = async (): Promise<string> => {
      const staging = join(dir, "release");
      mkdirSync(join(staging, "pkg"), { recursive: true });
      writeFileSync(join(staging, "pkg", "qdrant"), STAND_IN);
      chmodSync(join(staging, "pkg", "qdrant"), 0o755);
      await createTar({ gzip: true, file: join(staging, "release.tar.gz"), cwd: join(staging, "pkg") }, ["qdrant"]);
      archive = readFileSync(join(staging, "release.tar.gz"));
      server = createServer((_request, response) => response.end(archive));
      await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
      const address = server.address();
      return `http://127.0.0.1:${typeof address === "object" && address !== null ? address.port : 0}/qdrant-x86_64-unknown-linux-gnu.tar.gz`;
    };
    after(() => server?.close());

    it("downloads once, checks the archive's sha256 and takes out the qdrant file; a wrong checksum or no server is an error", async () => {
      const url = await serve();
      const downloads: string[] = [];
      const release = { version: "1.19.0", url, sha256: sha256(archive) };
      const found = await locateQdrant({
        repoRoot: lonelyRepo,
        cacheDir: join(dir, "cache-dl"),
        release,
        onDownload: (u) => downloads.push(u),
      });
      assert.equal(readFileSync(found.path, "utf8"), STAND_IN);
      assert.equal(found.origin, `${url} (sha256 checked)`);
      await locateQdrant({ repoRoot: lonelyRepo, cacheDir: join(dir, "cache-dl"), release, onDownload: (u) => downloads.push(u) });
      assert.deepEqual(downloads, [url], "the second call uses the cache");

      const wrong = await locateQdrant({
        repoRoot: lonelyRepo,
        cacheDir: join(dir, "cache-wrong"),
        release: { ...release, sha256: "0".repeat(64) },
      }).catch((e: unknown) => e);
      assert.ok(wrong instanceof QdrantNotFoundError);
      assert.match(
        wrong.message,
        new RegExp(`could not be downloaded from ${url}: ${url}: the archive's sha256 is ${sha256(archive)}, the pinned one is 0{64}`),
      );
      const dead = `http://127.0.0.1:${await freeLoopbackPort()}/qdrant.tar.gz`;
      const offline = await locateQdrant({
        repoRoot: lonelyRepo,
        cacheDir: join(dir, "cache-off"),
        release: { ...release, url: dead },
      }).catch((e: unknown) => e);
      assert.ok(offline instanceof QdrantNotFoundError);
      assert.equal(
        offline.message,
        `QDRANT_BIN is not set and ${sharedQdrantDir(lonelyRepo)} holds no Qdrant binary, and the official release could not be downloaded from ${dead}: ECONNREFUSED`,
      );
    });
  });

  it("a download called off (Ctrl-C in diatonic dev) stops at once with the caller's reason and leaves nothing in the cache", async () => {
    let started!: () => void;
    const sending = new Promise<void>((resolve) => (started = resolve));
    // Sends the headers and a first piece, then nothing more: a slow or stalled release server.
    const stalled = createServer((_request, response) => {
      response.writeHead(200, { "content-length": "1000000" });
      response.write(Buffer.alloc(1000));
      started();
    });
    await new Promise<void>((resolve) => stalled.listen(0, "127.0.0.1", resolve));
    try {
      const address = stalled.address();
      const url = `http://127.0.0.1:${typeof address === "object" && address !== null ? address.port : 0}/qdrant.tar.gz`;
      const cache = join(dir, "cache-called-off");
      const controller = new AbortController();
      const located = locateQdrant({
        repoRoot: lonelyRepo,
        cacheDir: cache,
        release: { version: "1.19.0", url, sha256: "0".repeat(64) },
        signal: controller.signal,
      });
      await sending;
      const reason = new Error("stopped by the user");
      controller.abort(reason);
      assert.equal(await located.catch((e: unknown) => e), reason);
      assert.deepEqual(
        readdirSync(cache, { recursive: true }).filter((entry) => String(entry).includes("qdrant")),
        [],
      );
    } finally {
      stalled.closeAllConnections();
      stalled.close();
    }
  });

  it("finds the real server beside this checkout (../shared/tools/qdrant) or QDRANT_BIN, as the RAG tests do", async (t) => {
    const found = await findTestQdrant();
    if (found.skip !== undefined) return t.skip(found.skip);
    const binary = found.binary as NonNullable<typeof found.binary>;
    assert.equal(binary.version, "1.19.0");
    assert.ok(process.env.QDRANT_BIN || binary.origin.startsWith(sharedQdrantDir(PACKAGE_ROOT)), binary.origin);
  });
});
