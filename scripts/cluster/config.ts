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
  certManager: "v1.21.2",
  prometheusOperator: "v0.85.0",
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
  readonly versions: typeof versions;
}
