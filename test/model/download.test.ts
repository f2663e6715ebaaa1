import assert from "node:assert/strict";
import { existsSync, mkdtempSync, readFileSync } from "node:fs";
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { WorldError } from "../../src/errors.ts";
import { downloadModels, parseItem } from "../../src/model/download.ts";

/** A fake Hugging Face hub (no network here): the two endpoints the downloader uses, with a gated repo. */
function fakeHub(): Promise<{ server: Server; url: string; requests: string[] }> {
  const files: Record<string, string> = { "config.json": '{"model_type":"llama"}', "model.safetensors": "x".repeat(100_000), "sub/tokenizer.json": "{}" };
  const requests: string[] = [];
  const server = createServer((req, res) => {
    const url = req.url ?? "";
    requests.push(url);
    if (url.startsWith("/api/models/gated/")) {
      res.writeHead(req.headers.authorization === "Bearer good" ? 200 : 401).end(JSON.stringify({ siblings: [] }));
      return;
    }
    const list = /^\/api\/models\/org\/model\/revision\/abc$/.exec(url);
    if (list) {
      res.writeHead(200, { "content-type": "application/json" }).end(JSON.stringify({ siblings: Object.keys(files).map((rfilename) => ({ rfilename })) }));
      return;
    }
    const file = /^\/org\/model\/resolve\/abc\/(.+)$/.exec(url);
    const body = file?.[1] ? files[decodeURIComponent(file[1])] : undefined;
    if (body === undefined) {
      res.writeHead(404).end();
      return;
    }
    res.writeHead(200, { "content-length": String(Buffer.byteLength(body)) }).end(body);
  });
  return new Promise((resolve) => server.listen(0, "127.0.0.1", () => resolve({ server, url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, requests })));
}

describe("model-download (against a fake hub: the real one is not reachable here)", () => {
  let hub: Awaited<ReturnType<typeof fakeHub>>;
  before(async () => {
    hub = await fakeHub();
  });
  after(() => hub.server.close());

  it("parses DIR=REPO@REVISION[#FILE] and refuses anything else", () => {
    assert.deepEqual(parseItem("/models/x=org/model@abc#m.gguf"), { dir: "/models/x", repo: "org/model", revision: "abc", file: "m.gguf" });
    assert.throws(() => parseItem("org/model"), /not DIR=REPO@REVISION/);
  });

  it("fetches a whole repo, then skips it on the next run", async () => {
    const dir = join(mkdtempSync(join(tmpdir(), "dl-")), "model");
    const lines: string[] = [];
    const first = await downloadModels([{ dir, repo: "org/model", revision: "abc" }], { endpoint: hub.url, progress: (l) => lines.push(l), progressIntervalMs: 0 });
    assert.deepEqual(first.downloaded, ["org/model@abc"]);
    assert.equal(readFileSync(join(dir, "model.safetensors"), "utf8").length, 100_000);
    assert.ok(existsSync(join(dir, "sub/tokenizer.json")));
    assert.ok(lines.some((l) => l.includes("3 file(s)")), "reports progress");
    const count = hub.requests.length;
    const second = await downloadModels([{ dir, repo: "org/model", revision: "abc" }], { endpoint: hub.url });
    assert.deepEqual(second.skipped, ["org/model@abc"]);
    assert.equal(hub.requests.length, count, "nothing fetched the second time");
  });

  it("fetches a single file", async () => {
    const dir = join(mkdtempSync(join(tmpdir(), "dl-")), "gguf");
    await downloadModels([{ dir, repo: "org/model", revision: "abc", file: "config.json" }], { endpoint: hub.url });
    assert.equal(readFileSync(join(dir, "config.json"), "utf8"), '{"model_type":"llama"}');
  });

  it("explains a gated repo and a missing file", async () => {
    const dir = mkdtempSync(join(tmpdir(), "dl-"));
    await assert.rejects(downloadModels([{ dir, repo: "gated/llama", revision: "main" }], { endpoint: hub.url, token: "" }), (e: unknown) => e instanceof WorldError && /access denied/.test(e.message) && /gated/.test(e.fix ?? ""));
    await assert.rejects(downloadModels([{ dir, repo: "org/model", revision: "abc", file: "nope.bin" }], { endpoint: hub.url }), /not found \(HTTP 404\)/);
  });
});
