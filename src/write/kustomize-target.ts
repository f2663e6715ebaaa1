/**
 * A Kustomize patch `target` as Kustomize matches it: `group`, `version`, `kind`, `name` and
 * `namespace` are anchored regular expressions (absent or empty: any), `labelSelector` is
 * Kubernetes' label selector syntax. Only plain fields (letters, digits, `.`, `-`, `_`) and the
 * selector forms `key`, `!key`, `key=value`, `key==value` and `key!=value` (joined by commas) are
 * understood here; anything else is undefined, and the caller leaves the tree to kubectl.
 */
import type { KubeObject } from "../render/context.ts";

type Requirement =
  | { readonly key: string; readonly op: "exists" | "absent" }
  | { readonly key: string; readonly op: "equals" | "differs"; readonly value: string };

export interface PatchTarget {
  /** The name when it is a literal (no `.`, which matches any character): a lookup key. */
  readonly literalName?: string;
  /** Whether the target selects the object; undefined when that depends on what only Kustomize knows. */
  matches(object: KubeObject): boolean | undefined;
}

const FIELDS = ["group", "version", "kind", "name", "namespace"] as const;
const PLAIN = /^[A-Za-z0-9._-]*$/;
const LABEL_KEY =
  /^(?:[a-z0-9](?:[-a-z0-9]*[a-z0-9])?(?:\.[a-z0-9](?:[-a-z0-9]*[a-z0-9])?)*\/)?[A-Za-z0-9](?:[-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?$/;
const LABEL_VALUE = /^(?:[A-Za-z0-9](?:[-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?)?$/;
const REQUIREMENT = /^\s*(!?)\s*([^\s!=,]+)\s*(?:(==|=|!=)\s*([^\s!=,]*)\s*)?$/;

const isRecord = (value: unknown): value is Record<string, unknown> => typeof value === "object" && value !== null && !Array.isArray(value);

/** `key=value,other` and the like; undefined for set-based forms (`in`, `notin`) and anything malformed. */
export function parseLabelSelector(text: string): Requirement[] | undefined {
  if (text.trim() === "") return [];
  const requirements: Requirement[] = [];
  for (const part of text.split(",")) {
    const match = REQUIREMENT.exec(part);
    if (match === null) return undefined;
    const [, not = "", key = "", op, value = ""] = match;
    if (!LABEL_KEY.test(key)) return undefined;
    if (op === undefined) requirements.push({ key, op: not === "" ? "exists" : "absent" });
    else if (not !== "" || !LABEL_VALUE.test(value)) return undefined;
    else requirements.push({ key, op: op === "!=" ? "differs" : "equals", value });
  }
  return requirements;
}

function satisfies(labels: Readonly<Record<string, string>>, requirement: Requirement): boolean {
  const has = Object.hasOwn(labels, requirement.key);
  switch (requirement.op) {
    case "exists":
      return has;
    case "absent":
      return !has;
    case "equals":
      return has && labels[requirement.key] === requirement.value;
    case "differs":
      return !has || labels[requirement.key] !== requirement.value;
  }
}

function groupVersion(apiVersion: string): { group: string; version: string } {
  const slash = apiVersion.indexOf("/");
  return slash < 0 ? { group: "", version: apiVersion } : { group: apiVersion.slice(0, slash), version: apiVersion.slice(slash + 1) };
}

export function parseTarget(value: unknown): PatchTarget | undefined {
  if (!isRecord(value)) return undefined;
  const patterns = new Map<(typeof FIELDS)[number], RegExp>();
  let labelSelector: Requirement[] = [];
  for (const [key, field] of Object.entries(value)) {
    if (typeof field !== "string") return undefined;
    if (key === "labelSelector") {
      const parsed = parseLabelSelector(field);
      if (parsed === undefined) return undefined;
      labelSelector = parsed;
    } else if ((FIELDS as readonly string[]).includes(key) && PLAIN.test(field)) {
      if (field !== "") patterns.set(key as (typeof FIELDS)[number], new RegExp(`^(?:${field})$`));
    } else return undefined;
  }
  const name = value.name;
  return {
    ...(typeof name === "string" && name !== "" && !name.includes(".") ? { literalName: name } : {}),
    matches(object) {
      const { group, version } = groupVersion(object.apiVersion);
      const fields = { group, version, kind: object.kind, name: object.metadata.name };
      for (const [field, pattern] of patterns) {
        if (field === "namespace") continue;
        if (!pattern.test(fields[field])) return false;
      }
      const namespace = patterns.get("namespace");
      if (namespace !== undefined) {
        // Kustomize reads no namespace as `default` for a namespaced kind and as none for a
        // cluster-scoped one, which only its kind table knows.
        if (object.metadata.namespace === undefined) return undefined;
        if (!namespace.test(object.metadata.namespace)) return false;
      }
      const labels = object.metadata.labels ?? {};
      return labelSelector.every((requirement) => satisfies(labels, requirement));
    },
  };
}
