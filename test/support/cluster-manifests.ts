// Small manifests shared by the cluster-tier tests.

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
