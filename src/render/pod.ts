import { createHash } from "node:crypto";
import type { IIoK8sApiCoreV1Container as Container } from "kubernetes-models/v1/Container";
import type { IIoK8sApiCoreV1PodSecurityContext as PodSecurityContext } from "kubernetes-models/v1/PodSecurityContext";
import type { IIoK8sApiCoreV1Probe as Probe } from "kubernetes-models/v1/Probe";
import type { IIoK8sApiCoreV1ResourceRequirements as ResourceRequirements } from "kubernetes-models/v1/ResourceRequirements";
import type { ResourcesSpec } from "../spec/schema.ts";

/** Pod-level settings that satisfy Pod Security "restricted". */
export function restrictedPod(uid: number): PodSecurityContext {
  return {
    runAsNonRoot: true,
    runAsUser: uid,
    runAsGroup: uid,
    fsGroup: uid,
    fsGroupChangePolicy: "OnRootMismatch",
    seccompProfile: { type: "RuntimeDefault" },
  };
}

/** Container-level settings for "restricted": no escalation, no capabilities, read-only root. */
export function restrictedContainer(): NonNullable<Container["securityContext"]> {
  return {
    allowPrivilegeEscalation: false,
    readOnlyRootFilesystem: true,
    runAsNonRoot: true,
    capabilities: { drop: ["ALL"] },
    seccompProfile: { type: "RuntimeDefault" },
  };
}

export function resourcesOf(spec: ResourcesSpec, extraLimits: Record<string, string> = {}): ResourceRequirements {
  const clean = (values: Record<string, string | undefined>): Record<string, string> =>
    Object.fromEntries(Object.entries(values).filter((entry): entry is [string, string] => entry[1] !== undefined));
  return {
    requests: clean(spec.requests),
    limits: { ...clean(spec.limits), ...extraLimits },
  };
}

export function httpProbe(path: string, port: string, options: { period?: number; failures?: number; timeout?: number } = {}): Probe {
  return {
    httpGet: { path, port },
    periodSeconds: options.period ?? 10,
    timeoutSeconds: options.timeout ?? 3,
    failureThreshold: options.failures ?? 3,
  };
}

/** A short, stable hash used to name immutable objects (Jobs) after their content. */
export function contentHash(value: unknown): string {
  return createHash("sha256").update(JSON.stringify(value)).digest("hex").slice(0, 8);
}
