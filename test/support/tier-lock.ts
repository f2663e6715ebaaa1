// A shared/exclusive lock over the test cluster, across the cluster tier's test files (each runs in a
// process of its own, two at a time). Every file holds it shared while it runs; a test that restarts
// the API server takes it exclusive, so that no other file's apply, port-forward or status meets the
// restart. Files on disk: `exclusive/` (a directory made atomically, with the holder's pid) and one
// `shared/<pid>` per holder. A shared holder backs off while `exclusive/` exists; the exclusive
// holder waits until no other process holds it shared. Holders that died are cleared.
import { existsSync, mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { clusterPaths } from "../../scripts/cluster/config.ts";
import { acquireDirectory, processAlive } from "../../scripts/cluster/lock.ts";

function lockDir(): string {
  return join(clusterPaths().cacheRoot, ".tier-lock");
}

/** True while another live process holds the lock exclusively (a dead holder's lock is cleared). */
function exclusiveByOther(dir: string): boolean {
  const exclusive = join(dir, "exclusive");
  if (!existsSync(exclusive)) return false;
  let pid: number;
  try {
    pid = Number(readFileSync(join(exclusive, "pid"), "utf8"));
  } catch {
    return true; // just made: its pid is not written yet
  }
  if (pid === process.pid) return false;
  if (processAlive(pid)) return true;
  rmSync(exclusive, { recursive: true, force: true });
  return false;
}

/** Other live processes that hold the lock shared (dead ones are cleared). */
function sharedByOthers(dir: string): number[] {
  const holders: number[] = [];
  for (const name of existsSync(join(dir, "shared")) ? readdirSync(join(dir, "shared")) : []) {
    const pid = Number(name);
    if (pid === process.pid) continue;
    if (processAlive(pid)) holders.push(pid);
    else rmSync(join(dir, "shared", name), { force: true });
  }
  return holders;
}

let heldShared = false;

/** Holds the lock shared until this process exits; waits while another process holds it exclusively. */
export async function holdShared(timeoutMs = 30 * 60_000): Promise<void> {
  if (heldShared) return;
  const dir = lockDir();
  mkdirSync(join(dir, "shared"), { recursive: true });
  const mine = join(dir, "shared", String(process.pid));
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (!exclusiveByOther(dir)) {
      writeFileSync(mine, "");
      // Either the exclusive holder sees this file and waits, or this sees its directory and backs off.
      if (!exclusiveByOther(dir)) break;
      rmSync(mine, { force: true });
    }
    if (Date.now() > deadline)
      throw new Error(`timed out waiting for the cluster tier's lock (${dir}): a test restarting the API server holds it`);
    await sleep(500);
  }
  heldShared = true;
  process.once("exit", () => rmSync(mine, { force: true }));
}

/**
 * Runs `body` with the lock held exclusively: once no other process holds it (they finish the file
 * they run), and while no other starts. For tests that restart the API server.
 */
export async function exclusively<T>(body: () => Promise<T>, timeoutMs = 30 * 60_000): Promise<T> {
  const dir = lockDir();
  mkdirSync(dir, { recursive: true });
  const exclusive = join(dir, "exclusive");
  const deadline = Date.now() + timeoutMs;
  await acquireDirectory(exclusive, deadline, `timed out waiting for the cluster tier's exclusive lock (${dir})`, async () => {
    exclusiveByOther(dir); // clears a holder that died
    await sleep(500);
  });
  const release = () => rmSync(exclusive, { recursive: true, force: true });
  process.once("exit", release);
  try {
    while (sharedByOthers(dir).length > 0) {
      if (Date.now() > deadline) throw new Error(`timed out waiting for the other cluster test files to finish (${dir})`);
      await sleep(500);
    }
    return await body();
  } finally {
    release();
    process.off("exit", release);
  }
}
