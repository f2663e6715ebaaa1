import { createHash } from "node:crypto";
import type { KubeObject } from "../render/context.ts";
import { VERSION } from "../render/context.ts";

/**
 * The ApplySet convention (KEP-3659, as `kubectl apply --prune --applyset` uses it): a parent
 * ConfigMap names the set; every member carries `applyset.kubernetes.io/part-of=<id>`; the parent
 * lists the group-kinds (and extra namespaces) to look in when pruning.
 */
export const PART_OF = "applyset.kubernetes.io/part-of";
export const APPLYSET_ID = "applyset.kubernetes.io/id";
export const CONTAINS = "applyset.kubernetes.io/contains-group-kinds";
export const NAMESPACES = "applyset.kubernetes.io/additional-namespaces";
export const TOOLING = "applyset.kubernetes.io/tooling";
export const PARENT_NAME = "diatonic-applyset";
/** Ours, beside the standard ones: the apiVersion of each group-kind, so pruning can list old kinds. */
export const VERSIONS = "diatonic.ai/group-versions";
export const DESTROYED_AT = "diatonic.ai/destroyed-at";

/** The ApplySet parent of the platform in `namespace`, as a reference to get or delete. */
export function parentRef(namespace: string): KubeObject {
  return { apiVersion: "v1", kind: "ConfigMap", metadata: { name: PARENT_NAME, namespace } };
}

export function applySetId(namespace: string, name = PARENT_NAME): string {
  const digest = createHash("sha256").update(`${name}.${namespace}.ConfigMap.`).digest("base64url");
  return `applyset-${digest}-v1`;
}

export function groupKind(object: Pick<KubeObject, "apiVersion" | "kind">): string {
  const slash = object.apiVersion.indexOf("/");
  return slash < 0 ? object.kind : `${object.kind}.${object.apiVersion.slice(0, slash)}`;
}

/** Adds the part-of label to a member. */
export function asMember<T extends KubeObject>(object: T, id: string): T {
  return { ...object, metadata: { ...object.metadata, labels: { ...(object.metadata.labels ?? {}), [PART_OF]: id } } };
}

export interface ParentState {
  /** Set by destroy when it keeps data: the members left are what it kept. Apply drops it. */
  readonly destroyedAt?: string;
  readonly groupKinds: readonly string[];
  readonly namespaces: readonly string[];
  /** group-kind → apiVersion */
  readonly versions: Readonly<Record<string, string>>;
}

export function parentObject(namespace: string, state: ParentState): KubeObject {
  return {
    apiVersion: "v1",
    kind: "ConfigMap",
    metadata: {
      name: PARENT_NAME,
      namespace,
      labels: { [APPLYSET_ID]: applySetId(namespace), "app.kubernetes.io/managed-by": "diatonic" },
      annotations: {
        [TOOLING]: `diatonic/v${VERSION}`,
        [CONTAINS]: [...new Set(state.groupKinds)].sort().join(","),
        [NAMESPACES]: [...new Set(state.namespaces)]
          .filter((n) => n !== namespace)
          .sort()
          .join(","),
        [VERSIONS]: Object.entries(state.versions)
          .sort(([a], [b]) => a.localeCompare(b))
          .map(([gk, v]) => `${gk}=${v}`)
          .join(","),
        ...(state.destroyedAt !== undefined ? { [DESTROYED_AT]: state.destroyedAt } : {}),
      },
    },
  };
}

export function readParent(parent: KubeObject | undefined): ParentState {
  const annotations = parent?.metadata.annotations ?? {};
  const split = (value: string | undefined) => (value ? value.split(",").filter((v) => v !== "") : []);
  const versions = Object.fromEntries(split(annotations[VERSIONS]).map((pair) => pair.split("=") as [string, string]));
  const destroyedAt = annotations[DESTROYED_AT];
  return {
    ...(destroyedAt !== undefined ? { destroyedAt } : {}),
    groupKinds: split(annotations[CONTAINS]),
    namespaces: split(annotations[NAMESPACES]),
    versions,
  };
}

export function membersState(objects: readonly KubeObject[], namespace: string): ParentState {
  return {
    groupKinds: objects.map(groupKind),
    namespaces: objects.flatMap((o) => (o.metadata.namespace && o.metadata.namespace !== namespace ? [o.metadata.namespace] : [])),
    versions: Object.fromEntries(objects.map((o) => [groupKind(o), o.apiVersion])),
  };
}

export function mergeStates(a: ParentState, b: ParentState): ParentState {
  return {
    groupKinds: [...a.groupKinds, ...b.groupKinds],
    namespaces: [...a.namespaces, ...b.namespaces],
    versions: { ...a.versions, ...b.versions },
  };
}
