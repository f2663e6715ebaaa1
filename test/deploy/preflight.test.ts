// The preflight's controller check without a cluster: a controller found and available, found and
// not available, not found, and credentials that may not look. The cluster tier sees the "not found"
// case for real (the test cluster has cert-manager's CRDs, not its controller).
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { controllerChecks } from "../../src/deploy/preflight.ts";
import { ForbiddenError, type KubeClient } from "../../src/kube/client.ts";
import type { KubeObject } from "../../src/render/context.ts";

const certificate: KubeObject = { apiVersion: "cert-manager.io/v1", kind: "Certificate", metadata: { name: "gateway-tls", namespace: "lab" } };
const configMap: KubeObject = { apiVersion: "v1", kind: "ConfigMap", metadata: { name: "gateway", namespace: "lab" } };

function clientListing(deployments: readonly { name: string; available: number }[] | Error): { client: KubeClient; selectors: string[] } {
  const selectors: string[] = [];
  const client = {
    list: async (apiVersion: string, kind: string, namespace: string | undefined, selector: string) => {
      assert.deepEqual([apiVersion, kind, namespace], ["apps/v1", "Deployment", undefined], "Deployments in every namespace");
      selectors.push(selector);
      if (deployments instanceof Error) throw deployments;
      return deployments.map((d) => ({ apiVersion: "apps/v1", kind: "Deployment", metadata: { name: d.name, namespace: "cert-manager" }, status: { availableReplicas: d.available } }));
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
    assert.match(missing?.message ?? "", /no cert-manager controller found .*the certificates phase times out/);
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
    assert.deepEqual(await controllerChecks(clientListing(new ForbiddenError("deployments.apps is forbidden", "use credentials that may list")).client, [certificate]), []);
    await assert.rejects(controllerChecks(clientListing(new Error("connection refused")).client, [certificate]), /connection refused/);
  });
});
