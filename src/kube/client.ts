import { ApiException, KubernetesObjectApi, PatchStrategy, VersionApi, Watch, type KubeConfig } from "@kubernetes/client-node";
import { existsSync } from "node:fs";
import { homedir } from "node:os";
import { join } from "node:path";
import { InputError, WorldError } from "../errors.ts";
import type { KubeObject } from "../render/context.ts";
import { BoundedKubeConfig, CONNECT_TIMEOUT_MS } from "./connect-timeout.ts";
import { fromModel, toModel } from "./wire.ts";

export const FIELD_MANAGER = "diatonic";

export interface KubeClientOptions {
  /** @default $KUBECONFIG or ~/.kube/config */
  readonly kubeconfig?: string;
  /** @default the kubeconfig's current context */
  readonly context?: string;
  /** How long a connection to the API server may take to be established. @default CONNECT_TIMEOUT_MS (15 s) */
  readonly connectTimeoutMs?: number;
}

/** One field another manager owns, as the API server names them. */
export interface FieldConflict {
  /** `.spec.replicas` */
  readonly field: string;
  /** `kubectl`, or `kubectl (subresource scale)`; "another manager" when the server does not say. */
  readonly manager: string;
  /** The server's own words. */
  readonly message: string;
}

/** The field and manager of one cause of a 409 from server-side apply. */
export function fieldConflict(cause: { readonly field?: string; readonly message?: string }): FieldConflict {
  const message = cause.message ?? "conflict";
  const found = /conflict with "([^"]+)"(?: with subresource "([^"]+)")?/.exec(message);
  const manager = found?.[1] === undefined ? "another manager" : `${found[1]}${found[2] !== undefined ? ` (subresource ${found[2]})` : ""}`;
  return { field: cause.field ?? "", manager, message };
}

/** A field-ownership conflict on server-side apply: which fields, owned by whom. */
export class ConflictError extends WorldError {
  constructor(
    readonly resource: string,
    readonly conflicts: readonly FieldConflict[],
  ) {
    super(
      `${resource}: fields owned by another manager: ${conflicts.map((c) => `${c.field} ${c.message}`.trim()).join("; ")}`,
      "someone changed these fields with another tool; rerun with --force-conflicts to take them back, or put the change into the spec",
    );
  }
}

/** The credentials may not do this (HTTP 401 or 403). */
export class ForbiddenError extends WorldError {}

/** A request's result, or undefined when these credentials may not make it (the caller does without). */
export async function unlessForbidden<T>(request: Promise<T>): Promise<T | undefined> {
  try {
    return await request;
  } catch (error) {
    if (error instanceof ForbiddenError) return undefined;
    throw error;
  }
}

/** The status object the API server returns with errors. */
interface StatusBody {
  readonly message?: string;
  readonly reason?: string;
  readonly details?: { readonly causes?: readonly { readonly message?: string; readonly field?: string }[] };
}

export function statusOf(error: unknown): { code: number; body: StatusBody } | undefined {
  if (error instanceof ApiException) {
    let body: StatusBody = {};
    try {
      body = (typeof error.body === "string" ? JSON.parse(error.body) : error.body) as StatusBody;
    } catch {
      body = { message: String(error.body) };
    }
    return { code: error.code, body };
  }
  return undefined;
}

export function isNotFound(error: unknown): boolean {
  return statusOf(error)?.code === 404;
}

export function resourceName(object: Pick<KubeObject, "kind" | "metadata">): string {
  return `${object.kind}/${object.metadata.namespace ? `${object.metadata.namespace}/` : ""}${object.metadata.name}`;
}

/** KubernetesObjectApi with its discovery exposed: plural names and scope of each kind. */
class ObjectApi extends KubernetesObjectApi {
  async describe(apiVersion: string, kind: string): Promise<{ plural: string; namespaced: boolean } | undefined> {
    const found = await this.resource(apiVersion, kind);
    return found ? { plural: found.name, namespaced: found.namespaced } : undefined;
  }
}

/**
 * The kubeconfig the client reads, as @kubernetes/client-node's loadFromDefault picks it ($KUBECONFIG,
 * else ~/.kube/config, else the pod's service account), for messages; undefined when there is none.
 */
function kubeconfigSource(explicit: string | undefined): string | undefined {
  if (explicit) return explicit;
  const fromEnv = process.env["KUBECONFIG"];
  if (fromEnv) return fromEnv;
  const home = join(homedir(), ".kube", "config");
  if (existsSync(home)) return home;
  if (process.env["KUBERNETES_SERVICE_HOST"]) return "the pod's service account (in-cluster)";
  return undefined;
}

/** The Kubernetes API as the deploy tool uses it: server-side apply with one field manager, reads, watches. */
export class KubeClient {
  readonly config: KubeConfig;
  private readonly objects: ObjectApi;
  readonly server: string;
  /** Where the server came from, for errors: the context and the kubeconfig. */
  private readonly origin: string;

  constructor(options: KubeClientOptions = {}) {
    this.config = new BoundedKubeConfig(options.connectTimeoutMs ?? CONNECT_TIMEOUT_MS);
    const source = kubeconfigSource(options.kubeconfig);
    if (source === undefined)
      // The library would fall back to http://localhost:8080, a server nobody configured.
      throw new InputError(
        "no kubeconfig: --kubeconfig is not given, KUBECONFIG is not set, ~/.kube/config does not exist, and this is not a pod in a cluster",
        "pass --kubeconfig FILE or set KUBECONFIG (for the test cluster: npm run cluster:up prints it)",
      );
    try {
      if (options.kubeconfig) this.config.loadFromFile(options.kubeconfig);
      else this.config.loadFromDefault();
    } catch (error) {
      throw new InputError(`cannot read kubeconfig ${source}: ${(error as Error).message}`, "pass --kubeconfig FILE or set KUBECONFIG");
    }
    if (options.context) {
      if (!this.config.getContexts().some((c) => c.name === options.context)) {
        throw new InputError(
          `context ${JSON.stringify(options.context)} is not in the kubeconfig`,
          `use one of: ${this.config
            .getContexts()
            .map((c) => c.name)
            .join(", ")}`,
        );
      }
      this.config.setCurrentContext(options.context);
    }
    const cluster = this.config.getCurrentCluster();
    if (!cluster) throw new InputError("the kubeconfig has no current cluster", "pass --context NAME or set current-context");
    this.server = cluster.server;
    this.origin = `context ${this.config.getCurrentContext()} of ${source}`;
    this.objects = ObjectApi.makeApiClient(this.config) as ObjectApi;
    Object.setPrototypeOf(this.objects, ObjectApi.prototype);
  }

  private unreachable(error: unknown): WorldError {
    return new WorldError(
      `cannot reach the cluster at ${this.server} (${this.origin}): ${(error as Error).message}`,
      "check that the cluster runs and that the kubeconfig and context point at it (--kubeconfig, --context)",
      { cause: error },
    );
  }

  private rethrow(error: unknown, object?: Pick<KubeObject, "kind" | "metadata">): never {
    const status = statusOf(error);
    if (!status) throw this.unreachable(error);
    const what = object ? `${resourceName(object)}: ` : "";
    if (status.code === 409 && status.body.reason === "Conflict" && object) {
      const causes = status.body.details?.causes ?? [];
      throw new ConflictError(
        resourceName(object),
        (causes.length > 0 ? causes : [{ message: status.body.message ?? "conflict" }]).map(fieldConflict),
      );
    }
    if (status.code === 401 || status.code === 403)
      throw new ForbiddenError(
        `${what}${status.body.message ?? "forbidden"}`,
        "use credentials allowed to manage this namespace and its cluster-scoped objects",
      );
    throw new WorldError(
      `${what}${status.body.message ?? `HTTP ${status.code}`}`,
      status.code === 422
        ? "the API server rejected the object; run `diatonic validate` and check the message"
        : "see the message from the API server",
    );
  }

  async version(): Promise<{ major: string; minor: string; gitVersion: string }> {
    try {
      const info = await this.config.makeApiClient(VersionApi).getCode();
      return { major: info.major, minor: info.minor, gitVersion: info.gitVersion };
    } catch (error) {
      throw this.unreachable(error);
    }
  }

  /** Server-side apply as FIELD_MANAGER. Returns the object as stored (or as it would be, on dry run). */
  async apply<T extends KubeObject>(object: T, options: { dryRun?: boolean; force?: boolean } = {}): Promise<T> {
    try {
      const stored = await this.objects.patch(
        toModel(object),
        undefined,
        options.dryRun ? "All" : undefined,
        FIELD_MANAGER,
        options.force ?? false,
        PatchStrategy.ServerSideApply,
      );
      return fromModel<T>(stored, object.apiVersion, object.kind);
    } catch (error) {
      this.rethrow(error, object);
    }
  }

  /** Sets one label with a merge patch, leaving the rest of the object as it is. */
  async label(object: Pick<KubeObject, "apiVersion" | "kind" | "metadata">, key: string, value: string): Promise<void> {
    try {
      const patch = {
        apiVersion: object.apiVersion,
        kind: object.kind,
        metadata: {
          name: object.metadata.name,
          ...(object.metadata.namespace ? { namespace: object.metadata.namespace } : {}),
          labels: { [key]: value },
        },
      };
      await this.objects.patch(patch, undefined, undefined, FIELD_MANAGER, undefined, PatchStrategy.MergePatch);
    } catch (error) {
      this.rethrow(error, object);
    }
  }

  async get<T extends KubeObject>(object: Pick<KubeObject, "apiVersion" | "kind" | "metadata">): Promise<T | undefined> {
    try {
      const header = {
        apiVersion: object.apiVersion,
        kind: object.kind,
        metadata: { name: object.metadata.name, ...(object.metadata.namespace ? { namespace: object.metadata.namespace } : {}) },
      };
      return fromModel<T>(await this.objects.read(header), object.apiVersion, object.kind);
    } catch (error) {
      if (isNotFound(error)) return undefined;
      this.rethrow(error, object);
    }
  }

  async list<T extends KubeObject>(
    apiVersion: string,
    kind: string,
    namespace?: string,
    labelSelector?: string,
    fieldSelector?: string,
  ): Promise<T[]> {
    try {
      const list = await this.objects.list(apiVersion, kind, namespace, undefined, undefined, undefined, fieldSelector, labelSelector);
      return list.items.map((item) => fromModel<T>(item, apiVersion, kind));
    } catch (error) {
      if (isNotFound(error)) return [];
      this.rethrow(error);
    }
  }

  async delete(object: Pick<KubeObject, "apiVersion" | "kind" | "metadata">, options: { dryRun?: boolean } = {}): Promise<boolean> {
    try {
      const header = {
        apiVersion: object.apiVersion,
        kind: object.kind,
        metadata: { name: object.metadata.name, ...(object.metadata.namespace ? { namespace: object.metadata.namespace } : {}) },
      };
      await this.objects.delete(header, undefined, options.dryRun ? "All" : undefined, undefined, undefined, "Background");
      return true;
    } catch (error) {
      if (isNotFound(error)) return false;
      this.rethrow(error, object);
    }
  }

  /** Plural and scope of a kind, from discovery; undefined when the API server does not serve it. */
  async describe(apiVersion: string, kind: string): Promise<{ plural: string; namespaced: boolean } | undefined> {
    try {
      return await this.objects.describe(apiVersion, kind);
    } catch (error) {
      if (isNotFound(error)) return undefined;
      this.rethrow(error);
    }
  }

  async collectionPath(apiVersion: string, kind: string, namespace?: string): Promise<string> {
    const info = await this.describe(apiVersion, kind);
    if (!info) throw new WorldError(`the cluster does not serve ${apiVersion} ${kind}`, "install the CRD or operator that provides it");
    const base = apiVersion.includes("/") ? `/apis/${apiVersion}` : `/api/${apiVersion}`;
    return info.namespaced && namespace ? `${base}/namespaces/${namespace}/${info.plural}` : `${base}/${info.plural}`;
  }

  /**
   * Watches a collection (optionally one object by name). Starting without a resourceVersion, the
   * server first replays the current state as ADDED events. Returns a function that stops the watch.
   */
  async watch(
    apiVersion: string,
    kind: string,
    options: { namespace?: string; name?: string; labelSelector?: string },
    onEvent: (type: string, object: KubeObject) => void,
    onEnd: (error: unknown) => void,
  ): Promise<() => void> {
    const path = await this.collectionPath(apiVersion, kind, options.namespace);
    const query: Record<string, string> = {};
    if (options.name) query["fieldSelector"] = `metadata.name=${options.name}`;
    if (options.labelSelector) query["labelSelector"] = options.labelSelector;
    const controller = await new Watch(this.config).watch(
      path,
      query,
      (type: string, object: unknown) => onEvent(type, { apiVersion, kind, ...(object as object) } as KubeObject),
      onEnd,
    );
    return () => controller.abort();
  }
}
