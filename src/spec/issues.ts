import type { z } from "zod";
import { InputError } from "../errors.ts";
import type { Path } from "./overlay.ts";

/** One problem in a spec file, located by file:line:col and by its path in the document. */
export interface SpecIssue {
  readonly file: string;
  readonly line: number;
  readonly column: number;
  readonly path: Path;
  readonly message: string;
  readonly fix: string;
}

export function formatPath(path: Path): string {
  let out = "";
  for (const part of path) {
    out += typeof part === "number" ? `[${part}]` : out === "" ? part : `.${part}`;
  }
  return out === "" ? "(document)" : out;
}

export function formatIssue(issue: SpecIssue): string {
  return `${issue.file}:${issue.line}:${issue.column}: ${formatPath(issue.path)}: ${issue.message}\n  fix: ${issue.fix}`;
}

/** A spec that cannot be used. Lists every problem found, not just the first. */
export class SpecError extends InputError {
  constructor(readonly issues: readonly SpecIssue[]) {
    super(
      `${issues.length === 1 ? "the spec has a problem" : `the spec has ${issues.length} problems`}:\n${issues.map(formatIssue).join("\n")}`,
    );
  }
}

function levenshtein(a: string, b: string): number {
  const row = Array.from({ length: b.length + 1 }, (_, i) => i);
  for (let i = 1; i <= a.length; i++) {
    let previous = row[0] ?? 0;
    row[0] = i;
    for (let j = 1; j <= b.length; j++) {
      const current = row[j] ?? 0;
      row[j] = Math.min(current + 1, (row[j - 1] ?? 0) + 1, previous + (a[i - 1] === b[j - 1] ? 0 : 1));
      previous = current;
    }
  }
  return row[b.length] ?? 0;
}

export function closest(word: string, candidates: readonly string[]): string | undefined {
  let best: string | undefined;
  let bestDistance = Infinity;
  for (const candidate of candidates) {
    const distance = levenshtein(word.toLowerCase(), candidate.toLowerCase());
    if (distance < bestDistance) {
      best = candidate;
      bestDistance = distance;
    }
  }
  return bestDistance <= Math.max(2, Math.floor(word.length / 3)) ? best : undefined;
}

interface ZodDef {
  readonly type: string;
  readonly shape?: Record<string, { readonly _zod: { readonly def: ZodDef } }>;
  readonly innerType?: { readonly _zod: { readonly def: ZodDef } };
  readonly element?: { readonly _zod: { readonly def: ZodDef } };
  readonly valueType?: { readonly _zod: { readonly def: ZodDef } };
  readonly options?: readonly { readonly _zod: { readonly def: ZodDef } }[];
  readonly in?: { readonly _zod: { readonly def: ZodDef } };
  readonly values?: readonly unknown[];
}

function defOf(schema: z.ZodType): ZodDef {
  return (schema as unknown as { _zod: { def: ZodDef } })._zod.def;
}

function unwrap(def: ZodDef): ZodDef[] {
  if (def.innerType) return unwrap(def.innerType._zod.def);
  if (def.in) return unwrap(def.in._zod.def);
  if (def.options) return def.options.flatMap((option) => unwrap(option._zod.def));
  return [def];
}

/** Every schema that may stand at `path`, through defaults, optionals and union branches. */
function defsAt(schema: z.ZodType, path: Path): ZodDef[] {
  let defs: ZodDef[] = [defOf(schema)];
  for (const part of path) {
    defs = defs.flatMap(unwrap).flatMap((def) => {
      if (typeof part === "number") return def.element ? [def.element._zod.def] : [];
      const child = def.shape?.[part] ?? def.valueType;
      return child ? [child._zod.def] : [];
    });
  }
  return defs.flatMap(unwrap);
}

/** The keys an object schema allows at `path` (every union branch's keys), for "did you mean" hints. */
export function keysAt(schema: z.ZodType, path: Path): string[] {
  return [...new Set(defsAt(schema, path).flatMap((def) => Object.keys(def.shape ?? {})))];
}

/** The literal values allowed at `path` (a union's discriminator, for example). */
export function literalsAt(schema: z.ZodType, path: Path): unknown[] {
  return [
    ...new Set(defsAt(schema, path).flatMap((def) => (def.type === "literal" || def.type === "enum" ? [...(def.values ?? [])] : []))),
  ];
}

function describe(value: unknown): string {
  if (value === undefined) return "nothing";
  if (value === null) return "null";
  if (Array.isArray(value)) return "a list";
  if (typeof value === "object") return "a mapping";
  // A URL's user info (a password) is not echoed into terminals and CI logs: the line number says where.
  return `${typeof value} ${JSON.stringify(typeof value === "string" ? value.replace(/([a-z][a-z0-9+.-]*:\/\/)[^/?#\s]*@/gi, "$1…@") : value)}`;
}

/** How the user wrote the scalar at a document path (`2.0` for a revision YAML reads as the number 2), when known. */
export type WrittenAt = (documentPath: Path) => string | undefined;

export interface Explained {
  readonly message: string;
  readonly fix: string;
  readonly path: Path;
}

/**
 * The branch of a union the input chose: the only one whose keys it uses (no branch's object refused
 * a key of the input). A source written as `{huggingFace: {…}}` is then checked as a Hugging Face
 * source, and its error named inside it, not as "does not match any accepted form".
 */
function chosenBranch(issue: z.core.$ZodIssueInvalidUnion, input: unknown): readonly z.core.$ZodIssue[] | undefined {
  const value = valueAt(
    input,
    issue.path.filter((p): p is string | number => typeof p !== "symbol"),
  );
  if (typeof value !== "object" || value === null || Array.isArray(value) || Object.keys(value).length === 0) return undefined;
  const fitting = issue.errors.filter((branch) => !branch.some((inner) => inner.code === "unrecognized_keys" && inner.path.length === 0));
  return fitting.length === 1 ? fitting[0] : undefined;
}

/**
 * Every message and fix for one zod issue, in the spec's words: a union whose branch the input chose
 * by its key gives that branch's issues, each at its own path.
 */
export function explainAll(
  issue: z.core.$ZodIssue,
  schema: z.ZodType,
  input: unknown,
  shown: (path: Path) => Path = (path) => path,
  written?: WrittenAt,
): Explained[] {
  if (issue.code === "invalid_union") {
    const branch = chosenBranch(issue, input);
    if (branch !== undefined) {
      return branch.flatMap((inner) => explainAll({ ...inner, path: [...issue.path, ...inner.path] }, schema, input, shown, written));
    }
  }
  return [explain(issue, schema, input, shown, written)];
}

/**
 * A message and a fix for one zod issue, in the spec's words. `shown` maps a path in `input` to the
 * one the user sees (the spec's own path in the file, or the overlay's), for the fix to name it;
 * `written` gives a scalar as the file writes it, for a fix that quotes it.
 */
export function explain(
  issue: z.core.$ZodIssue,
  schema: z.ZodType,
  input: unknown,
  shown: (path: Path) => Path = (path) => path,
  written?: WrittenAt,
): Explained {
  const path = issue.path.filter((p): p is string | number => typeof p !== "symbol");
  const named = (at: Path) => formatPath(shown(at));
  switch (issue.code) {
    case "unrecognized_keys": {
      const known = keysAt(schema, path);
      const key = issue.keys[0] ?? "";
      const guess = closest(key, known);
      return {
        path: [...path, key],
        message: `unknown key ${JSON.stringify(key)}${
          issue.keys.length > 1
            ? ` (and ${issue.keys
                .slice(1)
                .map((k) => JSON.stringify(k))
                .join(", ")})`
            : ""
        }`,
        fix:
          guess === key
            ? `${JSON.stringify(key)} belongs to another form of this object (check its kind/mode); remove it here`
            : guess
              ? `did you mean ${JSON.stringify(guess)}?`
              : `remove it; allowed keys here: ${known.join(", ")}`,
      };
    }
    case "invalid_type": {
      const received = valueAt(input, path);
      if (received === undefined) {
        return { path, message: `is required (expected ${issue.expected})`, fix: `add ${named(path)}` };
      }
      if (issue.expected === "string" && (typeof received === "number" || typeof received === "boolean")) {
        // YAML reads 2.0, 1e3, an all-digit commit or true as a number or a boolean: quoted, it stays as written.
        const text = written?.(shown(path)) ?? String(received);
        const key = path.at(-1);
        return {
          path,
          message: `expected a string, got the ${typeof received} ${String(received)}`,
          fix: `quote it: ${typeof key === "string" ? `${key}: ` : ""}${JSON.stringify(text)}`,
        };
      }
      return {
        path,
        message: `expected ${issue.expected}, got ${describe(received)}`,
        fix: `set ${named(path)} to ${/^[aeiou]/.test(issue.expected) ? "an" : "a"} ${issue.expected}`,
      };
    }
    case "invalid_value":
      return {
        path,
        message: `${describe(valueAt(input, path))} is not allowed`,
        fix: `use one of: ${issue.values.map((v) => JSON.stringify(v)).join(", ")}`,
      };
    case "invalid_union": {
      const literals = literalsAt(schema, path);
      if (literals.length > 0) {
        return {
          path,
          message: `${describe(valueAt(input, path))} is not allowed`,
          fix: `use one of: ${literals.map((v) => JSON.stringify(v)).join(", ")}`,
        };
      }
      const known = keysAt(schema, path);
      const forms =
        known.length > 0 ? `use exactly one of the keys: ${known.join(", ")}` : "see schema/platform.schema.json for the accepted forms";
      if (valueAt(input, path) === undefined) return { path, message: "is required", fix: `add ${named(path)}: ${forms}` };
      return { path, message: "does not match any accepted form", fix: forms };
    }
    case "invalid_key": {
      // A record key its schema refuses (a label key): say what is wrong with the key itself.
      const key = String(path.at(-1) ?? issue.input ?? "");
      const why = issue.issues.map((inner) => inner.message).join("; ");
      return {
        path,
        message: `the key ${JSON.stringify(key)} ${why}`,
        fix: `rename or remove the key ${JSON.stringify(key)} under ${named(path.slice(0, -1))}`,
      };
    }
    case "too_big":
      return {
        path,
        message: issue.message.replace(/^Too big: /, "too big: "),
        fix: `use a value ${issue.inclusive === false ? "<" : "≤"} ${String(issue.maximum)}`,
      };
    case "too_small":
      return {
        path,
        message: issue.message.replace(/^Too small: /, "too small: "),
        fix: `use a value ${issue.inclusive === false ? ">" : "≥"} ${String(issue.minimum)}`,
      };
    default:
      // Our messages say what the value must be ("must be a DNS-1123 label"): the fix repeats that as it is.
      return {
        path,
        message: `${describe(valueAt(input, path))} ${issue.message}`,
        fix: /^must /.test(issue.message) ? `change ${named(path)}: it ${issue.message}` : `change ${named(path)} (${issue.message})`,
      };
  }
}

export function valueAt(input: unknown, path: Path): unknown {
  let current: unknown = input;
  for (const part of path) {
    if (typeof current !== "object" || current === null) return undefined;
    current = (current as Record<string | number, unknown>)[part];
  }
  return current;
}
