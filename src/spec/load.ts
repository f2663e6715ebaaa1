import { readFileSync } from "node:fs";
import { join } from "node:path";
import type { Document, LineCounter, Node } from "yaml";
import { InputError } from "../errors.ts";
import { PACKAGE_ROOT, typablePath } from "../paths.ts";
import { fromYaml } from "../write/yaml.ts";
import { explainAll, formatPath, SpecError, type SpecIssue, type WrittenAt } from "./issues.ts";
import { applyOverlay, originOf, pathKey, type Merged, type Path } from "./overlay.ts";
import { overlayAdapterIssues } from "./overlay-adapters.ts";
import { checkPlatform } from "./rules.ts";
import { ONCE, PlatformDocument, PlatformSpec, type Platform } from "./schema.ts";
import { yamlPackage } from "../yaml-package.ts";

export interface LoadPlatformOptions {
  /** Path of platform.yaml. */
  readonly file: string;
  /** Environment overlay to apply (a key of `environments`); `null` resolves the spec without overlays. */
  readonly environment: string | null;
  /** The file's text, when already read (tests, stdin). @default read from `file` */
  readonly text?: string;
  /** Directory the command runs in. @default process.cwd() */
  readonly cwd?: string;
  /** The file as the user named it (`--spec` as typed), for messages. @default the path from `cwd`, or absolute outside it */
  readonly shown?: string;
  /** LoRA files on this machine are allowed (`diatonic dev`). @default false */
  readonly localPaths?: boolean;
}

/** A spec rule's warning, placed in the file (an overlay's value at the overlay's line). */
export interface SpecWarning {
  /** `file:line:column`, the file as the user named it. */
  readonly at: string;
  /** Where the value is written, e.g. `spec.model.source.huggingFace.revision` or `environments.local.gateway.auth`. */
  readonly path: string;
  readonly message: string;
  readonly fix: string;
}

/** How render prints a spec warning: `file:line:col: path: message (fix)`. */
export function formatSpecWarning(warning: SpecWarning): string {
  return `${warning.at}: ${warning.path}: ${warning.message} (${warning.fix})`;
}

export interface LoadedPlatform extends Platform {
  /** Things that work but are probably not what the author meant. */
  readonly warnings: readonly SpecWarning[];
  readonly file: string;
  /** Every environment the document declares. */
  readonly environments: readonly string[];
}

interface Position {
  readonly line: number;
  readonly column: number;
}

/** Where a key or list item starts, and a scalar value as the file writes it (`2.0`, which YAML reads as 2). */
interface Placed extends Position {
  readonly written?: string;
}

/** Document path key → position of that key (for map entries) or item (for list entries). */
function indexPositions(root: Node | null, counter: LineCounter, text: string): Map<string, Placed> {
  const { isMap, isPair, isScalar, isSeq } = yamlPackage();
  const positions = new Map<string, Placed>();
  const at = (offset: number | undefined, value: unknown): Placed => {
    const { line, col } = counter.linePos(offset ?? 0);
    const range = isScalar(value) ? value.range : undefined;
    return range ? { line, column: col, written: text.slice(range[0], range[1]) } : { line, column: col };
  };
  const walk = (node: unknown, path: Path): void => {
    if (isMap(node)) {
      for (const pair of node.items) {
        if (!isPair(pair)) continue;
        const key = isScalar(pair.key) ? String(pair.key.value) : String(pair.key);
        const child = [...path, key];
        const keyNode = pair.key as Node | null;
        positions.set(pathKey(child), at(keyNode?.range?.[0], pair.value));
        walk(pair.value, child);
      }
    } else if (isSeq(node)) {
      node.items.forEach((item, index) => {
        const child = [...path, index];
        positions.set(pathKey(child), at((item as Node | null)?.range?.[0], item));
        walk(item, child);
      });
    }
  };
  positions.set(pathKey([]), { line: 1, column: 1 });
  walk(root, []);
  return positions;
}

/** Document path key → position, indexed on first use (only a message needs one). */
type Positions = () => Map<string, Placed>;

function positionOf(positions: Positions, path: Path): Position {
  const index = positions();
  for (let length = path.length; length >= 0; length--) {
    const found = index.get(pathKey(path.slice(0, length)));
    if (found) return { line: found.line, column: found.column };
  }
  return { line: 1, column: 1 };
}

/** The scalar at a document path as the file writes it. */
function writtenAt(positions: Positions): WrittenAt {
  return (path) => positions().get(pathKey(path))?.written;
}

/** The lab example shipped with diatonic (what `quickstart` renders and `dev` runs without a spec). */
export const BUNDLED_EXAMPLE = join(PACKAGE_ROOT, "examples", "lab", "platform.yaml");

/** Reads platform.yaml; a missing or unreadable file is the user's input error, with the fix. */
export function readSpec(file: string): string {
  try {
    return readFileSync(file, "utf8");
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    if (code === "ENOENT") {
      throw new InputError(
        `spec file ${file} does not exist`,
        `pass --spec FILE, or start from the bundled example: cp ${BUNDLED_EXAMPLE} ./platform.yaml`,
      );
    }
    throw new InputError(`cannot read spec file ${file}: ${(error as Error).message}`, "check the path and its permissions");
  }
}

/** A spec file read and parsed once, before any environment is resolved. */
interface ParsedSpec {
  readonly shown: string;
  readonly positions: Positions;
  readonly document: ReturnType<typeof PlatformDocument.parse>;
}

function issueAt(parsed: Pick<ParsedSpec, "shown" | "positions">, path: Path, message: string, fix: string): SpecIssue {
  return { file: parsed.shown, ...positionOf(parsed.positions, path), path, message, fix };
}

/** The `yaml` package's reading of the spec: the document, its errors and a line counter for positions. */
function parseWithPositions(text: string): { doc: Document.Parsed; counter: LineCounter } {
  const { LineCounter, parseDocument } = yamlPackage();
  const counter = new LineCounter();
  return { doc: parseDocument(text, { lineCounter: counter, prettyErrors: false, uniqueKeys: true }), counter };
}

/** Anchors (`&name`) anywhere a node may start: such a spec takes the `yaml` package's path, which limits alias expansion. */
const ANCHOR = /(?:^|[\s[{,:?-])&\S/m;

/**
 * The spec's value, read the fast way: js-yaml reads a spec in about a fifth of the `yaml` package's
 * time, which matters to every cold `render`, `validate` and `plan`. Both read YAML 1.2's core schema
 * (`n` stays a string, duplicate keys are errors). Undefined where the `yaml` package must decide:
 * js-yaml refused the text (the `yaml` package then says where, or reads what js-yaml would not), or
 * the text has anchors (the `yaml` package caps alias expansion).
 */
function quickRead(text: string): { value: unknown } | undefined {
  if (ANCHOR.test(text)) return undefined;
  try {
    return { value: fromYaml(text) };
  } catch {
    return undefined;
  }
}

function parseSpec(options: Omit<LoadPlatformOptions, "environment">): ParsedSpec {
  const cwd = options.cwd ?? process.cwd();
  const shown = options.shown ?? typablePath(cwd, options.file);
  const text = options.text ?? readSpec(options.file);
  const quick = quickRead(text);
  let index: Map<string, Placed> | undefined;
  const indexed = (doc: Document.Parsed, counter: LineCounter) => (index = indexPositions(doc.contents, counter, text));
  const positions: Positions = () => {
    if (index !== undefined) return index;
    const { doc, counter } = parseWithPositions(text);
    return indexed(doc, counter);
  };
  const located = { shown, positions };
  if (quick !== undefined) return checkEnvelope(located, quick.value);
  const { doc, counter } = parseWithPositions(text);
  if (doc.errors.length > 0) {
    throw new SpecError(
      doc.errors.map((error) => {
        const { line, col } = counter.linePos(error.pos[0]);
        if (error.code === "MULTIPLE_DOCS") {
          return {
            file: shown,
            line,
            column: col,
            path: [],
            message: `the spec must be one YAML document, but a second one starts at line ${line}`,
            fix: `remove the document that starts at line ${line} (and its ---), or move it to a file of its own`,
          };
        }
        return {
          file: shown,
          line,
          column: col,
          path: [],
          message: `YAML syntax: ${error.message.split("\n")[0] ?? error.code}`,
          fix: "fix the YAML syntax at this position",
        };
      }),
    );
  }
  indexed(doc, counter);
  let raw: unknown;
  try {
    raw = doc.toJS({ maxAliasCount: 100 });
  } catch (error) {
    // The `yaml` package's guard against alias bombs ("billion laughs").
    if (!(error instanceof ReferenceError)) throw error;
    throw new SpecError([
      issueAt(located, [], `YAML aliases expand too far: ${error.message}`, "write the repeated values out, or use fewer nested aliases"),
    ]);
  }
  return checkEnvelope(located, raw);
}

/** The document's envelope (apiVersion, metadata, spec, environments) checked. */
function checkEnvelope(located: Pick<ParsedSpec, "shown" | "positions">, raw: unknown): ParsedSpec {
  if (raw === null || raw === undefined) {
    throw new SpecError([issueAt(located, [], "the file is empty", "start from examples/lab/platform.yaml")]);
  }
  const envelope = PlatformDocument.safeParse(raw, ONCE);
  if (!envelope.success) {
    throw new SpecError(
      envelope.error.issues.flatMap((issue) =>
        explainAll(issue, PlatformDocument, raw, undefined, writtenAt(located.positions)).map(({ path, message, fix }) =>
          issueAt(located, path, message, fix),
        ),
      ),
    );
  }
  return { ...located, document: envelope.data };
}

/** Applies one environment's overlay (`null`: none), fills defaults and checks every rule. */
function resolveEnvironment(
  parsed: ParsedSpec,
  env: string | null,
  options: Pick<LoadPlatformOptions, "file" | "localPaths">,
): LoadedPlatform {
  const { document } = parsed;
  const known = Object.keys(document.environments);
  if (env !== null && !(env in document.environments)) {
    throw new SpecError([
      issueAt(
        parsed,
        ["environments"],
        `environment ${JSON.stringify(env)} is not defined`,
        known.length > 0
          ? `pass --env with one of: ${known.join(", ")}, or add environments.${env}`
          : `add environments.${env} (it may be empty: {})`,
      ),
    ]);
  }
  const adapterIssues =
    env === null
      ? []
      : overlayAdapterIssues(document.spec, document.environments[env], env, (path, message, fix) => issueAt(parsed, path, message, fix));
  if (adapterIssues.length > 0) throw new SpecError(adapterIssues);
  const merged: Merged =
    env === null
      ? applyOverlay(document.spec, ["spec"], undefined, [])
      : applyOverlay(document.spec, ["spec"], document.environments[env], ["environments", env]);
  const result = PlatformSpec.safeParse(merged.value, ONCE);
  if (!result.success) {
    throw new SpecError(
      result.error.issues.flatMap((issue) =>
        explainAll(issue, PlatformSpec, merged.value, (at) => originOf(merged, at), writtenAt(parsed.positions)).map(
          ({ path, message, fix }) => issueAt(parsed, originOf(merged, path), message, fix),
        ),
      ),
    );
  }
  const platform: Platform = {
    name: document.metadata.name,
    environment: env ?? "base",
    labels: document.metadata.labels,
    spec: result.data,
  };
  const findings = checkPlatform(platform, { localPaths: options.localPaths });
  const errors = findings.filter((f) => f.severity === "error");
  if (errors.length > 0) {
    throw new SpecError(errors.map((f) => issueAt(parsed, originOf(merged, f.path), f.message, f.fix)));
  }
  const warnings = findings
    .filter((f) => f.severity === "warning")
    .map((f): SpecWarning => {
      const origin = originOf(merged, f.path);
      return {
        // Placed only when read: most warnings are of environments no one prints, and placing needs the positions.
        get at() {
          const { line, column } = positionOf(parsed.positions, origin);
          return `${parsed.shown}:${line}:${column}`;
        },
        path: formatPath(origin),
        message: f.message,
        fix: f.fix,
      };
    });
  return { ...platform, warnings, file: options.file, environments: known };
}

/** Reads platform.yaml, applies the environment overlay, fills defaults and checks every rule. */
export function loadPlatform(options: LoadPlatformOptions): LoadedPlatform {
  return resolveEnvironment(parseSpec(options), options.environment, options);
}

export interface LoadSpecOptions extends Omit<LoadPlatformOptions, "environment" | "localPaths"> {
  /** The environment asked for: its problems are reported first. */
  readonly environment: string;
}

/** A spec checked as a whole: the environment asked for, the spec without overlays, and every environment. */
export interface LoadedSpec {
  readonly requested: LoadedPlatform;
  /** The spec without any overlay (what `render --out` writes as base/). */
  readonly base: LoadedPlatform;
  /** Every environment the document declares, the requested one included. */
  readonly environments: ReadonlyMap<string, LoadedPlatform>;
}

/**
 * The one way render, validate, plan and apply read a spec: the environment asked for, then the spec
 * without overlays and every other environment, so a spec that one command refuses none accepts.
 */
export function loadSpec(options: LoadSpecOptions): LoadedSpec {
  const parsed = parseSpec(options);
  const requested = resolveEnvironment(parsed, options.environment, options);
  const within = (env: string | null): LoadedPlatform => {
    try {
      return resolveEnvironment(parsed, env, options);
    } catch (error) {
      if (!(error instanceof SpecError)) throw error;
      if (env === null) {
        throw new InputError(
          `${error.message}\n(these are problems of \`spec\` without any environment overlay: every environment builds on it, and render --out writes it as base/)`,
          "make `spec` complete and valid on its own; environments should only override it",
        );
      }
      throw new InputError(
        `${error.message}\n(in environment ${env}: one spec serves every environment, so each must be valid)`,
        `fix environment ${env}, or remove it from environments`,
      );
    }
  };
  const base = within(null);
  const environments = new Map<string, LoadedPlatform>();
  for (const env of requested.environments) environments.set(env, env === options.environment ? requested : within(env));
  return { requested, base, environments };
}
