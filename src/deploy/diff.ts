import { ConflictError, resourceName, type FieldConflict, type KubeClient } from "../kube/client.ts";
import type { KubeObject } from "../render/context.ts";
import { toYaml } from "../write/yaml.ts";
import { InputError } from "../errors.ts";
import { namespaceChecks } from "./preflight.ts";

/** Fields the server owns or defaults that say nothing about the change: left out of diffs. */
export function normalize(object: KubeObject | undefined): unknown {
  if (!object) return undefined;
  const clone = structuredClone(object) as unknown as { metadata: Record<string, unknown>; status?: unknown };
  for (const key of ["managedFields", "resourceVersion", "uid", "creationTimestamp", "generation", "selfLink"])
    Reflect.deleteProperty(clone.metadata, key);
  const annotations = clone.metadata["annotations"] as Record<string, string> | undefined;
  if (annotations) {
    for (const key of Object.keys(annotations))
      if (key.startsWith("deployment.kubernetes.io/") || key === "kubectl.kubernetes.io/last-applied-configuration")
        Reflect.deleteProperty(annotations, key);
    if (Object.keys(annotations).length === 0) Reflect.deleteProperty(clone.metadata, "annotations");
  }
  Reflect.deleteProperty(clone, "status");
  return clone;
}

/** A unified-style line diff (longest common subsequence; objects are a few hundred lines at most). */
export function lineDiff(before: string, after: string, context = 3): string[] {
  const a = before === "" ? [] : before.split("\n");
  const b = after === "" ? [] : after.split("\n");
  const lcs: number[][] = Array.from({ length: a.length + 1 }, () => new Array<number>(b.length + 1).fill(0));
  for (let i = a.length - 1; i >= 0; i--) {
    for (let j = b.length - 1; j >= 0; j--) {
      const row = lcs[i] as number[];
      row[j] = a[i] === b[j] ? (lcs[i + 1]?.[j + 1] ?? 0) + 1 : Math.max(lcs[i + 1]?.[j] ?? 0, row[j + 1] ?? 0);
    }
  }
  const ops: { tag: " " | "-" | "+"; line: string }[] = [];
  let i = 0;
  let j = 0;
  while (i < a.length || j < b.length) {
    if (i < a.length && j < b.length && a[i] === b[j]) {
      ops.push({ tag: " ", line: a[i] ?? "" });
      i++;
      j++;
    } else if (j < b.length && (i >= a.length || (lcs[i]?.[j + 1] ?? 0) >= (lcs[i + 1]?.[j] ?? 0)))
      ops.push({ tag: "+", line: b[j++] ?? "" });
    else ops.push({ tag: "-", line: a[i++] ?? "" });
  }
  const keep = ops.map(
    (op, index) => op.tag !== " " || ops.slice(Math.max(0, index - context), index + context + 1).some((o) => o.tag !== " "),
  );
  const out: string[] = [];
  ops.forEach((op, index) => {
    if (keep[index]) out.push(`${op.tag} ${op.line}`);
    else if (keep[index - 1]) out.push("  …");
  });
  return out;
}

export interface ObjectDiff {
  readonly resource: string;
  readonly change: "create" | "update" | "delete";
  readonly lines: readonly string[];
  /** Fields another manager owns: `apply` stops on them unless --force-conflicts. The lines show the forced result. */
  readonly conflicts?: readonly FieldConflict[];
}

/** What apply would change: server-side dry run of every object against the live one. */
export async function diffObjects(
  client: KubeClient,
  objects: readonly KubeObject[],
  toDelete: readonly KubeObject[],
): Promise<ObjectDiff[]> {
  // A namespace the spec writes into but does not create: the dry run would answer with the raw
  // API error; preflight's explanation and fix say what to do.
  const missing = (await namespaceChecks(client, objects)).filter((check) => !check.ok);
  if (missing.length > 0) {
    throw new InputError(
      `diff cannot compare objects in a namespace that does not exist (apply's preflight would refuse it too):\n${missing.map((c) => `  ${c.message}`).join("\n")}`,
      missing.map((c) => c.fix).join("; "),
    );
  }
  const diffs: ObjectDiff[] = [];
  // The API server cannot dry-run an object in a namespace that does not exist yet: such objects
  // are shown as rendered.
  const newNamespaces = new Set<string>();
  for (const object of objects)
    if (object.kind === "Namespace" && (await client.get(object)) === undefined) newNamespaces.add(object.metadata.name);
  for (const object of objects) {
    if (object.metadata.namespace !== undefined && newNamespaces.has(object.metadata.namespace)) {
      diffs.push({ resource: resourceName(object), change: "create", lines: lineDiff("", toYaml(normalize(object)).trimEnd()) });
      continue;
    }
    const live = await client.get(object);
    let conflicts: readonly FieldConflict[] | undefined;
    const dry = await client.apply(object, { dryRun: true }).catch(async (error: unknown) => {
      if (!(error instanceof ConflictError)) throw error;
      // What apply --force-conflicts would make of it: the conflict is shown with that diff.
      conflicts = error.conflicts;
      return client.apply(object, { dryRun: true, force: true });
    });
    const before = live ? toYaml(normalize(live)) : "";
    const after = toYaml(normalize(dry));
    if (before === after && conflicts === undefined) continue;
    diffs.push({
      resource: resourceName(object),
      change: live ? "update" : "create",
      lines: lineDiff(before.trimEnd(), after.trimEnd()),
      ...(conflicts ? { conflicts } : {}),
    });
  }
  for (const object of toDelete)
    diffs.push({ resource: resourceName(object), change: "delete", lines: lineDiff(toYaml(normalize(object)).trimEnd(), "") });
  return diffs;
}

/** How `diff` ends: 0 no changes, 1 changes, 3 fields another manager owns (apply would stop on them). */
export function diffExitCode(diffs: readonly ObjectDiff[]): 0 | 1 | 3 {
  if (diffs.some((d) => d.conflicts !== undefined)) return 3;
  return diffs.length === 0 ? 0 : 1;
}

/** The human diff: each object's change, its conflicts first, then a summary that says what to do. */
export function formatDiffs(diffs: readonly ObjectDiff[]): string {
  const out: string[] = [];
  for (const d of diffs) {
    const mark = d.conflicts ? "!" : d.change === "create" ? "+" : d.change === "delete" ? "-" : "~";
    out.push(`${mark} ${d.resource} (${d.change}${d.conflicts ? ", conflict" : ""})`);
    for (const c of d.conflicts ?? []) out.push(`    ! ${c.field || "a field"}: owned by ${c.manager}`);
    for (const line of d.lines) out.push(`    ${line}`);
  }
  const conflicted = diffs.filter((d) => d.conflicts !== undefined);
  if (diffs.length === 0) out.push("no changes");
  else out.push(`${diffs.length} object(s) would change`);
  if (conflicted.length > 0) {
    out.push(
      `${conflicted.length} object(s) have fields another manager owns (${conflicted.map((d) => d.resource).join(", ")}): diatonic apply stops there`,
      "  fix: `diatonic apply --force-conflicts` takes these fields back (the diff above shows that result), or put the other manager's change into the spec",
    );
  }
  return `${out.join("\n")}\n`;
}
