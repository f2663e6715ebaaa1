// The reference pages made from the code, so that they cannot drift from it: docs/spec-reference.md
// from the spec's schema (every field, its type, default and description) and docs/validate-rules.md
// from validate's rule list. `npm run docs` writes them; test/docs checks that they are current.
import { writeFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { platformJsonSchema } from "../src/spec/json-schema.ts";
import { rules } from "../src/validate/index.ts";

type Schema = Record<string, unknown>;

const ROOT = fileURLToPath(new URL("..", import.meta.url));
export const GENERATED = { spec: "docs/spec-reference.md", rules: "docs/validate-rules.md" } as const;

const asSchema = (value: unknown): Schema => (typeof value === "object" && value !== null ? (value as Schema) : {});
const cell = (text: string): string => text.replace(/\|/g, "\\|").replace(/\n/g, " ");

/** The schema without the overlay's `null` alternative that json-schema.ts adds to every property. */
function unwrapNull(schema: Schema): Schema {
  const anyOf = schema.anyOf;
  if (Array.isArray(anyOf)) {
    const rest = anyOf.map(asSchema).filter((option) => option.type !== "null");
    if (rest.length === 1 && rest[0] !== undefined)
      return { ...rest[0], ...(schema.description !== undefined ? { description: schema.description } : {}) };
  }
  return schema;
}

function typeOf(schema: Schema): string {
  if (Array.isArray(schema.enum)) return schema.enum.map((value) => JSON.stringify(value)).join(" | ");
  if (schema.const !== undefined) return JSON.stringify(schema.const);
  for (const key of ["anyOf", "oneOf"] as const) {
    const options = schema[key];
    if (Array.isArray(options))
      return options.map((option) => variantOf(unwrapNull(asSchema(option))) ?? typeOf(unwrapNull(asSchema(option)))).join(" or ");
  }
  const type = schema.type;
  if (type === "array") return `list of ${typeOf(asSchema(schema.items))}`;
  if (
    type === "object" &&
    schema.properties === undefined &&
    schema.additionalProperties !== undefined &&
    schema.additionalProperties !== false
  ) {
    return `map of ${typeOf(asSchema(schema.additionalProperties))}`;
  }
  if (Array.isArray(type)) return type.join(" or ");
  return typeof type === "string" ? type : "any";
}

/**
 * How an object alternative of a union is told apart: its constant field (`kind: "vllm"`), or the
 * one key it has (`{huggingFace}`); undefined for anything else.
 */
function variantOf(schema: Schema): string | undefined {
  if (schema.type !== "object") return undefined;
  const properties = Object.entries(asSchema(schema.properties)).map(([key, child]) => [key, unwrapNull(asSchema(child))] as const);
  const constant = properties.find(([, child]) => child.const !== undefined);
  if (constant !== undefined) return `${constant[0]}: ${JSON.stringify(constant[1].const)}`;
  return properties.length > 0 ? `{${properties.map(([key]) => key).join(", ")}}` : undefined;
}

function constraints(schema: Schema): string {
  const parts: string[] = [];
  if (typeof schema.pattern === "string") parts.push(`pattern \`${schema.pattern}\``);
  if (typeof schema.minimum === "number" && schema.minimum > -Number.MAX_SAFE_INTEGER) parts.push(`≥ ${schema.minimum}`);
  if (typeof schema.exclusiveMinimum === "number") parts.push(`> ${schema.exclusiveMinimum}`);
  if (typeof schema.maximum === "number" && schema.maximum < Number.MAX_SAFE_INTEGER) parts.push(`≤ ${schema.maximum}`);
  if (typeof schema.maxLength === "number") parts.push(`at most ${schema.maxLength} characters`);
  if (typeof schema.minItems === "number") parts.push(`at least ${schema.minItems} item(s)`);
  return parts.join(", ");
}

function defaultOf(schema: Schema): string {
  if (!("default" in schema)) return "";
  const text = JSON.stringify(schema.default);
  if (text === "{}") return "(its fields' defaults)";
  return text.length > 60 ? `${text.slice(0, 57)}…` : text;
}

interface Row {
  readonly path: string;
  readonly type: string;
  readonly fallback: string;
  readonly about: string;
}

function walk(schema: Schema, path: string, required: boolean, rows: Row[], variant?: string): void {
  const node = unwrapNull(schema);
  const said = [typeof node.description === "string" ? node.description : "", constraints(node)].filter((part) => part !== "").join("; ");
  const about = variant !== undefined ? `(with ${variant}) ${said}`.trim() : said;
  rows.push({ path, type: typeOf(node), fallback: defaultOf(node) || (required ? "required" : ""), about });
  const properties = asSchema(node.properties);
  const requiredKeys = new Set(Array.isArray(node.required) ? node.required.map(String) : []);
  for (const [key, child] of Object.entries(properties)) walk(asSchema(child), `${path}.${key}`, requiredKeys.has(key), rows);
  if (node.type === "array") {
    const items = unwrapNull(asSchema(node.items));
    for (const [key, child] of Object.entries(asSchema(items.properties)))
      walk(asSchema(child), `${path}[].${key}`, Array.isArray(items.required) && items.required.includes(key), rows);
  }
  for (const key of ["anyOf", "oneOf"] as const) {
    const options = node[key];
    if (!Array.isArray(options)) continue;
    for (const option of options.map((each) => unwrapNull(asSchema(each)))) {
      const variant = variantOf(option);
      const requiredKeys = new Set(Array.isArray(option.required) ? option.required.map(String) : []);
      for (const [name, child] of Object.entries(asSchema(option.properties))) {
        // A variant's constant is the variant's name: no row of its own.
        if (unwrapNull(asSchema(child)).const !== undefined) continue;
        // Only a variant named by a constant is labelled; a one-key variant is its key.
        const named = variant?.startsWith("{") === false ? variant : undefined;
        walk(asSchema(child), `${path}.${name}`, named !== undefined && requiredKeys.has(name), rows, named);
      }
    }
  }
}

export function specReference(): string {
  const schema = platformJsonSchema();
  const spec = asSchema(asSchema(schema.properties).spec);
  const rows: Row[] = [];
  for (const [key, child] of Object.entries(asSchema(spec.properties))) walk(asSchema(child), `spec.${key}`, false, rows);
  const lines = [
    "# Spec reference",
    "",
    "<!-- Generated by `npm run docs` from src/spec/schema.ts; do not edit by hand. -->",
    "",
    "Every field of `platform.yaml`'s `spec`, with its type, default and what it means. An environment",
    "(`environments.<name>`) may set any of these; `null` removes a value. How the spec is laid out and",
    "how overlays merge: [spec.md](spec.md). Editors complete and check the file with",
    "`schema/platform.schema.json` (`diatonic schema`).",
    "",
    "| field | type | default | meaning |",
    "|---|---|---|---|",
    ...rows.map(
      (row) =>
        `| \`${row.path}\` | ${cell(row.type)} | ${row.fallback === "" ? "" : cell(row.fallback.startsWith("(") || row.fallback === "required" ? row.fallback : `\`${row.fallback}\``)} | ${cell(row.about)} |`,
    ),
    "",
  ];
  return lines.join("\n");
}

export function rulesReference(): string {
  const areas = new Map<string, typeof rules>();
  for (const rule of rules) {
    const area = rule.id.split("/")[0] ?? rule.id;
    areas.set(area, [...(areas.get(area) ?? []), rule]);
  }
  const lines = [
    "# Validate rules",
    "",
    "<!-- Generated by `npm run docs` from src/validate/rules/; do not edit by hand. -->",
    "",
    `\`diatonic validate\` runs these ${rules.length} rules. Each finding names its rule, the object, the field, and the fix;`,
    "an error exits 1, a warning alone exits 0. What validate reads and how: [validate.md](validate.md).",
    "",
  ];
  for (const [area, list] of areas) {
    lines.push(`## ${area}`, "", "| rule | severity | checks |", "|---|---|---|");
    for (const rule of list) lines.push(`| \`${rule.id}\` | ${rule.severity} | ${cell(rule.summary)} |`);
    lines.push("");
  }
  return lines.join("\n");
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  writeFileSync(`${ROOT}${GENERATED.spec}`, specReference());
  writeFileSync(`${ROOT}${GENERATED.rules}`, rulesReference());
  process.stdout.write(`wrote ${GENERATED.spec} and ${GENERATED.rules}\n`);
}
