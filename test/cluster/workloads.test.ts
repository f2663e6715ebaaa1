// Proof that the test cluster is real: Pod Security admission, controllers, scheduler, kwok's
// simulated kubelets and the volume provisioner together take workloads to Ready/Complete.
import assert from "node:assert/strict";
import { before, describe, it } from "node:test";
import { list, pauseImage, restrictedPodSpec } from "../support/cluster-manifests.ts";
import { clusterSkipReason, KubectlError, testCluster, type TestCluster } from "../support/cluster.ts";

const skip = clusterSkipReason();

interface Claim {
  metadata: { name: string };
  spec: { volumeName?: string; storageClassName?: string };
  status: { phase: string };
}
interface Volume {
  spec: { nodeAffinity?: { required: { nodeSelectorTerms: { matchExpressions: { values: string[] }[] }[] } } };
}

interface StorageClass {
  metadata: { name: string; annotations?: Record<string, string> };
}

describe("cluster tier: workloads on simulated nodes", { skip }, () => {
  let cluster: TestCluster;
  let storageClasses: StorageClass[];
  before(async () => {
    cluster = await testCluster();
    storageClasses = (await cluster.kubectlJson<{ items: StorageClass[] }>(["get", "storageclass"])).items;
  });

  it("runs a Deployment, a StatefulSet with claim templates and a Job in a restricted namespace", { timeout: 180_000 }, async (t) => {
    const ns = await cluster.namespace(t, { podSecurity: "restricted" });
    const labels = (app: string) => ({ matchLabels: { app } });
    const template = (app: string, extra: Record<string, unknown> = {}) => ({
      metadata: { labels: { app } },
      spec: restrictedPodSpec(extra),
    });
    const objects = [
      {
        apiVersion: "apps/v1",
        kind: "Deployment",
        metadata: { name: "web", namespace: ns },
        spec: { replicas: 2, selector: labels("web"), template: template("web") },
      },
      {
        apiVersion: "v1",
        kind: "Service",
        metadata: { name: "db", namespace: ns },
        spec: { clusterIP: "None", selector: { app: "db" }, ports: [{ name: "http", port: 6333 }] },
      },
      {
        apiVersion: "apps/v1",
        kind: "StatefulSet",
        metadata: { name: "db", namespace: ns },
        spec: {
          serviceName: "db",
          replicas: 2,
          selector: labels("db"),
          template: template("db"),
          volumeClaimTemplates: [
            {
              metadata: { name: "data" },
              spec: { accessModes: ["ReadWriteOnce"], resources: { requests: { storage: "1Gi" } } },
            },
          ],
        },
      },
      {
        apiVersion: "batch/v1",
        kind: "Job",
        metadata: { name: "once", namespace: ns },
        spec: { backoffLimit: 0, template: template("once", { restartPolicy: "Never" }) },
      },
    ];
    await cluster.kubectl(["apply", "--server-side", "-f", "-"], list(objects));
    await cluster.kubectl(["-n", ns, "wait", "--for=condition=Available", "deployment/web", "--timeout=120s"]);
    await cluster.kubectl(["-n", ns, "rollout", "status", "statefulset/db", "--timeout=120s"]);
    await cluster.kubectl(["-n", ns, "wait", "--for=condition=Complete", "job/once", "--timeout=120s"]);

    const claims = await cluster.kubectlJson<{ items: Claim[] }>(["-n", ns, "get", "pvc"]);
    assert.deepEqual(claims.items.map((c) => c.metadata.name).sort(), ["data-db-0", "data-db-1"]);
    for (const claim of claims.items) {
      assert.equal(claim.status.phase, "Bound", `${claim.metadata.name} is bound`);
      const defaultClass = storageClasses.find((c) => c.metadata.annotations?.["storageclass.kubernetes.io/is-default-class"] === "true");
      assert.equal(claim.spec.storageClassName, defaultClass?.metadata.name, "the default StorageClass was applied");
      // WaitForFirstConsumer: the volume is pinned to the node the scheduler picked for the pod.
      const volume = await cluster.kubectlJson<Volume>(["get", "pv", claim.spec.volumeName ?? ""]);
      const pod = await cluster.kubectlJson<{ spec: { nodeName: string } }>([
        "-n",
        ns,
        "get",
        "pod",
        claim.metadata.name.replace(/^data-/, ""),
      ]);
      assert.deepEqual(volume.spec.nodeAffinity?.required.nodeSelectorTerms[0]?.matchExpressions[0]?.values, [pod.spec.nodeName]);
    }
  });

  it("binds an Immediate claim of the longhorn class without a consumer", { timeout: 60_000 }, async (t) => {
    if (!storageClasses.some((c) => c.metadata.name === "longhorn")) return t.skip("no longhorn StorageClass here");
    const ns = await cluster.namespace(t);
    await cluster.kubectl(
      ["apply", "-f", "-"],
      JSON.stringify({
        apiVersion: "v1",
        kind: "PersistentVolumeClaim",
        metadata: { name: "models", namespace: ns },
        spec: {
          storageClassName: "longhorn",
          accessModes: ["ReadWriteOnce"],
          resources: { requests: { storage: "20Gi" } },
        },
      }),
    );
    await cluster.kubectl(["-n", ns, "wait", "--for=jsonpath={.status.phase}=Bound", "pvc/models", "--timeout=45s"]);
  });

  it("reports a server-side apply conflict when another field manager owns the field", { timeout: 30_000 }, async (t) => {
    const ns = await cluster.namespace(t);
    const config = (value: string) =>
      JSON.stringify({
        apiVersion: "v1",
        kind: "ConfigMap",
        metadata: { name: "owned", namespace: ns },
        data: { replicas: value },
      });
    await cluster.kubectl(["apply", "--server-side", "--field-manager=diatonic", "-f", "-"], config("1"));
    await cluster.kubectl(["apply", "--server-side", "--field-manager=someone-else", "-f", "-"], config("1"));
    await assert.rejects(
      cluster.kubectl(["apply", "--server-side", "--field-manager=someone-else", "-f", "-"], config("2")),
      (error: unknown) => {
        assert.ok(error instanceof KubectlError);
        assert.match(error.stderr, /conflict with "diatonic"/);
        assert.match(error.stderr, /\.data\.replicas/);
        return true;
      },
    );
  });

  it("rejects a privileged pod in a restricted namespace (Pod Security admission)", { timeout: 30_000 }, async (t) => {
    const ns = await cluster.namespace(t, { podSecurity: "restricted" });
    const pod = {
      apiVersion: "v1",
      kind: "Pod",
      metadata: { name: "root", namespace: ns },
      spec: { containers: [{ name: "app", image: pauseImage, securityContext: { privileged: true } }] },
    };
    await assert.rejects(cluster.kubectl(["create", "-f", "-"], JSON.stringify(pod)), (error: unknown) => {
      assert.ok(error instanceof KubectlError);
      assert.match(error.stderr, /violates PodSecurity "restricted:latest"/);
      assert.match(error.stderr, /privileged/);
      return true;
    });
  });
});
