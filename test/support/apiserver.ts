// Restarts the test cluster's kube-apiserver with the same command line (for "API server restarted
// mid-apply" tests) and waits until it serves again.
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { isHealthy } from "../../scripts/cluster/cluster.ts";
import { clusterPaths } from "../../scripts/cluster/config.ts";
import { withLock } from "../../scripts/cluster/lock.ts";
import { startProcess } from "../../scripts/cluster/processes.ts";

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
  for (let i = 0; i < 300; i++) {
    if (await isHealthy(paths)) return;
    await sleep(200);
  }
  throw new Error("the API server did not come back within 60 s");
}
