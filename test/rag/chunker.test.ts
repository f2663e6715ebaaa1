import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { StructuredChunker, formatOf } from "../../src/rag/chunker.ts";
import { chunkId, contentHash } from "../../src/rag/ids.ts";
import { reciprocalRankFusion } from "../../src/rag/store.ts";
import { countTokens, keywordTerms } from "../../src/rag/tokens.ts";
import { htmlToText } from "../../src/rag/html.ts";

const words = (n: number, word = "lorem") => Array.from({ length: n }, (_, i) => `${word}${i}`).join(" ");

describe("chunker", () => {
  it("defaults to 512-token chunks with 128 tokens of overlap", () => {
    const chunker = new StructuredChunker();
    assert.equal(chunker.maxTokens, 512);
    assert.equal(chunker.overlapTokens, 128);
    const paragraphs = Array.from({ length: 30 }, (_, i) => `${words(60, `p${i}w`)}.`).join("\n\n");
    const chunks = chunker.chunk(paragraphs, "text");
    assert.ok(chunks.length > 3);
    for (const chunk of chunks) assert.ok(chunk.tokens <= 512, `chunk ${chunk.index} has ${chunk.tokens} tokens`);
    // Each chunk after the first starts with paragraphs the previous one ended with.
    const [first, second] = chunks.map((c) => c.text.split("\n\n"));
    const shared = second?.filter((paragraph) => first?.includes(paragraph)) ?? [];
    assert.ok(shared.length > 0);
    assert.deepEqual(shared, first?.slice(-shared.length), "whole paragraphs from the end of the previous chunk");
    const partial = second?.[0] ?? "";
    assert.ok(first?.at(-shared.length - 1)?.endsWith(partial), "topped up with the end of the paragraph before them");
    const overlap = countTokens([partial, ...shared].join("\n\n"));
    assert.ok(overlap >= 120 && overlap <= 128, `overlap of ${overlap} tokens`);
  });

  it("cuts Chinese and Japanese, written without spaces, into bounded chunks: a character is a token", () => {
    assert.equal(countTokens("東京は晴れです。"), 8);
    assert.equal(countTokens("東京タワー is 333 m tall"), 9);
    // One paragraph of 2,400 characters with no space: one "word" to a chunker that splits on spaces.
    const sentences = ["今日は東京で雨が降っています。", "明日の天气预报によると晴れるでしょう。", "会議は午後三時に始まります。"];
    const paragraph = Array.from({ length: 160 }, (_, i) => sentences[i % 3]).join("");
    const chunks = new StructuredChunker({ maxTokens: 200, overlapTokens: 20 }).chunk(paragraph, "text");
    assert.ok(chunks.length >= 10, `${chunks.length} chunks`);
    for (const chunk of chunks) {
      assert.ok(chunk.tokens <= 200, `chunk ${chunk.index} has ${chunk.tokens} tokens`);
      // A character a token, plus the line breaks that join an overlap to what follows it.
      assert.ok([...chunk.text].length <= 210, `chunk ${chunk.index} has ${[...chunk.text].length} characters`);
    }
  });

  it("gives the keyword index Chinese and Japanese as overlapping character pairs, other scripts as words", () => {
    assert.deepEqual(keywordTerms("東京の天気 and Seoul 날씨, 雨"), ["東京", "京の", "の天", "天気", "seoul", "날씨", "雨"]);
    // The prolonged sound mark belongs to the word (it is not Script=Katakana); 、 ends a run.
    assert.deepEqual(keywordTerms("コンピューター、雨"), ["コン", "ンピ", "ピュ", "ュー", "ータ", "ター", "雨"]);
  });

  it("cuts Thai, Lao, Khmer and Burmese, written without spaces, into their dictionary words, and bounded chunks", () => {
    assert.deepEqual(keywordTerms("ฉันอยากจองห้องประชุม"), ["ฉัน", "อยาก", "จอง", "ห้อง", "ประชุม"]);
    assert.deepEqual(keywordTerms("ຂ້ອຍຢາກຈອງຫ້ອງປະຊຸມ"), ["ຂ້ອຍ", "ຢາກ", "ຈອງ", "ຫ້ອງ", "ປະຊຸມ"]);
    assert.deepEqual(keywordTerms("ខ្ញុំចង់កក់បន្ទប់ប្រជុំ"), ["ខ្ញុំ", "ចង់", "កក់", "បន្ទប់", "ប្រជុំ"]);
    assert.equal(countTokens("ကျွန်တော်အစည်းအဝေးခန်းကို"), 4);
    // A page of Thai is not one word: 160 sentences, no space.
    const paragraph = Array.from({ length: 160 }, () => "พรุ่งนี้ฝนจะตกที่กรุงเทพและอุณหภูมิจะลดลง").join("");
    const chunks = new StructuredChunker({ maxTokens: 200, overlapTokens: 20 }).chunk(paragraph, "text");
    assert.ok(chunks.length >= 10, `${chunks.length} chunks`);
    for (const chunk of chunks) assert.ok(chunk.tokens <= 200, `chunk ${chunk.index} has ${chunk.tokens} tokens`);
    assert.equal(chunks.map((chunk) => chunk.text).join("").length >= paragraph.length, true, "nothing is lost");
  });

  it("keeps a word's combining marks in the word (Devanagari's vowel signs and virama, Arabic's harakat), and drops a mark after no letter", () => {
    assert.deepEqual(keywordTerms("नमस्ते दुनिया"), ["नमस्ते", "दुनिया"]);
    assert.equal(countTokens("नमस्ते दुनिया!"), 3);
    assert.deepEqual(keywordTerms("مرحبًا بالعالم"), ["مرحبًا", "بالعالم"]);
    // A mark after no letter (an emoji's variation selector) is neither a token nor a term.
    assert.deepEqual(keywordTerms("I ❤️ pizza"), ["pizza"]);
    assert.equal(countTokens("I ❤️ pizza"), 3);
  });

  it("splits on headings before paragraphs: small sections share a chunk, a large one starts its own chunks", () => {
    const chunker = new StructuredChunker({ maxTokens: 64, overlapTokens: 16 });
    const md = `# A\n\nshort one.\n\n## B\n\nshort two.\n\n## C\n\n${words(50)}\n\n${words(50, "ipsum")}\n`;
    const chunks = chunker.chunk(md, "markdown");
    assert.match(chunks[0]?.text ?? "", /^# A\n\nshort one\.\n\n## B\n\nshort two\.$/);
    assert.ok(
      chunks.slice(1).every((c) => c.text.startsWith("## C")),
      "every chunk of section C repeats its heading",
    );
  });

  it("does not split inside fenced code, and reads HTML as headings and paragraphs without scripts", () => {
    const chunker = new StructuredChunker({ maxTokens: 400, overlapTokens: 16 });
    const md = "# Code\n\n```sh\n# not a heading\nmake build\n```\n";
    assert.equal(chunker.chunk(md, "markdown").length, 1);
    const html =
      "<html><head><title>x</title></head><body><h1>Title</h1><p>One &amp; two</p><script>alert(1)</script><p>Three</p></body></html>";
    assert.equal(chunker.chunk(html, "html")[0]?.text, "# Title\n\nOne & two\n\nThree");
  });

  it("reads HTML as a browser parses it: every named entity, unclosed paragraphs and cells, a '<' inside a script, nested heading markup", () => {
    const html =
      "<h2>Caf&eacute; <em>rules</em></h2><p>First<p>Second &rarr; third<script>if (a <b) { document.write('<p>x</p>') }</script><table><tr><td>1<td>2</table><!-- <p>hidden</p> -->";
    assert.equal(htmlToText(html), "## Café rules\n\nFirst\n\nSecond → third\n\n1 2");
  });

  it("knows Markdown, text and HTML by extension", () => {
    assert.deepEqual(["a.md", "b.TXT", "c.htm", "d.png"].map(formatOf), ["markdown", "text", "html", undefined]);
  });
});

describe("chunk ids and fusion", () => {
  it("ids are UUIDs that change with source, position and content", () => {
    const id = chunkId("a.md", 0, contentHash("x"));
    assert.match(id, /^[0-9a-f]{8}-[0-9a-f]{4}-5[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
    assert.equal(id, chunkId("a.md", 0, contentHash("x")));
    assert.notEqual(id, chunkId("a.md", 1, contentHash("x")));
    assert.notEqual(id, chunkId("b.md", 0, contentHash("x")));
    assert.notEqual(id, chunkId("a.md", 0, contentHash("y")));
  });

  it("RRF ranks a chunk found by both halves above chunks found by one", () => {
    const hit = (id: string) => ({ id, source: id, chunk: 0, text: "", score: 0 });
    const fused = reciprocalRankFusion(
      [
        [hit("a"), hit("b")],
        [hit("c"), hit("b")],
      ],
      3,
    );
    assert.equal(fused[0]?.id, "b");
    assert.ok(Math.abs((fused[0]?.score ?? 0) - 2 / 62) < 1e-12);
  });
});
