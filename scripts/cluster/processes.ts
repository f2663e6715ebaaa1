// Background processes with pidfiles and log files in the state directory.
import { spawn } from "node:child_process";
import { closeSync, existsSync, mkdirSync, openSync, readFileSync, readdirSync, rmSync, writeFileSync } from "node:fs";
import { createServer } from "node:net";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";

export interface ProcessSpec {
  readonly name: string;
  readonly command: string;
  readonly args: readonly string[];
  readonly cwd?: string;
}

function pidFile(stateDir: string, name: string): string {
  return join(stateDir, "run", `${name}.pid`);
}

/** Starts a detached process whose output goes to logs/<name>.log; returns its pid. */
export function startProcess(stateDir: string, spec: ProcessSpec): number {
  mkdirSync(join(stateDir, "run"), { recursive: true });
  mkdirSync(join(stateDir, "logs"), { recursive: true });
  const log = openSync(join(stateDir, "logs", `${spec.name}.log`), "a");
  const child = spawn(spec.command, spec.args, {
    cwd: spec.cwd ?? stateDir,
    detached: true,
    stdio: ["ignore", log, log],
  });
  closeSync(log);
  if (child.pid === undefined) throw new Error(`could not start ${spec.name} (${spec.command})`);
  child.unref();
  writeFileSync(pidFile(stateDir, spec.name), `${child.pid}\n${spec.command}\n`);
  return child.pid;
}

interface Recorded {
  readonly pid: number;
  readonly command: string;
}

function recorded(stateDir: string, name: string): Recorded | undefined {
  const file = pidFile(stateDir, name);
  if (!existsSync(file)) return undefined;
  const [pid, command] = readFileSync(file, "utf8").split("\n");
  const parsed = Number(pid);
  return Number.isInteger(parsed) && parsed > 0 ? { pid: parsed, command: command ?? "" } : undefined;
}

/** True when the pid is alive and still runs the recorded binary (pids get reused). */
function isOurs(entry: Recorded): boolean {
  try {
    const cmdline = readFileSync(`/proc/${entry.pid}/cmdline`, "utf8");
    return cmdline.split("\0")[0] === entry.command;
  } catch {
    return false;
  }
}

export function isRunning(stateDir: string, name: string): boolean {
  const entry = recorded(stateDir, name);
  return entry !== undefined && isOurs(entry);
}

export function processNames(stateDir: string): string[] {
  const dir = join(stateDir, "run");
  if (!existsSync(dir)) return [];
  return readdirSync(dir)
    .filter((f) => f.endsWith(".pid"))
    .map((f) => f.slice(0, -".pid".length));
}

function cmdline(pid: number): string[] | undefined {
  try {
    const args = readFileSync(`/proc/${pid}/cmdline`, "utf8").split("\0");
    return args[0] ? args : undefined;
  } catch {
    return undefined;
  }
}

/** SIGTERM, then SIGKILL after the grace period, for a process while it runs the same binary. */
export async function stopPid(pid: number, graceMs = 10_000): Promise<void> {
  const command = cmdline(pid)?.[0];
  if (command === undefined) return;
  const entry = { pid, command };
  try {
    process.kill(pid, "SIGTERM");
  } catch {
    return;
  }
  const deadline = Date.now() + graceMs;
  while (isOurs(entry) && Date.now() < deadline) await sleep(100);
  if (isOurs(entry)) process.kill(pid, "SIGKILL");
  while (isOurs(entry)) await sleep(50);
}

/** A missing or stale pidfile is not an error. */
export async function stopProcess(stateDir: string, name: string, graceMs = 10_000): Promise<void> {
  const entry = recorded(stateDir, name);
  if (entry !== undefined && isOurs(entry)) await stopPid(entry.pid, graceMs);
  rmSync(pidFile(stateDir, name), { force: true });
}

/**
 * Processes running one of our binaries (or one of the machine's, such as containerd and its
 * shims) with an argument inside this state directory.
 */
export function strayProcesses(binDir: string, stateDir: string, systemBinaries: readonly string[] = []): number[] {
  const pids: number[] = [];
  for (const entry of readdirSync("/proc")) {
    const pid = Number(entry);
    if (!Number.isInteger(pid) || pid === process.pid) continue;
    const args = cmdline(pid);
    const binary = args?.[0];
    if (binary === undefined || !(binary.startsWith(binDir + "/") || systemBinaries.includes(binary))) continue;
    if (args?.slice(1).some((a) => a.includes(stateDir + "/"))) pids.push(pid);
  }
  return pids;
}

/** A free TCP port on loopback (the OS picks; a tiny race with other programs is accepted). */
export async function freePort(): Promise<number> {
  return new Promise((resolvePort, reject) => {
    const server = createServer();
    server.once("error", reject);
    server.listen(0, "127.0.0.1", () => {
      const address = server.address();
      const port = typeof address === "object" && address !== null ? address.port : 0;
      server.close(() => resolvePort(port));
    });
  });
}

/** The last lines of a component's log, for error messages. */
export function logTail(stateDir: string, name: string, lines = 15): string {
  const file = join(stateDir, "logs", `${name}.log`);
  if (!existsSync(file)) return "(no log)";
  return readFileSync(file, "utf8").trimEnd().split("\n").slice(-lines).join("\n");
}

/** Resident memory of each running process of the state directory, in MiB (from /proc). */
export function residentMiB(stateDir: string): Record<string, number> {
  const out: Record<string, number> = {};
  for (const name of processNames(stateDir)) {
    const entry = recorded(stateDir, name);
    if (entry === undefined || !isOurs(entry)) continue;
    try {
      const match = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${entry.pid}/status`, "utf8"));
      if (match?.[1] !== undefined) out[name] = Math.round(Number(match[1]) / 1024);
    } catch {
      // It exited meanwhile: nothing to report.
    }
  }
  return out;
}
