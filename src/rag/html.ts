/**
 * HTML to chunkable text: headings become Markdown headings (so the chunker splits on them), block
 * elements become paragraph breaks, scripts, styles and comments go, entities are decoded. A small
 * hand-written pass: documents are ingested, not rendered, and this needs no DOM.
 */
const NAMED_ENTITIES: Readonly<Record<string, string>> = { amp: "&", lt: "<", gt: ">", quot: '"', apos: "'", nbsp: " ", mdash: "—", ndash: "–", hellip: "…", copy: "©" };

function decodeEntities(text: string): string {
  return text.replace(/&(#x[0-9a-f]+|#\d+|[a-z]+);/gi, (whole, entity: string) => {
    if (entity[0] === "#") {
      const code = entity[1] === "x" || entity[1] === "X" ? Number.parseInt(entity.slice(2), 16) : Number.parseInt(entity.slice(1), 10);
      return Number.isFinite(code) && code > 0 && code <= 0x10ffff ? String.fromCodePoint(code) : whole;
    }
    return NAMED_ENTITIES[entity.toLowerCase()] ?? whole;
  });
}

const BLOCK = /^(?:p|div|section|article|header|footer|main|aside|nav|ul|ol|li|table|tr|blockquote|pre|br|hr|dl|dt|dd|figure|figcaption)$/i;

export function htmlToText(html: string): string {
  let text = html
    .replace(/<!--[\s\S]*?-->/g, "")
    .replace(/<(script|style|noscript|template|svg|head)\b[\s\S]*?<\/\1\s*>/gi, "")
    .replace(/<h([1-6])\b[^>]*>([\s\S]*?)<\/h\1\s*>/gi, (_, level: string, inner: string) => `\n\n${"#".repeat(Number(level))} ${inner.replace(/<[^>]*>/g, "").replace(/\s+/g, " ").trim()}\n\n`)
    .replace(/<\/?([a-z][a-z0-9]*)\b[^>]*>/gi, (_, tag: string) => (BLOCK.test(tag) ? "\n\n" : tag.toLowerCase() === "td" || tag.toLowerCase() === "th" ? " " : ""));
  text = decodeEntities(text);
  return text
    .split(/\n{2,}/)
    .map((block) => block.replace(/[ \t\r\f\v]+/g, " ").replace(/ *\n */g, "\n").trim())
    .filter((block) => block !== "")
    .join("\n\n");
}
