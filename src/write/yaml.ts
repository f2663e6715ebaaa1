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
  YAML11_SCHEMA,
} from "js-yaml";
import type { KubeObject } from "../render/context.ts";

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

/**
 * One YAML document, deterministic: key order as built, no line folding, strings quoted wherever a
 * YAML 1.1 or 1.2 reader would take them for a boolean, a number, a null or a date. js-yaml's dumper:
 * about twice as fast as building a `yaml` Document, which was most of `render --out`'s time.
 */
export function toYaml(value: unknown): string {
  return dump(value, { schema: SCHEMA, lineWidth: -1, noRefs: true, quoteStyle: "double" });
}

/** A multi-document YAML stream, `---` between documents. */
export function toYamlStream(objects: readonly KubeObject[]): string {
  return objects.map((object) => toYaml(object)).join("---\n");
}

/**
 * One YAML document as YAML 1.2's core schema reads it (`n` stays a string), as Kustomize reads
 * resources and the `yaml` package reads by default. js-yaml's loader: a cold process reads the
 * gateway's config of 100 or 1,000 adapters in a quarter to a half of the `yaml` package's time.
 * Throws on bad YAML.
 */
export function fromYaml(text: string): unknown {
  return load(text, { schema: CORE_SCHEMA });
}

/** Every document of a YAML stream, read as fromYaml reads one. */
export function fromYamlStream(text: string): unknown[] {
  return loadAll(text, { schema: CORE_SCHEMA });
}
