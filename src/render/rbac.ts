import type { IServiceAccount } from "kubernetes-models/v1/ServiceAccount";
import type { KubeObject, Placed, RenderContext } from "./context.ts";

export function serviceAccount(
  ctx: RenderContext,
  name: string,
  component: string,
  automount: boolean,
  namespace?: string,
): IServiceAccount {
  return {
    apiVersion: "v1",
    kind: "ServiceAccount",
    metadata: ctx.meta(name, component, namespace ? { namespace } : {}),
    automountServiceAccountToken: automount,
  };
}

/**
 * One ServiceAccount per workload, none with a token: no workload of the platform calls the API
 * server. The gateway reads its config and keys from mounted files and finds the engine replicas
 * through a headless Service's DNS.
 */
export function renderRbac(ctx: RenderContext, workloads: readonly { name: string; component: string }[]): Placed[] {
  return workloads.map((w) => ({ object: serviceAccount(ctx, w.name, w.component, false) as KubeObject, component: "rbac" }));
}
