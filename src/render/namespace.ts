import type { INamespace } from "kubernetes-models/v1/Namespace";
import type { Placed, RenderContext } from "./context.ts";

const podSecurity = (level: "restricted" | "privileged") => ({
  "pod-security.kubernetes.io/enforce": level,
  "pod-security.kubernetes.io/enforce-version": "latest",
  "pod-security.kubernetes.io/audit": level,
  "pod-security.kubernetes.io/warn": level,
});

/** The platform namespace enforces Pod Security "restricted"; every workload in it complies. */
export function renderNamespace(ctx: RenderContext): Placed[] {
  const namespace: INamespace = {
    apiVersion: "v1",
    kind: "Namespace",
    metadata: {
      name: ctx.namespace,
      labels: { ...ctx.labels(ctx.namespace, "namespace"), ...podSecurity("restricted") },
    },
  };
  return [{ object: namespace as Placed["object"], component: "namespace" }];
}

/** The device plugin mounts host paths, which only a privileged namespace admits; it gets its own. */
export function privilegedNamespace(ctx: RenderContext, name: string): INamespace {
  return {
    apiVersion: "v1",
    kind: "Namespace",
    metadata: { name, labels: { ...ctx.labels(name, "gpu"), ...podSecurity("privileged") } },
  };
}
