// The lab's `local` environment deployed for real on the test cluster's real node (real-0), with
// what the cluster must serve because nothing here reaches the internet: a Hugging Face mirror on
// the node's address (src/model/hub-server.ts, over TLS on port 443, the port the platform's
// download NetworkPolicy allows) holding generated tiny GGUFs under the names the spec downloads,
// and the Secrets and the download ConfigMap the overlay's SECRETS.md asks for.
import { createServer as createNetServer } from "node:net";
import { execFileSync, spawn, type ChildProcess } from "node:child_process";
import { createHash, randomBytes } from "node:crypto";
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { parseDocument } from "yaml";
import { kubectlPath } from "../../scripts/cluster/build.ts";
import { clusterPaths, realNode, repoRoot } from "../../scripts/cluster/config.ts";
import { withLock } from "../../scripts/cluster/lock.ts";
import { writeGgufFile } from "../../src/engine/gguf/writer.ts";
import { tinyBaseModel, tinyLoraAdapter } from "../../src/engine/tiny/model.ts";
import { startHubServer, type RunningHub } from "../../src/model/hub-server.ts";
import { runCli, type CliRun } from "./cli.ts";
import type { TestCluster } from "./cluster.ts";
import { caSignedCertificate } from "./tls.ts";

export const labSpec = join(repoRoot, "examples", "lab", "platform.yaml");

/**
 * Holds the real node for this test file: files that put pods on real-0 run one after another (its
 * two cores run one platform at a time), whatever the test runner's concurrency. Released by `after`.
 */
export async function holdRealNode(): Promise<() => void> {
  const lockDir = join(clusterPaths().cacheRoot, ".real-node-tests.lock");
  let release: () => void = () => undefined;
  let acquired: () => void = () => undefined;
  const held = new Promise<void>((resolve) => (acquired = resolve));
  const done = new Promise<void>((resolve) => (release = resolve));
  // The lock's own wait allows a whole other file's run (≈ 15 min) before giving up.
  const holding = withLock(
    lockDir,
    async () => {
      acquired();
      await done;
    },
    40 * 60_000,
  );
  holding.catch(() => undefined);
  await Promise.race([held, holding]);
  return release;
}

export interface Mirror {
  /** `https://10.250.0.1`: what pods put in HF_ENDPOINT. */
  readonly url: string;
  readonly caPem: string;
  /** Every request the mirror answered (method and path), for tests that check what was fetched. */
  readonly requests: readonly string[];
  /** Writes a file at `repo@revision/file`; returns its sha256. */
  publish(repo: string, revision: string, file: string, content: Buffer): string;
  /** A tiny LoRA for the tiny model (seed picks its weights) at `repo@revision/lora.gguf`. */
  publishLora(repo: string, revision: string, seed: number): string;
  close(): Promise<void>;
}

function ggufBytes(dir: string, model: ReturnType<typeof tinyBaseModel>): Buffer {
  const path = join(dir, `${randomBytes(4).toString("hex")}.gguf`);
  writeGgufFile(path, model);
  const bytes = readFileSync(path);
  rmSync(path);
  return bytes;
}

/**
 * Starts the mirror on the real node's address, port 443, over TLS with a CA of its own, holding the
 * tiny model under the lab's local base model and embedding model names (a Llama GGUF serves
 * embeddings as well as chat, so one generated model stands in for both).
 */
export async function startMirror(spec: string = labSpec): Promise<Mirror> {
  const dir = mkdtempSync(join(tmpdir(), "diatonic-mirror-"));
  const root = join(dir, "hub");
  const tls = caSignedCertificate(dir, "diatonic test mirror CA", realNode.address, `IP:${realNode.address}`);
  const doc = parseDocument(readFileSync(spec, "utf8")).toJS() as {
    environments: {
      local: {
        model: { source: { huggingFace: { repo: string; revision: string; file: string } } };
        embeddings: { model: string; revision?: string; file: string };
      };
    };
  };
  const requests: string[] = [];
  const publish = (repo: string, revision: string, file: string, content: Buffer): string => {
    const path = join(root, repo, revision, file);
    mkdirSync(dirname(path), { recursive: true });
    writeFileSync(path, content);
    return createHash("sha256").update(content).digest("hex");
  };
  const model = ggufBytes(dir, tinyBaseModel({ seed: 1 }));
  const base = doc.environments.local.model.source.huggingFace;
  publish(base.repo, base.revision, base.file, model);
  const embeddings = doc.environments.local.embeddings;
  publish(embeddings.model, embeddings.revision ?? "main", embeddings.file, model);
  let hub: RunningHub;
  try {
    hub = await startHubServer({
      root,
      host: realNode.address,
      port: 443,
      tls: { cert: tls.cert, key: tls.key },
      onRequest: (method, url) => requests.push(`${method} ${url}`),
    });
  } catch (error) {
    rmSync(dir, { recursive: true, force: true });
    throw new Error(
      `cannot serve the mirror on ${realNode.address}:443 (another test's mirror still running?): ${(error as Error).message}`,
      { cause: error },
    );
  }
  return {
    url: `https://${realNode.address}`,
    caPem: tls.caPem,
    requests,
    publish,
    publishLora: (repo, revision, seed) =>
      publish(repo, revision, "lora.gguf", ggufBytes(dir, tinyLoraAdapter({ seed, name: `lora-${seed}` }))),
    async close() {
      await hub.close();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

export interface DeployedPlatform {
  readonly file: string;
  readonly namespace: string;
  readonly name: string;
  /** The key the gateway's keys Secret holds the sha256 of (inference and admin). */
  readonly apiKey: string;
  apply(timeout?: string): Promise<CliRun>;
  status(): Promise<CliRun>;
  /** Rewrites the spec file (for a second apply). */
  edit(change: (doc: ReturnType<typeof parseDocument>) => void): void;
  /** `diatonic destroy --delete-data`, then the namespace. */
  destroy(): Promise<void>;
}

/**
 * The lab spec under a name and namespace of its own (its ClusterIssuers are cluster-wide), with
 * the Secrets of its SECRETS.md and the download ConfigMap pointing at the mirror, created the
 * way an operator would before `diatonic apply --env local`.
 */
export async function preparePlatform(
  cluster: TestCluster,
  mirror: Mirror,
  labels: Readonly<Record<string, string>> = {},
): Promise<DeployedPlatform> {
  const name = `lab${randomBytes(3).toString("hex")}`;
  const namespace = `t-real-${name}`;
  const dir = mkdtempSync(join(tmpdir(), "diatonic-real-"));
  const file = join(dir, "platform.yaml");
  const doc = parseDocument(readFileSync(labSpec, "utf8"));
  doc.setIn(["metadata", "name"], name);
  for (const [key, value] of Object.entries(labels)) doc.setIn(["metadata", "labels", key], value);
  doc.setIn(["spec", "namespace"], namespace);
  writeFileSync(file, doc.toString());
  const apiKey = `sk-${randomBytes(18).toString("hex")}`;
  const keys = `keys:\n  - sha256: ${createHash("sha256").update(apiKey).digest("hex")}\n    tenant: tests\n    adapters: ["*"]\n    scopes: [inference, admin]\n`;
  await cluster.kubectl(["create", "namespace", namespace]);
  const secret = (secretName: string, key: string, value: string) => ({
    apiVersion: "v1",
    kind: "Secret",
    metadata: { name: secretName, namespace },
    stringData: { [key]: value },
  });
  const objects = [
    secret("hf-token", "token", "hf_mirror_needs_none"),
    secret("qdrant-api-key", "api-key", randomBytes(16).toString("hex")),
    secret("gateway-api-keys", "keys.yaml", keys),
    {
      apiVersion: "v1",
      kind: "ConfigMap",
      metadata: { name: "download-env", namespace },
      // The downloads' environment and, mounted at /etc/diatonic/download-env, the mirror's CA.
      data: { HF_ENDPOINT: mirror.url, NODE_EXTRA_CA_CERTS: "/etc/diatonic/download-env/ca.crt", "ca.crt": mirror.caPem },
    },
  ];
  await cluster.kubectl(["apply", "-f", "-"], JSON.stringify({ apiVersion: "v1", kind: "List", items: objects }));
  const cli = (command: string, ...extra: string[]) =>
    runCli([command, "--spec", file, "--env", "local", "--kubeconfig", cluster.kubeconfig, ...extra]);
  return {
    file,
    namespace,
    name,
    apiKey,
    apply: (timeout = "10m") => cli("apply", "--timeout", timeout),
    status: () => cli("status", "--output", "json"),
    edit(change) {
      const current = parseDocument(readFileSync(file, "utf8"));
      change(current);
      writeFileSync(file, current.toString());
    },
    async destroy() {
      await runCli([
        "destroy",
        "--spec",
        file,
        "--env",
        "local",
        "--kubeconfig",
        cluster.kubeconfig,
        "--delete-data",
        "--yes",
        "--output",
        "json",
      ]);
      await cluster
        .kubectl(["delete", "namespace", namespace, "--ignore-not-found", "--wait=true", "--timeout=120s"])
        .catch(() => undefined);
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

/** `kubectl port-forward` to a local port the OS picks; `stop` ends it. */
export async function portForward(
  cluster: TestCluster,
  namespace: string,
  target: string,
  port: number,
): Promise<{ url: string; stop: () => void }> {
  // One local port for the test's life: a port-forward runs through the API server, which another
  // test file may restart; kubectl then exits, and a new one takes the same local port.
  const local = await new Promise<number>((resolve, reject) => {
    const probe = createNetServer();
    probe.once("error", reject);
    probe.listen(0, "127.0.0.1", () => {
      const address = probe.address();
      probe.close(() => (typeof address === "object" && address !== null ? resolve(address.port) : reject(new Error("no local port"))));
    });
  });
  let stopped = false;
  let child: ChildProcess | undefined;
  const start = (): Promise<void> =>
    new Promise<void>((resolve, reject) => {
      const current = spawn(
        kubectlPath(),
        ["--kubeconfig", cluster.kubeconfig, "-n", namespace, "port-forward", target, `${local}:${port}`],
        { stdio: ["ignore", "pipe", "pipe"] },
      );
      child = current;
      let output = "";
      const timer = setTimeout(() => reject(new Error(`port-forward did not start: ${output}`)), 30_000);
      const onData = (chunk: Buffer): void => {
        output += chunk.toString();
        if (output.includes(`Forwarding from 127.0.0.1:${local}`)) {
          clearTimeout(timer);
          resolve();
        }
      };
      current.stdout?.on("data", onData);
      current.stderr?.on("data", onData);
      current.on("exit", (code) => {
        clearTimeout(timer);
        reject(new Error(`port-forward exited (${String(code)}): ${output}`));
        if (!stopped) setTimeout(() => void start().catch(() => undefined), 500);
      });
    });
  await start();
  return {
    url: `http://127.0.0.1:${local}`,
    stop: () => {
      stopped = true;
      child?.kill();
    },
  };
}

/** The real node's containerd, through its own `ctr`. */
export function ctr(args: readonly string[]): string {
  const socket = join(clusterPaths().nodeDir, "containerd", "containerd.sock");
  return execFileSync("ctr", ["--address", socket, "-n", "k8s.io", ...args], { encoding: "utf8" });
}
