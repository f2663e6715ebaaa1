// HttpEmbedder against a stand-in OpenAI-compatible server (a node:http server that records requests
// and misbehaves on cue): batching, retries, long inputs, malformed answers.
import assert from "node:assert/strict";
import { createServer, type Server } from "node:http";
import { after, before, describe, it } from "node:test";
import { EmbeddingError, HttpEmbedder } from "../../src/rag/embedder.ts";

describe("HttpEmbedder (stand-in embeddings server)", () => {
  let server: Server;
  let url: string;
  const batches: number[] = [];
  let failNext = 0;
  let maxChars = Infinity;
  let malformed = false;
  before(async () => {
    server = createServer((req, res) => {
      let raw = "";
      req.on("data", (chunk: Buffer) => (raw += chunk.toString()));
      req.on("end", () => {
        const body = JSON.parse(raw) as { input: string[] };
        if (failNext > 0) {
          failNext--;
          res.writeHead(503).end("busy");
          return;
        }
        if (body.input.some((text) => text.length > maxChars)) {
          res
            .writeHead(400, { "content-type": "application/json" })
            .end(JSON.stringify({ error: { message: `input has too many tokens; this model's maximum context length is ${maxChars}` } }));
          return;
        }
        batches.push(body.input.length);
        const data = malformed
          ? [{ embedding: "nope" }]
          : body.input.map((text, index) => ({ object: "embedding", index, embedding: [text.length, 1] }));
        res.writeHead(200, { "content-type": "application/json" }).end(JSON.stringify({ object: "list", data }));
      });
    });
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
    url = `http://127.0.0.1:${(server.address() as { port: number }).port}/v1`;
  });
  after(() => server.close());

  it("sends inputs in batches and returns vectors in input order", async () => {
    batches.length = 0;
    const vectors = await new HttpEmbedder({ url, model: "m", batchSize: 3 }).embed(["a", "bb", "ccc", "dddd", "eeeee"]);
    assert.deepEqual(batches, [3, 2]);
    assert.deepEqual(
      vectors.map((v) => v[0]),
      [1, 2, 3, 4, 5],
    );
  });

  it("gives a full batch minutes and a lone question one (a CPU embeds a chunk in seconds); a timeout that is set holds", async () => {
    const asked: number[] = [];
    const transport = async (body: string, call: { timeoutMs: number }) => {
      asked.push(call.timeoutMs);
      const input = (JSON.parse(body) as { input: string[] }).input;
      return { statusCode: 200, text: JSON.stringify({ data: input.map((_, index) => ({ index, embedding: [1] })) }) };
    };
    const texts = Array.from({ length: 33 }, (_, i) => `chunk ${i}`);
    await new HttpEmbedder({ url, model: "m", transport }).embed(texts);
    await new HttpEmbedder({ url, model: "m", transport }).embed(["a question"]);
    await new HttpEmbedder({ url, model: "m", transport, timeoutMs: 1234 }).embed(texts);
    assert.deepEqual(asked, [60_000 + 31 * 5_000, 60_000, 60_000, 1234, 1234]);
  });

  it("retries a batch answered 503", async () => {
    failNext = 2;
    assert.equal((await new HttpEmbedder({ url, model: "m" }).embed(["x"])).length, 1);
  });

  it("embeds the beginning of an input longer than the model's context", async () => {
    maxChars = 100;
    try {
      const [vector] = await new HttpEmbedder({ url, model: "m" }).embed(["y".repeat(350)]);
      assert.ok((vector?.[0] ?? 0) <= 100 && (vector?.[0] ?? 0) > 40);
    } finally {
      maxChars = Infinity;
    }
  });

  it("a malformed answer or an unreachable server is an EmbeddingError naming the endpoint", async () => {
    malformed = true;
    try {
      await assert.rejects(
        new HttpEmbedder({ url, model: "m" }).embed(["z"]),
        (error: unknown) => error instanceof EmbeddingError && /\/v1\/embeddings returned/.test(error.message),
      );
    } finally {
      malformed = false;
    }
    await assert.rejects(
      new HttpEmbedder({ url: "http://127.0.0.1:1", model: "m", attempts: 1 }).embed(["z"]),
      (error: unknown) => error instanceof EmbeddingError && /unreachable/.test(error.message),
    );
  });
});
