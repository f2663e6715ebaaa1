// A private containerd for tests: Debian's containerd with its own root, state and socket in a temp
// folder, configured as the test cluster's node runs it (cgroupfs, restrict_oom_score_adj: this VM
// lacks CAP_SYS_RESOURCE, see notes/real-node.md). Stopped and removed whole by stop().
import { spawn, spawnSync, type ChildProcess } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";

export interface PrivateContainerd {
  readonly address: string;
  readonly dir: string;
  /** Runs `ctr` against it in the k8s.io namespace; throws with its output when it fails. */
  ctr(args: readonly string[], timeoutMs?: number): string;
  /** Kills every task, removes every container, stops containerd and removes its folder. */
  stop(): Promise<void>;
}

/** Why no containerd can run here (with the install command), or undefined. */
export function containerdUnavailable(): string | undefined {
  if (process.getuid?.() !== 0) return "containerd needs root";
  for (const tool of ["containerd", "ctr", "runc"]) {
    if (spawnSync(tool, ["--version"]).error !== undefined) return `${tool} is not installed (apt-get install -y containerd runc)`;
  }
  return undefined;
}

function config(dir: string): string {
  const defaults = spawnSync("containerd", ["config", "default"], { encoding: "utf8" });
  if (defaults.status !== 0) throw new Error(`containerd config default failed: ${defaults.stderr}`);
  const edits: [RegExp, string][] = [
    [/^root = .*$/m, `root = "${dir}/root"`],
    [/^state = .*$/m, `state = "${dir}/state"`],
    [/^(\[grpc\]\n\s+address = ).*$/m, `$1"${dir}/containerd.sock"`],
    [/restrict_oom_score_adj = false/, "restrict_oom_score_adj = true"],
  ];
  let text = defaults.stdout.replaceAll("SystemdCgroup = true", "SystemdCgroup = false");
  for (const [pattern, replacement] of edits) {
    if (!pattern.test(text)) throw new Error(`containerd's default config has no ${pattern}`);
    text = text.replace(pattern, replacement);
  }
  return text;
}

export async function startContainerd(): Promise<PrivateContainerd> {
  const dir = mkdtempSync(join(tmpdir(), "diatonic-containerd-"));
  const address = join(dir, "containerd.sock");
  writeFileSync(join(dir, "config.toml"), config(dir));
  const log = join(dir, "containerd.log");
  const child: ChildProcess = spawn("sh", ["-c", `exec containerd --config '${dir}/config.toml' >'${log}' 2>&1`], { stdio: "ignore" });
  const ctr = (args: readonly string[], timeoutMs = 120_000): string => {
    const result = spawnSync("ctr", ["--address", address, "--namespace", "k8s.io", ...args], { encoding: "utf8", timeout: timeoutMs });
    if (result.status !== 0)
      throw new Error(`ctr ${args.join(" ")} failed (${result.signal ?? result.status}): ${result.stdout}${result.stderr}`);
    return result.stdout;
  };
  const exited = new Promise<void>((resolve) => child.once("exit", () => resolve()));
  for (let tries = 0; ; tries++) {
    if (spawnSync("ctr", ["--address", address, "version"], { timeout: 5000 }).status === 0) break;
    if (child.exitCode !== null || tries > 100) {
      child.kill("SIGKILL");
      const output = readFileSync(log, "utf8").slice(-3000);
      rmSync(dir, { recursive: true, force: true });
      throw new Error(`containerd did not start:\n${output}`);
    }
    await sleep(200);
  }
  const stop = async (): Promise<void> => {
    for (const line of ctr(["tasks", "ls", "-q"]).split("\n").filter(Boolean)) ctr(["tasks", "delete", "--force", line]);
    for (const line of ctr(["containers", "ls", "-q"]).split("\n").filter(Boolean)) ctr(["containers", "delete", line]);
    if (child.exitCode === null) {
      child.kill("SIGTERM");
      await Promise.race([exited, sleep(10_000).then(() => child.kill("SIGKILL"))]);
    }
    rmSync(dir, { recursive: true, force: true });
  };
  return { address, dir, ctr, stop };
}
