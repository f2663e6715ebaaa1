// What the spec renders for an environment against what is live: status is "ready" only when every
// rendered object is live in the platform's ApplySet, nothing live belongs to another environment or
// render, and the live revision is this spec's. An apply killed part way leaves exactly these traces.
import { resourceName, type KubeClient } from "../kube/client.ts";
import { ENVIRONMENT_LABEL, type KubeObject } from "../render/context.ts";
import { DATA_KINDS } from "./apply.ts";
import { applySetId, asMember, groupKind, PART_OF } from "./applyset.ts";
import { hashObjects, listRevisions, readRevision } from "./revisions.ts";

/** The revision the platform runs: the latest recorded. */
export interface LiveRevision {
  readonly number: number;
  readonly environment: string;
  readonly appliedAt: string;
  readonly note: string;
  /** Whether its objects are exactly what the spec renders now (undefined when not compared). */
  readonly matchesSpec?: boolean;
}

export interface SpecComparison {
  /** Rendered objects that are not live as members of the platform's ApplySet. */
  readonly missing: readonly string[];
  /** Live members the render does not have, or has for another environment (data that prune keeps aside). */
  readonly stale: readonly string[];
  /** Each in words. */
  readonly reasons: readonly string[];
  /** What brings the cluster to the spec, when it is not there. */
  readonly fix: string | null;
  readonly revision: LiveRevision | null;
}

const keyOf = (object: Pick<KubeObject, "apiVersion" | "kind" | "metadata">) =>
  `${groupKind(object)}|${object.metadata.namespace ?? ""}|${object.metadata.name}`;

/** The latest revision, as recorded (environment, time, note). */
export async function liveRevision(
  client: KubeClient,
  namespace: string,
): Promise<{ readonly number: number; readonly object: KubeObject } | undefined> {
  return (await listRevisions(client, namespace)).at(-1);
}

function describeRevision(last: { readonly number: number; readonly object: KubeObject }): LiveRevision {
  const annotations = last.object.metadata.annotations ?? {};
  return {
    number: last.number,
    environment: annotations["diatonic.ai/environment"] ?? "",
    appliedAt: annotations["diatonic.ai/applied-at"] ?? "",
    note: annotations["diatonic.ai/note"] ?? "",
  };
}

/** The latest revision without comparing it with a spec. */
export async function latestRevision(client: KubeClient, namespace: string): Promise<LiveRevision | null> {
  const last = await liveRevision(client, namespace);
  return last === undefined ? null : describeRevision(last);
}

/**
 * Compares `rendered` (the spec's objects for `environment`) with the live members of the
 * platform's ApplySet and its latest revision.
 */
export async function compareWithSpec(
  client: KubeClient,
  options: {
    readonly namespace: string;
    readonly environment: string;
    readonly rendered: readonly KubeObject[];
    readonly members: readonly KubeObject[];
  },
): Promise<SpecComparison> {
  const { namespace, environment } = options;
  const id = applySetId(namespace);
  const rendered = options.rendered.map((object) => asMember(object, id));
  const live = new Map(options.members.map((object) => [keyOf(object), object]));
  const missing: string[] = [];
  const stale: string[] = [];
  const reasons: string[] = [];
  const notServed = new Map<string, boolean>();
  const otherEnvironments = new Map<string, string[]>();
  for (const object of rendered) {
    const resource = resourceName(object);
    const member = live.get(keyOf(object));
    if (member !== undefined) {
      const applied = member.metadata.labels?.[ENVIRONMENT_LABEL];
      if (applied !== undefined && applied !== environment) {
        stale.push(resource);
        otherEnvironments.set(applied, [...(otherEnvironments.get(applied) ?? []), resource]);
      }
      continue;
    }
    missing.push(resource);
    const kind = `${object.apiVersion}|${object.kind}`;
    if (!notServed.has(kind)) notServed.set(kind, (await client.describe(object.apiVersion, object.kind)) === undefined);
    if (notServed.get(kind) === true) {
      reasons.push(`${resource} is missing: the cluster does not serve ${object.kind} (${object.apiVersion})`);
    } else if ((await client.get(object)) !== undefined) {
      reasons.push(`${resource} exists but is not in the platform's ApplySet (no ${PART_OF} label of ${namespace}): apply adopts it`);
    } else {
      reasons.push(`${resource} is missing`);
    }
  }
  for (const [applied, resources] of otherEnvironments) {
    reasons.unshift(
      `${resources.length} live object(s) were last applied for environment ${applied}, not ${environment}: ${resources.slice(0, 4).join(", ")}${resources.length > 4 ? `, and ${resources.length - 4} more` : ""}`,
    );
  }
  const wanted = new Set(rendered.map(keyOf));
  for (const member of options.members) {
    // Volumes and namespaces that prune keeps aside (without --delete-data) are data, not staleness.
    if (wanted.has(keyOf(member)) || DATA_KINDS.has(member.kind)) continue;
    stale.push(resourceName(member));
    reasons.push(`${resourceName(member)} is live but the spec does not render it for ${environment}: the next apply prunes it`);
  }

  const last = await liveRevision(client, namespace);
  let revision: LiveRevision | null = null;
  if (last === undefined) {
    reasons.unshift("no revision is recorded: no apply of this platform has finished (one was interrupted, or is running)");
  } else {
    const described = describeRevision(last);
    const recorded = await readRevision(client, namespace, last.number);
    const matchesSpec =
      described.environment === environment && hashObjects(recorded.placed.map((p) => asMember(p.object, id))) === hashObjects(rendered);
    revision = { ...described, matchesSpec };
    if (described.environment !== environment) {
      reasons.unshift(
        `the live revision ${last.number} was applied for environment ${described.environment || "(unknown)"}, not ${environment}`,
      );
    } else if (!matchesSpec) {
      reasons.unshift(
        `the live revision ${last.number} (${described.note}, ${described.appliedAt}) is not what the spec renders now: \`diatonic diff\` shows what differs`,
      );
    }
  }
  const fix =
    reasons.length > 0
      ? `\`diatonic apply --env ${environment}\` brings the cluster to the spec (it resumes where an interrupted apply stopped)`
      : null;
  return { missing, stale, reasons, revision, fix };
}
