import assert from "node:assert/strict";
import { existsSync, mkdirSync, mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { WorldError } from "../../src/errors.ts";
import { downloadModels, parseItem } from "../../src/model/download.ts";
import { startHubServer, type RunningHub } from "../../src/model/hub-server.ts";
import { selfSignedCertificate } from "../support/tls.ts";

/** A local folder served with the Hub's listing and resolve API (huggingface.co is not reachable here). */
function hubFolder(): string {
  const root = mkdtempSync(join(tmpdir(), "hub-"));
  const files: Record<string, string> = {
    "config.json": '{"model_type":"llama"}',
    "model.safetensors": "x".repeat(100_000),
    "sub/tokenizer.json": "{}",
  };
  for (const [name, body] of Object.entries(files)) {
    const path = join(root, "org/model/abc", name);
    mkdirSync(join(path, ".."), { recursive: true });
    writeFileSync(path, body);
  }
  return root;
}

describe("model-download (against a local Hub mirror: the real one is not reachable here)", () => {
  let root: string;
  let hub: RunningHub;
  const requests: { url: string; range: string | undefined }[] = [];
  before(async () => {
    root = hubFolder();
    hub = await startHubServer({ root, onRequest: (_method, url, range) => requests.push({ url, range }) });
  });
  after(() => hub.close());

  it("parses DIR=REPO@REVISION[#FILE] and refuses anything else", () => {
    assert.deepEqual(parseItem("/models/x=org/model@abc#m.gguf"), { dir: "/models/x", repo: "org/model", revision: "abc", file: "m.gguf" });
    assert.throws(() => parseItem("org/model"), /not DIR=REPO@REVISION/);
  });

  it("fetches a whole repo with checksums, then skips it on the next run", async () => {
    const dir = join(mkdtempSync(join(tmpdir(), "dl-")), "model");
    const lines: string[] = [];
    const first = await downloadModels([{ dir, repo: "org/model", revision: "abc" }], {
      endpoint: hub.url,
      progress: (l) => lines.push(l),
      progressIntervalMs: 0,
    });
    assert.deepEqual(first.downloaded, ["org/model@abc"]);
    assert.equal(readFileSync(join(dir, "model.safetensors"), "utf8").length, 100_000);
    assert.ok(existsSync(join(dir, "sub/tokenizer.json")));
    assert.ok(
      lines.some((l) => l.includes("3 file(s)")),
      "reports progress",
    );
    assert.ok(
      lines.some((l) => l.includes("checksum verified")),
      lines.join("\n"),
    );
    const count = requests.length;
    const second = await downloadModels([{ dir, repo: "org/model", revision: "abc" }], { endpoint: hub.url });
    assert.deepEqual(second.skipped, ["org/model@abc"]);
    assert.equal(requests.length, count, "nothing fetched the second time");
  });

  it("resumes a file where an interrupted download left it", async () => {
    const dir = join(mkdtempSync(join(tmpdir(), "dl-")), "model");
    mkdirSync(dir, { recursive: true });
    writeFileSync(join(dir, "model.safetensors.part"), "x".repeat(60_000));
    const lines: string[] = [];
    requests.length = 0;
    await downloadModels([{ dir, repo: "org/model", revision: "abc", file: "model.safetensors" }], {
      endpoint: hub.url,
      progress: (l) => lines.push(l),
    });
    assert.equal(readFileSync(join(dir, "model.safetensors"), "utf8"), "x".repeat(100_000));
    assert.ok(
      requests.some((r) => r.range === "bytes=60000-"),
      `asked only for the rest: ${JSON.stringify(requests)}`,
    );
    assert.ok(
      lines.some((l) => l.includes("resumed at 0.1 MB")),
      lines.join("\n"),
    );
  });

  it("refuses a file whose content does not match the published checksum, and keeps nothing of it", async () => {
    const dir = join(mkdtempSync(join(tmpdir(), "dl-")), "model");
    mkdirSync(dir, { recursive: true });
    // A part file from another version of the file: the whole no longer hashes to the listing's sha256.
    writeFileSync(join(dir, "model.safetensors.part"), "y".repeat(60_000));
    await assert.rejects(
      downloadModels([{ dir, repo: "org/model", revision: "abc", file: "model.safetensors" }], { endpoint: hub.url }),
      (e: unknown) => e instanceof WorldError && /sha256 is [0-9a-f]{64}, but the source publishes/.test(e.message),
    );
    assert.equal(existsSync(join(dir, "model.safetensors")), false);
    assert.equal(existsSync(join(dir, "model.safetensors.part")), false, "the bad part is dropped, so the next try starts clean");
    await downloadModels([{ dir, repo: "org/model", revision: "abc", file: "model.safetensors" }], { endpoint: hub.url });
    assert.equal(readFileSync(join(dir, "model.safetensors"), "utf8"), "x".repeat(100_000));
  });

  it("fetches a single file", async () => {
    const dir = join(mkdtempSync(join(tmpdir(), "dl-")), "gguf");
    await downloadModels([{ dir, repo: "org/model", revision: "abc", file: "config.json" }], { endpoint: hub.url });
    assert.equal(readFileSync(join(dir, "config.json"), "utf8"), '{"model_type":"llama"}');
  });

  it("waits for another pod filling the same shared folder instead of writing beside it", async () => {
    const dir = join(mkdtempSync(join(tmpdir(), "dl-")), "model");
    const item = { dir, repo: "org/model", revision: "abc" };
    const lines: string[] = [];
    const [a, b] = await Promise.all([
      downloadModels([item], { endpoint: hub.url }),
      downloadModels([item], { endpoint: hub.url, progress: (l) => lines.push(l) }),
    ]);
    assert.deepEqual([...a.downloaded, ...b.downloaded], ["org/model@abc"], "downloaded once");
    assert.ok(
      lines.some((l) => l.includes("another pod is downloading")),
      lines.join("\n"),
    );
  });

  it("explains a gated repo, a missing file and a missing revision", async () => {
    const gated = await startHubServer({ root, token: "good" });
    try {
      const dir = mkdtempSync(join(tmpdir(), "dl-"));
      await assert.rejects(
        downloadModels([{ dir, repo: "org/model", revision: "abc" }], { endpoint: gated.url, token: "" }),
        (e: unknown) => e instanceof WorldError && /access denied/.test(e.message) && /gated/.test(e.fix ?? ""),
      );
      await downloadModels([{ dir: join(dir, "ok"), repo: "org/model", revision: "abc", file: "config.json" }], {
        endpoint: gated.url,
        token: "good",
      });
    } finally {
      await gated.close();
    }
    const dir = mkdtempSync(join(tmpdir(), "dl-"));
    await assert.rejects(
      downloadModels([{ dir, repo: "org/model", revision: "abc", file: "nope.bin" }], { endpoint: hub.url }),
      /nope\.bin: not found/,
    );
    await assert.rejects(
      downloadModels([{ dir, repo: "org/model", revision: "v9" }], { endpoint: hub.url }),
      /org\/model@v9: not found \(HTTP 404\)/,
    );
  });

  it("a mirror behind a CA the process does not trust: the error says how to trust it", async () => {
    const certs = mkdtempSync(join(tmpdir(), "mirror-tls-"));
    const certificate = selfSignedCertificate(certs, "127.0.0.1", "IP:127.0.0.1");
    const tls = await startHubServer({
      root,
      tls: certificate,
    });
    try {
      assert.match(tls.url, /^https:\/\/127\.0\.0\.1:\d+$/);
      const dir = mkdtempSync(join(tmpdir(), "dl-"));
      await assert.rejects(
        downloadModels([{ dir, repo: "org/model", revision: "abc", file: "config.json" }], { endpoint: tls.url }),
        (e: unknown) =>
          e instanceof WorldError &&
          /its TLS certificate is not trusted/.test(e.message) &&
          /NODE_EXTRA_CA_CERTS=\/etc\/diatonic\/download-env\/ca\.crt/.test(e.fix ?? ""),
      );
    } finally {
      await tls.close();
    }
  });
});
