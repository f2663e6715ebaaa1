// RAG adapters: the gateway calls a Retriever before forwarding. The RAG module's retrievers are not
// written yet, so these tests inject a fixed in-memory retriever (a stand-in, named as such).
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import OpenAI from "openai";
import type { AdapterRoute } from "../../src/gateway/config.ts";
import type { Retrieval, Retriever } from "../../src/gateway/retriever.ts";
import { startFixedUpstream, type FixedUpstream } from "./support/fixed-upstream.ts";
import { KEYS, startTestGateway, type TestGateway } from "./support/harness.ts";

class FixedRetrieverStandIn implements Retriever {
  failing = false;
  readonly queries: { adapter: string; collection: string | undefined; query: string }[] = [];
  async retrieve(adapter: AdapterRoute, query: string): Promise<Retrieval> {
    this.queries.push({ adapter: adapter.name, collection: adapter.rag?.collection, query });
    if (this.failing) throw new Error("vector store unreachable");
    return {
      chunks: [
        { source: "handbook/onboarding.md", chunk: 3, score: 0.91, text: "New staff get a laptop on day one." },
        { source: "handbook/security.md", chunk: 0, score: 0.72, text: "Badges are required after 18:00." },
      ],
    };
  }
}

describe("RAG adapters", () => {
  let upstream: FixedUpstream;
  let gw: TestGateway;
  const retriever = new FixedRetrieverStandIn();
  before(async () => {
    upstream = await startFixedUpstream();
    gw = await startTestGateway(upstream.url, {}, { retriever });
  });
  after(async () => {
    await gw.close();
    await upstream.close();
  });

  it("puts the retrieved context after the system prompt and returns citations in diatonic.citations", async () => {
    retriever.failing = false;
    const completion = await gw
      .client()
      .chat.completions.create({ model: "handbook", messages: [{ role: "user", content: "When do I get a laptop?" }] });
    assert.deepEqual(retriever.queries.at(-1), { adapter: "handbook", collection: "handbook", query: "When do I get a laptop?" });
    const messages = upstream.requests.at(-1)?.body?.messages as { role: string; content: string }[];
    assert.equal(messages[0]?.content, "Answer from the context.");
    assert.equal(messages[1]?.role, "system");
    assert.match(messages[1]?.content ?? "", /\[1\] \(handbook\/onboarding\.md#3\)\nNew staff get a laptop/);
    assert.equal(messages[2]?.content, "When do I get a laptop?");
    const citations = (completion as unknown as { diatonic: { citations: { source: string; index: number }[] } }).diatonic.citations;
    assert.deepEqual(
      citations.map((c) => [c.index, c.source]),
      [
        [1, "handbook/onboarding.md"],
        [2, "handbook/security.md"],
      ],
    );
  });

  it("streams carry the citations in a last chunk with no choices", async () => {
    retriever.failing = false;
    const stream = await gw
      .client()
      .chat.completions.create({ model: "handbook", messages: [{ role: "user", content: "badges?" }], stream: true });
    let citations: unknown;
    for await (const chunk of stream)
      citations = (chunk as unknown as { diatonic?: { citations: unknown } }).diatonic?.citations ?? citations;
    assert.ok(Array.isArray(citations) && citations.length === 2);
  });

  it("raw SSE from the fixed-upstream fake: usage is the last data chunk; without usage, citations are", async () => {
    retriever.failing = false;
    const dataChunks = async (streamOptions: Record<string, unknown> | undefined) => {
      const response = await fetch(`${gw.gateway.url}/v1/chat/completions`, {
        method: "POST",
        headers: { "content-type": "application/json", authorization: `Bearer ${KEYS.all}` },
        body: JSON.stringify({
          model: "handbook",
          messages: [{ role: "user", content: "badges?" }],
          stream: true,
          stream_options: streamOptions,
        }),
      });
      const text = await response.text();
      assert.ok(text.endsWith("data: [DONE]\n\n"));
      return text
        .split("\n\n")
        .filter((event) => event.startsWith("data: {"))
        .map(
          (event) => JSON.parse(event.slice(6)) as { id: string; choices: unknown[]; usage?: unknown; diatonic?: { citations: unknown[] } },
        );
    };
    const withUsage = await dataChunks({ include_usage: true });
    assert.deepEqual([...new Set(withUsage.map((chunk) => chunk.id))], ["chatcmpl-fixed"]);
    assert.deepEqual(withUsage.at(-1)?.usage, { prompt_tokens: 7, completion_tokens: 6, total_tokens: 13 });
    const citationsChunk = withUsage.at(-2);
    assert.equal(citationsChunk?.diatonic?.citations.length, 2);
    assert.deepEqual(citationsChunk?.choices, []);
    assert.equal(citationsChunk?.usage, null, "null like every chunk before the usage chunk");

    const withoutUsage = await dataChunks(undefined);
    assert.deepEqual([...new Set(withoutUsage.map((chunk) => chunk.id))], ["chatcmpl-fixed"]);
    assert.equal(withoutUsage.at(-1)?.diatonic?.citations.length, 2, "the citations chunk is the last one");
    assert.ok(
      withoutUsage.every((chunk) => !("usage" in chunk)),
      "no usage member for a client that did not ask",
    );
  });

  it("answerWithoutContext: a failed retrieval still answers, and the header says retrieval was skipped", async () => {
    retriever.failing = true;
    const { data, response } = await gw
      .client()
      .chat.completions.create({ model: "handbook", messages: [{ role: "user", content: "x" }] })
      .withResponse();
    assert.equal(response.headers.get("x-diatonic-retrieval"), "skipped");
    assert.equal(data.object, "chat.completion");
    const messages = upstream.requests.at(-1)?.body?.messages as { role: string }[];
    assert.equal(messages.length, 2, "system prompt and user message, no context");
  });

  it("fail: a failed retrieval fails the request with 502", async () => {
    retriever.failing = true;
    try {
      await gw.client().chat.completions.create({ model: "strict", messages: [{ role: "user", content: "x" }] });
      assert.fail("expected 502");
    } catch (error) {
      assert.ok(error instanceof OpenAI.APIError);
      assert.equal(error.status, 502);
      assert.equal(error.code, "retrieval_failed");
    }
  });
});
