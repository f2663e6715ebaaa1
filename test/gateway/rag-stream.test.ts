// A RAG adapter's stream read by the official Node SDK's stream helper, which builds the final
// completion from the chunks. The fixed-completion upstream sends no role, which the helper needs, so
// this test has its own fake: an HTTP server that streams as vLLM does (role first, then one token a
// chunk, then the usage chunk when asked). The retriever is a fixed in-memory stand-in.
import assert from "node:assert/strict";
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { after, before, describe, it } from "node:test";
import type { Retrieval, Retriever } from "../../src/gateway/retriever.ts";
import { startTestGateway, type TestGateway } from "./support/harness.ts";

const STREAM_ID = "chatcmpl-vllm-shaped-fake";
const PIECES = ["Badges", " after", " 18:00", "."];

class FixedRetrieverStandIn implements Retriever {
  async retrieve(): Promise<Retrieval> {
    return { chunks: [{ source: "handbook/security.md", chunk: 0, score: 0.72, text: "Badges are required after 18:00." }] };
  }
}

/** The chunks vLLM streams for one choice: role, one token a chunk, finish, and usage when asked for. */
function vllmShapedEvents(model: string, includeUsage: boolean): string {
  const usageNull = includeUsage ? { usage: null } : {};
  const chunk = (delta: Record<string, unknown>, finish: string | null) =>
    `data: ${JSON.stringify({ id: STREAM_ID, object: "chat.completion.chunk", created: 1_700_000_123, model, choices: [{ index: 0, delta, logprobs: null, finish_reason: finish }], ...usageNull })}\n\n`;
  let events = chunk({ role: "assistant", content: "" }, null);
  for (const piece of PIECES) events += chunk({ content: piece }, null);
  events += chunk({}, "stop");
  if (includeUsage) {
    const usage = { prompt_tokens: 11, completion_tokens: PIECES.length, total_tokens: 11 + PIECES.length };
    events += `data: ${JSON.stringify({ id: STREAM_ID, object: "chat.completion.chunk", created: 1_700_000_123, model, choices: [], usage })}\n\n`;
  }
  return `${events}data: [DONE]\n\n`;
}

function startVllmShapedFake(): Promise<Server> {
  const server = createServer((req, res) => {
    const parts: Buffer[] = [];
    req.on("data", (part: Buffer) => parts.push(part));
    req.on("end", () => {
      if (req.url === "/health") return void res.writeHead(200).end();
      const body = JSON.parse(Buffer.concat(parts).toString("utf8")) as { model: string; stream_options?: { include_usage?: boolean } };
      res.writeHead(200, { "content-type": "text/event-stream" });
      res.end(vllmShapedEvents(body.model, body.stream_options?.include_usage === true));
    });
  });
  return new Promise((resolve) => server.listen(0, "127.0.0.1", () => resolve(server)));
}

describe("a RAG stream through the Node SDK's stream helper (vLLM-shaped fake engine)", () => {
  let engine: Server;
  let gw: TestGateway;
  before(async () => {
    engine = await startVllmShapedFake();
    gw = await startTestGateway(
      `http://127.0.0.1:${(engine.address() as AddressInfo).port}`,
      {},
      { retriever: new FixedRetrieverStandIn() },
    );
  });
  after(async () => {
    await gw.close();
    await new Promise((resolve) => engine.close(resolve));
  });

  for (const includeUsage of [true, false]) {
    it(`finalChatCompletion() keeps the stream's id${includeUsage ? " and its usage" : ""}, and the citations arrive (include_usage ${includeUsage})`, async () => {
      const stream = gw.client().chat.completions.stream({
        model: "handbook",
        messages: [{ role: "user", content: "badges?" }],
        ...(includeUsage ? { stream_options: { include_usage: true } } : {}),
      });
      const ids = new Set<string>();
      let citations: unknown;
      stream.on("chunk", (chunk) => {
        ids.add(chunk.id);
        citations = (chunk as unknown as { diatonic?: { citations: unknown } }).diatonic?.citations ?? citations;
      });
      const final = await stream.finalChatCompletion();
      assert.equal(final.id, STREAM_ID, "the final completion keeps the stream's id");
      assert.deepEqual([...ids], [STREAM_ID], "every chunk carries the upstream stream's id");
      assert.equal(final.model, "handbook");
      assert.equal(final.choices[0]?.message.content, PIECES.join(""));
      if (includeUsage) assert.deepEqual(final.usage, { prompt_tokens: 11, completion_tokens: 4, total_tokens: 15 });
      assert.deepEqual(
        (citations as { source: string }[] | undefined)?.map((citation) => citation.source),
        ["handbook/security.md"],
        "the citations still arrive",
      );
    });
  }
});
