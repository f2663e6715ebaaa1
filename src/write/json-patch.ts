/** RFC 6902 operations that turn one JSON value into another (arrays are replaced whole). */
export type PatchOp =
  { readonly op: "add" | "replace"; readonly path: string; readonly value: unknown } | { readonly op: "remove"; readonly path: string };

function escape(segment: string): string {
  return segment.replace(/~/g, "~0").replace(/\//g, "~1");
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

export function deepEqual(a: unknown, b: unknown): boolean {
  if (a === b) return true;
  if (Array.isArray(a) && Array.isArray(b)) return a.length === b.length && a.every((item, i) => deepEqual(item, b[i]));
  if (isRecord(a) && isRecord(b)) {
    const keys = Object.keys(a);
    return keys.length === Object.keys(b).length && keys.every((k) => k in b && deepEqual(a[k], b[k]));
  }
  return false;
}

export function diffJson(from: unknown, to: unknown, path = ""): PatchOp[] {
  if (deepEqual(from, to)) return [];
  if (isRecord(from) && isRecord(to)) {
    const ops: PatchOp[] = [];
    for (const key of Object.keys(from)) {
      if (!(key in to)) ops.push({ op: "remove", path: `${path}/${escape(key)}` });
    }
    for (const [key, value] of Object.entries(to)) {
      const child = `${path}/${escape(key)}`;
      if (!(key in from)) ops.push({ op: "add", path: child, value });
      else ops.push(...diffJson(from[key], value, child));
    }
    return ops;
  }
  return [{ op: "replace", path, value: to }];
}

/** Applies operations produced by diffJson (the subset it emits). */
export function applyPatch(document: unknown, ops: readonly PatchOp[]): unknown {
  const root: unknown = structuredClone(document);
  for (const op of ops) {
    const parts = op.path
      .split("/")
      .slice(1)
      .map((p) => p.replace(/~1/g, "/").replace(/~0/g, "~"));
    const last = parts.pop();
    if (last === undefined) throw new Error("a patch of the whole document is not supported");
    let parent: unknown = root;
    for (const part of parts) parent = (parent as Record<string, unknown>)[part];
    if (!isRecord(parent)) throw new Error(`patch path ${op.path} does not exist`);
    if (op.op === "remove") Reflect.deleteProperty(parent, last);
    else parent[last] = structuredClone(op.value);
  }
  return root;
}
