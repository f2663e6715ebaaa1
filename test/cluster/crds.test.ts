// The CRDs the platform renders against are installed from cert-manager's and
// prometheus-operator's published modules, and the API server validates against their schemas.
import assert from "node:assert/strict";
import { before, describe, it } from "node:test";
import { list } from "../support/cluster-manifests.ts";
import { clusterSkipReason, KubectlError, testCluster, type TestCluster } from "../support/cluster.ts";

const skip = clusterSkipReason();

describe("cluster tier: cert-manager and prometheus-operator CRDs", { skip }, () => {
  let cluster: TestCluster;
  before(async () => {
    cluster = await testCluster();
  });

  it("accepts a valid Issuer, Certificate and ServiceMonitor", { timeout: 30_000 }, async (t) => {
    const ns = await cluster.namespace(t);
    const out = await cluster.kubectl(
      ["apply", "--server-side", "-f", "-"],
      list([
        {
          apiVersion: "cert-manager.io/v1",
          kind: "Issuer",
          metadata: { name: "selfsigned", namespace: ns },
          spec: { selfSigned: {} },
        },
        {
          apiVersion: "cert-manager.io/v1",
          kind: "Certificate",
          metadata: { name: "gateway-tls", namespace: ns },
          spec: {
            secretName: "gateway-tls",
            dnsNames: ["llama.local.test"],
            issuerRef: { name: "selfsigned", kind: "Issuer" },
          },
        },
        {
          apiVersion: "monitoring.coreos.com/v1",
          kind: "ServiceMonitor",
          metadata: { name: "gateway", namespace: ns },
          spec: { selector: { matchLabels: { app: "gateway" } }, endpoints: [{ port: "http", path: "/metrics" }] },
        },
      ]),
    );
    assert.match(out, /certificate\.cert-manager\.io\/gateway-tls serverside-applied/);
    assert.match(out, /servicemonitor\.monitoring\.coreos\.com\/gateway serverside-applied/);
  });

  it("rejects objects that break the CRD schemas", { timeout: 30_000 }, async (t) => {
    const ns = await cluster.namespace(t);
    const certificate = {
      apiVersion: "cert-manager.io/v1",
      kind: "Certificate",
      metadata: { name: "broken", namespace: ns },
      spec: { dnsNames: ["llama.local.test"], issuerRef: { name: "selfsigned" } },
    };
    await assert.rejects(cluster.kubectl(["create", "-f", "-"], JSON.stringify(certificate)), (error: unknown) => {
      assert.ok(error instanceof KubectlError);
      assert.match(error.stderr, /spec\.secretName: Required value/);
      return true;
    });
    const monitor = {
      apiVersion: "monitoring.coreos.com/v1",
      kind: "ServiceMonitor",
      metadata: { name: "broken", namespace: ns },
      spec: { selector: {}, endpoints: [{ port: "http", interval: "often" }] },
    };
    await assert.rejects(cluster.kubectl(["create", "-f", "-"], JSON.stringify(monitor)), (error: unknown) => {
      assert.ok(error instanceof KubectlError);
      assert.match(error.stderr, /spec\.endpoints\[0\]\.interval/);
      return true;
    });
  });
});
