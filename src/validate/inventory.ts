import type { KubeObject } from "../render/context.ts";
import { resourceId } from "../render/schema-check.ts";

/** The parts of a container the rules read. */
export interface ContainerLike {
  readonly name: string;
  readonly image?: string;
  readonly command?: readonly string[];
  readonly args?: readonly string[];
  readonly ports?: readonly {
    readonly name?: string;
    readonly containerPort: number;
    readonly protocol?: string;
    readonly hostPort?: number;
  }[];
  readonly env?: readonly {
    readonly name: string;
    readonly value?: string;
    readonly valueFrom?: {
      readonly secretKeyRef?: { readonly name: string; readonly key: string; readonly optional?: boolean };
      readonly configMapKeyRef?: { readonly name: string; readonly key: string; readonly optional?: boolean };
    };
  }[];
  readonly envFrom?: readonly {
    readonly configMapRef?: { readonly name: string; readonly optional?: boolean };
    readonly secretRef?: { readonly name: string; readonly optional?: boolean };
  }[];
  readonly resources?: { readonly requests?: Readonly<Record<string, string>>; readonly limits?: Readonly<Record<string, string>> };
  readonly securityContext?: SecurityContextLike;
  readonly readinessProbe?: ProbeLike;
  readonly livenessProbe?: ProbeLike;
  readonly startupProbe?: ProbeLike;
  readonly volumeMounts?: readonly {
    readonly name: string;
    readonly mountPath: string;
    readonly readOnly?: boolean;
    readonly subPath?: string;
  }[];
}

export interface SecurityContextLike {
  readonly runAsNonRoot?: boolean;
  readonly runAsUser?: number;
  readonly allowPrivilegeEscalation?: boolean;
  readonly privileged?: boolean;
  readonly readOnlyRootFilesystem?: boolean;
  readonly capabilities?: { readonly add?: readonly string[]; readonly drop?: readonly string[] };
  readonly seccompProfile?: { readonly type?: string };
}

export interface ProbeLike {
  readonly httpGet?: { readonly port: number | string; readonly path?: string };
  readonly tcpSocket?: { readonly port: number | string };
  readonly grpc?: { readonly port: number };
  readonly exec?: unknown;
  readonly periodSeconds?: number;
  readonly failureThreshold?: number;
  readonly initialDelaySeconds?: number;
}

export interface VolumeLike {
  readonly name: string;
  readonly configMap?: { readonly name: string; readonly optional?: boolean };
  readonly secret?: { readonly secretName: string; readonly optional?: boolean };
  readonly persistentVolumeClaim?: { readonly claimName: string };
  readonly hostPath?: { readonly path: string };
  readonly emptyDir?: unknown;
  readonly projected?: unknown;
  readonly downwardAPI?: unknown;
  readonly csi?: unknown;
  readonly ephemeral?: unknown;
  readonly [other: string]: unknown;
}

export interface PodSpecLike {
  readonly serviceAccountName?: string;
  readonly nodeName?: string;
  readonly nodeSelector?: Readonly<Record<string, string>>;
  readonly affinity?: {
    readonly podAntiAffinity?: { readonly requiredDuringSchedulingIgnoredDuringExecution?: readonly { readonly topologyKey?: string }[] };
  };
  readonly automountServiceAccountToken?: boolean;
  readonly securityContext?: SecurityContextLike & { readonly fsGroup?: number };
  readonly hostNetwork?: boolean;
  readonly hostPID?: boolean;
  readonly hostIPC?: boolean;
  readonly containers: readonly ContainerLike[];
  readonly initContainers?: readonly ContainerLike[];
  readonly volumes?: readonly VolumeLike[];
}

/** A pod template and where it lives: a workload's template, or a bare Pod. */
export interface PodTemplate {
  readonly owner: KubeObject;
  readonly resource: string;
  readonly namespace: string;
  /** Path of the pod spec inside the owner, e.g. `spec.template.spec`. */
  readonly path: string;
  readonly labels: Readonly<Record<string, string>>;
  readonly spec: PodSpecLike;
  /** Pods this template runs at once (replicas, parallelism); DaemonSets count 1 per node. */
  readonly replicas: number;
  readonly longRunning: boolean;
}

interface Templated {
  readonly spec?: {
    readonly replicas?: number;
    readonly parallelism?: number;
    readonly template?: { readonly metadata?: { readonly labels?: Record<string, string> }; readonly spec?: PodSpecLike };
    readonly jobTemplate?: {
      readonly spec?: {
        readonly parallelism?: number;
        readonly template?: { readonly metadata?: { readonly labels?: Record<string, string> }; readonly spec?: PodSpecLike };
      };
    };
  };
}

function podTemplateOf(object: KubeObject): PodTemplate | undefined {
  const namespace = object.metadata.namespace ?? "default";
  const base = { owner: object, resource: resourceId(object), namespace };
  const typed = object as unknown as Templated & { spec?: PodSpecLike };
  switch (object.kind) {
    case "Deployment":
    case "StatefulSet":
    case "ReplicaSet":
    case "DaemonSet": {
      const template = typed.spec?.template;
      if (!template?.spec) return undefined;
      return {
        ...base,
        path: "spec.template.spec",
        labels: template.metadata?.labels ?? {},
        spec: template.spec,
        replicas: object.kind === "DaemonSet" ? 1 : (typed.spec?.replicas ?? 1),
        longRunning: true,
      };
    }
    case "Job": {
      const template = typed.spec?.template;
      if (!template?.spec) return undefined;
      return {
        ...base,
        path: "spec.template.spec",
        labels: template.metadata?.labels ?? {},
        spec: template.spec,
        replicas: typed.spec?.parallelism ?? 1,
        longRunning: false,
      };
    }
    case "CronJob": {
      const template = typed.spec?.jobTemplate?.spec?.template;
      if (!template?.spec) return undefined;
      return {
        ...base,
        path: "spec.jobTemplate.spec.template.spec",
        labels: template.metadata?.labels ?? {},
        spec: template.spec,
        replicas: typed.spec?.jobTemplate?.spec?.parallelism ?? 1,
        longRunning: false,
      };
    }
    case "Pod": {
      if (!typed.spec?.containers) return undefined;
      return { ...base, path: "spec", labels: object.metadata.labels ?? {}, spec: typed.spec, replicas: 1, longRunning: true };
    }
    default:
      return undefined;
  }
}

export function matchesSelector(selector: Readonly<Record<string, string>> | undefined, labels: Readonly<Record<string, string>>): boolean {
  if (!selector) return false;
  return Object.entries(selector).every(([key, value]) => labels[key] === value);
}

/** The objects under validation, indexed the ways rules look them up. */
export class Inventory {
  readonly templates: readonly PodTemplate[];
  private readonly byKey = new Map<string, KubeObject>();

  constructor(
    readonly objects: readonly KubeObject[],
    /** resource id → file it was read from */
    readonly files: ReadonlyMap<string, string> = new Map(),
  ) {
    for (const object of objects) this.byKey.set(this.key(object.kind, object.metadata.namespace, object.metadata.name), object);
    this.templates = objects.flatMap((o) => podTemplateOf(o) ?? []);
  }

  private key(kind: string, namespace: string | undefined, name: string): string {
    return `${kind}|${namespace ?? ""}|${name}`;
  }

  get(kind: string, namespace: string | undefined, name: string): KubeObject | undefined {
    return this.byKey.get(this.key(kind, namespace, name));
  }

  ofKind(kind: string): KubeObject[] {
    return this.objects.filter((o) => o.kind === kind);
  }

  /** Pod templates in `namespace` whose labels match `selector`. */
  podsMatching(namespace: string, selector: Readonly<Record<string, string>> | undefined): PodTemplate[] {
    return this.templates.filter((t) => t.namespace === namespace && matchesSelector(selector, t.labels));
  }

  /** Pod Security level enforced on a namespace, when its Namespace object is among the inputs. */
  podSecurityLevel(namespace: string): "restricted" | "baseline" | "privileged" | undefined {
    const ns = this.get("Namespace", undefined, namespace);
    const level = ns?.metadata.labels?.["pod-security.kubernetes.io/enforce"];
    return level === "restricted" || level === "baseline" || level === "privileged" ? level : undefined;
  }
}

/** Every container of a pod with its field path, init containers included. */
export function containersOf(template: PodTemplate): { container: ContainerLike; path: string; init: boolean }[] {
  return [
    ...(template.spec.initContainers ?? []).map((container, i) => ({
      container,
      path: `${template.path}.initContainers[${i}]`,
      init: true,
    })),
    ...template.spec.containers.map((container, i) => ({ container, path: `${template.path}.containers[${i}]`, init: false })),
  ];
}
