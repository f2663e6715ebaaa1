// Starts and stops the test cluster: etcd, kube-apiserver, kube-controller-manager,
// kube-scheduler, kwok, the hostPath provisioner and cert-manager's controller as background
// processes, and beside the kwok nodes one real node (real-node.ts) when this machine allows it.
// Without the real node everything listens on loopback; with it, the API server listens on the
// node's address, which pods reach through the `kubernetes` Service.
import { execFileSync } from "node:child_process";
import { existsSync, mkdirSync, readFileSync, rmSync } from "node:fs";
import { request } from "node:https";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { admissionPolicyFlags, placementPolicyManifests } from "./admission.ts";
import { binaryPath, ensureBinaries, kubectlPath } from "./build.ts";
import { clusterPaths, network, realNode, versions, type ClusterPaths, type ClusterState } from "./config.ts";
import { crdFiles } from "./crds.ts";
import { dnsManifests } from "./dns.ts";
import { ClusterStartError } from "./errors.ts";
import { kubeconfigYaml, writeFileAtomic } from "./kubeconfig.ts";
import { withLock } from "./lock.ts";
import { addonManifests, nodeManifests, provisioners, storageClassManifests } from "./nodes.ts";
import {
  freePort,
  isRunning,
  logTail,
  processNames,
  residentMiB,
  startProcess,
  stopPid,
  stopProcess,
  strayProcesses,
} from "./processes.ts";
import { nodeComponents, planRealNode, prepareRealNode, startRealNode, startRuntime, stopRealNode, waitForRealNode } from "./real-node.ts";

export { ClusterStartError } from "./errors.ts";

/** Start order of the control plane; stopped in reverse (after the real node, if there is one). */
export const components = [
  "etcd",
  "kube-apiserver",
  "kube-controller-manager",
  "kube-scheduler",
  "kwok",
  "provisioner",
  "cert-manager",
] as const;

type Log = (line: string) => void;

export function readState(paths = clusterPaths()): ClusterState | undefined {
  if (!existsSync(paths.stateFile)) return undefined;
  return JSON.parse(readFileSync(paths.stateFile, "utf8")) as ClusterState;
}

/** GET on the API server with the admin certificate; resolves with the status code (0 if unreachable). */
function apiGet(paths: ClusterPaths, server: string, path: string): Promise<{ status: number; body: string }> {
  return new Promise((resolveGet) => {
    const req = request(
      new URL(path, server),
      {
        ca: readFileSync(join(paths.pkiDir, "ca.crt")),
        cert: readFileSync(join(paths.pkiDir, "admin.crt")),
        key: readFileSync(join(paths.pkiDir, "admin.key")),
        timeout: 5000,
      },
      (res) => {
        let body = "";
        res.setEncoding("utf8");
        res.on("data", (chunk: string) => (body += chunk));
        res.on("end", () => resolveGet({ status: res.statusCode ?? 0, body }));
      },
    );
    req.on("error", () => resolveGet({ status: 0, body: "" }));
    req.on("timeout", () => req.destroy());
    req.end();
  });
}

function allRunning(paths: ClusterPaths, state: ClusterState | undefined): boolean {
  return state !== undefined && (state.components ?? components).every((c) => isRunning(paths.stateDir, c));
}

/** True when every component runs and the API server answers /readyz. */
export async function isHealthy(paths = clusterPaths()): Promise<boolean> {
  const state = readState(paths);
  if (state === undefined || !allRunning(paths, state)) return false;
  return (await apiGet(paths, state.server, "/readyz")).status === 200;
}

/**
 * While every component process lives, a failing /readyz is given 30 s (a loaded machine, an API
 * server being restarted by a test) before the cluster is declared dead and started afresh.
 */
async function becomesHealthy(paths: ClusterPaths): Promise<boolean> {
  const deadline = Date.now() + 30_000;
  for (;;) {
    if (await isHealthy(paths)) return true;
    if (Date.now() > deadline || !allRunning(paths, readState(paths))) return false;
    await sleep(500);
  }
}

function kubectl(kubeconfig: string, args: readonly string[], input?: string): string {
  return execFileSync(kubectlPath(), ["--kubeconfig", kubeconfig, ...args], {
    input,
    encoding: "utf8",
    stdio: ["pipe", "pipe", "pipe"],
  });
}

async function waitFor(what: string, check: () => Promise<boolean> | boolean, timeoutMs: number, onFail: () => string) {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new ClusterStartError(`timed out waiting for ${what}\n${onFail()}`);
    await sleep(100);
  }
}

export interface UpResult {
  readonly state: ClusterState;
  readonly reused: boolean;
  readonly buildSeconds: number;
}

/** Starts the cluster unless a healthy one is already running; idempotent. */
export async function up(log: Log = console.error): Promise<UpResult> {
  const paths = clusterPaths();
  return withLock(paths.lockDir, async () => {
    const running = readState(paths);
    if (running !== undefined && (await becomesHealthy(paths))) {
      return { state: running, reused: true, buildSeconds: 0 };
    }
    await stopAll(paths);
    const build = ensureBinaries(log);
    const state = await start(paths, log, build.partSeconds);
    return { state, reused: false, buildSeconds: build.seconds };
  });
}

async function start(paths: ClusterPaths, log: Log, buildSeconds: Readonly<Record<string, number>>): Promise<ClusterState> {
  const started = performance.now();
  const phases: Record<string, number> = {};
  const mark = (phase: string): void => {
    phases[phase] = Number(((performance.now() - started) / 1000).toFixed(1));
  };
  const { stateDir, pkiDir } = paths;
  mkdirSync(stateDir, { recursive: true, mode: 0o700 });
  const bin = (name: Parameters<typeof binaryPath>[0]): string => binaryPath(name, paths.binDir);
  const plan = planRealNode(paths);
  if (!plan.enabled) log(`cluster: starting without the real node: ${plan.reason}`);
  const node = plan.enabled ? await prepareRealNode(paths, log) : undefined;
  if (node !== undefined) mark("real node prepared (packages, images, network)");
  const runtime = node ? startRuntime(paths, node.imageArchives, log).then(() => mark("containerd and images")) : undefined;
  // Awaited by startRealNode; a failure meanwhile must not go unhandled if the control plane fails first.
  runtime?.catch(() => undefined);
  const pkiArgs = ["--dir", pkiDir, ...(node ? ["--ip", realNode.address, "--node", realNode.name] : [])];
  execFileSync(bin("pki"), pkiArgs, { stdio: "inherit" });

  const ports = {
    etcdClient: await freePort(),
    etcdPeer: await freePort(),
    apiserver: await freePort(),
    scheduler: await freePort(),
    kwok: await freePort(),
  };
  // With the real node, the API server listens on the node's address, where pods reach it too.
  const apiAddress = node ? realNode.address : "127.0.0.1";
  const server = `https://${apiAddress}:${ports.apiserver}`;
  const kubeconfigFor = (client: string): string => {
    const file = join(stateDir, `${client}.kubeconfig`);
    writeFileAtomic(file, kubeconfigYaml({ server, pkiDir, client }));
    return file;
  };
  const failure = (name: string) => () => `${name} log (${join(paths.logDir, name + ".log")}):\n${logTail(stateDir, name)}`;
  const pki = (name: string): string => join(pkiDir, name);

  startProcess(stateDir, {
    name: "etcd",
    command: bin("etcd"),
    args: [
      "--name=diatonic",
      `--data-dir=${join(stateDir, "etcd")}`,
      `--listen-client-urls=http://127.0.0.1:${ports.etcdClient}`,
      `--advertise-client-urls=http://127.0.0.1:${ports.etcdClient}`,
      `--listen-peer-urls=http://127.0.0.1:${ports.etcdPeer}`,
      `--initial-advertise-peer-urls=http://127.0.0.1:${ports.etcdPeer}`,
      `--initial-cluster=diatonic=http://127.0.0.1:${ports.etcdPeer}`,
      // A throwaway test store: durability is not worth the fsync latency.
      "--unsafe-no-fsync=true",
      "--log-level=warn",
    ],
  });
  await waitFor(
    "etcd",
    async () => {
      try {
        const res = await fetch(`http://127.0.0.1:${ports.etcdClient}/health`);
        return res.ok;
      } catch {
        return false;
      }
    },
    30_000,
    failure("etcd"),
  );
  mark("etcd");

  startProcess(stateDir, {
    name: "kube-apiserver",
    command: bin("kube-apiserver"),
    args: [
      `--etcd-servers=http://127.0.0.1:${ports.etcdClient}`,
      `--bind-address=${apiAddress}`,
      ...(node ? [`--advertise-address=${realNode.address}`] : []),
      `--secure-port=${ports.apiserver}`,
      `--cert-dir=${join(stateDir, "apiserver")}`,
      `--tls-cert-file=${pki("apiserver.crt")}`,
      `--tls-private-key-file=${pki("apiserver.key")}`,
      `--client-ca-file=${pki("ca.crt")}`,
      `--kubelet-client-certificate=${pki("apiserver-kubelet-client.crt")}`,
      `--kubelet-client-key=${pki("apiserver-kubelet-client.key")}`,
      `--service-account-key-file=${pki("sa.pub")}`,
      `--service-account-signing-key-file=${pki("sa.key")}`,
      "--service-account-issuer=https://kubernetes.default.svc.cluster.local",
      `--service-cluster-ip-range=${network.serviceCIDR}`,
      // Logs, exec and port-forward reach a kubelet at its address: node names do not resolve here.
      "--kubelet-preferred-address-types=InternalIP,Hostname",
      ...admissionPolicyFlags,
      "--authorization-mode=Node,RBAC",
      // The GPU device plugin's DaemonSet is privileged, in its own privileged namespace.
      "--allow-privileged=true",
      "--profiling=false",
    ],
  });
  await waitFor(
    "kube-apiserver /readyz",
    async () => isRunning(stateDir, "kube-apiserver") && (await apiGet(paths, server, "/readyz")).status === 200,
    90_000,
    failure("kube-apiserver"),
  );
  mark("kube-apiserver");

  startProcess(stateDir, {
    name: "kube-controller-manager",
    command: bin("kube-controller-manager"),
    args: [
      `--kubeconfig=${kubeconfigFor("controller-manager")}`,
      "--secure-port=0",
      "--leader-elect=false",
      "--use-service-account-credentials=true",
      `--service-account-private-key-file=${pki("sa.key")}`,
      `--root-ca-file=${pki("ca.crt")}`,
      `--cluster-signing-cert-file=${pki("ca.crt")}`,
      `--cluster-signing-key-file=${pki("ca.key")}`,
      "--kube-api-qps=100",
      "--kube-api-burst=200",
    ],
  });
  startProcess(stateDir, {
    name: "kube-scheduler",
    command: bin("kube-scheduler"),
    args: [
      `--kubeconfig=${kubeconfigFor("scheduler")}`,
      "--leader-elect=false",
      "--bind-address=127.0.0.1",
      `--secure-port=${ports.scheduler}`,
      "--kube-api-qps=100",
      "--kube-api-burst=200",
    ],
  });

  const adminKubeconfig = kubeconfigFor("admin");
  // The real node joins as soon as the API server serves; it is waited for at the end.
  const joining = runtime ? startRealNode({ paths, runtime, kubeconfigFor, adminKubeconfig }) : undefined;
  joining?.catch(() => undefined);
  writeFileAtomic(join(stateDir, "kwok.yaml"), "apiVersion: config.kwok.x-k8s.io/v1alpha1\nkind: KwokConfiguration\noptions: {}\n");
  startProcess(stateDir, {
    name: "kwok",
    command: bin("kwok"),
    args: [
      `--kubeconfig=${adminKubeconfig}`,
      `--config=${join(stateDir, "kwok.yaml")}`,
      // Only its own nodes: kwok would otherwise take over the real node and fake its pods' status.
      "--manage-nodes-with-annotation-selector=kwok.x-k8s.io/node=fake",
      "--node-ip=127.0.0.1",
      `--node-port=${ports.kwok}`,
      `--server-address=127.0.0.1:${ports.kwok}`,
      `--cidr=${network.kwokPodCIDR.replace(".0/", ".1/")}`,
      "--node-lease-duration-seconds=40",
    ],
  });
  startProcess(stateDir, {
    name: "provisioner",
    command: bin("provisioner"),
    args: [`--kubeconfig=${adminKubeconfig}`, `--provisioner-names=${provisioners.join(",")}`, `--root=${join(stateDir, "volumes")}`],
  });

  const userKubeconfig = kubeconfigYaml({ server, pkiDir, client: "admin", inline: true });
  writeFileAtomic(paths.kubeconfig, userKubeconfig);
  const apply = (manifests: readonly unknown[]): string =>
    kubectl(adminKubeconfig, ["apply", "-f", "-"], JSON.stringify({ apiVersion: "v1", kind: "List", items: manifests }));
  apply(nodeManifests());
  apply([...storageClassManifests(), ...addonManifests()]);
  mark("nodes and storage applied");
  kubectl(adminKubeconfig, ["apply", "--server-side", "--force-conflicts", ...crdFiles().flatMap((f) => ["-f", f])]);
  mark("CRDs applied");
  kubectl(adminKubeconfig, ["wait", "--for=condition=Established", "crd", "--all", "--timeout=60s"]);
  startProcess(stateDir, {
    name: "cert-manager",
    command: bin("cert-manager"),
    args: [`--kubeconfig=${adminKubeconfig}`, "--cluster-resource-namespace=cert-manager"],
  });
  if (joining !== undefined) {
    apply([...placementPolicyManifests(), ...dnsManifests()]);
    await joining;
    await waitForRealNode(paths, adminKubeconfig, mark);
  }

  await waitFor(
    "the default ServiceAccount (kube-controller-manager)",
    () => {
      try {
        kubectl(adminKubeconfig, ["get", "serviceaccount", "default", "-n", "default"]);
        return true;
      } catch {
        return false;
      }
    },
    60_000,
    failure("kube-controller-manager"),
  );
  kubectl(adminKubeconfig, ["wait", "--for=condition=Ready", "node", "--all", "--timeout=60s"]);
  mark("ready");
  const running = [...components, ...(node ? nodeComponents : [])];
  for (const name of running) {
    if (!isRunning(stateDir, name)) throw new ClusterStartError(`${name} exited during start-up\n${failure(name)()}`);
  }

  const state: ClusterState = {
    kubeconfig: paths.kubeconfig,
    server,
    ports,
    startedAt: new Date().toISOString(),
    startupSeconds: Number(((performance.now() - started) / 1000).toFixed(1)),
    startupPhases: phases,
    buildSeconds: { ...buildSeconds, ...(node ? { "node images": Number(node.imageSeconds.toFixed(1)) } : {}) },
    versions,
    components: running,
    realNode: plan.enabled ? { name: realNode.name, address: realNode.address } : { skipped: plan.reason },
  };
  writeFileAtomic(paths.stateFile, JSON.stringify(state, null, 2) + "\n");
  log(`cluster: up in ${state.startupSeconds} s at ${server} (seconds since start: ${JSON.stringify(phases)})`);
  return state;
}

async function stopAll(paths: ClusterPaths): Promise<void> {
  await stopRealNode(paths);
  const known = new Set<string>(components);
  const extra = processNames(paths.stateDir).filter((name) => !known.has(name));
  for (const name of [...extra, ...[...components].reverse()]) await stopProcess(paths.stateDir, name);
  // Anything a lost pidfile let escape (an interrupted stop, say) still names this state directory.
  for (const pid of strayProcesses(paths.binDir, paths.stateDir)) await stopPid(pid);
  rmSync(paths.stateDir, { recursive: true, force: true });
}

/**
 * Stops every component and removes the state; idempotent. The binary cache is kept.
 * `onlyIf` is checked under the cluster lock, so nobody can start using the cluster in between.
 */
export async function down(onlyIf: () => boolean = () => true): Promise<boolean> {
  const paths = clusterPaths();
  return withLock(paths.lockDir, async () => {
    if (!onlyIf()) return false;
    await stopAll(paths);
    return true;
  });
}

/** Resident memory of each running component, in MiB (from /proc). */
export function memoryMiB(paths = clusterPaths()): Record<string, number> {
  return residentMiB(paths.stateDir);
}
