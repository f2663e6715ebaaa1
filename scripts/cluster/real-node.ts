// The test cluster's one real node, real-0: Debian's containerd and runc, CNI's bridge, and
// kubelet, kube-proxy and kube-router's NetworkPolicy firewall built from source, all on an
// address of a device the cluster creates; CoreDNS runs there as a pod (dns.ts). Started beside the
// control plane; stopped first, leaving nothing on the machine.
import { spawn } from "node:child_process";
import { existsSync, mkdirSync } from "node:fs";
import { Resolver } from "node:dns/promises";
import { createInterface } from "node:readline";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { binaryPath, kubectlPath } from "./build.ts";
import { attempt } from "./command.ts";
import { network, realNode, repoRoot, type ClusterPaths } from "./config.ts";
import { containerdEndpoint, containerdPaths, importImages, startContainerd } from "./containerd.ts";
import { ClusterStartError } from "./errors.ts";
import { realNodeUnavailable, ensureHostPackages } from "./host.ts";
import { writeFileAtomic } from "./kubeconfig.ts";
import { claimRealNode, realNodeOwner, rememberSysctls, releaseRealNode, restoreSysctls, setSysctls } from "./machine.ts";
import {
  removeEmptyDirs,
  removeIpsets,
  removeIptablesChains,
  removeOrphanNetns,
  setUpNodeNetwork,
  tearDownNodeNetwork,
} from "./network.ts";
import { kubeProxyConfig, kubeletConfig } from "./node-config.ts";
import { ensureNodeImages } from "./node-images.ts";
import { removeContainerLogLinks, removePodCgroups, unmountAll } from "./node-teardown.ts";
import { isRunning, logTail, startProcess, stopPid, stopProcess, strayProcesses } from "./processes.ts";

/** Processes of the real node, in start order. */
export const nodeComponents = ["containerd", "kubelet", "kube-proxy", "kube-router"] as const;

/** Settings the kubelet changes on start (setupKernelTunables), put back when the node stops. */
const kubeletSysctls = [
  "vm.overcommit_memory",
  "vm.panic_on_oom",
  "kernel.panic",
  "kernel.panic_on_oops",
  "kernel.keys.root_maxkeys",
  "kernel.keys.root_maxbytes",
];

const systemBinaries = ["/usr/bin/containerd", "/usr/bin/containerd-shim-runc-v2", "/usr/sbin/runc"];

type Log = (line: string) => void;

export type RealNodePlan = { readonly enabled: true } | { readonly enabled: false; readonly reason: string };

/** Whether this cluster gets the real node, and why not. */
export function planRealNode(paths: ClusterPaths): RealNodePlan {
  const unavailable = realNodeUnavailable();
  if (unavailable !== undefined) return { enabled: false, reason: unavailable };
  const owner = realNodeOwner();
  if (owner !== undefined && owner !== paths.stateDir && isRunning(owner, "kubelet")) {
    return { enabled: false, reason: `the cluster in ${owner} runs this machine's real node (one per machine)` };
  }
  return { enabled: true };
}

function nodePaths(paths: ClusterPaths) {
  const { nodeDir } = paths;
  return {
    cniDir: join(nodeDir, "cni"),
    kubeletDir: join(nodeDir, "kubelet"),
    podLogsDir: join(nodeDir, "pod-logs"),
    volumePluginDir: join(nodeDir, "volume-plugins"),
  };
}

/**
 * Everything the real node needs before the API server starts (which listens on the node's
 * address): packages, the node's images, the machine claimed, the network up.
 */
export async function prepareRealNode(paths: ClusterPaths, log: Log): Promise<{ imageArchives: readonly string[]; imageSeconds: number }> {
  ensureHostPackages(log);
  const owner = realNodeOwner();
  // A cluster that died holding the real node left its parts; they are this machine's to sweep.
  if (owner !== undefined && owner !== paths.stateDir) await sweepMachine(paths.binDir, log);
  claimRealNode(paths.stateDir);
  const images = ensureNodeImages(paths, log);
  // Pods reach Services through the host (kube-proxy's DNAT), which needs forwarding.
  setSysctls({ "net.ipv4.ip_forward": "1" });
  rememberSysctls(kubeletSysctls);
  setUpNodeNetwork(nodePaths(paths).cniDir);
  return { imageArchives: images.archives, imageSeconds: images.seconds };
}

/**
 * containerd, the node's images and the platform's (gateway, engine, Qdrant: built by scripts/image
 * when their inputs changed, imported when containerd lacks them): they need no API server, so
 * they start while the control plane does.
 */
export async function startRuntime(paths: ClusterPaths, imageArchives: readonly string[], log: Log): Promise<void> {
  const { stateDir, nodeDir } = paths;
  const dirs = nodePaths(paths);
  for (const dir of Object.values(dirs)) mkdirSync(dir, { recursive: true, mode: 0o700 });
  await startContainerd(stateDir, nodeDir, dirs.cniDir);
  await importImages(nodeDir, imageArchives);
  await ensurePlatformImages(containerdPaths(nodeDir).socket, log);
}

/**
 * scripts/image's ensureImages, run as `npm run cluster:images` runs it but in a child process: the
 * dry build runs its steps synchronously, and in this process it would stall the control plane's
 * start for minutes (its readiness waits then time out).
 */
function ensurePlatformImages(socket: string, log: Log): Promise<void> {
  const child = spawn(process.execPath, ["--import", "tsx", join(repoRoot, "scripts", "image", "cluster-images.ts"), "--address", socket], {
    cwd: repoRoot,
    stdio: ["ignore", "pipe", "pipe"],
  });
  const lines: string[] = [];
  for (const stream of [child.stdout, child.stderr]) {
    createInterface({ input: stream }).on("line", (line) => {
      lines.push(line);
      log(`cluster: images: ${line}`);
    });
  }
  return new Promise((resolveImages, reject) => {
    child.on("error", reject);
    child.on("exit", (code, signal) => {
      if (code === 0) resolveImages();
      else
        reject(
          new ClusterStartError(
            `the platform's images (npm run cluster:images) failed (${signal ?? `exit ${String(code)}`}):\n${lines.slice(-20).join("\n")}`,
          ),
        );
    });
  });
}

export interface RealNodeStartOptions {
  readonly paths: ClusterPaths;
  /** containerd with the node's images (startRuntime). */
  readonly runtime: Promise<void>;
  /** Writes a kubeconfig for a client certificate in the PKI directory and returns its path. */
  readonly kubeconfigFor: (client: string) => string;
  readonly adminKubeconfig: string;
}

/** kubelet and kube-proxy, once containerd runs; the API server must serve. */
export async function startRealNode(options: RealNodeStartOptions): Promise<void> {
  const { paths } = options;
  const { stateDir, nodeDir, pkiDir } = paths;
  const dirs = nodePaths(paths);
  await options.runtime;

  const kubeletConfigFile = join(dirs.kubeletDir, "config.yaml");
  writeFileAtomic(
    kubeletConfigFile,
    kubeletConfig({
      caFile: join(pkiDir, "ca.crt"),
      containerdEndpoint: containerdEndpoint(nodeDir),
      podLogsDir: dirs.podLogsDir,
      volumePluginDir: dirs.volumePluginDir,
    }),
  );
  startProcess(stateDir, {
    name: "kubelet",
    command: binaryPath("kubelet", paths.binDir),
    args: [
      `--config=${kubeletConfigFile}`,
      `--kubeconfig=${options.kubeconfigFor("kubelet")}`,
      `--root-dir=${dirs.kubeletDir}`,
      `--hostname-override=${realNode.name}`,
      `--node-ip=${realNode.address}`,
      `--node-labels=${realNode.label.key}=${realNode.label.value}`,
    ],
  });
  const proxyConfig = join(nodeDir, "kube-proxy.yaml");
  writeFileAtomic(proxyConfig, kubeProxyConfig(options.kubeconfigFor("kube-proxy")));
  startProcess(stateDir, {
    name: "kube-proxy",
    command: binaryPath("kube-proxy", paths.binDir),
    args: [`--config=${proxyConfig}`],
  });
}

/** Returns once the node is Ready (then its NetworkPolicy firewall starts) and the cluster DNS answers. */
export async function waitForRealNode(paths: ClusterPaths, adminKubeconfig: string, mark: (phase: string) => void): Promise<void> {
  await waitForNodeReady(paths, adminKubeconfig);
  mark("real node Ready");
  startNetworkPolicies(paths, adminKubeconfig);
  await waitForDns(paths);
  mark("cluster DNS");
}

/** kube-router's firewall; it finds its node by name at start, so it starts once the kubelet has registered it. */
function startNetworkPolicies(paths: ClusterPaths, adminKubeconfig: string): void {
  startProcess(paths.stateDir, {
    name: "kube-router",
    command: binaryPath("kube-router", paths.binDir),
    args: [
      // Its NetworkPolicy firewall only: pod routes are CNI's, Services kube-proxy's.
      "--run-firewall=true",
      "--run-router=false",
      "--run-service-proxy=false",
      `--kubeconfig=${adminKubeconfig}`,
      `--hostname-override=${realNode.name}`,
      `--service-cluster-ip-range=${network.serviceCIDR}`,
      "--enable-ipv6=false",
      "--health-port=0",
      "--metrics-port=0",
    ],
  });
}

async function waitForNodeReady(paths: ClusterPaths, kubeconfig: string): Promise<void> {
  const deadline = Date.now() + 120_000;
  for (;;) {
    const result = attempt(kubectlPath(paths.binDir), [
      "--kubeconfig",
      kubeconfig,
      "get",
      "node",
      realNode.name,
      "-o",
      `jsonpath={.status.conditions[?(@.type=="Ready")].status}`,
    ]);
    if (result.ok && result.stdout.trim() === "True") return;
    assertNodeRuns(paths.stateDir, ["containerd", "kubelet", "kube-proxy"]);
    if (Date.now() > deadline) {
      throw new ClusterStartError(`the real node ${realNode.name} did not become Ready in 120 s\n${logTail(paths.stateDir, "kubelet")}`);
    }
    await sleep(250);
  }
}

function assertNodeRuns(stateDir: string, names: readonly string[] = nodeComponents): void {
  for (const name of names) {
    if (!isRunning(stateDir, name)) throw new ClusterStartError(`${name} of the real node exited\n${logTail(stateDir, name)}`);
  }
}

/** CoreDNS answers through its Service once its pod runs and has synced with the API server. */
async function waitForDns(paths: ClusterPaths): Promise<void> {
  const { stateDir } = paths;
  const resolver = new Resolver({ timeout: 1000, tries: 1 });
  resolver.setServers([network.dnsServiceIP]);
  const name = `kubernetes.default.svc.${network.clusterDomain}`;
  const deadline = Date.now() + 60_000;
  for (;;) {
    try {
      if ((await resolver.resolve4(name)).length > 0) return;
    } catch {
      // Not serving yet.
    }
    assertNodeRuns(stateDir);
    if (Date.now() > deadline) {
      const pods = attempt(kubectlPath(paths.binDir), [
        "--kubeconfig",
        paths.kubeconfig,
        "-n",
        "kube-system",
        "get",
        "pods",
        "-l",
        "k8s-app=kube-dns",
        "-o",
        "wide",
      ]);
      throw new ClusterStartError(`CoreDNS does not answer ${name} on ${network.dnsServiceIP}\n${pods.stdout}${pods.stderr}`);
    }
    await sleep(250);
  }
}

/**
 * Stops the real node of the cluster in this state directory and removes what it put on the
 * machine; idempotent, and safe after an interrupted start.
 */
export async function stopRealNode(paths: ClusterPaths, log: Log = console.error): Promise<void> {
  const { stateDir, nodeDir, binDir } = paths;
  const owner = realNodeOwner();
  if (!existsSync(nodeDir) && owner !== stateDir) return;
  await stopProcess(stateDir, "kubelet");
  if (isRunning(stateDir, "containerd")) {
    // The runtime undoes each pod's network, namespace and mounts.
    const reset = attempt(binaryPath("cri-reset", binDir), ["--endpoint", containerdEndpoint(nodeDir), "--timeout=60s"]);
    if (!reset.ok) log(`cluster: removing the real node's pods through containerd failed, sweeping instead: ${reset.stderr.trim()}`);
  }
  for (const name of ["kube-router", "kube-proxy", "containerd"]) await stopProcess(stateDir, name);
  for (const pid of strayProcesses(binDir, stateDir, systemBinaries)) await stopPid(pid, 2000);
  // The machine's parts (pods' cgroups, interfaces, chains, settings) belong to whichever cluster holds the node.
  const ours = owner === undefined || owner === stateDir;
  if (ours) await removePodCgroups();
  unmountAll(stateDir);
  removeContainerLogLinks(nodePaths(paths).podLogsDir);
  if (ours) await sweepMachine(binDir, log);
}

/** Removes the real node's parts that live outside any state directory. */
async function sweepMachine(binDir: string, log: Log): Promise<void> {
  // kube-proxy's own cleanup knows its chains best; the sweep after it catches the rest.
  const kubeProxy = binaryPath("kube-proxy", binDir);
  if (existsSync(kubeProxy)) attempt(kubeProxy, ["--cleanup"]);
  removeIptablesChains();
  removeIpsets();
  tearDownNodeNetwork();
  const netns = removeOrphanNetns();
  if (netns.length > 0) log(`cluster: removed network namespaces left by pods: ${netns.join(", ")}`);
  await removePodCgroups();
  removeEmptyDirs(["/run/containerd/s", "/run/containerd", "/var/lib/cni/results", "/var/lib/cni", "/var/log/containers"]);
  restoreSysctls();
  releaseRealNode();
}
