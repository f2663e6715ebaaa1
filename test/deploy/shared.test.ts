// Shared objects (the device plugin) without a cluster: who inherits one, and what happens when the
// other platforms cannot be listed. The cluster tier (test/cluster/deploy.test.ts) runs the whole flow.
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { PART_OF, parentObject } from "../../src/deploy/applyset.ts";
import { heirOf, otherPlatforms, release, type OtherPlatform } from "../../src/deploy/shared.ts";
import type { KubeClient } from "../../src/kube/client.ts";
import { SHARED_ANNOTATION, SHARED_NAMESPACE_ANNOTATION, type KubeObject } from "../../src/render/context.ts";

const shared = (kind: string, name: string, namespace?: string): KubeObject => ({
  apiVersion: kind === "DaemonSet" ? "apps/v1" : "v1",
  kind,
  metadata: { name, ...(namespace ? { namespace } : {}), annotations: { [SHARED_ANNOTATION]: "device-plugin" } },
});

function recordingClient(): { client: KubeClient; labelled: string[] } {
  const labelled: string[] = [];
  const client = {
    label: async (object: KubeObject, key: string, value: string) =>
      void labelled.push(`${object.kind}/${object.metadata.name} ${key}=${value}`),
  } as unknown as KubeClient;
  return { client, labelled };
}

const others: OtherPlatform[] = [
  { namespace: "team-a", id: "applyset-a-v1", namespaces: ["cert-manager"] },
  { namespace: "team-b", id: "applyset-b-v1", namespaces: ["cert-manager", "nvidia-device-plugin"] },
];

describe("shared objects", () => {
  it("go to the first other platform whose ApplySet has members in their namespace (or that is their namespace)", () => {
    assert.equal(heirOf(shared("DaemonSet", "nvidia-device-plugin", "nvidia-device-plugin"), others)?.namespace, "team-b");
    assert.equal(heirOf(shared("Namespace", "nvidia-device-plugin"), others)?.namespace, "team-b");
    assert.equal(heirOf(shared("ConfigMap", "x", "elsewhere"), others), undefined);
  });

  it("a cluster-scoped one (the per-node config's node reader) goes with the namespace it names", () => {
    const reader = shared("ClusterRole", "nvidia-device-plugin-node-reader");
    assert.equal(heirOf(reader, others), undefined, "without the annotation nobody can tell");
    const named = {
      ...reader,
      metadata: {
        ...reader.metadata,
        annotations: { ...reader.metadata.annotations, [SHARED_NAMESPACE_ANNOTATION]: "nvidia-device-plugin" },
      },
    };
    assert.equal(heirOf(named, others)?.namespace, "team-b");
  });

  it("are relabelled into the heir's ApplySet, kept when nobody can tell, deleted when nobody else renders them", async () => {
    const { client, labelled } = recordingClient();
    const plugin = shared("DaemonSet", "nvidia-device-plugin", "nvidia-device-plugin");
    assert.deepEqual(await release(client, plugin, others, false), { action: "hand-over", to: "team-b" });
    assert.deepEqual(labelled, [`DaemonSet/nvidia-device-plugin ${PART_OF}=applyset-b-v1`]);
    assert.deepEqual(await release(client, plugin, others, true), { action: "hand-over", to: "team-b" });
    assert.equal(labelled.length, 1, "a dry run changes nothing");
    assert.equal((await release(client, plugin, undefined, false)).action, "keep");
    assert.equal((await release(client, plugin, [], false)).action, "delete");
    const own: KubeObject = { apiVersion: "v1", kind: "ConfigMap", metadata: { name: "gateway", namespace: "team-c" } };
    assert.equal((await release(client, own, others, false)).action, "delete", "an object of the platform's own is never handed over");
    assert.equal(labelled.length, 1);
  });

  it("a destroyed platform, whose parent lists only the data it kept, is not one of the others (a fake client listing the parents)", async () => {
    const state = { groupKinds: ["ConfigMap", "PersistentVolumeClaim"], namespaces: ["nvidia-device-plugin"], versions: {} };
    const parents = [
      parentObject("team-a", state),
      parentObject("team-b", { ...state, destroyedAt: "2026-11-27T21:00:00Z" }),
      parentObject("mine", state),
    ];
    const client = { list: async () => parents } as unknown as KubeClient;
    assert.deepEqual(
      (await otherPlatforms(client, "mine"))?.map((other) => other.namespace),
      ["team-a"],
    );
  });
});
