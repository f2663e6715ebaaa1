// Restarts the test cluster's kube-apiserver with the same command line (for "API server restarted
// mid-apply" tests) and waits until it serves again.
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { isHealthy } from "../../scripts/cluster/cluster.ts";
import { clusterPaths } from "../../scripts/cluster/config.ts";
import { withLock } from "../../scripts/cluster/lock.ts";
import { startProcess } from "../../scripts/cluster/processes.ts";
import { execFile } from "node:child_process";
import { randomBytes } from "node:crypto";
import { kwokPlacementLabel } from "../../scripts/cluster/admission.ts";
import { kubectlPath } from "../../scripts/cluster/build.ts";
import { realNode } from "../../scripts/cluster/config.ts";
import { storageClasses } from "../../scripts/cluster/nodes.ts";
import { list, probePod } from "./cluster-manifests.ts";

/** Holds the cluster lock meanwhile, so no concurrent `cluster:up` mistakes the restart for a dead cluster. */
export async function restartApiServer(): Promise<void> {
  const paths = clusterPaths();
  await withLock(join(paths.cacheRoot, ".lock"), () => restart(paths));
}

async function restart(paths: ReturnType<typeof clusterPaths>): Promise<void> {
  const [pidText] = readFileSync(join(paths.stateDir, "run", "kube-apiserver.pid"), "utf8").split("\n");
  const pid = Number(pidText);
  const argv = readFileSync(`/proc/${pid}/cmdline`, "utf8")
    .split("\0")
    .filter((a) => a !== "");
  const [command, ...args] = argv;
  if (!command) throw new Error("cannot read the API server's command line");
  const alive = () => {
    try {
      process.kill(pid, 0);
      return true;
    } catch {
      return false;
    }
  };
  process.kill(pid, "SIGTERM");
  for (let i = 0; i < 100 && alive(); i++) await sleep(100);
  // Never start a second API server beside the old one: it would hold the port and the pidfile would lie.
  if (alive()) process.kill(pid, "SIGKILL");
  for (let i = 0; i < 50 && alive(); i++) await sleep(100);
  if (alive()) throw new Error(`kube-apiserver (pid ${pid}) did not stop`);
  startProcess(paths.stateDir, { name: "kube-apiserver", command, args });
  let healthy = false;
  for (let i = 0; i < 300 && !healthy; i++) {
    healthy = await isHealthy(paths);
    if (!healthy) await sleep(200);
  }
  if (!healthy) throw new Error("the API server did not come back within 60 s");
  await controllersCaughtUp(paths.kubeconfig);
}

/**
 * The API server answers before the scheduler's, kwok's and the controller manager's watches are back
 * (their reflectors back off): a pod on a simulated node becoming Ready, then a StatefulSet and a
 * Deployment rolled out, show they are, so the next test does not spend its timeouts waiting for them.
 */
async function controllersCaughtUp(kubeconfig: string): Promise<void> {
  const kubectl = (args: readonly string[], input?: string) =>
    new Promise<string>((resolve, reject) => {
      const child = execFile(kubectlPath(), ["--kubeconfig", kubeconfig, ...args], { timeout: 150_000 }, (error, stdout, stderr) =>
        error ? reject(new Error(`kubectl ${args.join(" ")}: ${stderr || error.message}`)) : resolve(stdout),
      );
      if (input !== undefined) child.stdin?.end(input);
    });
  // Its own name each time: the last restart's canary may still be being deleted (its claims go first).
  const namespace = `apiserver-restart-canary-${randomBytes(4).toString("hex")}`;
  await kubectl(
    ["create", "-f", "-"],
    JSON.stringify({
      apiVersion: "v1",
      kind: "Namespace",
      metadata: { name: namespace, labels: { [kwokPlacementLabel.key]: kwokPlacementLabel.value } },
    }),
  );
  try {
    const pod = JSON.stringify({
      apiVersion: "v1",
      kind: "Pod",
      metadata: { name: "canary", namespace },
      spec: { containers: [{ name: "canary", image: "canary" }] },
    });
    await createPod(kubectl, pod);
    await kubectl(["-n", namespace, "wait", "--for=condition=Ready", "pod/canary", "--timeout=120s"]);
    // The workload controllers' watches back off on their own clocks: a StatefulSet and a Deployment
    // rolled out show theirs are back too (a StatefulSet applied after a restart once got no pod for 52 s).
    // Each claims a volume as the platform's do (Qdrant's volumeClaimTemplates, the engine's generic
    // ephemeral volume, of the default WaitForFirstConsumer class), so the scheduler's volume binding,
    // the ephemeral-volume and PersistentVolume controllers and the provisioner are shown back as well
    // (Qdrant's pod, applied after a restart, once stayed unready for the storage phase's 53 s).
    const claim = { accessModes: ["ReadWriteOnce"], storageClassName: storageClasses.default, resources: { requests: { storage: "1Mi" } } };
    const workload = (name: string, volumes: readonly unknown[]) => {
      const labels = { app: name };
      const container = { name, image: name, volumeMounts: [{ name: "data", mountPath: "/data" }] };
      return {
        selector: { matchLabels: labels },
        template: { metadata: { labels }, spec: { containers: [container], volumes } },
      };
    };
    await create(kubectl, [
      {
        apiVersion: "apps/v1",
        kind: "StatefulSet",
        metadata: { name: "canary", namespace },
        spec: {
          serviceName: "canary",
          replicas: 1,
          ...workload("canary-statefulset", []),
          volumeClaimTemplates: [{ metadata: { name: "data" }, spec: claim }],
        },
      },
      {
        apiVersion: "apps/v1",
        kind: "Deployment",
        metadata: { name: "canary", namespace },
        spec: {
          replicas: 1,
          ...workload("canary-deployment", [{ name: "data", ephemeral: { volumeClaimTemplate: { spec: claim } } }]),
        },
      },
    ]);
    // cert-manager's controller (a process here) backs off as well: a Certificate applied after a
    // restart once stayed unissued for the certificates phase's 36 s. A self-signed one issued
    // shows its Issuer, Certificate, CertificateRequest and Secret watches are back.
    await create(kubectl, [
      { apiVersion: "cert-manager.io/v1", kind: "Issuer", metadata: { name: "canary", namespace }, spec: { selfSigned: {} } },
      {
        apiVersion: "cert-manager.io/v1",
        kind: "Certificate",
        metadata: { name: "canary", namespace },
        spec: { secretName: "canary-tls", commonName: "canary", issuerRef: { name: "canary", kind: "Issuer" } },
      },
    ]);
    for (const name of ["statefulset/canary", "deployment/canary"])
      await kubectl(["-n", namespace, "rollout", "status", name, "--timeout=120s"]);
    await kubectl(["-n", namespace, "wait", "--for=condition=Ready", "certificate/canary", "--timeout=120s"]);
    await realNodeCaughtUp(kubectl, `${namespace}-node`);
  } finally {
    await kubectl(["delete", "namespace", namespace, "--wait=false"]).catch(() => undefined);
  }
}

type Kubectl = (args: readonly string[], input?: string) => Promise<string>;

/** Creates the objects, as one kubectl List. */
async function create(kubectl: Kubectl, items: readonly unknown[]): Promise<void> {
  await kubectl(["create", "-f", "-"], list(items));
}

/** Creates a pod as soon as its namespace's default ServiceAccount exists (the controller manager makes it, once its watches are back). */
async function createPod(kubectl: Kubectl, pod: string): Promise<void> {
  for (let attempt = 1; ; attempt++) {
    try {
      await kubectl(["create", "-f", "-"], pod);
      return;
    } catch (error) {
      if (attempt >= 120 || !/serviceaccount "default" not found/.test((error as Error).message)) throw error;
      await sleep(1000);
    }
  }
}

/**
 * The real node's kubelet (where the cluster has one) watches the Secrets and ConfigMaps its pods
 * use, and those watches back off too: CI once failed the engine's phase on "failed to sync secret
 * cache" after the restarts. A pod there that reads a Secret (a volume and a variable) and a
 * ConfigMap, Ready, shows them back. Its own namespace, without the kwok label, so that admission
 * places it on the real node.
 */
async function realNodeCaughtUp(kubectl: Kubectl, namespace: string): Promise<void> {
  const nodes = await kubectl(["get", "nodes", "-o", "name"]);
  if (!nodes.split("\n").includes(`node/${realNode.name}`)) return;
  await kubectl(["create", "namespace", namespace]);
  try {
    const pod = probePod(namespace, "canary", {
      labels: { [realNode.label.key]: realNode.label.value },
      container: {
        env: [
          { name: "SECRET", valueFrom: { secretKeyRef: { name: "canary", key: "value" } } },
          { name: "CONFIG", valueFrom: { configMapKeyRef: { name: "canary", key: "value" } } },
        ],
        volumeMounts: [{ name: "secret", mountPath: "/secret", readOnly: true }],
      },
      volumes: [{ name: "secret", secret: { secretName: "canary" } }],
    });
    await create(kubectl, [
      { apiVersion: "v1", kind: "Secret", metadata: { name: "canary", namespace }, stringData: { value: "canary" } },
      { apiVersion: "v1", kind: "ConfigMap", metadata: { name: "canary", namespace }, data: { value: "canary" } },
    ]);
    await createPod(kubectl, JSON.stringify(pod));
    await kubectl(["-n", namespace, "wait", "--for=condition=Ready", "pod/canary", "--timeout=120s"]);
  } finally {
    await kubectl(["delete", "namespace", namespace, "--wait=false"]).catch(() => undefined);
  }
}
