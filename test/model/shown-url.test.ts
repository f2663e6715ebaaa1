// A LoRA's URL as messages, logs and status show it: a signed URL's token and any user info stay out.
import assert from "node:assert/strict";
import { mkdtempSync } from "node:fs";
import { createServer } from "node:http";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, it } from "node:test";
import { describeSource } from "../../src/adapters/set.ts";
import { WorldError } from "../../src/errors.ts";
import { shownUrl } from "../../src/model/shown-url.ts";
import { downloadUrlSource } from "../../src/model/url-source.ts";

const SHA = "0".repeat(64);

describe("shownUrl: a URL without what would leak", () => {
  it("drops user info and the fragment, and shows a query only as ?…", () => {
    assert.equal(shownUrl("https://user:hunter2@loras.example.com/a/lora.gguf?token=abc123#x"), "https://loras.example.com/a/lora.gguf?…");
    assert.equal(shownUrl("https://loras.example.com/a/lora.gguf"), "https://loras.example.com/a/lora.gguf");
    assert.equal(shownUrl("not a url"), "(an unparsable URL)");
  });

  it("is how the adapter agent's /status and logs name a url source", () => {
    const shown = describeSource({ url: { url: "https://loras.example.com/lora.gguf?X-Amz-Signature=deadbeef", sha256: SHA } });
    assert.equal(shown, "https://loras.example.com/lora.gguf?…");
  });

  it("a download that fails says which file, without the signed URL's token (a fake server answers 403)", async (t) => {
    const server = createServer((_request, response) => response.writeHead(403).end("denied"));
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
    t.after(() => server.close());
    const { port } = server.address() as AddressInfo;
    const dir = mkdtempSync(join(tmpdir(), "diatonic-shown-url-"));
    await assert.rejects(
      downloadUrlSource({ url: `http://127.0.0.1:${port}/lora.gguf?token=abc123`, sha256: SHA }, dir),
      (error: unknown) =>
        error instanceof WorldError &&
        error.message === `http://127.0.0.1:${port}/lora.gguf?…: access denied (HTTP 403)` &&
        !JSON.stringify(error).includes("abc123"),
    );
    await assert.rejects(
      downloadUrlSource({ url: "http://127.0.0.1:1/lora.gguf?token=abc123", sha256: SHA }, dir),
      (error: unknown) => error instanceof WorldError && /^cannot fetch http:\/\/127\.0\.0\.1:1\/lora\.gguf\?…: /.test(error.message),
    );
  });
});
