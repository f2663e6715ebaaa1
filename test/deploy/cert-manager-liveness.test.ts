// The certificates phase's early check (a fake client: the test cluster runs cert-manager's real
// controller, whose lease is live, so neither a lapsed lease nor the "none at all" case can be made there).
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { certManagerCheck } from "../../src/deploy/cert-manager-liveness.ts";
import { ForbiddenError, type KubeClient } from "../../src/kube/client.ts";
import type { KubeObject } from "../../src/render/context.ts";

const certificate: KubeObject = {
  apiVersion: "cert-manager.io/v1",
  kind: "Certificate",
  metadata: { name: "gateway-tls", namespace: "lab" },
};
const lease = (renewedSecondsAgo: number, holder = "cert-manager-7d9f-abc_1234") => ({
  apiVersion: "coordination.k8s.io/v1",
  kind: "Lease",
  metadata: { name: "cert-manager-controller", namespace: "kube-system" },
  spec: { holderIdentity: holder, leaseDurationSeconds: 60, renewTime: new Date(Date.now() - renewedSecondsAgo * 1000).toISOString() },
});
const listing = (leases: readonly unknown[] | Error): KubeClient =>
  ({
    list: async (apiVersion: string, kind: string, namespace: string | undefined, labels: string | undefined, fields: string) => {
      assert.deepEqual(
        [apiVersion, kind, namespace, labels, fields],
        ["coordination.k8s.io/v1", "Lease", undefined, undefined, "metadata.name=cert-manager-controller"],
      );
      if (leases instanceof Error) throw leases;
      return leases;
    },
    get: async () => {
      throw new ForbiddenError("leases is forbidden");
    },
  }) as unknown as KubeClient;

describe("apply's cert-manager check: wait while a leader renews its lease, stop when none does", () => {
  it("a lease renewed 10 s ago: cert-manager runs, only slowly; keep waiting", async () => {
    assert.equal(await certManagerCheck(listing([lease(10)]), 15_000).verdict([certificate]), undefined);
  });

  it("a lease last renewed 5 minutes ago: no leader; stop, saying when and the fix", async () => {
    const verdict = await certManagerCheck(listing([lease(300)]), 15_000).verdict([certificate]);
    assert.match(
      verdict?.message ?? "",
      /^no cert-manager controller is running: after 15 s cert-manager has written no status on Certificate\/lab\/gateway-tls, and its leader lease kube-system\/cert-manager-controller was last renewed 300 s ago \(a running controller renews it every 15 s\)$/,
    );
    assert.match(verdict?.fix ?? "", /^install cert-manager's controller \(helm install cert-manager/);
  });

  it("no lease in any namespace: no cert-manager was ever installed; stop, naming the lease looked for", async () => {
    const verdict = await certManagerCheck(listing([]), 15_000).verdict([certificate]);
    assert.match(
      verdict?.message ?? "",
      /^no cert-manager controller is running: after 15 s cert-manager has written no status on Certificate\/lab\/gateway-tls, and no cert-manager leader lease \(Lease cert-manager-controller\) exists in any namespace$/,
    );
  });

  it("a released lease (no holder): no leader", async () => {
    assert.notEqual(await certManagerCheck(listing([lease(1, "")]), 15_000).verdict([certificate]), undefined);
  });

  it("credentials that may read no Lease: nobody can tell, so the phase waits on (its timeout still says why)", async () => {
    assert.equal(await certManagerCheck(listing(new ForbiddenError("leases is forbidden")), 15_000).verdict([certificate]), undefined);
  });
});
