// Objects that several platforms in one cluster render alike: the NVIDIA device plugin, one per
// cluster. Each platform's ApplySet claims them while it applied them last; the platform that stops
// rendering them (destroy, prune) hands them over to another that still does, instead of deleting
// them under it, and an apply that would change another platform's copy is refused unless forced.
import { resourceName, unlessForbidden, type KubeClient } from "../kube/client.ts";
import { SHARED_ANNOTATION, SHARED_NAMESPACE_ANNOTATION, type KubeObject } from "../render/context.ts";
import { applySetId, PARENT_NAME, PART_OF, readParent } from "./applyset.ts";
import { listRevisions, readRevision } from "./revisions.ts";
import type { PreflightCheck } from "./preflight.ts";
import type { DeployEvent } from "./progress.ts";

export function isShared(object: Pick<KubeObject, "metadata">): boolean {
  return object.metadata.annotations?.[SHARED_ANNOTATION] !== undefined;
}

/** The namespace a shared object belongs to: its own, the one it is, or (cluster-scoped) the one it names. */
function homeOf(object: KubeObject): string | undefined {
  return object.kind === "Namespace"
    ? object.metadata.name
    : (object.metadata.namespace ?? object.metadata.annotations?.[SHARED_NAMESPACE_ANNOTATION]);
}

export interface OtherPlatform {
  /** The platform's namespace, where its ApplySet parent lives. */
  readonly namespace: string;
  readonly id: string;
  /** The namespaces besides its own that its ApplySet has members in. */
  readonly namespaces: readonly string[];
}

/**
 * The other diatonic platforms in the cluster, from their ApplySet parents; undefined when the
 * credentials may not list ConfigMaps across namespaces (then nobody can tell who else needs what).
 */
export async function otherPlatforms(client: KubeClient, namespace: string): Promise<OtherPlatform[] | undefined> {
  const parents = await unlessForbidden(client.list("v1", "ConfigMap", undefined, undefined, `metadata.name=${PARENT_NAME}`));
  if (parents === undefined) return undefined;
  const others: OtherPlatform[] = [];
  for (const parent of parents) {
    const home = parent.metadata.namespace;
    const state = readParent(parent);
    // A destroyed platform (its parent lists only the data it kept) renders nothing to share or compare with.
    if (home === undefined || home === namespace || state.destroyedAt !== undefined) continue;
    others.push({ namespace: home, id: applySetId(home), namespaces: state.namespaces });
  }
  return others.sort((a, b) => a.namespace.localeCompare(b.namespace));
}

/** The platform that takes a shared object over from one that no longer renders it, if another renders it too. */
export function heirOf(object: KubeObject, others: readonly OtherPlatform[]): OtherPlatform | undefined {
  const home = homeOf(object);
  return home === undefined ? undefined : others.find((other) => other.namespaces.includes(home));
}

export type Release =
  { readonly action: "delete" } | { readonly action: "hand-over"; readonly to: string } | { readonly action: "keep"; readonly why: string };

/**
 * What to do with a member the platform no longer renders: a shared object goes to another platform
 * that renders it (relabelled into its ApplySet) or, when nobody can tell, stays; anything else is
 * deleted. `others` is undefined when the other platforms could not be listed.
 */
export async function release(
  client: KubeClient,
  object: KubeObject,
  others: readonly OtherPlatform[] | undefined,
  dryRun: boolean,
): Promise<Release> {
  if (!isShared(object)) return { action: "delete" };
  if (others === undefined) return { action: "keep", why: "shared with other platforms, which these credentials may not list" };
  const heir = heirOf(object, others);
  if (heir === undefined) return { action: "delete" };
  if (!dryRun) await client.label(object, PART_OF, heir.id);
  return { action: "hand-over", to: heir.namespace };
}

/** How a member that was not deleted is reported (destroy and prune). */
export function releaseEvent(resource: string, outcome: Exclude<Release, { action: "delete" }>): DeployEvent {
  return outcome.action === "hand-over"
    ? { type: "pruned", resource, handedTo: outcome.to }
    : { type: "pruned", resource, kept: true, why: outcome.why };
}

/** What decides a shared object's effect on the GPUs: the device plugin's config and image and where it runs. */
function essence(object: KubeObject): string {
  const body = object as unknown as {
    data?: Record<string, string>;
    spec?: { template?: { spec?: { nodeSelector?: Record<string, string>; containers?: { image?: string }[] } } };
  };
  if (object.kind === "ConfigMap") return JSON.stringify(body.data ?? {});
  const pod = body.spec?.template?.spec;
  if (pod !== undefined)
    return JSON.stringify({ nodeSelector: pod.nodeSelector ?? {}, images: (pod.containers ?? []).map((container) => container.image) });
  return "";
}

/**
 * Device plugins of other diatonic platforms in other namespaces: both would register nvidia.com/gpu
 * on the same nodes. A warning, since a cluster may keep its GPU node pools apart.
 */
async function otherDevicePlugins(client: KubeClient, mine: readonly KubeObject[]): Promise<PreflightCheck[]> {
  const plugin = mine.find((object) => object.kind === "DaemonSet");
  if (plugin === undefined) return [];
  const all = await unlessForbidden(client.list("apps/v1", "DaemonSet"));
  return (all ?? [])
    .filter((other) => isShared(other) && other.metadata.namespace !== plugin.metadata.namespace)
    .map((other) => ({
      check: "shared",
      ok: true,
      warning: true,
      message: `another diatonic device plugin runs as ${resourceName(other)}: with ${resourceName(plugin)} beside it, two plugins would register nvidia.com/gpu on the same GPU nodes`,
      fix: `set gpu.devicePlugin.namespace: ${other.metadata.namespace ?? ""}, so the platforms share that plugin`,
    }));
}

/** The objects a platform rendered at its latest revision; none when it has no revision yet. */
async function latestObjects(client: KubeClient, namespace: string): Promise<KubeObject[]> {
  const last = (await listRevisions(client, namespace)).at(-1);
  return last === undefined ? [] : (await readRevision(client, namespace, last.number)).placed.map((placed) => placed.object);
}

const sameObject = (a: KubeObject, b: KubeObject) =>
  a.kind === b.kind && a.metadata.name === b.metadata.name && a.metadata.namespace === b.metadata.namespace;

/**
 * Preflight: each shared object must be rendered alike by every other platform that renders it (as
 * its latest revision has it), or be taken over knowingly (--force-conflicts): the device plugin's
 * config decides how many GPU slices the other platform planned with.
 */
export async function sharedChecks(
  client: KubeClient,
  objects: readonly KubeObject[],
  namespace: string,
  force: boolean,
): Promise<PreflightCheck[]> {
  const mine = objects.filter(isShared);
  if (mine.length === 0) return [];
  const others = await otherPlatforms(client, namespace);
  if (others === undefined) {
    return [
      {
        check: "shared",
        ok: true,
        warning: true,
        message:
          "these credentials may not list ConfigMaps across namespaces, so other platforms' device plugin settings cannot be compared",
        fix: "apply with credentials that can list ConfigMaps cluster-wide",
      },
    ];
  }
  const checks: PreflightCheck[] = await otherDevicePlugins(client, mine);
  const rendered = new Map<string, Promise<KubeObject[]>>();
  for (const object of mine) {
    const resource = resourceName(object);
    const home = homeOf(object);
    for (const other of others) {
      if (home === undefined || !other.namespaces.includes(home)) continue;
      let theirs = rendered.get(other.namespace);
      if (theirs === undefined) rendered.set(other.namespace, (theirs = latestObjects(client, other.namespace)));
      const twin = (await theirs).find((candidate) => sameObject(candidate, object));
      if (twin === undefined) continue;
      const who = `the platform in namespace ${other.namespace}`;
      if (essence(twin) === essence(object)) {
        checks.push({ check: "shared", ok: true, message: `${resource} is shared with ${who}, with the same settings` });
      } else if (force) {
        checks.push({
          check: "shared",
          ok: true,
          warning: true,
          message: `${resource} differs from the one ${who} renders; --force-conflicts takes it over, and that platform's GPU plan may no longer hold`,
        });
      } else {
        checks.push({
          check: "shared",
          ok: false,
          message: `${resource} is also rendered by ${who}, with different settings: applying would change the GPUs that platform planned with`,
          fix: "give both platforms the same spec.gpu (sharing, devicePlugin.image, nodeSelector), or pass --force-conflicts to take the device plugin over",
        });
      }
    }
  }
  return checks;
}
