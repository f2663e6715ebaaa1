// What the real node needs from this machine: root (it creates interfaces, iptables chains,
// cgroups and mounts) and a few Debian packages, installed with apt-get as .ci/run installs promtool.
import { execFileSync } from "node:child_process";
import { existsSync } from "node:fs";
import { ClusterStartError } from "./errors.ts";

interface HostPackage {
  readonly name: string;
  /** A file the package installs: present means installed. */
  readonly file: string;
}

const multiarch = process.arch === "arm64" ? "aarch64-linux-gnu" : "x86_64-linux-gnu";

const packages: readonly HostPackage[] = [
  { name: "containerd", file: "/usr/bin/containerd" },
  { name: "runc", file: "/usr/sbin/runc" },
  { name: "containernetworking-plugins", file: "/usr/lib/cni/bridge" },
  { name: "iptables", file: "/usr/sbin/iptables" },
  // kube-router's NetworkPolicy enforcement keeps pod addresses in ipsets.
  { name: "ipset", file: "/usr/sbin/ipset" },
  { name: "iproute2", file: "/usr/sbin/ip" },
  // The pause image is Kubernetes' own pause.c, linked statically.
  { name: "gcc", file: "/usr/bin/gcc" },
  { name: "libc6-dev", file: `/usr/lib/${multiarch}/libc.a` },
  // The platform's images (scripts/image/base.ts) are built on a Debian minbase root that debootstrap makes.
  { name: "debootstrap", file: "/usr/sbin/debootstrap" },
];

/** Why this machine cannot run the real node, or undefined when it can. */
export function realNodeUnavailable(env: NodeJS.ProcessEnv = process.env): string | undefined {
  if (env.DIATONIC_REAL_NODE === "0") return "DIATONIC_REAL_NODE=0";
  if (process.platform !== "linux") return `the real node needs Linux (this is ${process.platform})`;
  if (process.getuid?.() !== 0) {
    return "not root: the real node creates network interfaces, iptables rules, cgroups and mounts (run cluster:up as root)";
  }
  return undefined;
}

export function missingPackages(): string[] {
  return packages.filter((p) => !existsSync(p.file)).map((p) => p.name);
}

/** Installs the Debian packages the real node needs (root only; no-op when all are there). */
export function ensureHostPackages(log: (line: string) => void): void {
  const missing = missingPackages();
  if (missing.length === 0) return;
  log(`cluster: installing ${missing.join(", ")} with apt-get for the real node`);
  const env = { ...process.env, DEBIAN_FRONTEND: "noninteractive" };
  try {
    execFileSync("apt-get", ["update", "-qq"], { env, stdio: ["ignore", "ignore", "pipe"] });
    execFileSync("apt-get", ["install", "-y", "-qq", "--no-install-recommends", ...missing], {
      env,
      stdio: ["ignore", "ignore", "pipe"],
    });
  } catch (error) {
    const stderr = (error as { stderr?: Buffer }).stderr?.toString() ?? String(error);
    throw new ClusterStartError(
      `apt-get could not install ${missing.join(" ")} for the real node:\n${stderr.trim()}\n` +
        "fix: install them by hand, or start without the real node: DIATONIC_REAL_NODE=0 npm run cluster:up",
    );
  }
  const still = missingPackages();
  if (still.length > 0) throw new ClusterStartError(`apt-get ran but ${still.join(", ")} is still missing`);
}
