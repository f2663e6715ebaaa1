import {
  boolCoreTag,
  CORE_SCHEMA,
  defineScalarTag,
  dump,
  floatCoreTag,
  intCoreTag,
  load,
  loadAll,
  NOT_RESOLVED,
  nullCoreTag,
  strTag,
  YAML11_SCHEMA,
} from "js-yaml";
import type { KubeObject } from "../render/context.ts";
import { readYaml, readYamlStream } from "./yaml-read.ts";

/** go-yaml v2's float pattern (Kubernetes' YAML): it also reads `1e3`, which YAML 1.1 leaves a string. */
const GO_YAML_FLOAT = /^[-+]?(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)?$/;
const CORE = [intCoreTag, floatCoreTag, boolCoreTag, nullCoreTag];

/**
 * Strings that YAML 1.2's core schema or go-yaml would read as something else, added to YAML 1.1's
 * own (`yes`, `off`, `0755`, `1_000`, `12:30`, …), so that the dumper quotes all of them: whoever
 * reads the output (kubectl, Kubernetes' go-yaml, a 1.2 parser) reads back the same strings.
 */
const NOT_A_STRING = defineScalarTag<string>("tag:diatonic.ai,2026:not-a-string", {
  implicit: true,
  implicitFirstChars: ["", "0", "1", "2", "3", "4", "5", "6", "7", "8", "9", "+", "-", ".", "~", "t", "T", "f", "F", "n", "N"],
  resolve: (source) =>
    GO_YAML_FLOAT.test(source) || CORE.some((tag) => tag.resolve(source, false, tag.tagName) !== NOT_RESOLVED) ? source : NOT_RESOLVED,
  identify: () => false,
  represent: (data: string) => data,
});
const SCHEMA = YAML11_SCHEMA.withTags(NOT_A_STRING);

const DUMP_OPTIONS = { schema: SCHEMA, lineWidth: -1, noRefs: true, quoteStyle: "double" } as const;

/**
 * One YAML document, deterministic: key order as built, no line folding, strings quoted wherever a
 * YAML 1.1 or 1.2 reader would take them for a boolean, a number, a null or a date: js-yaml's dump
 * with those options, byte for byte. The document's structure is written here (see emitDocument),
 * which is several times faster than js-yaml's AST and presenter, and was most of a cold
 * `render --out`'s time; anything emitDocument does not handle goes to js-yaml whole.
 */
export function toYaml(value: unknown): string {
  return emitDocument(value) ?? toYamlByJsYaml(value);
}

/** js-yaml's dump with toYaml's options: the reference toYaml matches, and its fallback. */
export function toYamlByJsYaml(value: unknown): string {
  return dump(value, DUMP_OPTIONS);
}

// ---- emitDocument: the block layout js-yaml's presenter writes (indent 2, sequences indented under
// their key, the first entry of a sequence item on the dash's line), for plain objects, arrays and
// scalars. Each scalar is written as js-yaml writes it:
// - a one-line string that is certainly plain (the common case) as itself: its characters are a subset
//   of YAML's plain scalars in block context, and it resolves to a string under the schema;
// - any other one-line string, number, boolean or null as js-yaml writes it in a one-entry mapping
//   (the style of a one-line scalar does not depend on where it sits), cached;
// - a multi-line string as a literal block (`|`), or double-quoted where js-yaml would.

/** Something emitDocument leaves to js-yaml: the whole document is then dumped by it. */
class Unsupported extends Error {}

/** Certainly plain: a safe first character, then safe characters, `:` and single spaces only before another safe one. */
const CERTAINLY_PLAIN = /^[A-Za-z0-9_/.(](?:[A-Za-z0-9_/.=+@,()'"-]|[: ](?=[A-Za-z0-9_/.=+@,()'"-]))*$/;
const STRING_TAG = strTag.tagName;
const valueScalars = new Map<string, string>();
const keyScalars = new Map<string, string>();
const otherScalars = new Map<string, string>();
/** Entries each scalar cache keeps before it starts again (strings repeat within and across renders). */
const CACHE_LIMIT = 50_000;

function cached(cache: Map<string, string>, key: string, make: () => string): string {
  let text = cache.get(key);
  if (text === undefined) {
    if (cache.size >= CACHE_LIMIT) cache.clear();
    text = make();
    cache.set(key, text);
  }
  return text;
}

function certainlyPlain(value: string): boolean {
  return CERTAINLY_PLAIN.test(value) && SCHEMA.resolveImplicitScalarTag(value).tag.tagName === STRING_TAG;
}

/** A one-line scalar as js-yaml writes a mapping's value. */
function scalarByJsYaml(value: unknown): string {
  const text = dump({ k: value }, DUMP_OPTIONS);
  if (!text.startsWith("k: ") || text.indexOf("\n") !== text.length - 1) throw new Unsupported();
  return text.slice(3, -1);
}

/** A mapping key as js-yaml writes it (a key js-yaml would write as an explicit `? ` entry is left to it). */
function keyText(key: string): string {
  if (certainlyPlain(key)) return key;
  if (key.includes("\n") || key.length > 1024) throw new Unsupported();
  return cached(keyScalars, key, () => {
    const text = dump({ [key]: 0 }, DUMP_OPTIONS);
    if (text.startsWith("?") || !text.endsWith(": 0\n")) throw new Unsupported();
    return text.slice(0, -4);
  });
}

/** Characters that make js-yaml double-quote a string (its "invisibles"). */
const INVISIBLE = /[\t\x7F-\xA0\u2028\u2029\uFEFF\uFFFE\uFFFF]/;
/** What a literal block may hold: printable characters and line feeds (no CR, no lone surrogates). */
const BLOCK_CONTENT = /^(?:[\n\x20-\x7E\xA0-\uD7FF\uE000-\uFFFD]|[\uD800-\uDBFF][\uDC00-\uDFFF])*$/;

interface EmitState {
  /** Whether the last scalar written leaves the document open-ended (a kept final line break): js-yaml then ends it with `...`. */
  openEnded: boolean;
}

/** A string as a mapping value or sequence item at `level`. */
function stringText(value: string, level: number, state: EmitState): string {
  state.openEnded = false;
  if (!value.includes("\n")) {
    if (certainlyPlain(value)) return value;
    return cached(valueScalars, value, () => scalarByJsYaml(value));
  }
  if (INVISIBLE.test(value) || /^\s+$/.test(value) || !BLOCK_CONTENT.test(value))
    return cached(valueScalars, value, () => scalarByJsYaml(value));
  // A literal block: its content indented one level past its parent, an indentation indicator where
  // the content starts with a space, and the chomping that keeps the final line breaks exactly.
  const content = 2 * Math.max(1, level);
  const parent = 2 * (level - 1);
  const indicator = /^\n* /.test(value) ? String(content - parent) : "";
  const endsWithBreak = value.endsWith("\n");
  const chomping = endsWithBreak ? (value === "\n" || value.endsWith("\n\n") ? "+" : "") : "-";
  const pad = " ".repeat(content);
  let body = "";
  let position = 0;
  while (position < value.length) {
    const next = value.indexOf("\n", position);
    const line = next === -1 ? value.slice(position) : value.slice(position, next + 1);
    position = next === -1 ? value.length : next + 1;
    if (line !== "\n") body += pad;
    body += line;
  }
  if (body.endsWith("\n")) body = body.slice(0, -1);
  state.openEnded = value === "\n" || value.endsWith("\n\n");
  return `|${indicator}${chomping}\n${body}`;
}

function isPlainObject(value: object): value is Record<string, unknown> {
  const prototype: unknown = Object.getPrototypeOf(value);
  return prototype === Object.prototype || prototype === null;
}

/** A node at `level`; `compact`: its first line follows what is already written (a sequence's dash, the document's start). */
function nodeText(value: unknown, level: number, compact: boolean, state: EmitState): string {
  if (typeof value === "string") return stringText(value, level, state);
  if (value === null || typeof value === "number" || typeof value === "boolean") {
    state.openEnded = false;
    const key = value === null ? "null" : `${typeof value}:${Object.is(value, -0) ? "-0" : String(value)}`;
    return cached(otherScalars, key, () => scalarByJsYaml(value));
  }
  if (typeof value !== "object") throw new Unsupported();
  const indent = `\n${" ".repeat(2 * level)}`;
  if (Array.isArray(value)) {
    if (value.length === 0) {
      state.openEnded = false;
      return "[]";
    }
    let result = "";
    for (const item of value as unknown[]) {
      // Written compact, an item never starts with a line break: its first line follows the dash.
      if (!compact || result !== "") result += indent;
      result += `- ${nodeText(item === undefined ? null : item, level + 1, true, state)}`;
    }
    return result;
  }
  if (!isPlainObject(value)) throw new Unsupported();
  let result = "";
  for (const key in value) {
    const item = value[key];
    if (item === undefined) continue;
    if (!compact || result !== "") result += indent;
    result += keyText(key);
    const text = nodeText(item, level + 1, false, state);
    // A non-empty collection starts on its own line; anything else follows the colon.
    result += text.startsWith("\n") ? ":" : ": ";
    result += text;
  }
  if (result === "") {
    state.openEnded = false;
    return "{}";
  }
  return result;
}

/** The document as js-yaml's dump writes it with toYaml's options, or undefined where it is left to js-yaml. */
export function emitDocument(value: unknown): string | undefined {
  if (value === null || typeof value !== "object") return undefined;
  const state: EmitState = { openEnded: false };
  try {
    const text = nodeText(value, 0, true, state);
    return `${text}\n${state.openEnded ? "...\n" : ""}`;
  } catch (error) {
    if (error instanceof Unsupported) return undefined;
    throw error;
  }
}

/** A multi-document YAML stream, `---` between documents. */
export function toYamlStream(objects: readonly KubeObject[]): string {
  return objects.map((object) => toYaml(object)).join("---\n");
}

/**
 * One YAML document as YAML 1.2's core schema reads it (`n` stays a string), as Kustomize reads
 * resources and the `yaml` package reads by default: js-yaml's load, through a line-based reader for
 * the YAML toYaml writes (./yaml-read.ts), which leaves anything else to js-yaml. Throws on bad YAML.
 */
export function fromYaml(text: string): unknown {
  const read = readYaml(text);
  return read !== undefined ? read.value : load(text, { schema: CORE_SCHEMA });
}

/** Every document of a YAML stream, read as fromYaml reads one. */
export function fromYamlStream(text: string): unknown[] {
  return readYamlStream(text) ?? loadAll(text, { schema: CORE_SCHEMA });
}
