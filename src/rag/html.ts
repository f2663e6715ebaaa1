/**
 * HTML to chunkable text, on htmlparser2's tokenizer (the HTML spec's entities, unclosed and
 * misnested tags, raw-text elements, CDATA and comments handled as browsers do): headings become
 * Markdown headings (so the chunker splits on them), block elements become paragraph breaks, table
 * cells a space, and what a reader never sees (scripts, styles, templates, SVG, the head) goes.
 * Documents are ingested, not rendered: the parser's events are enough, no DOM is built.
 */
import { Parser } from "htmlparser2";

const BLOCK = new Set([
  "p",
  "div",
  "section",
  "article",
  "header",
  "footer",
  "main",
  "aside",
  "nav",
  "ul",
  "ol",
  "li",
  "table",
  "tr",
  "blockquote",
  "pre",
  "br",
  "hr",
  "dl",
  "dt",
  "dd",
  "figure",
  "figcaption",
  "form",
  "fieldset",
  "details",
  "summary",
  "address",
]);
const HIDDEN = new Set(["script", "style", "noscript", "template", "svg", "head", "title", "iframe", "object"]);
const CELL = new Set(["td", "th"]);

export function htmlToText(html: string): string {
  let text = "";
  /** Open hidden elements: text inside any of them is dropped. */
  let hidden = 0;
  /** The heading being read (its level and text), if any. */
  let heading: { level: number; text: string } | undefined;
  const parser = new Parser(
    {
      onopentag(name) {
        if (HIDDEN.has(name)) hidden++;
        else if (/^h[1-6]$/.test(name)) heading = { level: Number(name[1]), text: "" };
        else if (BLOCK.has(name)) text += "\n\n";
        else if (CELL.has(name)) text += " ";
      },
      ontext(data) {
        if (hidden > 0) return;
        if (heading !== undefined) heading.text += data;
        else text += data;
      },
      onclosetag(name, isImplied) {
        if (HIDDEN.has(name)) hidden = Math.max(0, hidden - 1);
        else if (heading !== undefined && name === `h${heading.level}`) {
          text += `\n\n${"#".repeat(heading.level)} ${heading.text.replace(/\s+/g, " ").trim()}\n\n`;
          heading = undefined;
        } else if (BLOCK.has(name) && !isImplied) text += "\n\n";
        else if (CELL.has(name)) text += " ";
      },
    },
    { decodeEntities: true, lowerCaseTags: true },
  );
  parser.end(html);
  return text
    .replace(/\u00a0/g, " ")
    .split(/\n{2,}/)
    .map((block) =>
      block
        .replace(/[ \t\r\f\v]+/g, " ")
        .replace(/ *\n */g, "\n")
        .trim(),
    )
    .filter((block) => block !== "")
    .join("\n\n");
}
