import { Certificate } from "@kubernetes-models/cert-manager/cert-manager.io/v1/Certificate";
import { ClusterIssuer } from "@kubernetes-models/cert-manager/cert-manager.io/v1/ClusterIssuer";
import { Issuer } from "@kubernetes-models/cert-manager/cert-manager.io/v1/Issuer";
import { PodMonitor } from "@kubernetes-models/prometheus-operator/monitoring.coreos.com/v1/PodMonitor";
import { PrometheusRule } from "@kubernetes-models/prometheus-operator/monitoring.coreos.com/v1/PrometheusRule";
import { ServiceMonitor } from "@kubernetes-models/prometheus-operator/monitoring.coreos.com/v1/ServiceMonitor";
import { DaemonSet } from "kubernetes-models/apps/v1/DaemonSet";
import { Deployment } from "kubernetes-models/apps/v1/Deployment";
import { StatefulSet } from "kubernetes-models/apps/v1/StatefulSet";
import { HorizontalPodAutoscaler } from "kubernetes-models/autoscaling/v2/HorizontalPodAutoscaler";
import { CronJob } from "kubernetes-models/batch/v1/CronJob";
import { Job } from "kubernetes-models/batch/v1/Job";
import { Ingress } from "kubernetes-models/networking.k8s.io/v1/Ingress";
import { NetworkPolicy } from "kubernetes-models/networking.k8s.io/v1/NetworkPolicy";
import { PodDisruptionBudget } from "kubernetes-models/policy/v1/PodDisruptionBudget";
import { ClusterRole } from "kubernetes-models/rbac.authorization.k8s.io/v1/ClusterRole";
import { ClusterRoleBinding } from "kubernetes-models/rbac.authorization.k8s.io/v1/ClusterRoleBinding";
import { Role } from "kubernetes-models/rbac.authorization.k8s.io/v1/Role";
import { RoleBinding } from "kubernetes-models/rbac.authorization.k8s.io/v1/RoleBinding";
import { ConfigMap } from "kubernetes-models/v1/ConfigMap";
import { Namespace } from "kubernetes-models/v1/Namespace";
import { PersistentVolumeClaim } from "kubernetes-models/v1/PersistentVolumeClaim";
import { Secret } from "kubernetes-models/v1/Secret";
import { Service } from "kubernetes-models/v1/Service";
import { ServiceAccount } from "kubernetes-models/v1/ServiceAccount";
import { z } from "zod";
import type { KubeObject } from "./context.ts";

interface Validatable {
  validate(): void;
}
type ModelClass = new (data: never) => Validatable;

const models: Record<string, ModelClass> = {
  "v1/Namespace": Namespace,
  "v1/ServiceAccount": ServiceAccount,
  "v1/ConfigMap": ConfigMap,
  "v1/Secret": Secret,
  "v1/Service": Service,
  "v1/PersistentVolumeClaim": PersistentVolumeClaim,
  "apps/v1/Deployment": Deployment,
  "apps/v1/StatefulSet": StatefulSet,
  "apps/v1/DaemonSet": DaemonSet,
  "batch/v1/Job": Job,
  "batch/v1/CronJob": CronJob,
  "rbac.authorization.k8s.io/v1/Role": Role,
  "rbac.authorization.k8s.io/v1/RoleBinding": RoleBinding,
  "rbac.authorization.k8s.io/v1/ClusterRole": ClusterRole,
  "rbac.authorization.k8s.io/v1/ClusterRoleBinding": ClusterRoleBinding,
  "networking.k8s.io/v1/Ingress": Ingress,
  "networking.k8s.io/v1/NetworkPolicy": NetworkPolicy,
  "policy/v1/PodDisruptionBudget": PodDisruptionBudget,
  "autoscaling/v2/HorizontalPodAutoscaler": HorizontalPodAutoscaler,
  "cert-manager.io/v1/Certificate": Certificate,
  "cert-manager.io/v1/ClusterIssuer": ClusterIssuer,
  "cert-manager.io/v1/Issuer": Issuer,
  "monitoring.coreos.com/v1/ServiceMonitor": ServiceMonitor,
  "monitoring.coreos.com/v1/PodMonitor": PodMonitor,
  "monitoring.coreos.com/v1/PrometheusRule": PrometheusRule,
};

/** Contour's HTTPProxy, checked by our own schema of the fields we use (its models need Node 22). */
const HTTPProxySchema = z.looseObject({
  apiVersion: z.literal("projectcontour.io/v1"),
  kind: z.literal("HTTPProxy"),
  metadata: z.looseObject({ name: z.string(), namespace: z.string() }),
  spec: z.strictObject({
    ingressClassName: z.string().optional(),
    virtualhost: z.strictObject({ fqdn: z.string().min(1), tls: z.strictObject({ secretName: z.string().min(1) }).optional() }),
    routes: z.array(
      z.strictObject({
        conditions: z.array(z.strictObject({ prefix: z.string() })).optional(),
        services: z.array(z.strictObject({ name: z.string(), port: z.number().int().min(1).max(65535) })).min(1),
        timeoutPolicy: z.strictObject({ response: z.string().optional(), idle: z.string().optional() }).optional(),
      }),
    ),
  }),
});

export interface SchemaViolation {
  readonly resource: string;
  readonly path: string;
  readonly message: string;
}

export function resourceId(object: Pick<KubeObject, "kind" | "metadata">): string {
  return `${object.kind}/${object.metadata.namespace ? `${object.metadata.namespace}/` : ""}${object.metadata.name}`;
}

export function knownSchema(object: Pick<KubeObject, "apiVersion" | "kind">): boolean {
  return `${object.apiVersion}/${object.kind}` in models || (object.apiVersion === "projectcontour.io/v1" && object.kind === "HTTPProxy");
}

/** Checks one object against the official Kubernetes (or CRD) schema for its apiVersion/kind. */
export function checkSchema(object: KubeObject): SchemaViolation[] {
  const resource = resourceId(object);
  if (object.apiVersion === "projectcontour.io/v1" && object.kind === "HTTPProxy") {
    const result = HTTPProxySchema.safeParse(object);
    return result.success
      ? []
      : result.error.issues.map((issue) => ({ resource, path: `/${issue.path.join("/")}`, message: issue.message }));
  }
  const Model = models[`${object.apiVersion}/${object.kind}`];
  if (!Model) return [{ resource, path: "/apiVersion", message: `no schema known for ${object.apiVersion} ${object.kind}` }];
  try {
    new Model(object as never).validate();
    return [];
  } catch (error) {
    const errors = (error as { errors?: readonly { instancePath?: string; message?: string }[] }).errors;
    if (!errors) return [{ resource, path: "/", message: (error as Error).message }];
    return errors.map((e) => ({ resource, path: e.instancePath || "/", message: e.message ?? "invalid" }));
  }
}
