// status's GPU table from nodes and pods as the API returns them (the cluster tier checks it against
// the test cluster, whose simulated GPU node advertises time-sliced nvidia.com/gpu only).
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { gpuUse, type PodLike } from "../../src/deploy/status.ts";
import type { KubeObject } from "../../src/render/context.ts";

const node = (name: string, allocatable: Record<string, string>) => ({ apiVersion: "v1", kind: "Node", metadata: { name }, status: { allocatable: { cpu: "32", memory: "128Gi", ...allocatable } } }) as KubeObject & { status: { allocatable: Record<string, string> } };
const pod = (nodeName: string, limits: Record<string, string>, phase = "Running"): PodLike => ({ spec: { nodeName, containers: [{ resources: { limits } }] }, status: { phase } });

describe("status: GPU slices in use, per node and resource", () => {
  it("counts MIG devices under their own resource (a MIG node showed nothing), and only running pods", () => {
    const nodes = [node("mig-0", { "nvidia.com/mig-3g.40gb": "2", "nvidia.com/mig-1g.10gb": "1" }), node("ts-0", { "nvidia.com/gpu": "8" }), node("cpu-0", {})];
    const pods = [
      pod("mig-0", { "nvidia.com/mig-3g.40gb": "1" }),
      pod("mig-0", { "nvidia.com/mig-3g.40gb": "1" }, "Succeeded"),
      pod("ts-0", { "nvidia.com/gpu": "2", cpu: "4" }),
      pod("ts-0", { "nvidia.com/gpu": "1" }),
    ];
    assert.deepEqual(gpuUse(nodes, pods), [
      { node: "mig-0", resource: "nvidia.com/mig-1g.10gb", total: 1, used: 0 },
      { node: "mig-0", resource: "nvidia.com/mig-3g.40gb", total: 2, used: 1 },
      { node: "ts-0", resource: "nvidia.com/gpu", total: 8, used: 3 },
    ]);
  });
});
