import { htmlToText } from "./html.ts";
import { countTokens, tokenSpans } from "./tokens.ts";

export const DocumentFormat = { markdown: "markdown", text: "text", html: "html" } as const;
export type DocumentFormat = (typeof DocumentFormat)[keyof typeof DocumentFormat];

/** One piece of a document as stored and retrieved: its position in the document and its text. */
export interface Chunk {
  readonly index: number;
  readonly text: string;
  readonly tokens: number;
}

export interface Chunker {
  chunk(text: string, format: DocumentFormat): Chunk[];
}

export interface ChunkerOptions {
  /** @default 512 */
  readonly maxTokens?: number;
  /** Tokens repeated from the end of a chunk at the start of the next one within a section. @default 128 */
  readonly overlapTokens?: number;
}

const EXTENSIONS: Readonly<Record<string, DocumentFormat>> = {
  ".md": "markdown",
  ".markdown": "markdown",
  ".mdx": "markdown",
  ".txt": "text",
  ".text": "text",
  ".rst": "text",
  ".html": "html",
  ".htm": "html",
};

/** The format a file name implies, or undefined for a kind the chunker does not read. */
export function formatOf(path: string): DocumentFormat | undefined {
  const dot = path.lastIndexOf(".");
  return dot < 0 ? undefined : EXTENSIONS[path.slice(dot).toLowerCase()];
}

interface Piece {
  readonly text: string;
  readonly tokens: number;
}

const piece = (text: string): Piece => ({ text, tokens: countTokens(text) });

/** Sections start at headings (outside fenced code); each is a heading plus its paragraphs. */
function sections(text: string, format: DocumentFormat): string[][] {
  const lines = text.split("\n");
  const result: string[][] = [];
  let paragraphs: string[] = [];
  let paragraph: string[] = [];
  let fenced = false;
  const endParagraph = () => {
    const joined = paragraph.join("\n").trim();
    if (joined !== "") paragraphs.push(joined);
    paragraph = [];
  };
  const endSection = () => {
    endParagraph();
    if (paragraphs.length > 0) result.push(paragraphs);
    paragraphs = [];
  };
  for (const line of lines) {
    if (format !== "text" && /^\s{0,3}(```|~~~)/.test(line)) fenced = !fenced;
    if (!fenced && format !== "text" && /^#{1,6}\s+\S/.test(line)) {
      endSection();
      paragraphs.push(line.trim());
      continue;
    }
    if (!fenced && line.trim() === "") endParagraph();
    else paragraph.push(line);
  }
  endSection();
  return result;
}

/** Splits text that is too long on sentence ends, and a sentence that is still too long on tokens. */
function splitLong(text: string, maxTokens: number): Piece[] {
  const sentences = text.match(/[^.!?\n]+(?:[.!?]+|\n|$)\s*/g) ?? [text];
  const out: Piece[] = [];
  for (const sentence of sentences) {
    const p = piece(sentence.trim());
    if (p.tokens === 0) continue;
    if (p.tokens <= maxTokens) {
      out.push(p);
      continue;
    }
    const spans = tokenSpans(p.text);
    for (let start = 0; start < spans.length; start += maxTokens) {
      const first = spans[start] as readonly [number, number];
      const last = spans[Math.min(start + maxTokens, spans.length) - 1] as readonly [number, number];
      out.push(piece(p.text.slice(first[0], last[1])));
    }
  }
  return out;
}

/** The last `overlap` tokens of a chunk's pieces, whole pieces where they fit. */
function tail(pieces: readonly Piece[], overlap: number): Piece[] {
  const kept: Piece[] = [];
  let tokens = 0;
  for (let i = pieces.length - 1; i >= 0 && tokens < overlap; i--) {
    const p = pieces[i] as Piece;
    if (tokens + p.tokens <= overlap) {
      kept.unshift(p);
      tokens += p.tokens;
      continue;
    }
    const spans = tokenSpans(p.text);
    const take = overlap - tokens;
    const from = spans[spans.length - take];
    if (from !== undefined) kept.unshift(piece(p.text.slice(from[0])));
    break;
  }
  return kept;
}

/**
 * Splits on headings first, then paragraphs, then sentences: whole sections share a chunk while they
 * fit, a section that does not fit gets chunks of its own, each starting with the section heading and
 * overlapping the previous one by up to `overlapTokens`.
 */
export class StructuredChunker implements Chunker {
  readonly maxTokens: number;
  readonly overlapTokens: number;

  constructor(options: ChunkerOptions = {}) {
    this.maxTokens = options.maxTokens ?? 512;
    this.overlapTokens = options.overlapTokens ?? 128;
    if (!(this.maxTokens >= 16)) throw new RangeError("maxTokens must be at least 16");
    if (!(this.overlapTokens >= 0 && this.overlapTokens < this.maxTokens / 2))
      throw new RangeError("overlapTokens must be below half of maxTokens");
  }

  chunk(input: string, format: DocumentFormat): Chunk[] {
    const text = (format === "html" ? htmlToText(input) : input).replace(/\r\n?/g, "\n").replace(/^\uFEFF/, "");
    const chunks: string[] = [];
    let open: Piece[] = [];
    let openTokens = 0;
    const flush = () => {
      if (open.length > 0) chunks.push(open.map((p) => p.text).join("\n\n"));
      open = [];
      openTokens = 0;
    };
    for (const section of sections(text, format)) {
      const pieces = section.map(piece);
      const total = pieces.reduce((sum, p) => sum + p.tokens, 0);
      if (openTokens + total <= this.maxTokens) {
        open.push(...pieces);
        openTokens += total;
        continue;
      }
      flush();
      if (total <= this.maxTokens) {
        open = pieces;
        openTokens = total;
        continue;
      }
      this.splitSection(pieces, chunks);
    }
    flush();
    return chunks.map((chunkText, index) => ({ index, text: chunkText, tokens: countTokens(chunkText) }));
  }

  private splitSection(pieces: readonly Piece[], chunks: string[]): void {
    const first = pieces[0] as Piece;
    const heading = /^#{1,6}\s/.test(first.text) && first.tokens < this.maxTokens / 4 ? first : undefined;
    const budget = this.maxTokens - (heading?.tokens ?? 0);
    const body = (heading ? pieces.slice(1) : pieces).flatMap((p) =>
      p.tokens > budget - this.overlapTokens ? splitLong(p.text, budget - this.overlapTokens) : [p],
    );
    let current: Piece[] = [];
    let tokens = 0;
    let fresh = 0;
    const emit = () => chunks.push([...(heading ? [heading] : []), ...current].map((p) => p.text).join("\n\n"));
    for (const p of body) {
      if (tokens + p.tokens > budget && fresh > 0) {
        emit();
        current = tail(current, this.overlapTokens);
        tokens = current.reduce((sum, c) => sum + c.tokens, 0);
        fresh = 0;
      }
      current.push(p);
      tokens += p.tokens;
      fresh++;
    }
    if (fresh > 0) emit();
  }
}
