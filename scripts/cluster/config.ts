// Versions and places of the test cluster. Binaries are cached per version outside the repo;
// the running cluster's state (certificates, etcd data, logs, pidfiles, the kubeconfig) sits
// beside them, in one directory per cluster (DIATONIC_CLUSTER_STATE picks another one).
import { homedir } from "node:os";
import { join, resolve } from "node:path";
import { fileURLToPath } from "node:url";

export const versions = {
  kubernetes: "v1.33.13",
  /** Pinned by Kubernetes' own go.mod; built from go.etcd.io/etcd/server/v3 in tools/cluster. */
  etcd: "v3.5.21",
  kwok: "v0.7.0",
  /** Its controller is built from this module too (tools/addons, whose go.mod must agree). */
  certManager: "v1.21.2",
  prometheusOperator: "v0.85.0",
  /** The cluster's DNS, built with only the plugins it uses (tools/addons), run as a pod on the real node. */
  coredns: "v1.14.7",
  /**
   * Enforces NetworkPolicies on the real node (its firewall controller only). The newest v2 the Go
   * module proxy serves here; installed from its own module, as kwok is.
   */
  kubeRouter: "v2.1.0",
  /** Built from build/pause in the k8s.io/kubernetes module, under the name kubelet 1.33 expects. */
  pause: "3.10",
} as const;

/** Addresses of the test cluster; none of them is routed off this machine. */
export const network = {
  serviceCIDR: "10.96.0.0/16",
  /** Where kwok's simulated pods get their (unreachable) addresses. */
  kwokPodCIDR: "10.244.0.0/16",
  clusterDomain: "cluster.local",
  /** The kube-dns Service, in front of CoreDNS's pod (where NetworkPolicies expect cluster DNS). */
  dnsServiceIP: "10.96.0.10",
} as const;

/**
 * The one real node (kubelet, containerd, kube-proxy) beside the kwok nodes. One per machine: its
 * interfaces, iptables chains and cgroups are the machine's, so a second cluster starts without it.
 */
export const realNode = {
  name: "real-0",
  /** A device the cluster creates for the node's address (a port-less bridge: this kernel has no dummy driver). */
  interface: "diatonic0",
  address: "10.250.0.1",
  /** Holds the node's address and its pods' subnet; only this machine may send to it. */
  addressRange: "10.250.0.0/16",
  /** The pods' bridge (CNI) and their subnet; its gateway is the first address. */
  bridge: "diatonic-cni0",
  podSubnet: "10.250.1.0/24",
  kubeletPort: 10250,
  /** Keeps everything else off the node; the admission policy gives the matching toleration. */
  taint: { key: "diatonic.ai/node", value: "real", effect: "NoSchedule" },
  label: { key: "diatonic.ai/node", value: "real" },
  /** Pods of this environment (label diatonic.ai/environment) are placed on the real node. */
  environment: "local",
} as const;

export const repoRoot = resolve(fileURLToPath(new URL("../..", import.meta.url)));
export const toolsDir = join(repoRoot, "tools", "cluster");

export interface ClusterPaths {
  readonly cacheRoot: string;
  readonly binDir: string;
  readonly stateDir: string;
  readonly pkiDir: string;
  readonly logDir: string;
  readonly kubeconfig: string;
  readonly stateFile: string;
  /** Outside the state directory (which is removed whole): the start/stop lock and the users. */
  readonly lockDir: string;
  readonly usersDir: string;
  /** The real node's kubelet, containerd and CNI state. */
  readonly nodeDir: string;
  /** Container images built for the real node (OCI archives), cached beside the binaries. */
  readonly imageDir: string;
}

export function clusterPaths(env: NodeJS.ProcessEnv = process.env): ClusterPaths {
  const cacheHome = env.XDG_CACHE_HOME || join(homedir(), ".cache");
  const cacheRoot = env.DIATONIC_CLUSTER_CACHE || join(cacheHome, "diatonic", "cluster");
  const stateDir = env.DIATONIC_CLUSTER_STATE || join(cacheRoot, "state");
  return {
    cacheRoot,
    binDir: join(cacheRoot, versions.kubernetes, "bin"),
    stateDir,
    pkiDir: join(stateDir, "pki"),
    logDir: join(stateDir, "logs"),
    kubeconfig: join(stateDir, "kubeconfig"),
    stateFile: join(stateDir, "cluster.json"),
    // One lock per cache root: starts and stops of every cluster in it take turns.
    lockDir: join(cacheRoot, ".lock"),
    usersDir: `${stateDir}.users`,
    nodeDir: join(stateDir, "node"),
    imageDir: join(cacheRoot, versions.kubernetes, "images"),
  };
}

/** What `cluster:up` records so that `down`, `env` and the test helper find the running cluster. */
export interface ClusterState {
  readonly kubeconfig: string;
  readonly server: string;
  readonly ports: Readonly<Record<string, number>>;
  readonly startedAt: string;
  readonly startupSeconds: number;
  /** Seconds from the start at which each step finished. */
  readonly startupPhases: Readonly<Record<string, number>>;
  /** Seconds each part of the cached build took when it was last built (from a cold cache or not). */
  readonly buildSeconds: Readonly<Record<string, number>>;
  readonly versions: typeof versions;
  /** The processes that make up this cluster (all must run for it to be healthy). */
  readonly components: readonly string[];
  /** The real node, or why this cluster runs without one. */
  readonly realNode: { readonly name: string; readonly address: string } | { readonly skipped: string };
}
