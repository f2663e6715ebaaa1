import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { buildEnvironment } from "../../src/render/build.ts";
import type { KubeObject } from "../../src/render/context.ts";
import { Inventory } from "../../src/validate/inventory.ts";
import { PolicyEvaluator, type Endpoint } from "../../src/validate/netpol.ts";

const EXAMPLE = "examples/lab/platform.yaml";

function objects(env: string): KubeObject[] {
  return buildEnvironment({ file: EXAMPLE, environment: env }).result.placed.map((p) => p.object);
}

function podsOf(inventory: Inventory, name: string): Extract<Endpoint, { kind: "pods" }> {
  const template = inventory.templates.find((t) => t.labels["app.kubernetes.io/name"] === name);
  assert.ok(template, `pods of ${name}`);
  return { kind: "pods", namespace: template.namespace, labels: template.labels, name };
}

describe("network: the gateway never calls the API server", () => {
  for (const env of ["staging", "production"]) {
    it(`${env}: no token, no Role, and no egress to addresses outside the cluster (the open internet on 443 was "for the API server")`, () => {
      const list = objects(env);
      const gatewayDeployment = list.find((o) => o.kind === "Deployment" && o.metadata.name === "gateway") as unknown as { spec: { template: { spec: { automountServiceAccountToken?: boolean } } } };
      assert.equal(gatewayDeployment.spec.template.spec.automountServiceAccountToken, false);
      const account = list.find((o) => o.kind === "ServiceAccount" && o.metadata.name === "gateway") as unknown as { automountServiceAccountToken?: boolean };
      assert.equal(account.automountServiceAccountToken, false);
      assert.deepEqual(list.filter((o) => o.kind === "Role" || o.kind === "RoleBinding").map((o) => `${o.kind}/${o.metadata.name}`), []);
      const egress = list.find((o) => o.kind === "NetworkPolicy" && o.metadata.name === "gateway-egress") as unknown as { spec: { egress: { to: Record<string, unknown>[] }[] } };
      assert.deepEqual(egress.spec.egress.flatMap((rule) => rule.to).filter((peer) => "ipBlock" in peer), []);
      const inventory = new Inventory(list);
      const evaluator = new PolicyEvaluator(inventory);
      for (const port of [443, 6443]) {
        assert.equal(evaluator.allows(podsOf(inventory, "gateway"), { kind: "address", name: "the API server" }, port, "TCP").allowed, false, `gateway → outside:${port}`);
      }
      assert.equal(evaluator.allows(podsOf(inventory, "gateway"), podsOf(inventory, "engine"), 8000, "TCP").allowed, true, "gateway → engine still flows");
    });
  }
});
