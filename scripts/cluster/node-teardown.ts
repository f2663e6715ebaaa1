// What stopping the real node must leave behind: nothing. Pods are removed through the runtime
// (which undoes their network and mounts), then whatever an interrupted run left is swept: the
// processes in the pods' cgroups, the mounts under the state directory, the cgroups themselves.
import { existsSync, lstatSync, readFileSync, readdirSync, readlinkSync, realpathSync, rmdirSync, unlinkSync } from "node:fs";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { attempt } from "./command.ts";
import { ClusterStartError } from "./errors.ts";

const cgroupRoot = "/sys/fs/cgroup";

/** Every cgroup hierarchy's kubepods directory (one per v1 controller, or the unified one). */
function kubepodsCgroups(): string[] {
  if (!existsSync(cgroupRoot)) return [];
  const roots = new Set<string>([cgroupRoot]);
  for (const entry of readdirSync(cgroupRoot)) {
    try {
      roots.add(realpathSync(join(cgroupRoot, entry)));
    } catch {
      // A dangling link: no hierarchy there.
    }
  }
  return [...roots].map((root) => join(root, "kubepods")).filter((dir) => existsSync(join(dir, "cgroup.procs")));
}

function walkCgroups(dir: string): string[] {
  const out = [dir];
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    if (entry.isDirectory()) out.push(...walkCgroups(join(dir, entry.name)));
  }
  return out;
}

function pidsIn(dirs: readonly string[]): number[] {
  const pids = new Set<number>();
  for (const dir of dirs) {
    for (const line of readFileSync(join(dir, "cgroup.procs"), "utf8").split("\n")) {
      if (line !== "") pids.add(Number(line));
    }
  }
  return [...pids];
}

/** Kills what still runs in the pods' cgroups (containers whose runtime is gone), then removes the cgroups. */
export async function removePodCgroups(): Promise<void> {
  const tops = kubepodsCgroups();
  if (tops.length === 0) return;
  const all = (): string[] => tops.filter((t) => existsSync(t)).flatMap(walkCgroups);
  for (let round = 0; round < 50; round++) {
    const pids = pidsIn(all());
    if (pids.length === 0) break;
    for (const pid of pids) {
      try {
        process.kill(pid, "SIGKILL");
      } catch {
        // Already gone.
      }
    }
    await sleep(100);
  }
  for (let round = 0; round < 20; round++) {
    // Deepest first: a cgroup with children cannot be removed.
    for (const dir of all().sort((a, b) => b.length - a.length)) {
      try {
        rmdirSync(dir);
      } catch {
        // Busy for a moment more; retried.
      }
    }
    if (all().length === 0) return;
    await sleep(100);
  }
  throw new ClusterStartError(`could not remove the pods' cgroups: ${all().join(", ")}`);
}

function unescapeMountPath(path: string): string {
  return path.replace(/\\([0-7]{3})/g, (_, octal: string) => String.fromCharCode(parseInt(octal, 8)));
}

export function mountsUnder(dir: string): string[] {
  const mounts: string[] = [];
  for (const line of readFileSync("/proc/self/mountinfo", "utf8").split("\n")) {
    const mountPoint = line.split(" ")[4];
    if (mountPoint === undefined) continue;
    const path = unescapeMountPath(mountPoint);
    if (path === dir || path.startsWith(dir + "/")) mounts.push(path);
  }
  return mounts;
}

/**
 * Unmounts everything under the directory (pods' volumes, container root filesystems, the
 * kubelet's own bind mount). Throws if a mount stays: removing the directory would then reach
 * through it (a hostPath bind mount, say) into files that are not ours.
 */
export function unmountAll(dir: string): void {
  for (let round = 0; round < 10; round++) {
    const mounts = mountsUnder(dir).sort((a, b) => b.length - a.length);
    if (mounts.length === 0) return;
    for (const mount of mounts) {
      if (!attempt("umount", [mount]).ok) attempt("umount", ["-l", mount]);
    }
  }
  const left = mountsUnder(dir);
  if (left.length > 0) {
    throw new ClusterStartError(`mounts remain under ${dir}, so it is not removed: ${left.join(", ")}`);
  }
}

/** The kubelet links every container's log into /var/log/containers (a fixed path): ours are removed. */
export function removeContainerLogLinks(podLogsDir: string): void {
  const dir = "/var/log/containers";
  if (!existsSync(dir)) return;
  for (const name of readdirSync(dir)) {
    const path = join(dir, name);
    try {
      if (lstatSync(path).isSymbolicLink() && readlinkSync(path).startsWith(podLogsDir + "/")) unlinkSync(path);
    } catch {
      // Removed meanwhile.
    }
  }
}
