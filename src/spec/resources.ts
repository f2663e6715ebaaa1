import { formatPath } from "./issues.ts";
import type { Path } from "./overlay.ts";
import { quantityValue } from "./schema-common.ts";

/** A container's CPU and memory, as the spec writes them (`requests`, `limits`) and render emits them. */
export interface ResourceValues {
  readonly requests: { readonly cpu?: string | undefined; readonly memory?: string | undefined };
  readonly limits: { readonly cpu?: string | undefined; readonly memory?: string | undefined };
}

const KINDS = ["cpu", "memory"] as const;

const above = (a: string | undefined, b: string | undefined): boolean => {
  const left = a === undefined ? undefined : quantityValue(a);
  const right = b === undefined ? undefined : quantityValue(b);
  return left !== undefined && right !== undefined && left > right;
};

/**
 * Fills what `given` leaves out from `defaults`, key by key (`requests.memory: 48Gi` alone keeps the
 * default CPU request and both limits). A default never contradicts a value the spec sets: a default
 * limit below a request written rises to that request, and a default request above a limit written
 * falls to that limit (as Kubernetes takes the limit for a request left out).
 */
export function fillResources(given: ResourceValues, defaults: ResourceValues): ResourceValues {
  const requests: Record<string, string | undefined> = {};
  const limits: Record<string, string | undefined> = {};
  for (const kind of KINDS) {
    const request = given.requests[kind];
    const limit = given.limits[kind];
    let filledRequest = request ?? defaults.requests[kind];
    let filledLimit = limit ?? defaults.limits[kind];
    if (request === undefined && limit !== undefined && above(filledRequest, limit)) filledRequest = limit;
    if (limit === undefined && request !== undefined && above(request, filledLimit)) filledLimit = request;
    if (filledRequest !== undefined) requests[kind] = filledRequest;
    if (filledLimit !== undefined) limits[kind] = filledLimit;
  }
  return { requests, limits };
}

/** Every workload of the spec that sets a container's resources, by its path in the spec. */
export const RESOURCE_PATHS: readonly Path[] = [
  ["model", "engine", "resources"],
  ["model", "adapterAgent", "resources"],
  ["qdrant", "resources"],
  ["embeddings", "resources"],
  ["gateway", "resources"],
];

function resourcesAt(spec: unknown, path: Path): ResourceValues | undefined {
  let value: unknown = spec;
  for (const part of path) {
    if (typeof value !== "object" || value === null) return undefined;
    value = (value as Record<string | number, unknown>)[part];
  }
  return typeof value === "object" && value !== null && "requests" in value && "limits" in value ? (value as ResourceValues) : undefined;
}

/** A request above its limit: the API server refuses the pod (`must be less than or equal to … limit`). */
export function checkResources(spec: unknown, error: (path: Path, message: string, fix: string) => void): void {
  for (const path of RESOURCE_PATHS) {
    const resources = resourcesAt(spec, path);
    if (resources === undefined) continue;
    for (const kind of KINDS) {
      const request = resources.requests[kind];
      const limit = resources.limits[kind];
      if (request === undefined || limit === undefined || !above(request, limit)) continue;
      const at = formatPath(path);
      error(
        [...path, "requests", kind],
        `requests.${kind} ${request} is above limits.${kind} ${limit}: the API server refuses a container that requests more than its limit`,
        `lower ${at}.requests.${kind} to at most ${limit}, or raise ${at}.limits.${kind} to at least ${request}`,
      );
    }
  }
}
