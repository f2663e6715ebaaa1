// Which processes use a cluster that the test run started itself, so that the last one to leave
// takes it down: node's test runner gives each test file its own process and Node 20 has no
// global teardown. A cluster started by `cluster:up` (or CI) is never taken down by tests.
import { spawn } from "node:child_process";
import { existsSync, mkdirSync, readdirSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { clusterPaths, repoRoot } from "./config.ts";
import { processAlive } from "./lock.ts";

const usersDir = (): string => clusterPaths().usersDir;
export const startedByTestsMarker = (): string => join(clusterPaths().stateDir, "started-by-tests");

/** Records this process as a user until it exits. */
export function registerUser(): void {
  mkdirSync(usersDir(), { recursive: true });
  const file = join(usersDir(), String(process.pid));
  writeFileSync(file, "");
  process.once("exit", () => rmSync(file, { force: true }));
}

export function liveUsers(): number[] {
  if (!existsSync(usersDir())) return [];
  const pids = readdirSync(usersDir()).map(Number).filter(Number.isInteger);
  for (const pid of pids) if (!processAlive(pid)) rmSync(join(usersDir(), String(pid)), { force: true });
  return pids.filter(processAlive);
}

/** Marks the running cluster as the test run's own and starts the reaper that will stop it. */
export function adoptForTests(): void {
  writeFileSync(startedByTestsMarker(), String(process.pid));
  const reaper = spawn(process.execPath, ["--import", "tsx", join(repoRoot, "scripts", "cluster", "reaper.ts")], {
    cwd: repoRoot,
    detached: true,
    stdio: "ignore",
  });
  reaper.unref();
}

/** Resolves once no user has been alive for `idleMs` (checked every second). */
export async function waitUntilUnused(idleMs: number): Promise<void> {
  let idleSince: number | undefined;
  for (;;) {
    if (liveUsers().length > 0) idleSince = undefined;
    else idleSince ??= Date.now();
    if (idleSince !== undefined && Date.now() - idleSince >= idleMs) return;
    await sleep(1000);
  }
}
