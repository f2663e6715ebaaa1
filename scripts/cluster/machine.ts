// The real node's hold on this machine: only one cluster at a time may have it (its interfaces,
// iptables chains and cgroups are the machine's), and the kernel settings it changes are written
// down first so that stopping puts them back.
import { existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { z } from "zod";

const slotDir = "/run/diatonic-real-node";
const ownerFile = join(slotDir, "owner.json");
const sysctlFile = join(slotDir, "sysctl.json");

const Owner = z.object({ stateDir: z.string(), pid: z.number() });
const Sysctls = z.record(z.string(), z.string());

/** The state directory of the cluster that holds the real node, if any. */
export function realNodeOwner(): string | undefined {
  if (!existsSync(ownerFile)) return undefined;
  const parsed = Owner.safeParse(JSON.parse(readFileSync(ownerFile, "utf8")));
  return parsed.success ? parsed.data.stateDir : undefined;
}

export function claimRealNode(stateDir: string): void {
  mkdirSync(slotDir, { recursive: true, mode: 0o700 });
  writeFileSync(ownerFile, JSON.stringify({ stateDir, pid: process.pid }) + "\n");
}

export function releaseRealNode(): void {
  rmSync(ownerFile, { force: true });
  rmSync(sysctlFile, { force: true });
  rmSync(slotDir, { recursive: true, force: true });
}

function sysctlPath(name: string): string {
  return join("/proc/sys", ...name.split("."));
}

/** Sets kernel settings, remembering the values they had before the first change. */
export function setSysctls(values: Readonly<Record<string, string>>): void {
  mkdirSync(slotDir, { recursive: true, mode: 0o700 });
  const saved = existsSync(sysctlFile) ? Sysctls.parse(JSON.parse(readFileSync(sysctlFile, "utf8"))) : {};
  for (const name of Object.keys(values)) {
    saved[name] ??= readFileSync(sysctlPath(name), "utf8").trim();
  }
  writeFileSync(sysctlFile, JSON.stringify(saved, null, 2) + "\n");
  for (const [name, value] of Object.entries(values)) writeFileSync(sysctlPath(name), value);
}

/**
 * Remembers settings that another program (the kubelet sets vm.overcommit_memory, kernel.panic
 * and others at start-up) is about to change, so that restoreSysctls puts them back too.
 */
export function rememberSysctls(names: readonly string[]): void {
  setSysctls({});
  const saved = Sysctls.parse(JSON.parse(readFileSync(sysctlFile, "utf8")));
  for (const name of names) {
    if (existsSync(sysctlPath(name))) saved[name] ??= readFileSync(sysctlPath(name), "utf8").trim();
  }
  writeFileSync(sysctlFile, JSON.stringify(saved, null, 2) + "\n");
}

export function restoreSysctls(): void {
  if (!existsSync(sysctlFile)) return;
  const saved = Sysctls.parse(JSON.parse(readFileSync(sysctlFile, "utf8")));
  for (const [name, value] of Object.entries(saved)) {
    try {
      if (readFileSync(sysctlPath(name), "utf8").trim() !== value) writeFileSync(sysctlPath(name), value);
    } catch {
      // A setting that no longer exists has nothing to restore.
    }
  }
  rmSync(sysctlFile, { force: true });
}
