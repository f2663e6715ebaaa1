// Debian's containerd (1.6, CRI v1) for the real node: its root, state, sockets and runc state
// under the cluster's state directory, so it never meets a containerd of the machine's own.
import { execFile } from "node:child_process";
import { existsSync, mkdirSync } from "node:fs";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { promisify } from "node:util";
import { attempt } from "./command.ts";
import { versions } from "./config.ts";
import { ClusterStartError } from "./errors.ts";
import { writeFileAtomic } from "./kubeconfig.ts";
import { isRunning, logTail, startProcess } from "./processes.ts";

export const pauseImage = `registry.k8s.io/pause:${versions.pause}`;

const run = promisify(execFile);

export interface ContainerdPaths {
  readonly dir: string;
  readonly config: string;
  readonly socket: string;
  /** runc's state (one directory per containerd namespace below it). */
  readonly runcRoot: string;
}

export function containerdPaths(nodeDir: string): ContainerdPaths {
  const dir = join(nodeDir, "containerd");
  return { dir, config: join(dir, "config.toml"), socket: join(dir, "containerd.sock"), runcRoot: join(dir, "runc") };
}

export function containerdEndpoint(nodeDir: string): string {
  return `unix://${containerdPaths(nodeDir).socket}`;
}

function configToml(paths: ContainerdPaths, cniDir: string): string {
  const q = (value: string): string => JSON.stringify(value);
  return `version = 2
root = ${q(join(paths.dir, "root"))}
state = ${q(join(paths.dir, "state"))}
# The opt plugin would create /opt/containerd; the others only fail on this kernel.
disabled_plugins = ["io.containerd.internal.v1.opt", "io.containerd.snapshotter.v1.aufs", "io.containerd.snapshotter.v1.btrfs", "io.containerd.snapshotter.v1.zfs", "io.containerd.snapshotter.v1.devmapper", "io.containerd.tracing.processor.v1.otlp"]

[grpc]
  address = ${q(paths.socket)}

[ttrpc]
  address = ${q(paths.socket + ".ttrpc")}

[debug]
  level = "warn"

[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = ${q(pauseImage)}
  # Without CAP_SYS_RESOURCE a negative oom_score_adj fails every sandbox ("can't get final child's PID from pipe: EOF").
  restrict_oom_score_adj = true
  stream_server_address = "127.0.0.1"
  stream_server_port = "0"
  enable_selinux = false

  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"

    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"

      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        SystemdCgroup = false
        Root = ${q(paths.runcRoot)}

  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "/usr/lib/cni"
    conf_dir = ${q(join(cniDir, "net.d"))}
    max_conf_num = 1

  [plugins."io.containerd.grpc.v1.cri".registry]
    config_path = ${q(join(paths.dir, "registries"))}
`;
}

/** Registries the platform's and Kubernetes' images name; containerd 1.6 has no catch-all. */
const registries = [
  "docker.io",
  "registry-1.docker.io",
  "ghcr.io",
  "registry.k8s.io",
  "k8s.gcr.io",
  "gcr.io",
  "quay.io",
  "nvcr.io",
  "public.ecr.aws",
];

/**
 * Nothing is pulled: images are imported. A pod naming an image that is not there fails at once
 * (ErrImagePull, "connection refused") instead of containerd reaching for the registry.
 */
function closeRegistries(paths: ContainerdPaths): void {
  for (const registry of registries) {
    const dir = join(paths.dir, "registries", registry);
    mkdirSync(dir, { recursive: true });
    // containerd 1.6 refuses a hosts.toml without a host table ("invalid `host` tree").
    const closed = "http://127.0.0.1:9";
    const hosts = `# The test cluster pulls nothing; images are imported with ctr.\nserver = "${closed}"\n\n[host."${closed}"]\n  capabilities = ["pull", "resolve"]\n`;
    writeFileAtomic(join(dir, "hosts.toml"), hosts, 0o644);
  }
}

/** Starts containerd and waits for its socket; returns once it answers. */
export async function startContainerd(stateDir: string, nodeDir: string, cniDir: string): Promise<void> {
  const paths = containerdPaths(nodeDir);
  mkdirSync(paths.dir, { recursive: true, mode: 0o700 });
  writeFileAtomic(paths.config, configToml(paths, cniDir), 0o644);
  closeRegistries(paths);
  startProcess(stateDir, { name: "containerd", command: "/usr/bin/containerd", args: ["--config", paths.config] });
  const deadline = Date.now() + 30_000;
  for (;;) {
    if (existsSync(paths.socket) && attempt("ctr", ["--address", paths.socket, "version"]).ok) return;
    if (!isRunning(stateDir, "containerd") || Date.now() > deadline) {
      throw new ClusterStartError(`containerd did not start\n${logTail(stateDir, "containerd")}`);
    }
    await sleep(100);
  }
}

/** Imports OCI image archives into the namespace the CRI plugin uses. */
export async function importImages(nodeDir: string, archives: readonly string[]): Promise<void> {
  const { socket } = containerdPaths(nodeDir);
  for (const archive of archives) {
    try {
      await run("ctr", ["--address", socket, "-n", "k8s.io", "images", "import", archive]);
    } catch (error) {
      throw new ClusterStartError(`ctr could not import ${archive}: ${(error as { stderr?: string }).stderr ?? String(error)}`);
    }
  }
}
