import type { KubeClient } from "../kube/client.ts";
import { resourceName } from "../kube/client.ts";
import type { KubeObject } from "../render/context.ts";
import { DATA_KINDS } from "./apply.ts";
import { membersState, parentObject, parentRef } from "./applyset.ts";
import { liveMembers, teardownOrder } from "./inventory.ts";
import type { Reporter } from "./progress.ts";
import { isShared, otherPlatforms, release, releaseEvent } from "./shared.ts";

export interface DestroyOptions {
  readonly client: KubeClient;
  readonly namespace: string;
  /** The platform's instance label, to find StatefulSet claims (they are not set members). */
  readonly instance: string;
  readonly deleteData: boolean;
  readonly dryRun: boolean;
  readonly reporter: Reporter;
}

/**
 * Removes the platform in reverse order. Volumes (the model, LoRAs, Qdrant's data and snapshots) and
 * the namespace stay unless deleteData, so a later apply finds its data again. The ApplySet parent
 * stays while members do, listing only them, so a later `destroy --delete-data` (or apply) finds them.
 */
export async function destroyPlatform(options: DestroyOptions): Promise<{ deleted: string[]; kept: string[] }> {
  const { client, namespace } = options;
  const members = teardownOrder(await liveMembers(client, namespace));
  const others = members.some(isShared) ? await otherPlatforms(client, namespace) : [];
  const deleted: string[] = [];
  const kept: string[] = [];
  /** Kept objects that are still this platform's (not handed over): the parent goes on listing them. */
  const stillMembers: KubeObject[] = [];
  const namespaces: KubeObject[] = [];
  const remove = async (object: KubeObject) => {
    if (await client.delete(object, { dryRun: options.dryRun })) {
      deleted.push(resourceName(object));
      options.reporter.event({ type: "pruned", resource: resourceName(object) });
    }
  };
  for (const object of members) {
    const outcome = await release(client, object, others, options.dryRun);
    if (outcome.action !== "delete") {
      kept.push(resourceName(object));
      if (outcome.action === "keep") stillMembers.push(object);
      options.reporter.event(releaseEvent(resourceName(object), outcome));
      continue;
    }
    if (DATA_KINDS.has(object.kind) && !options.deleteData) {
      kept.push(resourceName(object));
      stillMembers.push(object);
      options.reporter.event({ type: "pruned", resource: resourceName(object), kept: true });
      continue;
    }
    // Namespaces go last, after the ApplySet parent that lives in the platform's own.
    if (object.kind === "Namespace") namespaces.push(object);
    else await remove(object);
  }
  const claims = await client.list("v1", "PersistentVolumeClaim", namespace, `app.kubernetes.io/instance=${options.instance}`);
  for (const claim of claims) {
    if (deleted.includes(resourceName(claim)) || kept.includes(resourceName(claim))) continue;
    if (options.deleteData) await remove(claim);
    else {
      kept.push(resourceName(claim));
      options.reporter.event({ type: "pruned", resource: resourceName(claim), kept: true });
    }
  }
  const ownNamespaceGoes = namespaces.some((ns) => ns.metadata.name === namespace);
  if (stillMembers.length > 0 && !ownNamespaceGoes) {
    if (!options.dryRun)
      await client.apply(parentObject(namespace, { ...membersState(stillMembers, namespace), destroyedAt: new Date().toISOString() }), {
        force: true,
      });
  } else {
    await remove(parentRef(namespace));
  }
  for (const ns of namespaces) await remove(ns);
  return { deleted, kept };
}
