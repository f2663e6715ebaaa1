// The preflight's rule checks (validate's findings), and its controller check without a cluster: a
// controller found and available, found and not available, not found, and credentials that may not
// look. The cluster tier sees the "not found" case for real (the test cluster has cert-manager's
// CRDs, not its controller).
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { metricsApiChecks } from "../../src/deploy/metrics-apis.ts";
import { controllerChecks, preflight, ruleChecks } from "../../src/deploy/preflight.ts";
import { ForbiddenError, type KubeClient } from "../../src/kube/client.ts";
import type { KubeObject } from "../../src/render/context.ts";
import { environmentFromSpec } from "../../src/validate/from-spec.ts";
import { validateObjects } from "../../src/validate/index.ts";

const certificate: KubeObject = {
  apiVersion: "cert-manager.io/v1",
  kind: "Certificate",
  metadata: { name: "gateway-tls", namespace: "lab" },
};
const configMap: KubeObject = { apiVersion: "v1", kind: "ConfigMap", metadata: { name: "gateway", namespace: "lab" } };

function clientListing(deployments: readonly { name: string; available: number }[] | Error): { client: KubeClient; selectors: string[] } {
  const selectors: string[] = [];
  const client = {
    list: async (apiVersion: string, kind: string, namespace: string | undefined, selector: string) => {
      assert.deepEqual([apiVersion, kind, namespace], ["apps/v1", "Deployment", undefined], "Deployments in every namespace");
      selectors.push(selector);
      if (deployments instanceof Error) throw deployments;
      return deployments.map((d) => ({
        apiVersion: "apps/v1",
        kind: "Deployment",
        metadata: { name: d.name, namespace: "cert-manager" },
        status: { availableReplicas: d.available },
      }));
    },
  } as unknown as KubeClient;
  return { client, selectors };
}

describe("preflight: controllers the platform's objects wait on (a fake client: no cert-manager controller runs in the test cluster)", () => {
  it("cert-manager running: a pass naming its Deployment", async () => {
    const { client, selectors } = clientListing([{ name: "cert-manager", available: 1 }]);
    const [check, ...rest] = await controllerChecks(client, [configMap, certificate]);
    assert.equal(rest.length, 0);
    assert.deepEqual([check?.check, check?.ok, check?.warning], ["controllers", true, undefined]);
    assert.match(check?.message ?? "", /cert-manager runs \(Deployment cert-manager\/cert-manager\)/);
    assert.deepEqual(selectors, ["app.kubernetes.io/name=cert-manager"]);
  });

  it("cert-manager missing or unavailable: a warning that says what will happen and the fix; the apply goes on", async () => {
    const [missing] = await controllerChecks(clientListing([]).client, [certificate]);
    assert.deepEqual([missing?.ok, missing?.warning], [true, true]);
    assert.match(
      missing?.message ?? "",
      /no cert-manager controller found .*the certificates phase stops once it sees that no cert-manager leader holds its lease/,
    );
    assert.match(missing?.fix ?? "", /helm install cert-manager/);
    const [down] = await controllerChecks(clientListing([{ name: "cert-manager", available: 0 }]).client, [certificate]);
    assert.deepEqual([down?.ok, down?.warning], [true, true]);
    assert.match(down?.message ?? "", /controller \(Deployment cert-manager\/cert-manager\) has no available replica/);
    assert.match(down?.fix ?? "", /kubectl -n cert-manager describe deployment cert-manager/);
  });

  it("no cert-manager objects, or no permission to list Deployments: no check", async () => {
    const { client, selectors } = clientListing([]);
    assert.deepEqual(await controllerChecks(client, [configMap]), []);
    assert.deepEqual(selectors, [], "nothing is listed");
    assert.deepEqual(
      await controllerChecks(clientListing(new ForbiddenError("deployments.apps is forbidden", "use credentials that may list")).client, [
        certificate,
      ]),
      [],
    );
    await assert.rejects(controllerChecks(clientListing(new Error("connection refused")).client, [certificate]), /connection refused/);
  });
});

describe("preflight: validate's rules (the lab's real findings; the cluster tier runs them through apply)", () => {
  it("an error fails the check, a warning passes with its fix, notes are left out, and no object is named twice", () => {
    const { objects, env } = environmentFromSpec("examples/lab/platform.yaml", "production");
    const clean = ruleChecks(validateObjects(objects, env));
    // The lab (production) has one warning: its engine fits the 12 GiB card, not the 8 GiB one beside it.
    assert.deepEqual(
      clean.map((c) => [c.check, c.ok, c.warning]),
      [["rules", true, true]],
    );
    assert.match(clean[0]?.message ?? "", /^gpu\/vram: Deployment\/llama3-multi-adapter\/engine fits gpu-node-1 GPU 0/);
    assert.match(clean[0]?.fix ?? "", /make it fit the smallest card .*gpu\.nodeSelector/);

    const engine = objects.find((o) => o.kind === "Deployment" && o.metadata.name === "engine") as unknown as {
      spec: { template: { spec: { containers: { args: string[] }[] } } };
    };
    const args = engine.spec.template.spec.containers[0]?.args ?? [];
    args[args.indexOf("--max-model-len") + 1] = "131072";
    const broken = ruleChecks(validateObjects(objects, env));
    const failed = broken.filter((c) => !c.ok);
    assert.equal(failed.length, 1);
    assert.match(failed[0]?.message ?? "", /^gpu\/vram: Deployment\/llama3-multi-adapter\/engine needs about [\d.]+ GiB/);
    assert.match(failed[0]?.fix ?? "", /lower --max-model-len/);
  });

  it("no findings: one pass that says so", () => {
    const { objects, env } = environmentFromSpec("examples/lab/platform.yaml", "local");
    assert.deepEqual(ruleChecks(validateObjects(objects, env)), [
      { check: "rules", ok: true, message: `the ${objects.length} objects pass diatonic validate` },
    ]);
  });
});

describe("preflight: GPU resources, each by its own name (a fake client: the test cluster's simulated nodes advertise nvidia.com/gpu only)", () => {
  const deployment = (limits: Record<string, string>, replicas = 1): KubeObject =>
    ({
      apiVersion: "apps/v1",
      kind: "Deployment",
      metadata: { name: "engine", namespace: "llm" },
      spec: {
        replicas,
        selector: { matchLabels: { app: "engine" } },
        template: {
          metadata: { labels: { app: "engine" } },
          spec: { containers: [{ name: "vllm", image: "vllm/vllm-openai:v0.6.6", resources: { limits } }] },
        },
      },
    }) as unknown as KubeObject;
  const namespace: KubeObject = { apiVersion: "v1", kind: "Namespace", metadata: { name: "llm" } };
  /** Pods as the API lists them, running on gpu-0. */
  const runningPod = (namespaceName: string, name: string, requests: Record<string, string>, phase = "Running") => ({
    apiVersion: "v1",
    kind: "Pod",
    metadata: { name, namespace: namespaceName },
    spec: { nodeName: "gpu-0", containers: [{ resources: { requests, limits: requests } }] },
    status: { phase },
  });
  const nodesAdvertising = (allocatable: Record<string, string>, pods: readonly unknown[] | Error = []): KubeClient =>
    ({
      server: "https://fake",
      version: async () => ({ major: "1", minor: "33", gitVersion: "v1.33.0" }),
      list: async (apiVersion: string, kind: string) => {
        if (kind === "Pod") {
          if (pods instanceof Error) throw pods;
          return pods;
        }
        assert.deepEqual([apiVersion, kind], ["v1", "Node"]);
        return [{ apiVersion: "v1", kind: "Node", metadata: { name: "gpu-0" }, status: { allocatable } }];
      },
    }) as unknown as KubeClient;
  const gpuChecksOf = async (
    limits: Record<string, string>,
    allocatable: Record<string, string>,
    replicas = 1,
    pods: readonly unknown[] | Error = [],
  ) =>
    (
      await preflight(nodesAdvertising(allocatable, pods), {
        objects: [namespace, deployment(limits, replicas)],
        secrets: [],
        optionalSecrets: [],
      })
    ).filter((c) => c.check === "gpu");

  it("MIG's mixed strategy: a MIG profile is counted against that profile, not nvidia.com/gpu (it failed with 'the nodes advertise 0')", async () => {
    const checks = await gpuChecksOf(
      { "nvidia.com/mig-3g.40gb": "1" },
      { "nvidia.com/mig-3g.40gb": "2", "nvidia.com/mig-1g.10gb": "1" },
      2,
    );
    assert.deepEqual(checks, [{ check: "gpu", ok: true, message: "2 nvidia.com/mig-3g.40gb visible (gpu-0: 2), 2 needed" }]);
  });

  it("a MIG profile no node advertises: the fix is the MIG manager's label", async () => {
    const [check] = await gpuChecksOf({ "nvidia.com/mig-3g.40gb": "1" }, { "nvidia.com/gpu": "8" });
    assert.equal(check?.ok, false);
    assert.equal(check?.message, "the platform needs 1 nvidia.com/mig-3g.40gb, the nodes advertise 0");
    assert.match(check?.fix ?? "", /nvidia\.com\/mig\.config=diatonic .* 3g\.40gb devices/);
  });

  it("time-slices renamed (.shared) on one side only: the fix is renameByDefault", async () => {
    const [shared] = await gpuChecksOf({ "nvidia.com/gpu.shared": "1" }, { "nvidia.com/gpu": "8" });
    assert.equal(shared?.message, "the platform needs 1 nvidia.com/gpu.shared, the nodes advertise 0");
    assert.equal(
      shared?.fix,
      "the nodes advertise nvidia.com/gpu instead: set gpu.sharing.renameByDefault to false, as their device plugin is configured",
    );
    const [plain] = await gpuChecksOf({ "nvidia.com/gpu": "1" }, { "nvidia.com/gpu.shared": "8" });
    assert.equal(
      plain?.fix,
      "the nodes advertise nvidia.com/gpu.shared instead: set gpu.sharing.renameByDefault to true, as their device plugin is configured",
    );
  });

  it("what running pods of other workloads hold is not free (it said '8 visible, 1 needed' with all 8 taken); the platform's own pods and finished pods are not counted", async () => {
    const tenant = [
      runningPod("tenant", "trainer", { "nvidia.com/gpu": "7" }),
      runningPod("tenant", "done", { "nvidia.com/gpu": "1" }, "Succeeded"),
      runningPod("llm", "engine-old", { "nvidia.com/gpu": "1" }),
    ];
    const [short] = await gpuChecksOf({ "nvidia.com/gpu": "1" }, { "nvidia.com/gpu": "8" }, 2, tenant);
    assert.equal(short?.ok, false);
    assert.equal(
      short?.message,
      "the platform needs 2 nvidia.com/gpu, and 1 of the 8 the nodes advertise (gpu-0: 8) are free: running pods of other workloads hold 7 (tenant/trainer on gpu-0: 7)",
    );
    assert.match(short?.fix ?? "", /^free GPU slices \(the pods above hold them\)/);
    const [fits] = await gpuChecksOf({ "nvidia.com/gpu": "1" }, { "nvidia.com/gpu": "8" }, 1, tenant);
    assert.deepEqual(
      [fits?.ok, fits?.message],
      [true, "1 of 8 nvidia.com/gpu free (gpu-0: 8; running pods of other workloads hold 7: tenant/trainer on gpu-0: 7), 1 needed"],
    );
    const [blind] = await gpuChecksOf({ "nvidia.com/gpu": "1" }, { "nvidia.com/gpu": "8" }, 1, new ForbiddenError("pods is forbidden"));
    assert.equal(
      blind?.message,
      "8 nvidia.com/gpu visible (gpu-0: 8), 1 needed (these credentials may not list pods, so what running pods hold is not counted)",
    );
  });

  it("whole or time-sliced GPUs as before", async () => {
    assert.deepEqual(await gpuChecksOf({ "nvidia.com/gpu": "2" }, { "nvidia.com/gpu": "8" }), [
      { check: "gpu", ok: true, message: "8 nvidia.com/gpu visible (gpu-0: 8), 2 needed" },
    ]);
    const [short] = await gpuChecksOf({ "nvidia.com/gpu": "1" }, { "nvidia.com/gpu": "8" }, 9);
    assert.equal(short?.message, "the platform needs 9 nvidia.com/gpu, the nodes advertise 8 (gpu-0: 8)");
  });
});

describe("preflight: the metrics APIs the HPAs read (a fake client: the test cluster registers none, which the cluster tier checks)", () => {
  const hpa = {
    apiVersion: "autoscaling/v2",
    kind: "HorizontalPodAutoscaler",
    metadata: { name: "gateway", namespace: "lab" },
    spec: {
      metrics: [
        { type: "Resource", resource: { name: "cpu" } },
        { type: "Pods", pods: { metric: { name: "diatonic_gateway_in_flight_requests" } } },
      ],
    },
  } as unknown as KubeObject;
  const serving = (services: Record<string, { status: string; reason?: string; message?: string } | Error>): KubeClient =>
    ({
      get: async (object: KubeObject) => {
        assert.equal(object.kind, "APIService");
        const found = services[object.metadata.name];
        if (found instanceof Error) throw found;
        return found === undefined ? undefined : { ...object, status: { conditions: [{ type: "Available", ...found }] } };
      },
    }) as unknown as KubeClient;

  it("registered but not available: a warning with the aggregator's reason; available: a pass", async () => {
    const checks = await metricsApiChecks(
      serving({
        "v1beta1.metrics.k8s.io": { status: "True" },
        "v1beta1.custom.metrics.k8s.io": {
          status: "False",
          reason: "ServiceNotFound",
          message: 'service/prometheus-adapter in "monitoring" is not present',
        },
      }),
      [hpa],
    );
    assert.deepEqual(
      checks.map((c) => [c.ok, c.warning]),
      [
        [true, undefined],
        [true, true],
      ],
    );
    assert.equal(
      checks[0]?.message,
      "APIService v1beta1.metrics.k8s.io is available for HorizontalPodAutoscaler/lab/gateway (Resource metric cpu)",
    );
    assert.match(
      checks[1]?.message ?? "",
      /^APIService v1beta1\.custom\.metrics\.k8s\.io is registered but not available \(ServiceNotFound: service\/prometheus-adapter in "monitoring" is not present\): HorizontalPodAutoscaler\/lab\/gateway \(Pods metric diatonic_gateway_in_flight_requests\) will report ScalingActive=False/,
    );
    assert.match(
      checks[1]?.fix ?? "",
      /^kubectl get apiservice v1beta1\.custom\.metrics\.k8s\.io -o yaml says why; install prometheus-adapter/,
    );
  });

  it("no HPA: nothing is read; credentials that may not read APIServices: no check", async () => {
    assert.deepEqual(await metricsApiChecks(serving({}), [certificate]), []);
    assert.deepEqual(
      await metricsApiChecks(
        serving({
          "v1beta1.metrics.k8s.io": new ForbiddenError("forbidden"),
          "v1beta1.custom.metrics.k8s.io": new ForbiddenError("forbidden"),
          "v1beta2.custom.metrics.k8s.io": new ForbiddenError("forbidden"),
        }),
        [hpa],
      ),
      [],
    );
  });
});
