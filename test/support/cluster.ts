// The cluster test tier: one real control plane per test run, one namespace per test.
//
//   DIATONIC_CLUSTER_TESTS=0   skip the tier
//   DIATONIC_CLUSTER_REUSE=1   run against the cluster of $KUBECONFIG (kind, k3d, …) instead of
//                              starting ours; without it an unrelated $KUBECONFIG is never touched
import { holdShared } from "./tier-lock.ts";
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { randomBytes } from "node:crypto";
import { existsSync } from "node:fs";
import type { TestContext } from "node:test";
import { promisify } from "node:util";
import { kwokPlacementLabel } from "../../scripts/cluster/admission.ts";
import { kubectlPath } from "../../scripts/cluster/build.ts";
import { memoryMiB, readState, up } from "../../scripts/cluster/cluster.ts";
import { clusterPaths, realNode } from "../../scripts/cluster/config.ts";
import { adoptForTests, registerUser } from "../../scripts/cluster/users.ts";

const run = promisify(execFile);

/** Why the tier is skipped, or false when it runs. */
export function clusterSkipReason(env: NodeJS.ProcessEnv = process.env): string | false {
  if (env.DIATONIC_CLUSTER_TESTS === "0") return "cluster tier disabled (DIATONIC_CLUSTER_TESTS=0)";
  return false;
}

export const podSecurityLevels = ["privileged", "baseline", "restricted"] as const;
export type PodSecurityLevel = (typeof podSecurityLevels)[number];

export interface NamespaceOptions {
  /** Pod Security Standard enforced on the namespace. @default "restricted" */
  readonly podSecurity?: PodSecurityLevel;
  /**
   * Keep its pods on the kwok nodes even when they are of the local environment (which otherwise
   * runs on the real node for real): for tests of the deploy mechanics. @default false
   */
  readonly simulatedNodes?: boolean;
}

export class KubectlError extends Error {
  override name = "KubectlError";
  constructor(
    readonly args: readonly string[],
    readonly stderr: string,
  ) {
    super(`kubectl ${args.join(" ")} failed: ${stderr.trim()}`);
  }
}

export interface TestCluster {
  readonly kubeconfig: string;
  /** Where the cluster came from: started for this run, ours already running, or the user's. */
  readonly origin: "started" | "running" | "user";
  /** The real node (kubelet and containerd) beside the simulated ones, or why there is none. */
  readonly realNode: { readonly name: string } | { readonly skipped: string };
  kubectl(args: readonly string[], input?: string): Promise<string>;
  kubectlJson<T = unknown>(args: readonly string[]): Promise<T>;
  /** A fresh namespace for this test, deleted when the test ends. */
  namespace(t: TestContext, options?: NamespaceOptions): Promise<string>;
  /**
   * Uses the namespace `name` (such as `monitoring`), creating it when it does not exist. `release`
   * deletes it only if this call created it, so a run leaves the cluster as it found it.
   */
  borrowNamespace(name: string): Promise<{ readonly created: boolean; release(): Promise<void> }>;
}

let shared: Promise<TestCluster> | undefined;

/** Starts the test cluster once per process (reusing one that runs), or uses the user's. */
export function testCluster(): Promise<TestCluster> {
  shared ??= connect();
  return shared;
}

async function connect(): Promise<TestCluster> {
  const cluster = await connectCluster();
  // Held while this file runs: a test that restarts the API server waits for it (tier-lock.ts).
  await holdShared();
  return cluster;
}

async function connectCluster(): Promise<TestCluster> {
  const env = process.env;
  if (env.DIATONIC_CLUSTER_REUSE === "1") {
    if (!env.KUBECONFIG) throw new Error("DIATONIC_CLUSTER_REUSE=1 needs KUBECONFIG to point at the cluster to use");
    const probe = makeCluster(env.KUBECONFIG, "user", { skipped: "" });
    await probe.kubectl(["get", "--raw", "/readyz"]);
    const names = (await probe.kubectl(["get", "nodes", "-l", `${realNode.label.key}=${realNode.label.value}`, "-o", "name"])).trim();
    const first = names.split("\n")[0]?.replace(/^node\//, "");
    const cluster = makeCluster(
      env.KUBECONFIG,
      "user",
      first ? { name: first } : { skipped: `no node of the user's cluster is labelled ${realNode.label.key}=${realNode.label.value}` },
    );
    console.log(`cluster tier: using the cluster of KUBECONFIG=${env.KUBECONFIG}`);
    return cluster;
  }
  registerUser();
  const started = performance.now();
  const result = await up((line) => console.log(line));
  const seconds = ((performance.now() - started) / 1000).toFixed(1);
  if (!result.reused) adoptForTests();
  const origin = result.reused ? "running" : "started";
  const state = readState() ?? result.state;
  console.log(
    result.reused
      ? `cluster tier: reusing the running cluster at ${state.server} (it started in ${state.startupSeconds} s)`
      : `cluster tier: started a cluster in ${seconds} s (control plane ${state.startupSeconds} s, ` +
          `build/cache check ${result.buildSeconds.toFixed(1)} s); memory MiB ${JSON.stringify(memoryMiB())}`,
  );
  const node = state.realNode ?? { skipped: "the running cluster was started before the real node existed (restart it)" };
  return makeCluster(clusterPaths().kubeconfig, origin, "name" in node ? { name: node.name } : node);
}

/** The kubectl built with the test cluster; a user's cluster (DIATONIC_CLUSTER_REUSE) may use the one on PATH. */
function kubectlBinary(): string {
  const built = kubectlPath();
  return existsSync(built) || process.env.DIATONIC_CLUSTER_REUSE !== "1" ? built : "kubectl";
}

/**
 * True when the cluster has its real node. Otherwise the test is skipped with the reason, or
 * fails under CI=true, where the real node is part of what is tested.
 */
export function hasRealNode(t: TestContext, cluster: TestCluster): boolean {
  if ("name" in cluster.realNode) return true;
  const reason = `needs the real node: ${cluster.realNode.skipped}`;
  if (process.env.CI === "true") assert.fail(`${reason} (CI=true: the real node must run in CI)`);
  t.skip(reason);
  return false;
}

function makeCluster(kubeconfig: string, origin: TestCluster["origin"], node: TestCluster["realNode"]): TestCluster {
  const kubectl = async (args: readonly string[], input?: string): Promise<string> => {
    try {
      const child = run(kubectlBinary(), ["--kubeconfig", kubeconfig, ...args], { maxBuffer: 64 * 1024 * 1024 });
      if (input !== undefined) child.child.stdin?.end(input);
      const { stdout } = await child;
      return stdout;
    } catch (error) {
      const stderr = (error as { stderr?: string }).stderr ?? String(error);
      throw new KubectlError(args, stderr);
    }
  };
  return {
    kubeconfig,
    origin,
    realNode: node,
    kubectl,
    async kubectlJson<T>(args: readonly string[]): Promise<T> {
      return JSON.parse(await kubectl([...args, "-o", "json"])) as T;
    },
    async borrowNamespace(name: string) {
      const phase = async () => (await kubectl(["get", "namespace", name, "--ignore-not-found", "-o", "jsonpath={.status.phase}"])).trim();
      // One an earlier run released may still be terminating: objects cannot be created in it.
      for (let i = 0; i < 120 && (await phase()) === "Terminating"; i++) await new Promise((resolve) => setTimeout(resolve, 500));
      const created = (await phase()) === "";
      if (created) await kubectl(["create", "namespace", name]);
      return {
        created,
        release: async () => {
          if (created) await kubectl(["delete", "namespace", name, "--wait=false", "--ignore-not-found"]);
        },
      };
    },
    async namespace(t: TestContext, options: NamespaceOptions = {}): Promise<string> {
      const level = options.podSecurity ?? "restricted";
      const slug = t.name
        .toLowerCase()
        .replace(/[^a-z0-9]+/g, "-")
        .replace(/^-+|-+$/g, "")
        .slice(0, 40)
        .replace(/-+$/, "");
      const name = `t-${slug || "test"}-${randomBytes(3).toString("hex")}`;
      const labels = Object.fromEntries(
        ["enforce", "audit", "warn"].flatMap((mode) => [
          [`pod-security.kubernetes.io/${mode}`, level],
          [`pod-security.kubernetes.io/${mode}-version`, "latest"],
        ]),
      );
      await kubectl(
        ["create", "-f", "-"],
        JSON.stringify({
          apiVersion: "v1",
          kind: "Namespace",
          metadata: {
            name,
            labels: {
              ...labels,
              "diatonic.dev/test": "true",
              ...(options.simulatedNodes ? { [kwokPlacementLabel.key]: kwokPlacementLabel.value } : {}),
            },
          },
        }),
      );
      t.after(async () => {
        await kubectl(["delete", "namespace", name, "--wait=false", "--ignore-not-found"]);
      });
      return name;
    },
  };
}
