// What the deploy code sends through @kubernetes/client-node is what it rendered: the client's
// serializer writes model fields only, under their wire names, and a NetworkPolicy rule's `from`
// is `_from` in its model; sent as a plain object, `from` was dropped and the rule let in every source.
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { ObjectSerializer } from "@kubernetes/client-node/dist/serializer.js";
import { getSerializationType } from "@kubernetes/client-node/dist/util.js";
import { fromModel, toModel } from "../../src/kube/wire.ts";
import type { KubeObject } from "../../src/render/context.ts";

/** What KubernetesObjectApi.patch puts on the wire for a body. */
function onTheWire(body: unknown, object: KubeObject): unknown {
  return JSON.parse(
    ObjectSerializer.stringify(ObjectSerializer.serialize(body, getSerializationType(object.apiVersion, object.kind)), "application/json"),
  ) as unknown;
}

const policy = {
  apiVersion: "networking.k8s.io/v1",
  kind: "NetworkPolicy",
  metadata: { name: "engine-ingress", namespace: "ns" },
  spec: {
    podSelector: { matchLabels: { app: "engine" } },
    policyTypes: ["Ingress"],
    ingress: [{ from: [{ podSelector: { matchLabels: { app: "gateway" } } }], ports: [{ protocol: "TCP", port: 8000 }] }],
  },
} satisfies KubeObject & Record<string, unknown>;

describe("objects to and from the Kubernetes client", () => {
  it("a NetworkPolicy keeps each rule's `from` on the wire (a plain object lost it)", () => {
    assert.deepEqual(onTheWire(toModel(policy), policy), policy);
    assert.equal((onTheWire(policy, policy) as typeof policy).spec.ingress[0]?.from, undefined, "the client's serializer alone drops it");
  });

  it("objects the client returns are Kubernetes' JSON: `from`, not `_from`; timestamps as strings", () => {
    const model: unknown = ObjectSerializer.deserialize(
      { ...policy, metadata: { ...policy.metadata, creationTimestamp: "2026-12-06T10:00:00Z" } },
      "V1NetworkPolicy",
    );
    const json = fromModel<typeof policy & { metadata: { creationTimestamp?: string } }>(model, policy.apiVersion, policy.kind);
    assert.deepEqual(json.spec.ingress[0]?.from, policy.spec.ingress[0]?.from);
    assert.equal(json.metadata.creationTimestamp, "2026-12-06T10:00:00.000Z");
  });

  it("a custom resource (no model) goes through whole", () => {
    const certificate = {
      apiVersion: "cert-manager.io/v1",
      kind: "Certificate",
      metadata: { name: "gateway-tls", namespace: "ns" },
      spec: { secretName: "gateway-tls", issuerRef: { name: "ca", kind: "ClusterIssuer" }, dnsNames: ["llm.example.com"] },
    };
    assert.deepEqual(onTheWire(toModel(certificate), certificate), certificate);
  });
});
