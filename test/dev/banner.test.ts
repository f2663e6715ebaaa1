import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { devBanner } from "../../src/dev/banner.ts";

const stack = {
  gatewayUrl: "http://127.0.0.1:8080",
  consoleUrl: "http://127.0.0.1:8080/console/",
  engineUrl: "http://127.0.0.1:40123",
  specFile: "/work/platform.yaml",
  platform: "lab",
  environment: "local",
  modelOrigin: "generated tiny model (random weights: its answers are noise)",
  embeddingsOrigin: "the base model (llama-3-8b-instruct) on the engine",
  notes: [],
  baseModel: "llama-3-8b-instruct",
  adapters: [
    { name: "code", rag: false, description: "" },
    { name: "rag", rag: true, description: "" },
  ],
  dataDir: "/tmp/dev",
  vectors: { kind: "embedded" as const, location: "/tmp/dev/vectors-e5", detail: "the embedded store" },
  apiKey: undefined as string | undefined,
  demoLoras: [] as string[],
};

/** The curl that `dev` prints: its first line and the continuation lines up to the blank line. */
function curlOf(banner: string): string[] {
  const lines = banner.split("\n");
  const start = lines.findIndex((line) => line.startsWith("  curl "));
  const end = lines.indexOf("", start);
  return lines.slice(start, end);
}

describe("dev banner", () => {
  for (const apiKey of [undefined, "sk-local"]) {
    it(`the curl's continuation lines line up under each other (${apiKey === undefined ? "no key" : "with a key"})`, () => {
      const curl = curlOf(devBanner({ ...stack, apiKey }, "/work"));
      assert.equal(curl.length, apiKey === undefined ? 3 : 4, curl.join("\n"));
      for (const line of curl.slice(1)) assert.match(line, /^ {4}-[Hd] /, curl.join("\n"));
      for (const line of curl.slice(0, -1)) assert.match(line, / \\$/, "every line but the last continues");
      if (apiKey !== undefined) assert.ok(curl.includes(`    -H "Authorization: Bearer ${apiKey}" \\`), curl.join("\n"));
    });
  }

  it("says which adapters run a demo LoRA, that it is synthetic, and how to turn it off; nothing when none does", () => {
    const banner = devBanner({ ...stack, demoLoras: ["code", "rag"] }, "/work");
    assert.match(banner, /^ {2}LoRAs {6}demo LoRAs on code, rag \(the spec declares none for them\)$/m);
    assert.match(
      banner,
      /^ {13}synthetic: random weights at scale 0\.25, rank 8, on attn_q\/attn_v; .*not trained \(--no-demo-loras: none\)$/m,
    );
    assert.doesNotMatch(devBanner(stack, "/work"), /demo LoRA/);
  });
});
