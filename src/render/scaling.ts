import type { IHorizontalPodAutoscaler } from "kubernetes-models/autoscaling/v2/HorizontalPodAutoscaler";
import type { IPodDisruptionBudget } from "kubernetes-models/policy/v1/PodDisruptionBudget";
import type { PlatformSpec } from "../spec/schema.ts";
import { names, type KubeObject, type Placed, type RenderContext, qdrantEnabled } from "./context.ts";
import { engineReplicas } from "./engine.ts";

export function gatewayAutoscaled(spec: PlatformSpec): boolean {
  return spec.gateway.autoscaling.enabled && spec.gateway.autoscaling.maxReplicas > spec.gateway.replicas;
}

/**
 * Disruption budgets for the gateway, the engines and Qdrant, only where more than one replica exists: with one
 * replica a budget either allows the outage anyway or blocks every node drain. The gateway's HPA scales
 * on CPU and, where a metrics adapter serves them, on requests in flight per pod.
 */
export function renderScaling(ctx: RenderContext): Placed[] {
  const { spec } = ctx.platform;
  const objects: KubeObject[] = [];
  const pdb = (name: string, component: string): IPodDisruptionBudget => ({
    apiVersion: "policy/v1",
    kind: "PodDisruptionBudget",
    metadata: ctx.meta(name, component),
    spec: { maxUnavailable: 1, selector: { matchLabels: ctx.selector(name) }, unhealthyPodEvictionPolicy: "AlwaysAllow" },
  });
  if (spec.gateway.replicas > 1 || gatewayAutoscaled(spec)) objects.push(pdb(names.gateway, "gateway") as KubeObject);
  if (qdrantEnabled(spec) && spec.qdrant.replicas > 1) objects.push(pdb(names.qdrant, "vector-store") as KubeObject);
  // A node drain or eviction takes one engine replica at a time, never all of them.
  for (const engine of engineReplicas(spec)) if (engine.replicas > 1) objects.push(pdb(engine.name, "engine") as KubeObject);

  if (gatewayAutoscaled(spec)) {
    const scaling = spec.gateway.autoscaling;
    const metrics: NonNullable<IHorizontalPodAutoscaler["spec"]>["metrics"] = [
      { type: "Resource", resource: { name: "cpu", target: { type: "Utilization", averageUtilization: scaling.targetCpuUtilization } } },
    ];
    if (spec.monitoring.metricsAdapter === "prometheus-adapter") {
      metrics.push({
        type: "Pods",
        pods: {
          metric: { name: "diatonic_gateway_in_flight_requests" },
          target: { type: "AverageValue", averageValue: String(scaling.inFlightPerPod) },
        },
      });
    }
    const hpa: IHorizontalPodAutoscaler = {
      apiVersion: "autoscaling/v2",
      kind: "HorizontalPodAutoscaler",
      metadata: ctx.meta(names.gateway, "gateway"),
      spec: {
        scaleTargetRef: { apiVersion: "apps/v1", kind: "Deployment", name: names.gateway },
        minReplicas: spec.gateway.replicas,
        maxReplicas: scaling.maxReplicas,
        metrics,
        // Scale up fast for bursts, down slowly: streams in flight end gracefully.
        behavior: {
          scaleUp: { stabilizationWindowSeconds: 0, policies: [{ type: "Pods", value: 2, periodSeconds: 30 }] },
          scaleDown: { stabilizationWindowSeconds: 300, policies: [{ type: "Pods", value: 1, periodSeconds: 60 }] },
        },
      },
    };
    objects.push(hpa as KubeObject);
  }
  return objects.map((object) => ({ object, component: "scaling" }));
}
