// A fast reader for the YAML this project writes (src/write/yaml.ts's toYaml: block mappings and
// sequences, plain, double-quoted and literal scalars, `{}` and `[]`), for most hand-written
// Kubernetes manifests (comment lines included) and for specs (flow collections on one line, such as
// `{ name: hf-token, key: token }`). It reads a document as js-yaml's load with YAML 1.2's core schema
// would, and returns undefined for anything outside that subset (comments after a value, anchors,
// tags, flow collections over several lines, folded or multi-line scalars, duplicate keys, odd
// characters…), which js-yaml then reads: the caller's answer, or error, is always js-yaml's. A cold
// `validate` spent most of its reading time in js-yaml's character-by-character parser, and a cold
// `render` much of its spec reading; this one works a line at a time.
import { CORE_SCHEMA } from "js-yaml";

/** Left to js-yaml. */
class Unsupported extends Error {}

/** Characters this reader takes: printable, no tabs or carriage returns, surrogates only in pairs. */
const TAKEN = /^(?:[\n\x20-\x7E\xA0-\uD7FF\uE000-\uFFFD]|[\uD800-\uDBFF][\uDC00-\uDFFF])*$/;
/** A plain scalar's first character may not be an indicator, but for `-` before a non-space. */
const PLAIN_START = /^(?:[^-?:,[\]{}#&*!|>'"%@`\s]|-\S)/;
/** `key:` then the end of the line or a space: the key part of a mapping entry. */
const ENTRY = /^("(?:[^"\\]|\\.)*"|[^-?:,[\]{}#&*!|>'"%@`\s][^#]*?|-[^\s#:?][^#]*?):(?: +|$)/;
const ESCAPES: Readonly<Record<string, string>> = {
  "0": "\0",
  a: "\x07",
  b: "\b",
  t: "\t",
  n: "\n",
  v: "\v",
  f: "\f",
  r: "\r",
  e: "\x1b",
  " ": " ",
  '"': '"',
  "/": "/",
  "\\": "\\",
  N: "\x85",
  _: "\xa0",
  L: "\u2028",
  P: "\u2029",
};
const HEX_ESCAPE = { x: 2, u: 4, U: 8 } as const;

function doubleQuoted(token: string): string {
  if (token.length < 2 || !token.endsWith('"')) throw new Unsupported();
  const body = token.slice(1, -1);
  let result = "";
  for (let i = 0; i < body.length; i++) {
    const char = body[i] as string;
    if (char === '"') throw new Unsupported();
    if (char !== "\\") {
      result += char;
      continue;
    }
    const code = body[++i];
    if (code === undefined) throw new Unsupported();
    const simple = ESCAPES[code];
    if (simple !== undefined) {
      result += simple;
      continue;
    }
    const digits = code in HEX_ESCAPE ? HEX_ESCAPE[code as keyof typeof HEX_ESCAPE] : undefined;
    const hex = digits === undefined ? undefined : body.slice(i + 1, i + 1 + digits);
    if (hex === undefined || !/^[0-9A-Fa-f]+$/.test(hex) || hex.length !== digits) throw new Unsupported();
    result += String.fromCodePoint(Number.parseInt(hex, 16));
    i += digits as number;
  }
  return result;
}

/** A single-quoted scalar (`''` is one quote), with its quotes. */
function singleQuoted(token: string): string {
  if (token.length < 2 || !token.endsWith("'") || /'(?!')/.test(token.slice(1, -1).replace(/''/g, ""))) throw new Unsupported();
  return token.slice(1, -1).replace(/''/g, "'");
}

/** A one-line value: double- or single-quoted, a flow collection (`{…}`, `[…]`), or plain (resolved by the core schema, as js-yaml does). */
function scalar(token: string): unknown {
  if (token.startsWith('"')) return doubleQuoted(token);
  if (token.startsWith("'")) return singleQuoted(token);
  if (token.startsWith("{") || token.startsWith("[")) return Flow.read(token);
  // A comment, a trailing space, or `: ` (an error in a plain scalar) is left to js-yaml.
  if (!PLAIN_START.test(token) || token.includes(" #") || token.includes(": ") || token.endsWith(" ") || token.endsWith(":"))
    throw new Unsupported();
  return CORE_SCHEMA.resolveImplicitScalarTag(token).value;
}

/** A mapping key: quoted, or plain and read as a string (a key the core schema reads as another type is left to js-yaml). */
function key(token: string): string {
  if (token.startsWith('"')) return doubleQuoted(token);
  if (token.startsWith("'")) return singleQuoted(token);
  if (!PLAIN_START.test(token) || token.endsWith(" ") || token.includes(" #") || token.includes(": ") || token === "__proto__")
    throw new Unsupported();
  const resolved = CORE_SCHEMA.resolveImplicitScalarTag(token).value;
  if (typeof resolved !== "string") throw new Unsupported();
  return resolved;
}

/**
 * A flow collection written on one line (`{ name: hf-token, key: token }`, `[a, "b", { c: 1 }]`), as
 * specs write them: nested flow collections, quoted scalars and plain ones (which may hold `:` before
 * a non-space, as URLs do). Left to js-yaml: one over several lines, a comment after it, a trailing
 * comma, an entry with no value, `key: value` pairs in a sequence, and anything else outside that.
 */
class Flow {
  private at = 0;

  private constructor(private readonly text: string) {}

  static read(token: string): unknown {
    const flow = new Flow(token);
    const value = flow.node();
    if (flow.at !== token.length) throw new Unsupported();
    return value;
  }

  private spaces(): void {
    while (this.text[this.at] === " ") this.at++;
  }

  private node(): unknown {
    const first = this.text[this.at];
    if (first === "{") return this.collection("}", {});
    if (first === "[") return this.collection("]", []);
    return scalar(this.token(false));
  }

  /** A mapping's entries or a sequence's items, from the opening bracket to `close`. */
  private collection<T extends Record<string, unknown> | unknown[]>(close: "}" | "]", into: T): T {
    this.at++;
    this.spaces();
    if (this.text[this.at] === close) {
      this.at++;
      return into;
    }
    for (;;) {
      if (Array.isArray(into)) into.push(this.node());
      else {
        const name = key(this.token(true));
        // The key's `: `; a key written `"a":b` (no space) is left to js-yaml.
        if (this.text[this.at] !== ":" || this.text[this.at + 1] !== " ") throw new Unsupported();
        this.at += 2;
        this.spaces();
        if (Object.prototype.hasOwnProperty.call(into, name)) throw new Unsupported();
        (into as Record<string, unknown>)[name] = this.node();
      }
      this.spaces();
      const separator = this.text[this.at++];
      if (separator === close) return into;
      if (separator !== ",") throw new Unsupported();
      this.spaces();
      if (this.text[this.at] === close) throw new Unsupported();
    }
  }

  /**
   * A scalar's text: quoted, to its closing quote; plain, to the next `,`, bracket or (a key) `: `,
   * without trailing spaces. A plain value that meets `: ` (or `:` before a bracket, a comma or the
   * end) would be a pair, and is left to js-yaml.
   */
  private token(isKey: boolean): string {
    const start = this.at;
    const quote = this.text[start];
    if (quote === '"' || quote === "'") {
      for (let i = start + 1; i < this.text.length; i++) {
        const char = this.text[i];
        if (quote === '"' && char === "\\") i++;
        else if (char === quote) {
          if (quote === "'" && this.text[i + 1] === "'") i++;
          else {
            this.at = i + 1;
            return this.text.slice(start, this.at);
          }
        }
      }
      throw new Unsupported();
    }
    let end = start;
    for (; end < this.text.length; end++) {
      const char = this.text[end] as string;
      if (char === "," || char === "[" || char === "]" || char === "{" || char === "}") break;
      if (char === ":") {
        const after = this.text[end + 1];
        if (after === undefined || after === " " || after === "," || after === "]" || after === "}") {
          if (isKey && after === " ") break;
          throw new Unsupported();
        }
      }
    }
    if (isKey && this.text[end] !== ":") throw new Unsupported();
    this.at = end;
    return this.text.slice(start, end).trimEnd();
  }
}

class Reader {
  private index = 0;
  /** Each line's indentation; -1 for a blank line. A literal block reads its lines by these. */
  private readonly indents: number[];
  /** The same, and -1 for a comment line too: what the block structure is read by (a comment is no node). */
  private readonly levels: number[];

  constructor(
    private readonly lines: string[],
    /** Whether the text ends with a line break (a literal block that runs to the end needs it to be read here). */
    private readonly finalBreak: boolean,
  ) {
    this.indents = lines.map((line) => {
      const indent = line.length - line.trimStart().length;
      return indent === line.length ? -1 : indent;
    });
    this.levels = this.indents.map((indent, i) => (indent !== -1 && (lines[i] as string)[indent] === "#" ? -1 : indent));
  }

  /** The next line that is neither blank nor a comment (or lines.length). */
  private next(): number {
    while (this.index < this.lines.length && this.levels[this.index] === -1) this.index++;
    return this.index;
  }

  done(): boolean {
    return this.next() >= this.lines.length;
  }

  /** The node that starts on the next non-blank line, if it is indented at least `min`; null where there is none. */
  nested(min: number, sequenceAt?: number): unknown {
    const at = this.next();
    if (at >= this.lines.length) return null;
    const indent = this.levels[at] as number;
    const text = (this.lines[at] as string).slice(indent);
    // A sequence may sit at its key's own indentation ("key:\n- item").
    if (indent === sequenceAt && isItem(text)) return this.sequence(indent);
    if (indent < min) return null;
    return this.block(indent);
  }

  /** The block collection at the next line, which is indented exactly `indent`. */
  block(indent: number): unknown {
    const at = this.next();
    const text = (this.lines[at] as string).slice(indent);
    if (text.startsWith("{") || text.startsWith("[")) {
      // A flow collection on a line of its own (a whole document, or a value under its key).
      this.index++;
      return this.value(text, indent - 1);
    }
    return isItem(text) ? this.sequence(indent) : this.mapping(indent);
  }

  private sequence(indent: number): unknown[] {
    const items: unknown[] = [];
    while (!this.done() && this.levels[this.index] === indent) {
      const text = (this.lines[this.index] as string).slice(indent);
      if (!isItem(text)) break;
      if (text === "-") {
        this.index++;
        items.push(this.nested(indent + 1));
        continue;
      }
      const rest = text.slice(2);
      if (rest.startsWith(" ")) throw new Unsupported();
      // "- key: value" or "- - item": a collection that starts on the dash's line, two columns in.
      if (isItem(rest) || ENTRY.test(rest)) {
        this.lines[this.index] = " ".repeat(indent + 2) + rest;
        this.indents[this.index] = indent + 2;
        this.levels[this.index] = indent + 2;
        items.push(this.block(indent + 2));
        continue;
      }
      this.index++;
      items.push(this.value(rest, indent));
    }
    this.expectOutdent(indent);
    return items;
  }

  private mapping(indent: number): Record<string, unknown> {
    const object: Record<string, unknown> = {};
    while (!this.done() && this.levels[this.index] === indent) {
      const text = (this.lines[this.index] as string).slice(indent);
      const entry = ENTRY.exec(text);
      if (entry === null) throw new Unsupported();
      const name = key(entry[1] as string);
      if (Object.prototype.hasOwnProperty.call(object, name)) throw new Unsupported();
      const rest = text.slice(entry[0].length);
      this.index++;
      object[name] = rest === "" ? this.nested(indent + 1, indent) : this.value(rest, indent);
    }
    this.expectOutdent(indent);
    return object;
  }

  /** After a collection at `indent`, the next line must be outdented (a deeper one would be a continuation this reader does not take). */
  private expectOutdent(indent: number): void {
    if (!this.done() && (this.levels[this.index] as number) > indent) throw new Unsupported();
  }

  /** A value written on its key's or dash's line; `parent` is that line's indentation. */
  private value(token: string, parent: number): unknown {
    if (token.startsWith("|")) return this.literal(token, parent);
    const value = scalar(token);
    // A more indented line after a one-line scalar would continue it (a multi-line plain scalar).
    if (!this.done() && (this.levels[this.index] as number) > parent) throw new Unsupported();
    return value;
  }

  /** A literal block scalar: `|`, an optional indentation indicator and chomping, then its lines. */
  private literal(header: string, parent: number): string {
    const match = /^\|([1-9])?([+-])?$/.exec(header) ?? /^\|([+-])?([1-9])?$/.exec(header);
    if (match === null) throw new Unsupported();
    const digit = [match[1], match[2]].find((part) => part !== undefined && /[1-9]/.test(part));
    const chomping = [match[1], match[2]].find((part) => part === "+" || part === "-") ?? "";
    let indent = digit === undefined ? undefined : parent + Number(digit);
    const lines: string[] = [];
    while (this.index < this.lines.length) {
      const line = this.lines[this.index] as string;
      const lineIndent = this.indents[this.index] as number;
      if (lineIndent === -1) {
        // Blank or spaces only: an empty line, or content where it has more spaces than the block's indentation.
        if (indent !== undefined && line.length > indent) lines.push(line.slice(indent));
        else {
          if (indent === undefined && line.length > parent + 1) throw new Unsupported();
          lines.push("");
        }
        this.index++;
        continue;
      }
      if (indent === undefined) {
        if (lineIndent <= parent) break;
        indent = lineIndent;
      }
      if (lineIndent < indent) break;
      lines.push(line.slice(indent));
      this.index++;
    }
    if (this.index >= this.lines.length && !this.finalBreak) throw new Unsupported();
    // Trailing empty lines belong to the chomping, not the content.
    let end = lines.length;
    while (end > 0 && lines[end - 1] === "") end--;
    const trailing = lines.length - end;
    // Blank lines past the block went back to the document (they end it); keep them out of "keep".
    const content = lines.slice(0, end).join("\n");
    if (end === 0) return chomping === "+" ? "\n".repeat(trailing) : "";
    if (chomping === "-") return content;
    if (chomping === "+") return `${content}\n${"\n".repeat(trailing)}`;
    return `${content}\n`;
  }
}

function isItem(text: string): boolean {
  return text === "-" || text.startsWith("- ");
}

/** One document as js-yaml's load (core schema) reads it, or undefined where that is left to js-yaml. */
export function readYaml(text: string): { value: unknown } | undefined {
  if (!TAKEN.test(text)) return undefined;
  const lines = text.split("\n");
  // The last line break ends the last line; it does not start another.
  const finalBreak = text.endsWith("\n");
  if (finalBreak) lines.pop();
  try {
    // Document markers and directives (a literal block's lines are indented, so never one of these).
    // A comment line is refused where the reader meets it: no key or item starts with `#`.
    for (const line of lines) if (line.startsWith("---") || line.startsWith("...") || line.startsWith("%")) throw new Unsupported();
    const reader = new Reader(lines, finalBreak);
    if (reader.done()) return undefined;
    const value = reader.nested(0);
    if (!reader.done()) throw new Unsupported();
    return { value };
  } catch (error) {
    if (error instanceof Unsupported) return undefined;
    throw error;
  }
}

/** Every document of a stream (`---` lines between them) as js-yaml's loadAll reads them, or undefined where that is left to js-yaml. */
export function readYamlStream(text: string): unknown[] | undefined {
  const parts = text.split(/^---\n/m);
  if (parts[0] === "" && text.startsWith("---\n")) parts.shift();
  const values: unknown[] = [];
  for (const part of parts) {
    const read = readYaml(part);
    if (read === undefined) return undefined;
    values.push(read.value);
  }
  return values;
}
