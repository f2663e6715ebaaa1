// What a deadline says of a pod that reports no problem but is not Ready (src/kube/evidence.ts).
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { claimsOf, podProgress, type PodLike } from "../../src/kube/evidence.ts";

type Status = NonNullable<PodLike["status"]>;

function pod(status: Status, nodeName?: string): PodLike {
  return { metadata: { name: "qdrant-0", namespace: "ns" }, spec: nodeName === undefined ? {} : { nodeName }, status };
}

describe("podProgress: where a pod with no problem has got to", () => {
  it("not scheduled, with no word from the scheduler: says so and points at the claims", () => {
    assert.match(podProgress(pod({ phase: "Pending" })) ?? "", /^not scheduled yet: the scheduler has given no decision .*claims/);
  });

  it("on a node and starting: names the node and each container's waiting reason", () => {
    const starting = pod(
      {
        phase: "Pending",
        conditions: [{ type: "PodScheduled", status: "True" }],
        containerStatuses: [{ name: "qdrant", state: { waiting: { reason: "ContainerCreating" } } }],
      },
      "node-1",
    );
    assert.equal(podProgress(starting), "on node node-1, not started: container qdrant: ContainerCreating");
    assert.equal(podProgress(pod({ phase: "Pending" }, "node-1")), "on node node-1, not started: its kubelet has not reported starting it");
  });

  it("running but not ready: the Ready condition's own message", () => {
    const running = pod(
      {
        phase: "Running",
        conditions: [{ type: "Ready", status: "False", reason: "ContainersNotReady", message: "containers with unready status: [qdrant]" }],
      },
      "node-1",
    );
    assert.equal(podProgress(running), "running on node node-1, not ready: containers with unready status: [qdrant]");
  });

  it("says nothing of a Ready pod, nor of one whose problem podProblems reports", () => {
    assert.equal(podProgress(pod({ phase: "Running", conditions: [{ type: "Ready", status: "True" }] }, "node-1")), undefined);
    const unschedulable = pod({
      phase: "Pending",
      conditions: [{ type: "PodScheduled", status: "False", reason: "Unschedulable", message: "0/4 nodes are available" }],
    });
    assert.equal(podProgress(unschedulable), undefined);
  });

  it("a pod that has ended will not become ready", () => {
    assert.equal(podProgress(pod({ phase: "Succeeded" }, "node-1")), "succeeded, will not become ready");
  });
});

describe("claimsOf", () => {
  it("names a pod's claims: its persistentVolumeClaim volumes, and its ephemeral ones as the controller names them", () => {
    const mounted: PodLike = {
      metadata: { name: "engine-abc" },
      spec: {
        volumes: [
          { name: "storage", persistentVolumeClaim: { claimName: "storage-qdrant-0" } },
          { name: "models", ephemeral: { volumeClaimTemplate: {} } },
          { name: "config" },
        ],
      },
    };
    assert.deepEqual(claimsOf(mounted), ["storage-qdrant-0", "engine-abc-models"]);
  });
});
