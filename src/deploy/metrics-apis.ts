// The aggregated metrics APIs an HPA reads. Without the one its metrics need, the HPA is admitted,
// reports ScalingActive=False and never scales: the platform serves at minReplicas and nothing says so.
import { ForbiddenError, resourceName, type KubeClient } from "../kube/client.ts";
import type { KubeObject } from "../render/context.ts";
import type { PreflightCheck } from "./preflight.ts";

interface MetricsApi {
  /** The APIService names that serve it (any one is enough). */
  readonly services: readonly string[];
  readonly install: string;
}

/** Per HPA metric type, the API that serves it (as the HPA controller reads them). */
const APIS: Record<string, MetricsApi> = {
  resource: {
    services: ["v1beta1.metrics.k8s.io"],
    install:
      "install metrics-server (kubectl apply -f https://github.com/kubernetes-sigs/metrics-server/releases/latest/download/components.yaml), or set gateway.autoscaling.enabled: false",
  },
  custom: {
    services: ["v1beta1.custom.metrics.k8s.io", "v1beta2.custom.metrics.k8s.io"],
    install:
      "install prometheus-adapter with a rule for the metric (helm install prometheus-adapter prometheus-community/prometheus-adapter), or set monitoring.metricsAdapter: none",
  },
  external: { services: ["v1beta1.external.metrics.k8s.io"], install: "install an external metrics adapter (prometheus-adapter or KEDA)" },
};

const API_OF: Record<string, keyof typeof APIS> = {
  Resource: "resource",
  ContainerResource: "resource",
  Pods: "custom",
  Object: "custom",
  External: "external",
};

interface HpaSpec {
  readonly spec?: {
    readonly metrics?: readonly {
      readonly type: string;
      readonly resource?: { readonly name?: string };
      readonly pods?: { readonly metric?: { readonly name?: string } };
      readonly object?: { readonly metric?: { readonly name?: string } };
      readonly external?: { readonly metric?: { readonly name?: string } };
    }[];
  };
}

interface ApiService {
  readonly status?: {
    readonly conditions?: readonly {
      readonly type: string;
      readonly status: string;
      readonly reason?: string;
      readonly message?: string;
    }[];
  };
}

function metricName(metric: NonNullable<NonNullable<HpaSpec["spec"]>["metrics"]>[number]): string {
  return metric.resource?.name ?? metric.pods?.metric?.name ?? metric.object?.metric?.name ?? metric.external?.metric?.name ?? metric.type;
}

/**
 * Checks that the metrics APIs the HPAs use are registered (an APIService) and Available. A
 * warning, not a refusal: the platform serves without autoscaling, and `status` reports the HPA as
 * not scaling. Skipped when these credentials may not read APIServices.
 */
export async function metricsApiChecks(client: KubeClient, objects: readonly KubeObject[]): Promise<PreflightCheck[]> {
  const needs = new Map<keyof typeof APIS, string[]>();
  for (const hpa of objects.filter((o) => o.kind === "HorizontalPodAutoscaler")) {
    for (const metric of (hpa as HpaSpec).spec?.metrics ?? []) {
      const api = API_OF[metric.type];
      if (api !== undefined)
        needs.set(api, [...(needs.get(api) ?? []), `${resourceName(hpa)} (${metric.type} metric ${metricName(metric)})`]);
    }
  }
  const checks: PreflightCheck[] = [];
  for (const [api, users] of needs) {
    const { services, install } = APIS[api] as MetricsApi;
    const found: { name: string; service: ApiService }[] = [];
    let forbidden = false;
    for (const name of services) {
      try {
        const service = await client.get<KubeObject & ApiService>({
          apiVersion: "apiregistration.k8s.io/v1",
          kind: "APIService",
          metadata: { name },
        });
        if (service !== undefined) found.push({ name, service });
      } catch (error) {
        if (!(error instanceof ForbiddenError)) throw error;
        forbidden = true;
      }
    }
    const who = [...new Set(users)].join(", ");
    if (found.length === 0 && forbidden) continue;
    const available = found.find(({ service }) => service.status?.conditions?.some((c) => c.type === "Available" && c.status === "True"));
    if (available !== undefined) {
      checks.push({ check: "metrics", ok: true, message: `APIService ${available.name} is available for ${who}` });
    } else if (found.length > 0) {
      const condition = found[0]?.service.status?.conditions?.find((c) => c.type === "Available");
      checks.push({
        check: "metrics",
        ok: true,
        warning: true,
        message: `APIService ${found[0]?.name ?? ""} is registered but not available (${condition?.reason ?? "no status"}${condition?.message ? `: ${condition.message}` : ""}): ${who} will report ScalingActive=False and not scale`,
        fix: `kubectl get apiservice ${found[0]?.name ?? ""} -o yaml says why; ${install}`,
      });
    } else {
      checks.push({
        check: "metrics",
        ok: true,
        warning: true,
        message: `no APIService ${services.join(" or ")} is registered: ${who} will report ScalingActive=False and not scale`,
        fix: install,
      });
    }
  }
  return checks;
}
