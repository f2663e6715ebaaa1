// The scheduler sees the simulated GPU node's time-sliced nvidia.com/gpu capacity.
import assert from "node:assert/strict";
import { before, describe, it } from "node:test";
import { setTimeout as sleep } from "node:timers/promises";
import { gpuNode, gpuSlices } from "../../scripts/cluster/nodes.ts";
import { clusterSkipReason, testCluster, type TestCluster } from "../support/cluster.ts";
import { restrictedPodSpec } from "../support/cluster-manifests.ts";

const skip = clusterSkipReason();

interface Pod {
  spec: { nodeName?: string };
  status: { phase: string; conditions?: { type: string; status: string; reason?: string; message?: string }[] };
}

function gpuPod(namespace: string, name: string, slices: number): Record<string, unknown> {
  const spec = restrictedPodSpec();
  const [container] = spec.containers as Record<string, unknown>[];
  return {
    apiVersion: "v1",
    kind: "Pod",
    metadata: { name, namespace },
    spec: {
      ...spec,
      containers: [
        {
          ...container,
          resources: {
            requests: { cpu: "10m", memory: "16Mi", "nvidia.com/gpu": String(slices) },
            limits: { memory: "32Mi", "nvidia.com/gpu": String(slices) },
          },
        },
      ],
    },
  };
}

interface Node {
  metadata: { name: string; labels: Record<string, string> };
  status: { allocatable: Record<string, string> };
}

describe("cluster tier: GPU scheduling", { skip }, () => {
  let cluster: TestCluster;
  /** Nodes advertising nvidia.com/gpu, with how many each has. */
  let gpuNodes: Map<string, number>;
  const noGpu = "no node in this cluster advertises nvidia.com/gpu";
  before(async () => {
    cluster = await testCluster();
    const nodes = await cluster.kubectlJson<{ items: Node[] }>(["get", "nodes"]);
    gpuNodes = new Map(
      nodes.items
        .map((n) => [n.metadata.name, Number(n.status.allocatable["nvidia.com/gpu"] ?? 0)] as const)
        .filter(([, count]) => count > 0),
    );
  });

  it("advertises time-slicing replicas as nvidia.com/gpu on the GPU node", async (t) => {
    if (cluster.origin === "user") return t.skip("checks our simulated GPU node only");
    const node = await cluster.kubectlJson<Node>(["get", "node", gpuNode.name]);
    assert.equal(node.status.allocatable["nvidia.com/gpu"], String(gpuSlices));
    assert.equal(node.metadata.labels["nvidia.com/gpu.present"], "true");
    assert.equal(node.metadata.labels["nvidia.com/gpu.replicas"], String(gpuNode.timeSlicingReplicas));
  });

  it("places a pod asking for one GPU slice on the GPU node", { timeout: 60_000 }, async (t) => {
    if (gpuNodes.size === 0) return t.skip(noGpu);
    const ns = await cluster.namespace(t);
    await cluster.kubectl(["create", "-f", "-"], JSON.stringify(gpuPod(ns, "one-slice", 1)));
    await cluster.kubectl(["-n", ns, "wait", "--for=condition=Ready", "pod/one-slice", "--timeout=45s"]);
    const pod = await cluster.kubectlJson<Pod>(["-n", ns, "get", "pod", "one-slice"]);
    assert.ok(gpuNodes.has(pod.spec.nodeName ?? ""), `${pod.spec.nodeName} advertises nvidia.com/gpu`);
  });

  it("leaves a pod asking for more slices than exist Pending with the scheduler's reason", { timeout: 60_000 }, async (t) => {
    if (gpuNodes.size === 0) return t.skip(noGpu);
    const ns = await cluster.namespace(t);
    const tooMany = Math.max(...gpuNodes.values()) + 1;
    await cluster.kubectl(["create", "-f", "-"], JSON.stringify(gpuPod(ns, "too-many", tooMany)));
    let pod: Pod | undefined;
    for (let i = 0; i < 100; i++) {
      pod = await cluster.kubectlJson<Pod>(["-n", ns, "get", "pod", "too-many"]);
      if (pod.status.conditions?.some((c) => c.type === "PodScheduled" && c.reason === "Unschedulable")) break;
      await sleep(300);
    }
    assert.equal(pod?.status.phase, "Pending");
    const scheduled = pod?.status.conditions?.find((c) => c.type === "PodScheduled");
    assert.equal(scheduled?.status, "False");
    assert.equal(scheduled?.reason, "Unschedulable");
    assert.match(scheduled?.message ?? "", /Insufficient nvidia\.com\/gpu/);

    const events = await cluster.kubectlJson<{ items: { reason: string; message: string }[] }>([
      "-n",
      ns,
      "get",
      "events",
      "--field-selector",
      "involvedObject.name=too-many,reason=FailedScheduling",
    ]);
    assert.ok(
      events.items.some((e) => /Insufficient nvidia\.com\/gpu/.test(e.message)),
      "a FailedScheduling event names the missing resource",
    );
  });
});
