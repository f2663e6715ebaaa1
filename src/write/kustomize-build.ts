/**
 * Builds, in this process, a Kustomize tree that uses only what `render --out` writes: `resources`
 * (files and folders with their own kustomization), and `patches` that are either JSON 6902
 * operations on objects (add, replace, remove of object fields, for the objects a target selects by
 * kind and name or by label: see kustomize-target.ts) or a `$patch: delete` of one object. Anything else in the tree (generators, name prefixes, images,
 * components, strategic-merge patches, array indexes in a path, …) makes this return undefined, and
 * the caller runs `kubectl kustomize`, which knows all of Kustomize.
 *
 * Why by hand: `validate DIR` of a rendered tree spent ~0.2–0.7 s starting kubectl to apply patches
 * this file applies in a few milliseconds; the render tests check that both builds agree object for
 * object on every example and environment.
 */
import { existsSync, readFileSync, statSync } from "node:fs";
import { join } from "node:path";
import type { KubeObject } from "../render/context.ts";
import { applyPatch, type PatchOp } from "./json-patch.ts";
import { parseTarget } from "./kustomize-target.ts";
import { fromYaml, fromYamlStream } from "./yaml.ts";

const KUSTOMIZATION_FILES = ["kustomization.yaml", "kustomization.yml", "Kustomization"];
const KNOWN_KEYS = new Set(["apiVersion", "kind", "resources", "patches"]);

export interface BuiltObject {
  readonly object: KubeObject;
  /** The file (relative to the built folder's parent) the object was read from. */
  readonly file: string;
}

const isRecord = (value: unknown): value is Record<string, unknown> => typeof value === "object" && value !== null && !Array.isArray(value);

function kustomizationIn(dir: string): Record<string, unknown> | undefined {
  const file = KUSTOMIZATION_FILES.map((name) => join(dir, name)).find((path) => existsSync(path));
  if (file === undefined) return undefined;
  const value = parseYaml(file, false);
  return isRecord(value) ? value : undefined;
}

function isOp(value: unknown): value is PatchOp {
  if (!isRecord(value) || typeof value.path !== "string" || !value.path.startsWith("/")) return false;
  // Array elements by index and "-" are Kustomize's, not ours.
  if (value.path.split("/").some((segment) => /^(\d+|-)$/.test(segment))) return false;
  if (value.op === "remove") return Object.keys(value).length === 2;
  return (value.op === "add" || value.op === "replace") && "value" in value && Object.keys(value).length === 3;
}

/** Whether a replace or remove finds what it names (Kustomize fails when it does not). */
function reaches(document: unknown, op: PatchOp): boolean {
  if (op.op === "add") return true;
  let node: unknown = document;
  for (const segment of op.path
    .split("/")
    .slice(1)
    .map((part) => part.replace(/~1/g, "/").replace(/~0/g, "~"))) {
    if (!isRecord(node) || !(segment in node)) return false;
    node = node[segment];
  }
  return true;
}

/** YAML as Kustomize reads it (1.2 core: `n` stays a string); undefined when it does not parse (kubectl then reports why). */
function parseYaml(path: string, all: true): unknown[] | undefined;
function parseYaml(path: string, all: false): unknown;
function parseYaml(path: string, all: boolean): unknown {
  try {
    const text = readFileSync(path, "utf8");
    return all ? fromYamlStream(text) : fromYaml(text);
  } catch {
    return undefined;
  }
}

function readResources(path: string, shown: string, out: BuiltObject[]): boolean {
  const documents = parseYaml(path, true);
  if (documents === undefined) return false;
  for (const value of documents) {
    if (value === null || value === undefined) continue;
    if (
      !isRecord(value) ||
      typeof value.apiVersion !== "string" ||
      typeof value.kind !== "string" ||
      !isRecord(value.metadata) ||
      typeof value.metadata.name !== "string"
    )
      return false;
    out.push({ object: value as unknown as KubeObject, file: shown });
  }
  return true;
}

function build(dir: string, shown: string, depth: number): BuiltObject[] | undefined {
  if (depth > 16) return undefined;
  const kustomization = kustomizationIn(dir);
  if (kustomization === undefined || Object.keys(kustomization).some((key) => !KNOWN_KEYS.has(key))) return undefined;
  const objects: BuiltObject[] = [];
  const resources = kustomization.resources ?? [];
  if (!Array.isArray(resources)) return undefined;
  for (const resource of resources) {
    if (typeof resource !== "string" || /^[a-z]+:\/\//i.test(resource)) return undefined;
    const path = join(dir, resource);
    if (!existsSync(path)) return undefined;
    if (statSync(path).isDirectory()) {
      const nested = build(path, join(shown, resource), depth + 1);
      if (nested === undefined) return undefined;
      objects.push(...nested);
    } else if (!readResources(path, join(shown, resource), objects)) return undefined;
  }
  const patches = kustomization.patches ?? [];
  if (!Array.isArray(patches)) return undefined;
  // Objects by name: a patch for one named object finds it in one lookup, not in a scan of all.
  const byName = new Map<string, number[]>();
  objects.forEach(({ object }, at) => {
    const list = byName.get(object.metadata.name);
    if (list === undefined) byName.set(object.metadata.name, [at]);
    else list.push(at);
  });
  const everyObject = objects.map((_, at) => at);
  const deleted = new Set<number>();
  for (const patch of patches) {
    if (!isRecord(patch) || typeof patch.path !== "string" || Object.keys(patch).some((key) => key !== "path" && key !== "target"))
      return undefined;
    const file = join(dir, patch.path);
    if (!existsSync(file)) return undefined;
    const content = parseYaml(file, false);
    if (patch.target !== undefined) {
      const target = parseTarget(patch.target);
      if (target === undefined || !Array.isArray(content) || !content.every(isOp)) return undefined;
      const candidates = target.literalName !== undefined ? (byName.get(target.literalName) ?? []) : everyObject;
      for (const at of candidates) {
        const found = objects[at];
        if (found === undefined || deleted.has(at)) continue;
        const selected = target.matches(found.object);
        if (selected === undefined) return undefined;
        if (!selected) continue;
        if (!content.every((op) => reaches(found.object, op))) return undefined;
        try {
          objects[at] = { object: applyPatch(found.object, content) as KubeObject, file: found.file };
        } catch {
          return undefined;
        }
      }
    } else {
      // A strategic-merge patch that only deletes one object.
      if (
        !isRecord(content) ||
        content.$patch !== "delete" ||
        typeof content.apiVersion !== "string" ||
        typeof content.kind !== "string" ||
        !isRecord(content.metadata)
      )
        return undefined;
      const { name, namespace } = content.metadata;
      if (typeof name !== "string" || (namespace !== undefined && typeof namespace !== "string")) return undefined;
      const { apiVersion, kind } = content;
      const found = (byName.get(name) ?? []).filter((at) => {
        const object = objects[at]?.object;
        return !deleted.has(at) && object?.apiVersion === apiVersion && object.kind === kind && object.metadata.namespace === namespace;
      });
      if (found.length !== 1 || found[0] === undefined) return undefined;
      deleted.add(found[0]);
    }
  }
  return objects.filter((_, at) => !deleted.has(at));
}

/** The objects `kubectl kustomize DIR` would build, when the tree uses only what render writes. */
export function buildRenderedTree(dir: string, shown = dir): BuiltObject[] | undefined {
  return build(dir, shown, 0);
}
