import { WorldError } from "../errors.ts";
import { resourceName, type KubeClient } from "../kube/client.ts";
import type { ReadinessContext } from "../kube/readiness.ts";
import { waitForReady } from "../kube/wait.ts";
import type { KubeObject, Placed } from "../render/context.ts";
import { applySetId, asMember, groupKind, membersState, mergeStates, parentObject, parentRef, PART_OF, readParent } from "./applyset.ts";
import { certManagerCheck } from "./cert-manager-liveness.ts";
import { groupByPhase, PHASES } from "./phases.ts";
import { preflight, type PreflightInput } from "./preflight.ts";
import type { Reporter } from "./progress.ts";
import { hashObjects, listRevisions, readRevision, recordRevision } from "./revisions.ts";
import { isShared, otherPlatforms, release, releaseEvent, sharedChecks, type OtherPlatform } from "./shared.ts";

export interface ApplyOptions {
  readonly client: KubeClient;
  readonly placed: readonly Placed[];
  /** The platform namespace: holds the ApplySet parent and the revisions. */
  readonly namespace: string;
  readonly environment: string;
  readonly specHash: string;
  readonly reporter: Reporter;
  /** Overall deadline; each phase gets its share. */
  readonly timeoutMs: number;
  /** @default false */
  readonly dryRun?: boolean;
  /** Take fields another manager owns. @default false */
  readonly forceConflicts?: boolean;
  /** Also prune PersistentVolumeClaims and Namespaces. @default false */
  readonly deleteData?: boolean;
  readonly preflight: Omit<PreflightInput, "objects">;
  /** Recorded with the revision ("apply", "rollback to 3"). */
  readonly note?: string;
  /**
   * How long a Certificate or issuer may have no status before apply asks whether a cert-manager
   * controller runs at all (and stops, saying so, when none does). @default 15000
   */
  readonly controllerGraceMs?: number;
}

export interface ApplyResult {
  readonly revision: number | null;
  readonly changed: number;
  readonly pruned: readonly string[];
}

/** Kinds that hold data: never pruned or destroyed without --delete-data. */
export const DATA_KINDS = new Set(["PersistentVolumeClaim", "Namespace"]);

export class PreflightError extends WorldError {}

/** Storage classes that bind on first consumer, for PVC readiness. */
async function readinessContext(client: KubeClient): Promise<ReadinessContext> {
  const classes = await client.list<KubeObject & { volumeBindingMode?: string }>("storage.k8s.io/v1", "StorageClass");
  const wffc = new Set(classes.filter((c) => c.volumeBindingMode === "WaitForFirstConsumer").map((c) => c.metadata.name));
  const fallback = classes.find((c) => c.metadata.annotations?.["storageclass.kubernetes.io/is-default-class"] === "true")?.metadata.name;
  return { waitForFirstConsumer: (name) => wffc.has(name ?? fallback ?? "") };
}

function phaseTimeout(share: number, overall: number): number {
  return Math.max(5_000, Math.round(overall * share));
}

/**
 * Applies a rendered platform phase by phase with server-side apply, waiting for real readiness after
 * each phase, then prunes what the spec no longer has and records the revision. Safe to run again at
 * any point: everything is declarative, and a rerun picks up where an interrupted one stopped.
 */
export async function applyPlatform(options: ApplyOptions): Promise<ApplyResult> {
  const { client, reporter, namespace } = options;
  const started = Date.now();
  const id = applySetId(namespace);
  const members = options.placed.map((p) => ({ ...p, object: asMember(p.object, id) }));
  const objects = members.map((m) => m.object);

  const checks = [
    ...(await preflight(client, { ...options.preflight, objects })),
    ...(await sharedChecks(client, objects, namespace, options.forceConflicts ?? false)),
  ];
  reporter.event({ type: "preflight", checks });
  const failed = checks.filter((c) => !c.ok);
  if (failed.length > 0) {
    throw new PreflightError(
      `preflight failed, nothing was changed:\n${failed.map((c) => `  ${c.check}: ${c.message}`).join("\n")}`,
      "each failed check above says its fix; then run apply again",
    );
  }

  const context = await readinessContext(client);
  const before = readParent(await client.get(parentRef(namespace)));
  const after = membersState(objects, namespace);
  const union = mergeStates(before, after);
  let changed = 0;
  let parentWritten = false;
  /** Dry run: namespaces this apply would create. The API server cannot dry-run objects inside them. */
  const newNamespaces = new Set<string>();

  for (const phase of PHASES) {
    const list = groupByPhase(members).get(phase.name) ?? [];
    if (list.length === 0) continue;
    const phaseStarted = Date.now();
    reporter.event({ type: "phase-start", phase: phase.name, title: phase.title, objects: list.length });
    let phaseChanged = 0;
    try {
      // Namespaces first: everything else, the ApplySet parent included, lives in them.
      const ordered = [...list].sort((a, b) => Number(b.object.kind === "Namespace") - Number(a.object.kind === "Namespace"));
      const applied: KubeObject[] = [];
      for (const { object } of ordered) {
        if (options.dryRun && object.metadata.namespace !== undefined && newNamespaces.has(object.metadata.namespace)) {
          phaseChanged++;
          reporter.event({ type: "applied", phase: phase.name, resource: resourceName(object), action: "created" });
          continue;
        }
        const live = await client.get(object);
        if (options.dryRun && object.kind === "Namespace" && live === undefined) newNamespaces.add(object.metadata.name);
        // A shared object another platform applied last: the preflight let it through (the same
        // settings, or --force-conflicts); a label it was handed over with is an update's, which
        // only a forced apply takes.
        const takeOver = isShared(object) && live !== undefined && live.metadata.labels?.[PART_OF] !== id;
        const result = await client.apply(object, {
          dryRun: options.dryRun ?? false,
          force: (options.forceConflicts ?? false) || takeOver,
        });
        const action = !live
          ? "created"
          : live.metadata.resourceVersion === result.metadata.resourceVersion && !options.dryRun
            ? "unchanged"
            : options.dryRun && sameContent(live, result)
              ? "unchanged"
              : "configured";
        if (action !== "unchanged") phaseChanged++;
        reporter.event({ type: "applied", phase: phase.name, resource: resourceName(object), action });
        applied.push(result);
        if (object.kind === "Namespace" && object.metadata.name === namespace && !parentWritten && !options.dryRun) {
          // The parent lists old and new kinds until the prune is done, so an interrupted apply still prunes.
          await client.apply(parentObject(namespace, union), { force: true });
          parentWritten = true;
        }
      }
      if (!options.dryRun) {
        await waitForReady(client, applied, {
          timeoutMs: phaseTimeout(phase.timeoutShare, options.timeoutMs - (Date.now() - started)),
          context,
          label: `phase ${phase.name}`,
          unattended: certManagerCheck(client, options.controllerGraceMs ?? 15_000),
          onChange: (object, readiness) =>
            reporter.event({
              type: "readiness",
              phase: phase.name,
              resource: resourceName(object),
              state: readiness.state,
              reason: readiness.reason,
            }),
        });
      }
    } catch (error) {
      reporter.event({
        type: "phase-failed",
        phase: phase.name,
        seconds: (Date.now() - phaseStarted) / 1000,
        message: (error as Error).message,
      });
      throw error;
    }
    changed += phaseChanged;
    reporter.event({ type: "phase-done", phase: phase.name, seconds: (Date.now() - phaseStarted) / 1000, changed: phaseChanged });
  }

  const pruned = await prune(client, {
    id,
    namespace,
    keep: objects,
    groupKinds: union.groupKinds,
    namespaces: [...union.namespaces, namespace],
    versions: union.versions,
    dryRun: options.dryRun ?? false,
    deleteData: options.deleteData ?? false,
    reporter,
  });
  let revision: number | null = null;
  if (!options.dryRun) {
    await client.apply(parentObject(namespace, after), { force: true });
    if (changed > 0 || pruned.length > 0 || (await latestHash(client, namespace)) !== hashObjects(objects)) {
      revision = await recordRevision(client, namespace, {
        specHash: options.specHash,
        environment: options.environment,
        appliedAt: new Date().toISOString(),
        note: options.note ?? "apply",
        placed: options.placed.map((p) => ({ ...p })),
      });
    }
  }
  reporter.event({
    type: "done",
    revision,
    changed,
    pruned: pruned.length,
    seconds: (Date.now() - started) / 1000,
    dryRun: options.dryRun ?? false,
  });
  return { revision, changed, pruned };
}

/** Dry-run results carry new managedFields times; compare what matters. */
function sameContent(a: KubeObject, b: KubeObject): boolean {
  const strip = (o: KubeObject) => {
    const { managedFields: _m, resourceVersion: _r, generation: _g, ...metadata } = o.metadata as Record<string, unknown>;
    const { status: _s, ...rest } = o as unknown as Record<string, unknown>;
    return JSON.stringify({ ...rest, metadata });
  };
  return strip(a) === strip(b);
}

async function latestHash(client: KubeClient, namespace: string): Promise<string | undefined> {
  const last = (await listRevisions(client, namespace)).at(-1);
  if (!last) return undefined;
  const revision = await readRevision(client, namespace, last.number);
  return hashObjects(revision.placed.map((p) => asMember(p.object, applySetId(namespace))));
}

interface PruneOptions {
  readonly id: string;
  readonly namespace: string;
  readonly keep: readonly KubeObject[];
  readonly groupKinds: readonly string[];
  readonly namespaces: readonly string[];
  readonly versions: Readonly<Record<string, string>>;
  readonly dryRun: boolean;
  readonly deleteData: boolean;
  readonly reporter: Reporter;
}

/** Members of the set that the new render does not have, deleted after the new objects are ready. */
async function prune(client: KubeClient, options: PruneOptions): Promise<string[]> {
  const keep = new Set(options.keep.map((o) => `${groupKind(o)}|${o.metadata.namespace ?? ""}|${o.metadata.name}`));
  const pruned: string[] = [];
  let others: Promise<OtherPlatform[] | undefined> | undefined;
  for (const gk of [...new Set(options.groupKinds)].sort()) {
    const [kind, ...groupParts] = gk.split(".");
    const groupName = groupParts.join(".");
    const apiVersion = options.versions[gk] ?? (groupName === "" ? "v1" : `${groupName}/v1`);
    if (!kind || !apiVersion) continue;
    const scope = await client.describe(apiVersion, kind);
    if (!scope) continue;
    const spaces = scope.namespaced ? [...new Set(options.namespaces)] : [undefined];
    for (const ns of spaces) {
      for (const live of await client.list(apiVersion, kind, ns, `${PART_OF}=${options.id}`)) {
        if (keep.has(`${gk}|${live.metadata.namespace ?? ""}|${live.metadata.name}`)) continue;
        const resource = resourceName(live);
        if (isShared(live)) {
          const outcome = await release(client, live, await (others ??= otherPlatforms(client, options.namespace)), options.dryRun);
          if (outcome.action !== "delete") {
            options.reporter.event(releaseEvent(resource, outcome));
            continue;
          }
        }
        if (DATA_KINDS.has(kind) && !options.deleteData) {
          options.reporter.event({ type: "pruned", resource, kept: true });
          continue;
        }
        await client.delete(live, { dryRun: options.dryRun });
        options.reporter.event({ type: "pruned", resource });
        pruned.push(resource);
      }
    }
  }
  return pruned;
}
