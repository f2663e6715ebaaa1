// status's GPU table from nodes and pods as the API returns them (the cluster tier checks it against
// the test cluster, whose simulated GPU node advertises time-sliced nvidia.com/gpu only).
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { PLACED_ELSEWHERE } from "../../src/adapters/agent.ts";
import { formatStatus } from "../../src/deploy/status-format.ts";
import { adapterReplicas, containerRestarts, gpuUse, type PodLike, type StatusReport } from "../../src/deploy/status.ts";
import type { KubeObject } from "../../src/render/context.ts";

const node = (name: string, allocatable: Record<string, string>) =>
  ({
    apiVersion: "v1",
    kind: "Node",
    metadata: { name },
    status: { allocatable: { cpu: "32", memory: "128Gi", ...allocatable } },
  }) as KubeObject & { status: { allocatable: Record<string, string> } };
const pod = (nodeName: string, limits: Record<string, string>, phase = "Running"): PodLike => ({
  spec: { nodeName, containers: [{ resources: { limits } }] },
  status: { phase },
});

describe("status: GPU slices in use, per node and resource", () => {
  it("counts MIG devices under their own resource (a MIG node showed nothing), and only running pods", () => {
    const nodes = [
      node("mig-0", { "nvidia.com/mig-3g.40gb": "2", "nvidia.com/mig-1g.10gb": "1" }),
      node("ts-0", { "nvidia.com/gpu": "8" }),
      node("cpu-0", {}),
    ];
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

describe("status: each adapter's state on every engine replica, from the adapter agents", () => {
  const adapters = [
    { name: "code", route: "/code", upstreamModel: "code", upstream: "engine" },
    { name: "chat", route: "/chat", upstreamModel: "base", upstream: "engine" },
    { name: "legal", route: "/legal", upstreamModel: "legal", upstream: "engine-legal" },
  ];
  const since = "2026-12-06T10:00:00.000Z";

  it("lays the agents' answers over the gateway's adapters, says why a replica is unknown, and lists what was just removed", () => {
    const pods = new Map([
      ["engine", ["engine-a", "engine-b"]],
      ["engine-legal", ["engine-legal-a"]],
    ]);
    const answers = new Map([
      [
        "engine-a",
        {
          adapters: [
            { name: "code", state: "loaded" as const, since, attempts: 0 },
            { name: "old", state: "unloaded" as const, reason: "removed from the adapter set", since, attempts: 0 },
          ],
        },
      ],
      [
        "engine-b",
        { adapters: [{ name: "code", state: "failed" as const, reason: "fetching x failed: not found (HTTP 404)", since, attempts: 3 }] },
      ],
      ["engine-legal-a", { error: "its adapter agent did not answer through the API server (no answer in 3 s)" }],
    ]);
    const reports = adapterReplicas(adapters, "base", pods, answers);
    assert.deepEqual(reports, [
      {
        name: "code",
        route: "/code",
        upstreamModel: "code",
        loaded: true,
        replicas: [
          { pod: "engine-a", state: "loaded", since },
          { pod: "engine-b", state: "failed", reason: "fetching x failed: not found (HTTP 404)", since },
        ],
      },
      { name: "chat", route: "/chat", upstreamModel: "base", loaded: null, replicas: [] },
      {
        name: "legal",
        route: "/legal",
        upstreamModel: "legal",
        loaded: null,
        replicas: [
          { pod: "engine-legal-a", state: "unknown", reason: "its adapter agent did not answer through the API server (no answer in 3 s)" },
        ],
      },
      {
        name: "old",
        route: "-",
        upstreamModel: "old",
        loaded: false,
        replicas: [{ pod: "engine-a", state: "unloaded", reason: "removed from the adapter set", since }],
      },
    ]);
  });

  it("counts the replicas the gateways' placement keeps an adapter off, without listing each as a problem", () => {
    const pods = new Map([["engine", ["engine-a", "engine-b", "engine-c"]]]);
    const answers = new Map([
      ["engine-a", { adapters: [{ name: "code", state: "loaded" as const, since, attempts: 0 }] }],
      ["engine-b", { adapters: [{ name: "code", state: "unloaded" as const, reason: PLACED_ELSEWHERE, since, attempts: 0 }] }],
      ["engine-c", { adapters: [{ name: "code", state: "failed" as const, reason: "the engine refused it", since, attempts: 1 }] }],
    ]);
    const reports = adapterReplicas(adapters.slice(0, 1), "base", pods, answers);
    const report: StatusReport = {
      namespace: "ns",
      environment: null,
      revision: null,
      objects: [{ component: "engine", resource: "deployment/engine", state: "ready", reason: "3/3 ready" }],
      missing: [],
      stale: [],
      reasons: [],
      fix: null,
      gpu: [],
      adapters: reports,
      certificates: [],
      restarts: [],
      url: null,
      trust: null,
      healthy: true,
      destroyedAt: null,
    };
    const text = formatStatus(report);
    assert.match(text, /code +\/code +→ code {2}loaded on 1\/3 replica\(s\) \(placed on 2\)/);
    assert.match(text, /engine-c: failed/);
    assert.doesNotMatch(text, /engine-b/, "a replica it is not placed on is no problem to list");
  });

  it("an adapter the agent does not know yet waits for kubelet's ConfigMap update", () => {
    const reports = adapterReplicas(
      adapters.slice(0, 1),
      "base",
      new Map([["engine", ["engine-a"]]]),
      new Map([["engine-a", { adapters: [] }]]),
    );
    assert.equal(reports[0]?.replicas[0]?.state, "unknown");
    assert.match(reports[0]?.replicas[0]?.reason ?? "", /not in its agent's adapter set yet/);
  });
});

describe("status: restarted containers", () => {
  it("lists each restarted container of the namespace, sidecars included, with how its last run ended", () => {
    const finishedAt = "2026-12-06T10:00:00Z";
    const pods: PodLike[] = [
      {
        metadata: { name: "engine-1", namespace: "ns" },
        status: {
          initContainerStatuses: [
            { name: "model-download", restartCount: 0 },
            { name: "adapter-agent", restartCount: 1, lastState: { terminated: { reason: "OOMKilled", exitCode: 137, finishedAt } } },
          ],
          containerStatuses: [
            { name: "engine", restartCount: 2, lastState: { terminated: { reason: "Error", exitCode: 137, finishedAt } } },
          ],
        },
      },
      { metadata: { name: "gateway-1", namespace: "ns" }, status: { containerStatuses: [{ name: "gateway", restartCount: 0 }] } },
      { metadata: { name: "elsewhere", namespace: "other" }, status: { containerStatuses: [{ name: "x", restartCount: 5 }] } },
    ];
    assert.deepEqual(containerRestarts(pods, "ns"), [
      { pod: "engine-1", container: "adapter-agent", restarts: 1, lastTermination: { reason: "OOMKilled", exitCode: 137, finishedAt } },
      { pod: "engine-1", container: "engine", restarts: 2, lastTermination: { reason: "Error", exitCode: 137, finishedAt } },
    ]);
  });
});
