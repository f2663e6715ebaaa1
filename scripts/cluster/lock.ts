// A cross-process lock (a directory created atomically) so that concurrent test files and
// `cluster:up`/`cluster:down` never start or stop the cluster at the same time.
import { mkdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";

/** Whether a process runs (EPERM: it exists but belongs to someone else, still alive). */
export function processAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === "EPERM";
  }
}

function holderAlive(lockDir: string): boolean {
  try {
    return processAlive(Number(readFileSync(join(lockDir, "pid"), "utf8")));
  } catch {
    return false; // no pid file (yet)
  }
}

/**
 * Makes `dir` atomically, with this process's pid in it: the lock is held. While another holds it,
 * runs `whileHeld` (which waits, and may clear a holder that died) and tries again until `deadline`.
 */
export async function acquireDirectory(dir: string, deadline: number, timedOut: string, whileHeld: () => Promise<void>): Promise<void> {
  for (;;) {
    try {
      mkdirSync(dir);
      writeFileSync(join(dir, "pid"), String(process.pid));
      return;
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== "EEXIST") throw error;
      await whileHeld();
      if (Date.now() > deadline) throw new Error(timedOut);
    }
  }
}

export async function withLock<T>(lockDir: string, body: () => Promise<T>, timeoutMs = 20 * 60_000): Promise<T> {
  mkdirSync(dirname(lockDir), { recursive: true });
  const deadline = Date.now() + timeoutMs;
  await acquireDirectory(lockDir, deadline, `timed out waiting for the cluster lock ${lockDir}`, async () => {
    // A holder that died leaves its directory behind; a just-created one may lack its pid yet.
    await sleep(200);
    if (!holderAlive(lockDir)) {
      await sleep(300);
      if (!holderAlive(lockDir)) rmSync(lockDir, { recursive: true, force: true });
    }
  });
  try {
    return await body();
  } finally {
    rmSync(lockDir, { recursive: true, force: true });
  }
}
