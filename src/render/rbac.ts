import type { IRole } from "kubernetes-models/rbac.authorization.k8s.io/v1/Role";
import type { IRoleBinding } from "kubernetes-models/rbac.authorization.k8s.io/v1/RoleBinding";
import type { IServiceAccount } from "kubernetes-models/v1/ServiceAccount";
import { names, type KubeObject, type Placed, type RenderContext } from "./context.ts";

export function serviceAccount(ctx: RenderContext, name: string, component: string, automount: boolean, namespace?: string): IServiceAccount {
  return {
    apiVersion: "v1",
    kind: "ServiceAccount",
    metadata: ctx.meta(name, component, namespace ? { namespace } : {}),
    automountServiceAccountToken: automount,
  };
}

/**
 * One ServiceAccount per workload. Only the gateway talks to the API (to read its own ConfigMap),
 * so only it gets a token and a Role; the Role names that one ConfigMap and grants nothing on Secrets.
 */
export function renderRbac(ctx: RenderContext, workloads: readonly { name: string; component: string }[]): Placed[] {
  const objects: KubeObject[] = workloads.map(
    (w) => serviceAccount(ctx, w.name, w.component, w.name === names.gateway) as KubeObject,
  );
  const role: IRole = {
    apiVersion: "rbac.authorization.k8s.io/v1",
    kind: "Role",
    metadata: ctx.meta(`${names.gateway}-config-reader`, "gateway"),
    rules: [{ apiGroups: [""], resources: ["configmaps"], resourceNames: [names.gateway], verbs: ["get", "watch"] }],
  };
  const binding: IRoleBinding = {
    apiVersion: "rbac.authorization.k8s.io/v1",
    kind: "RoleBinding",
    metadata: ctx.meta(`${names.gateway}-config-reader`, "gateway"),
    roleRef: { apiGroup: "rbac.authorization.k8s.io", kind: "Role", name: `${names.gateway}-config-reader` },
    subjects: [{ kind: "ServiceAccount", name: names.gateway, namespace: ctx.namespace }],
  };
  return [...objects, role as KubeObject, binding as KubeObject].map((object) => ({ object, component: "rbac" }));
}
