// How the gateway serves the web console's files: without a key, with its strict CSP on every
// answer, index.html revalidated and hashed assets cached for good, gzip where asked, and a clear
// 503 where the console was not built. Served from a built folder made here (the console's own build
// is checked in test/console).
import assert from "node:assert/strict";
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { request } from "node:http";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { gunzipSync } from "node:zlib";
import { CONSOLE_CSP } from "../../src/gateway/console.ts";
import { startFixedUpstream, type FixedUpstream } from "./support/fixed-upstream.ts";
import { startTestGateway, type TestGateway } from "./support/harness.ts";

const INDEX =
  '<!doctype html><html lang="en"><head><title>Diatonic console</title><script type="module" src="assets/app-ABCDEF12.js"></script></head><body><div id="app"></div></body></html>';
const SCRIPT = `console.log(${JSON.stringify("the console ".repeat(200))});`;

interface Raw {
  readonly status: number;
  readonly headers: Record<string, string | string[] | undefined>;
  readonly body: Buffer;
}

/** A request whose answer is read as sent (fetch would decompress it and hide content-encoding). */
function raw(url: string, headers: Record<string, string> = {}, method = "GET"): Promise<Raw> {
  return new Promise((resolve, reject) => {
    const { hostname, port, pathname, search } = new URL(url);
    // The path as written: a URL would resolve its dot segments before sending it.
    const path = url.slice(url.indexOf("/", url.indexOf("//") + 2)) || pathname + search;
    const req = request({ host: hostname, port, path, method, headers }, (res) => {
      const chunks: Buffer[] = [];
      res.on("data", (chunk: Buffer) => chunks.push(chunk));
      res.on("end", () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks) }));
    });
    req.on("error", reject);
    req.end();
  });
}

describe("the gateway serves the web console", () => {
  let upstream: FixedUpstream;
  let gw: TestGateway;
  let unbuilt: TestGateway;
  const dir = mkdtempSync(join(tmpdir(), "diatonic-console-files-"));

  before(async () => {
    mkdirSync(join(dir, "dist", "assets"), { recursive: true });
    writeFileSync(join(dir, "dist", "index.html"), INDEX);
    writeFileSync(join(dir, "dist", "assets", "app-ABCDEF12.js"), SCRIPT);
    writeFileSync(join(dir, "dist", ".build.json"), "{}");
    upstream = await startFixedUpstream();
    // Auth is required (the test config's): the files need no key, the admin API they call does.
    gw = await startTestGateway(upstream.url, {}, { consoleDir: join(dir, "dist") });
    unbuilt = await startTestGateway(upstream.url, {}, { consoleDir: join(dir, "missing") });
  });
  after(async () => {
    await gw?.close();
    await unbuilt?.close();
    await upstream?.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it("answers GET /console/ with the page, no-cache, an ETag and the console's CSP, without a key", async () => {
    const page = await raw(`${gw.gateway.url}/console/`);
    assert.equal(page.status, 200);
    assert.equal(page.headers["content-type"], "text/html; charset=utf-8");
    assert.equal(page.body.toString(), INDEX);
    assert.equal(page.headers["cache-control"], "no-cache");
    assert.match(String(page.headers.etag), /^"[\w-]{22}"$/);
    assert.equal(page.headers["content-security-policy"], CONSOLE_CSP);
    for (const directive of ["default-src 'self'", "script-src 'self'", "style-src 'self'", "connect-src 'self'", "frame-ancestors 'none'"])
      assert.ok(CONSOLE_CSP.includes(directive), directive);
    assert.ok(!CONSOLE_CSP.includes("unsafe"), "no unsafe-inline, no unsafe-eval");
    assert.equal(page.headers["x-content-type-options"], "nosniff");
    assert.equal(page.headers["x-frame-options"], "DENY");
    assert.equal(page.headers["referrer-policy"], "no-referrer");

    const again = await raw(`${gw.gateway.url}/console/`, { "if-none-match": String(page.headers.etag) });
    assert.equal(again.status, 304);
    assert.equal(again.body.length, 0);
    assert.equal(again.headers["content-security-policy"], CONSOLE_CSP);
  });

  it("redirects /console to /console/, so the page's relative asset paths resolve", async () => {
    const redirect = await raw(`${gw.gateway.url}/console`);
    assert.equal(redirect.status, 308);
    assert.equal(redirect.headers.location, "/console/");
    const withQuery = await raw(`${gw.gateway.url}/console/?from=bookmark`);
    assert.equal(withQuery.status, 200);
  });

  it("serves hashed assets as immutable, gzipped for a client that asks", async () => {
    const plain = await raw(`${gw.gateway.url}/console/assets/app-ABCDEF12.js`);
    assert.equal(plain.status, 200);
    assert.equal(plain.headers["content-type"], "text/javascript; charset=utf-8");
    assert.equal(plain.headers["cache-control"], "public, max-age=31536000, immutable");
    assert.equal(plain.headers["content-encoding"], undefined);
    assert.equal(plain.body.toString(), SCRIPT);
    assert.equal(plain.headers["content-security-policy"], CONSOLE_CSP);

    const gzipped = await raw(`${gw.gateway.url}/console/assets/app-ABCDEF12.js`, { "accept-encoding": "gzip, br" });
    assert.equal(gzipped.headers["content-encoding"], "gzip");
    assert.equal(gzipped.headers.vary, "accept-encoding");
    assert.ok(gzipped.body.length < plain.body.length / 4);
    assert.equal(gunzipSync(gzipped.body).toString(), SCRIPT);

    const head = await raw(`${gw.gateway.url}/console/assets/app-ABCDEF12.js`, {}, "HEAD");
    assert.equal(head.status, 200);
    assert.equal(head.body.length, 0);
  });

  it("answers 404 for a file it does not have (dot files included), 405 for other methods", async () => {
    for (const path of ["/console/assets/app-00000000.js", "/console/.build.json", "/console/../package.json", "/console/index.htm"]) {
      const missing = await raw(`${gw.gateway.url}${path}`);
      assert.equal(missing.status, 404, path);
      assert.equal(missing.headers["content-security-policy"], CONSOLE_CSP);
    }
    const post = await raw(`${gw.gateway.url}/console/`, {}, "POST");
    assert.equal(post.status, 405);
    assert.equal(post.headers.allow, "GET, HEAD");
  });

  it("says how to build the console where it was not built", async () => {
    const page = await raw(`${unbuilt.gateway.url}/console/`);
    assert.equal(page.status, 503);
    assert.match(page.body.toString(), /the web console is not built .*npm run deps/);
  });

  it("neither logs nor counts the console's files (its API calls are logged)", async () => {
    await raw(`${gw.gateway.url}/console/`);
    await raw(`${gw.gateway.url}/v1/admin/session`);
    gw.gateway.logger.flush();
    const paths = gw.logs.find("request").map((line) => line.path);
    assert.ok(!paths.some((path) => String(path).startsWith("/console")), paths.join(", "));
    assert.ok(paths.includes("/v1/admin/session"));
    assert.doesNotMatch((await gw.gateway.metrics.render()).body, /console/);
  });

  it("keeps routing /consoles and adapters' paths as before: /console is the console's alone", async () => {
    const other = await raw(`${gw.gateway.url}/consoles/v1/models`);
    assert.equal(other.status, 404);
    assert.match(other.body.toString(), /unknown_route/);
  });
});
