import { createHash } from "node:crypto";
import { AGENT_PORT } from "../adapters/port.ts";
import type { Platform, PlatformSpec } from "../spec/schema.ts";

/** Any Kubernetes object as rendered: typed per component, kept generic here. */
export interface KubeObject {
  readonly apiVersion: string;
  readonly kind: string;
  readonly metadata: {
    readonly name: string;
    readonly namespace?: string;
    readonly labels?: Readonly<Record<string, string>>;
    readonly annotations?: Readonly<Record<string, string>>;
    /** Set by the API server on live objects; never rendered. */
    readonly resourceVersion?: string;
    readonly uid?: string;
    readonly creationTimestamp?: string;
  };
}

/** Where an object goes in the written tree: a component file, or an adapter's own file. */
export interface Placed {
  readonly object: KubeObject;
  /** `engine`, `gateway`, … or `adapters/<name>`: the file `base/<component>.yaml`. */
  readonly component: string;
}

/** A Secret the platform reads but never renders: the operator creates it. */
export interface RequiredSecret {
  readonly namespace: string;
  readonly name: string;
  readonly key: string;
  readonly purpose: string;
  readonly create: string;
}

export const VERSION = "0.1.0";

/** Which environment of the spec an object was rendered for (`local`, `production`, or `base`). */
export const ENVIRONMENT_LABEL = "diatonic.ai/environment";

/**
 * Marks an object that every platform in a cluster renders alike (the NVIDIA device plugin, one per
 * cluster); its value names what it is part of. See src/deploy/shared.ts.
 */
export const SHARED_ANNOTATION = "diatonic.ai/shared";

/** On a cluster-scoped shared object (the device plugin's node reader): the namespace it belongs with. */
export const SHARED_NAMESPACE_ANNOTATION = "diatonic.ai/shared-namespace";

/** The labels diatonic puts on everything it renders, whichever platform renders it. */
export function toolLabels(component: string): Record<string, string> {
  return { "app.kubernetes.io/component": component, "app.kubernetes.io/part-of": "diatonic", "app.kubernetes.io/managed-by": "diatonic" };
}

/** Label values are at most 63 characters: longer names keep their start and gain a short hash. */
export function labelValue(name: string): string {
  if (name.length <= 63) return name;
  return `${name.slice(0, 54).replace(/[-_.]+$/, "")}-${createHash("sha256").update(name).digest("hex").slice(0, 8)}`;
}

/** Names, labels and selectors derived once from the spec and used by every component. */
export class RenderContext {
  readonly namespace: string;
  constructor(readonly platform: Platform) {
    this.namespace = platform.spec.namespace;
  }

  selector(name: string): Record<string, string> {
    return { "app.kubernetes.io/name": labelValue(name), "app.kubernetes.io/instance": this.platform.name };
  }

  /** An object's labels: the platform's own (`metadata.labels` of the spec), then ours. */
  labels(name: string, component: string): Record<string, string> {
    return {
      ...this.platform.labels,
      ...this.selector(name),
      ...toolLabels(component),
      "app.kubernetes.io/version": VERSION,
      [ENVIRONMENT_LABEL]: this.platform.environment,
    };
  }

  /** metadata for a namespaced object of the platform. */
  meta(name: string, component: string, extra: { annotations?: Record<string, string>; namespace?: string } = {}) {
    return {
      name,
      namespace: extra.namespace ?? this.namespace,
      labels: this.labels(name, component),
      ...(extra.annotations ? { annotations: extra.annotations } : {}),
    };
  }

  /** metadata for a cluster-scoped object; prefixed with the platform name so two platforms can coexist. */
  clusterMeta(name: string, component: string) {
    const full = `${this.platform.name}-${name}`;
    return { name: full, labels: this.labels(full, component) };
  }

  serviceHost(service: string, namespace = this.namespace): string {
    return `${service}.${namespace}.svc.cluster.local`;
  }
}

/** Names of the platform's own objects: one place, so no name is typed twice. */
export const names = {
  engine: "engine",
  engineHeadless: "engine-headless",
  dedicatedEngine: (adapter: string) => `engine-${adapter}`,
  gateway: "gateway",
  gatewayTls: "gateway-tls",
  qdrant: "qdrant",
  qdrantHeadless: "qdrant-headless",
  qdrantConfig: "qdrant-config",
  modelsClaim: "models",
  adapterConfig: (adapter: string) => `adapter-${adapter}`,
  devicePlugin: "nvidia-device-plugin",
  devicePluginConfig: "nvidia-device-plugin-config",
  migConfig: "diatonic-mig-parted-config",
} as const;

export const ports = {
  engine: 8000,
  agent: AGENT_PORT,
  gateway: 8080,
  qdrantHttp: 6333,
  qdrantGrpc: 6334,
  qdrantP2p: 6335,
} as const;

/** Whether the platform runs Qdrant: as the spec says, else when an adapter uses RAG. */
export function qdrantEnabled(spec: PlatformSpec): boolean {
  return spec.qdrant.enabled ?? spec.adapters.some((a) => a.rag !== undefined);
}
