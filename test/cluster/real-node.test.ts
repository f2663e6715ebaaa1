// The cluster's own smoke check of its real node (real-0: kubelet, containerd, kube-proxy,
// kube-router, CoreDNS): containers really run there, Services and DNS work from pods, logs, exec
// and port-forward reach them, NetworkPolicies are enforced, placement sends the `local`
// environment there and nothing else, and a deleted pod leaves nothing behind. These prove the
// test cluster works, not the product.
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { existsSync } from "node:fs";
import { join } from "node:path";
import { after, before, describe, it, type TestContext } from "node:test";
import { setTimeout as sleep } from "node:timers/promises";
import { kubectlPath } from "../../scripts/cluster/build.ts";
import { clusterPaths, network, realNode, versions } from "../../scripts/cluster/config.ts";
import { probePod, restrictedPodSpec } from "../support/cluster-manifests.ts";
import { clusterSkipReason, hasRealNode, testCluster, type TestCluster } from "../support/cluster.ts";
import { holdRealNode } from "../support/real-platform.ts";

const skip = clusterSkipReason();

interface Pod {
  metadata: { name: string; labels?: Record<string, string> };
  spec: { nodeName?: string; tolerations?: { key?: string }[]; nodeSelector?: Record<string, string> };
  status: { phase: string; podIP?: string; containerStatuses?: { containerID?: string }[] };
}

interface Node {
  metadata: { name: string; annotations?: Record<string, string> };
  spec: { taints?: { key: string; value?: string; effect: string }[] };
  status: {
    conditions: { type: string; status: string }[];
    nodeInfo: { containerRuntimeVersion: string; kubeletVersion: string };
    addresses: { type: string; address: string }[];
  };
}

const onRealNode = { [realNode.label.key]: realNode.label.value };

/** Waits until the pod has finished (restartPolicy Never, or OnFailure: until it succeeds) and returns its phase and logs. */
async function finished(cluster: TestCluster, ns: string, name: string): Promise<{ phase: string; logs: string }> {
  const deadline = Date.now() + 60_000;
  for (;;) {
    const pod = await cluster.kubectlJson<Pod>(["-n", ns, "get", "pod", name]);
    if (pod.status.phase === "Succeeded" || pod.status.phase === "Failed") {
      return { phase: pod.status.phase, logs: await cluster.kubectl(["-n", ns, "logs", name]) };
    }
    if (Date.now() > deadline) assert.fail(`pod ${ns}/${name} is still ${pod.status.phase} after 60 s`);
    await sleep(250);
  }
}

/** `kubectl port-forward` to a local port the OS picks; resolves with the port and a stop function. */
async function portForward(cluster: TestCluster, ns: string, target: string, port: number): Promise<{ port: number; stop: () => void }> {
  const child = spawn(kubectlPath(), ["--kubeconfig", cluster.kubeconfig, "-n", ns, "port-forward", target, `:${port}`], {
    stdio: ["ignore", "pipe", "pipe"],
  });
  const local = await new Promise<number>((resolve, reject) => {
    let output = "";
    const timer = setTimeout(() => reject(new Error(`port-forward did not start: ${output}`)), 20_000);
    const onData = (chunk: Buffer): void => {
      output += chunk.toString();
      const match = /Forwarding from 127\.0\.0\.1:(\d+)/.exec(output);
      if (match?.[1]) {
        clearTimeout(timer);
        resolve(Number(match[1]));
      }
    };
    child.stdout.on("data", onData);
    child.stderr.on("data", onData);
    child.on("exit", (code) => reject(new Error(`port-forward exited (${String(code)}): ${output}`)));
  });
  return { port: local, stop: () => child.kill() };
}

describe("cluster tier: the real node", { skip }, () => {
  let cluster: TestCluster;
  let release: (() => void) | undefined;
  before(async () => {
    cluster = await testCluster();
    // One file at a time on the real node's two cores (test/cluster/real-platform.test.ts runs a whole platform there).
    if ("name" in cluster.realNode) release = await holdRealNode();
  });
  after(() => release?.());

  /** A namespace with a probe server pod and its Service, on the real node. */
  async function server(t: TestContext): Promise<{ ns: string; clusterIP: string }> {
    const ns = await cluster.namespace(t);
    await cluster.kubectl(["create", "-f", "-"], JSON.stringify(probePod(ns, "server", { labels: onRealNode })));
    await cluster.kubectl(
      ["create", "-f", "-"],
      JSON.stringify({
        apiVersion: "v1",
        kind: "Service",
        metadata: { name: "server", namespace: ns },
        spec: { selector: { app: "server" }, ports: [{ name: "http", port: 80, targetPort: "http" }] },
      }),
    );
    await cluster.kubectl(["-n", ns, "wait", "--for=condition=Ready", "pod/server", "--timeout=60s"]);
    const clusterIP = (await cluster.kubectl(["-n", ns, "get", "service", "server", "-o", "jsonpath={.spec.clusterIP}"])).trim();
    return { ns, clusterIP };
  }

  it("is Ready with containerd, the control plane's kubelet version and its taint", { timeout: 30_000 }, async (t) => {
    if (!hasRealNode(t, cluster)) return;
    const node = await cluster.kubectlJson<Node>(["get", "node", realNode.name]);
    assert.equal(node.status.conditions.find((c) => c.type === "Ready")?.status, "True");
    assert.match(node.status.nodeInfo.containerRuntimeVersion, /^containerd:\/\//);
    assert.equal(node.status.nodeInfo.kubeletVersion, versions.kubernetes);
    assert.deepEqual(node.status.addresses.find((a) => a.type === "InternalIP")?.address, realNode.address);
    assert.deepEqual(node.spec.taints, [realNode.taint]);
    assert.equal(node.metadata.annotations?.["kwok.x-k8s.io/node"], undefined, "kwok does not manage it");
  });

  it(
    "runs a probe pod whose HTTP answers through port-forward and through its Service from another pod",
    { timeout: 120_000 },
    async (t) => {
      if (!hasRealNode(t, cluster)) return;
      const { ns, clusterIP } = await server(t);
      const pod = await cluster.kubectlJson<Pod>(["-n", ns, "get", "pod", "server"]);
      assert.equal(pod.spec.nodeName, realNode.name);

      const forward = await portForward(cluster, ns, "pod/server", 8080);
      try {
        const res = await fetch(`http://127.0.0.1:${forward.port}/through-port-forward`);
        assert.equal(res.status, 200);
        assert.equal(await res.text(), "probe server /through-port-forward\n");
      } finally {
        forward.stop();
      }

      // Tried again until it answers: kube-proxy programs a new Service's rules a moment after its
      // endpoint is ready, and until then the address refuses (seen right after a cold cluster start).
      const client = probePod(ns, "client", {
        labels: onRealNode,
        args: ["get", `http://${clusterIP}/through-the-service`],
        restartPolicy: "OnFailure",
      });
      await cluster.kubectl(["create", "-f", "-"], JSON.stringify(client));
      const result = await finished(cluster, ns, "client");
      assert.equal(result.phase, "Succeeded", result.logs);
      assert.equal(result.logs, "probe server /through-the-service\n");
    },
  );

  it(
    "resolves a Service's name from a pod (cluster DNS), and kubectl logs and exec reach the container",
    { timeout: 120_000 },
    async (t) => {
      if (!hasRealNode(t, cluster)) return;
      const { ns, clusterIP } = await server(t);
      const name = `server.${ns}.svc.${network.clusterDomain}`;
      const resolved = await cluster.kubectl(["-n", ns, "exec", "server", "--", "/probe", "resolve", name]);
      assert.equal(resolved.trim(), clusterIP);
      const self = await cluster.kubectl(["-n", ns, "exec", "server", "--", "/probe", "get", "http://127.0.0.1:8080/exec"]);
      assert.equal(self, "probe server /exec\n");
      assert.match(await cluster.kubectl(["-n", ns, "logs", "server"]), /probe: serving on :8080/);
      // A name outside the cluster does not resolve: nothing is forwarded off the machine.
      await assert.rejects(cluster.kubectl(["-n", ns, "exec", "server", "--", "/probe", "resolve", "--timeout=3s", "example.com"]));
    },
  );

  it(
    "resolves names under an egress policy that allows DNS on port 53 to kube-dns's pods, as the platform's allow-dns does",
    { timeout: 120_000 },
    async (t) => {
      if (!hasRealNode(t, cluster)) return;
      const ns = await cluster.namespace(t);
      await cluster.kubectl(["create", "-f", "-"], JSON.stringify(probePod(ns, "client", { labels: onRealNode })));
      const policy = {
        apiVersion: "networking.k8s.io/v1",
        kind: "NetworkPolicy",
        metadata: { name: "allow-dns-only", namespace: ns },
        spec: {
          podSelector: {},
          policyTypes: ["Egress"],
          // Policies match the DNS pod's own port: CoreDNS must listen on 53 in its pod, as in kind or kubeadm.
          egress: [
            {
              to: [
                {
                  namespaceSelector: { matchLabels: { "kubernetes.io/metadata.name": "kube-system" } },
                  podSelector: { matchLabels: { "k8s-app": "kube-dns" } },
                },
              ],
              ports: [
                { protocol: "UDP", port: 53 },
                { protocol: "TCP", port: 53 },
              ],
            },
          ],
        },
      };
      await cluster.kubectl(["create", "-f", "-"], JSON.stringify(policy));
      await cluster.kubectl(["-n", ns, "wait", "--for=condition=Ready", "pod/client", "--timeout=60s"]);
      const resolve = () =>
        cluster.kubectl([
          "-n",
          ns,
          "exec",
          "client",
          "--",
          "/probe",
          "resolve",
          "--timeout=3s",
          `kubernetes.default.svc.${network.clusterDomain}`,
        ]);
      // kube-router applies a new policy within a sync: the first answers may still come from before it.
      const deadline = Date.now() + 30_000;
      let answer = "";
      for (;;) {
        answer = await resolve().catch((error: unknown) => String(error));
        if (answer.trim() === "10.96.0.1" || Date.now() > deadline) break;
        await sleep(500);
      }
      assert.equal(answer.trim(), "10.96.0.1");
    },
  );

  it("places a pod of the local environment on the real node and an unlabelled pod on a kwok node", { timeout: 90_000 }, async (t) => {
    if (!hasRealNode(t, cluster)) return;
    const ns = await cluster.namespace(t);
    const local = probePod(ns, "local", { labels: { "diatonic.ai/environment": realNode.environment } });
    const plain = { apiVersion: "v1", kind: "Pod", metadata: { name: "plain", namespace: ns }, spec: restrictedPodSpec() };
    const staging = { ...plain, metadata: { name: "staging", namespace: ns, labels: { "diatonic.ai/environment": "staging" } } };
    for (const pod of [local, plain, staging]) await cluster.kubectl(["create", "-f", "-"], JSON.stringify(pod));
    await cluster.kubectl(["-n", ns, "wait", "--for=condition=Ready", "pod/local", "pod/plain", "pod/staging", "--timeout=60s"]);
    const nodes = await cluster.kubectlJson<{ items: Node[] }>(["get", "nodes"]);
    const kwokNodes = nodes.items.filter((n) => n.metadata.annotations?.["kwok.x-k8s.io/node"] === "fake").map((n) => n.metadata.name);
    const placed = async (name: string): Promise<Pod> => cluster.kubectlJson<Pod>(["-n", ns, "get", "pod", name]);
    assert.equal((await placed("local")).spec.nodeName, realNode.name);
    for (const name of ["plain", "staging"]) {
      const pod = await placed(name);
      assert.ok(kwokNodes.includes(pod.spec.nodeName ?? ""), `${name} runs on ${String(pod.spec.nodeName)}, a kwok node`);
      assert.ok(!pod.spec.tolerations?.some((tol) => tol.key === realNode.taint.key), `${name} was not given the real node's toleration`);
    }
  });

  it(
    "enforces NetworkPolicies: default deny refuses a client, an allow rule lets only the pods it names in",
    { timeout: 120_000 },
    async (t) => {
      if (!hasRealNode(t, cluster)) return;
      const ns = await cluster.namespace(t);
      for (const [name, role] of [
        ["server", "server"],
        ["allowed", "allowed"],
        ["other", "other"],
      ] as const) {
        await cluster.kubectl(["create", "-f", "-"], JSON.stringify(probePod(ns, name, { labels: { ...onRealNode, role } })));
      }
      await cluster.kubectl(["-n", ns, "wait", "--for=condition=Ready", "pod/server", "pod/allowed", "pod/other", "--timeout=60s"]);
      const ip = (await cluster.kubectl(["-n", ns, "get", "pod", "server", "-o", "jsonpath={.status.podIP}"])).trim();
      const reaches = (from: string): Promise<boolean> =>
        cluster.kubectl(["-n", ns, "exec", from, "--", "/probe", "get", "--timeout=2s", `http://${ip}:8080/`]).then(
          () => true,
          () => false,
        );
      /** Policies take effect asynchronously (kube-router syncs on each change): wait for the expected answer. */
      const settles = async (from: string, expected: boolean): Promise<void> => {
        const deadline = Date.now() + 30_000;
        while ((await reaches(from)) !== expected) {
          if (Date.now() > deadline) assert.fail(`${from} → server: still ${expected ? "refused" : "let in"} 30 s after the policy change`);
          await sleep(500);
        }
      };
      const policy = (name: string, ingress: unknown[]) =>
        JSON.stringify({
          apiVersion: "networking.k8s.io/v1",
          kind: "NetworkPolicy",
          metadata: { name, namespace: ns },
          spec: { podSelector: { matchLabels: { role: "server" } }, policyTypes: ["Ingress"], ingress },
        });
      assert.ok(await reaches("allowed"), "without a policy every pod reaches the server");
      await cluster.kubectl(["create", "-f", "-"], policy("default-deny", []));
      await settles("allowed", false);
      await cluster.kubectl(
        ["create", "-f", "-"],
        policy("allow-allowed", [{ from: [{ podSelector: { matchLabels: { role: "allowed" } } }], ports: [{ port: 8080 }] }]),
      );
      await settles("allowed", true);
      assert.equal(await reaches("other"), false, "a pod the policy does not name stays refused");
    },
  );

  it("deleting a pod stops its container and releases its address", { timeout: 90_000 }, async (t) => {
    if (!hasRealNode(t, cluster)) return;
    const ns = await cluster.namespace(t);
    await cluster.kubectl(["create", "-f", "-"], JSON.stringify(probePod(ns, "doomed", { labels: onRealNode })));
    await cluster.kubectl(["-n", ns, "wait", "--for=condition=Ready", "pod/doomed", "--timeout=60s"]);
    const pod = await cluster.kubectlJson<Pod>(["-n", ns, "get", "pod", "doomed"]);
    const containerID = (pod.status.containerStatuses?.[0]?.containerID ?? "").replace(/^containerd:\/\//, "");
    // host-local keeps one file per address it handed out, until CNI DEL releases it.
    const reservation = join(clusterPaths().nodeDir, "cni", "ipam", "diatonic", pod.status.podIP ?? "none");
    const running = (): Promise<boolean> => taskRunning(containerID);
    assert.ok(await running(), `container ${containerID} runs in containerd`);
    assert.ok(existsSync(reservation), `${reservation} holds the pod's address`);

    await cluster.kubectl(["-n", ns, "delete", "pod", "doomed", "--wait=true", "--timeout=60s"]);
    const deadline = Date.now() + 30_000;
    while ((await running()) || existsSync(reservation)) {
      if (Date.now() > deadline)
        assert.fail(`30 s after deletion: container running ${String(await running())}, address held ${String(existsSync(reservation))}`);
      await sleep(250);
    }
  });
});

/** Whether containerd has a running task for the container (ctr on the node's socket). */
async function taskRunning(containerID: string): Promise<boolean> {
  const socket = join(clusterPaths().nodeDir, "containerd", "containerd.sock");
  const out = await new Promise<string>((resolve, reject) => {
    const child = spawn("ctr", ["--address", socket, "-n", "k8s.io", "tasks", "ls"], { stdio: ["ignore", "pipe", "pipe"] });
    let text = "";
    child.stdout.on("data", (chunk: Buffer) => (text += chunk.toString()));
    child.on("error", reject);
    child.on("exit", (code) => (code === 0 ? resolve(text) : reject(new Error(`ctr tasks ls exited ${String(code)}`))));
  });
  return out.split("\n").some((line) => line.startsWith(containerID + " ") && /\bRUNNING\b/.test(line));
}
