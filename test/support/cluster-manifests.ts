// Small manifests shared by the cluster-tier tests.
import { probeImage } from "../../scripts/cluster/node-images.ts";

export const pauseImage = "registry.k8s.io/pause:3.10";

/** A pod spec that the restricted Pod Security Standard admits. */
export function restrictedPodSpec(extra: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    securityContext: { runAsNonRoot: true, runAsUser: 65532, seccompProfile: { type: "RuntimeDefault" } },
    automountServiceAccountToken: false,
    containers: [
      {
        name: "app",
        image: pauseImage,
        securityContext: { allowPrivilegeEscalation: false, capabilities: { drop: ["ALL"] } },
        resources: { requests: { cpu: "10m", memory: "16Mi" }, limits: { memory: "32Mi" } },
      },
    ],
    ...extra,
  };
}

/** A kubectl List of the given objects, as JSON for stdin. */
export function list(items: readonly unknown[]): string {
  return JSON.stringify({ apiVersion: "v1", kind: "List", items });
}

export interface ProbePodOptions {
  readonly labels?: Readonly<Record<string, string>>;
  /** Arguments of the probe program. @default ["serve"] */
  readonly args?: readonly string[];
  /** @default "Always" */
  readonly restartPolicy?: "Always" | "OnFailure" | "Never";
  /** More fields of the probe container (env, volumeMounts). */
  readonly container?: Readonly<Record<string, unknown>>;
  /** The pod's volumes. */
  readonly volumes?: readonly unknown[];
}

/**
 * A pod of the test cluster's probe image (scripts/cluster/node-images.ts), which only the real
 * node has: restricted-compliant, never pulled.
 */
export function probePod(namespace: string, name: string, options: ProbePodOptions = {}): Record<string, unknown> {
  const spec = restrictedPodSpec({ restartPolicy: options.restartPolicy ?? "Always", terminationGracePeriodSeconds: 2 });
  const [container] = spec.containers as Record<string, unknown>[];
  return {
    apiVersion: "v1",
    kind: "Pod",
    metadata: { name, namespace, labels: { app: name, ...options.labels } },
    spec: {
      ...spec,
      containers: [
        {
          ...container,
          name: "probe",
          image: probeImage,
          imagePullPolicy: "Never",
          args: options.args ?? ["serve"],
          ports: [{ name: "http", containerPort: 8080 }],
          ...options.container,
        },
      ],
      ...(options.volumes === undefined ? {} : { volumes: options.volumes }),
    },
  };
}
