import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { buildEnvironment } from "../../src/render/build.ts";
import type { KubeObject } from "../../src/render/context.ts";
import { validationInput } from "../../src/validate/from-spec.ts";
import { validateObjects } from "../../src/validate/index.ts";
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
      const gatewayDeployment = list.find((o) => o.kind === "Deployment" && o.metadata.name === "gateway") as unknown as {
        spec: { template: { spec: { automountServiceAccountToken?: boolean } } };
      };
      assert.equal(gatewayDeployment.spec.template.spec.automountServiceAccountToken, false);
      const account = list.find((o) => o.kind === "ServiceAccount" && o.metadata.name === "gateway") as unknown as {
        automountServiceAccountToken?: boolean;
      };
      assert.equal(account.automountServiceAccountToken, false);
      assert.deepEqual(
        list.filter((o) => o.kind === "Role" || o.kind === "RoleBinding").map((o) => `${o.kind}/${o.metadata.name}`),
        [],
      );
      const egress = list.find((o) => o.kind === "NetworkPolicy" && o.metadata.name === "gateway-egress") as unknown as {
        spec: { egress: { to: Record<string, unknown>[] }[] };
      };
      assert.deepEqual(
        egress.spec.egress.flatMap((rule) => rule.to).filter((peer) => "ipBlock" in peer),
        [],
      );
      const inventory = new Inventory(list);
      const evaluator = new PolicyEvaluator(inventory);
      for (const port of [443, 6443]) {
        assert.equal(
          evaluator.allows(podsOf(inventory, "gateway"), { kind: "address", name: "the API server" }, port, "TCP").allowed,
          false,
          `gateway → outside:${port}`,
        );
      }
      assert.equal(
        evaluator.allows(podsOf(inventory, "gateway"), podsOf(inventory, "engine"), 8000, "TCP").allowed,
        true,
        "gateway → engine still flows",
      );
    });
  }
});

describe("network: ACME HTTP-01 passes default deny", () => {
  const solver = (inventory: Inventory): Extract<Endpoint, { kind: "pods" }> => ({
    kind: "pods",
    namespace: "llama3-multi-adapter",
    // As cert-manager labels the solver pods it creates for an order.
    labels: {
      "acme.cert-manager.io/http01-solver": "true",
      "acme.cert-manager.io/http-domain": "1234",
      "acme.cert-manager.io/http-token": "5678",
    },
    name: `solver (${inventory.objects.length} objects)`,
  });
  const controller: Endpoint = { kind: "namespace", namespace: "ingress-nginx", name: "ingress-nginx" };

  for (const env of ["staging", "production"]) {
    it(`${env}: the ingress controller reaches cert-manager's solver on 8089, and nothing more`, () => {
      const inventory = new Inventory(objects(env));
      const evaluator = new PolicyEvaluator(inventory);
      assert.equal(evaluator.allows(controller, solver(inventory), 8089, "TCP").allowed, true, "ingress controller → solver:8089");
      assert.equal(evaluator.allows(controller, solver(inventory), 8080, "TCP").allowed, false, "another port");
      assert.equal(
        evaluator.allows({ kind: "namespace", namespace: "default", name: "default" }, solver(inventory), 8089, "TCP").allowed,
        false,
        "another namespace",
      );
      assert.equal(
        evaluator.allows(podsOf(inventory, "gateway"), solver(inventory), 8089, "TCP").allowed,
        false,
        "the platform's own pods",
      );
      assert.equal(
        evaluator.allows(solver(inventory), podsOf(inventory, "gateway"), 8080, "TCP").allowed,
        false,
        "the solver calls nobody",
      );
      assert.equal(
        evaluator.allows(solver(inventory), { kind: "address", name: "outside" }, 443, "TCP").allowed,
        false,
        "nor the internet",
      );
    });
  }

  it("local (self-signed): no solver runs, and no policy opens for one", () => {
    const list = objects("local");
    const inventory = new Inventory(list);
    assert.equal(new PolicyEvaluator(inventory).allows(controller, solver(inventory), 8089, "TCP").allowed, false);
    assert.ok(!list.some((o) => o.metadata.name === "acme-http01-solver-ingress"));
  });

  it("validate checks the flow: a production tree without it fails network/required-flows, naming the solver", () => {
    const list = objects("production").filter((o) => o.metadata.name !== "acme-http01-solver-ingress");
    const build = buildEnvironment({ file: EXAMPLE, environment: "production" });
    const input = validationInput(build);
    const findings = validateObjects(list, input.env).findings.filter((f) => f.ruleId === "network/required-flows");
    assert.equal(findings.length, 1, JSON.stringify(findings, null, 1));
    assert.match(findings[0]?.message ?? "", /cert-manager's HTTP-01 solver:8089/);
    assert.equal(findings[0]?.resource, "Certificate/llama3-multi-adapter/gateway-tls");
    const clean = validateObjects(input.objects, input.env).findings.filter((f) => f.ruleId.startsWith("network/"));
    assert.deepEqual(clean, []);
  });
});

describe("network: hand-written manifests", () => {
  it("validate without the spec finds the HTTP-01 flow from the Certificate and its ClusterIssuer", () => {
    const list = objects("production").filter((o) => o.metadata.name !== "acme-http01-solver-ingress");
    const findings = validateObjects(list).findings.filter(
      (f) => f.ruleId === "network/required-flows" && f.message.includes("HTTP-01 solver"),
    );
    assert.equal(
      findings.length,
      1,
      JSON.stringify(
        validateObjects(list).findings.filter((f) => f.ruleId.startsWith("network/")),
        null,
        1,
      ),
    );
    assert.deepEqual(
      validateObjects(objects("production")).findings.filter((f) => f.ruleId === "network/required-flows"),
      [],
    );
  });
});
