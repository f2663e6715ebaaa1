// The real node's network, all of it on this machine: the node's address on a device the cluster
// creates, a CNI bridge for its pods, and routes that keep the cluster's other ranges (Service
// addresses, kwok's simulated pod addresses) on that device, so no packet for them leaves.
// Pods get routes to the node and the Services only: no default route, nothing off the machine.
import { existsSync, mkdirSync, readdirSync, readlinkSync, rmdirSync, rmSync, statSync } from "node:fs";
import { join } from "node:path";
import { attempt, must } from "./command.ts";
import { writeFileAtomic } from "./kubeconfig.ts";
import { network, realNode } from "./config.ts";

/** The pods' bridge takes the subnet's first address as their gateway. */
export function podGateway(): string {
  const [base] = realNode.podSubnet.split("/");
  const octets = (base ?? "").split(".");
  return [...octets.slice(0, 3), String(Number(octets[3] ?? 0) + 1)].join(".");
}

function linkExists(name: string): boolean {
  return existsSync(join("/sys/class/net", name));
}

export function setUpNodeNetwork(cniDir: string): void {
  if (!linkExists(realNode.interface)) {
    // No dummy driver in this kernel (CONFIG_DUMMY unset); a bridge without ports is one.
    must("ip", ["link", "add", realNode.interface, "type", "bridge"]);
  }
  attempt("ip", ["addr", "add", `${realNode.address}/32`, "dev", realNode.interface]);
  must("ip", ["link", "set", realNode.interface, "up"]);
  for (const range of [network.serviceCIDR, network.kwokPodCIDR]) {
    must("ip", ["route", "replace", range, "dev", realNode.interface, "src", realNode.address]);
  }
  guardNodeAddresses();
  writeCniConfig(cniDir);
}

const guardChain = "DIATONIC-GUARD";

/**
 * The node's and pods' addresses answer this machine only: a packet for them that comes in from
 * any other interface (a neighbour routing that range to us) is dropped, as one for 127.0.0.1 is.
 */
function guardNodeAddresses(): void {
  const range = realNode.addressRange;
  attempt("iptables", ["-N", guardChain]);
  must("iptables", ["-F", guardChain]);
  for (const link of ["lo", realNode.interface, realNode.bridge]) must("iptables", ["-A", guardChain, "-i", link, "-j", "RETURN"]);
  must("iptables", ["-A", guardChain, "-j", "DROP"]);
  for (const hook of ["INPUT", "FORWARD"]) {
    if (!attempt("iptables", ["-C", hook, "-d", range, "-j", guardChain]).ok) must("iptables", ["-I", hook, "-d", range, "-j", guardChain]);
  }
}

function writeCniConfig(cniDir: string): void {
  mkdirSync(join(cniDir, "net.d"), { recursive: true });
  const config = {
    cniVersion: "1.0.0",
    name: "diatonic",
    plugins: [
      {
        type: "bridge",
        bridge: realNode.bridge,
        isGateway: true,
        ipMasq: false,
        hairpinMode: true,
        ipam: {
          type: "host-local",
          ranges: [[{ subnet: realNode.podSubnet, gateway: podGateway() }]],
          routes: [{ dst: `${realNode.address}/32` }, { dst: network.serviceCIDR }],
          dataDir: join(cniDir, "ipam"),
        },
      },
      { type: "portmap", capabilities: { portMappings: true } },
    ],
  };
  writeFileAtomic(join(cniDir, "net.d", "10-diatonic.conflist"), JSON.stringify(config, null, 2) + "\n", 0o644);
}

/** Chains of kube-proxy (KUBE-*), CNI's portmap (CNI-HOSTPORT-*, CNI-DN-*) and ours, in every table and family. */
const ownChain = /^(KUBE-|CNI-HOSTPORT-|CNI-DN-|DIATONIC-)/;

/** Removes the chains and every rule that jumps to them; idempotent. */
export function removeIptablesChains(): void {
  for (const binary of ["iptables", "ip6tables"]) {
    for (const table of ["filter", "nat", "mangle", "raw"]) {
      const saved = attempt(`${binary}-save`, ["-t", table]);
      if (!saved.ok) continue;
      const chains: string[] = [];
      const rules = new Map<string, string[]>();
      for (const line of saved.stdout.split("\n")) {
        if (line.startsWith(":")) chains.push(line.slice(1).split(" ")[0] ?? "");
        const rule = /^-A (\S+) (.*)$/.exec(line);
        if (rule?.[1] && rule[2] !== undefined) rules.set(rule[1], [...(rules.get(rule[1]) ?? []), rule[2]]);
      }
      for (const [chain, list] of rules) {
        if (ownChain.test(chain)) continue;
        // Deleted by position, last first, so the earlier positions stay valid.
        for (let index = list.length - 1; index >= 0; index--) {
          const target = /(?:^| )-[jg] (\S+)/.exec(list[index] ?? "")?.[1];
          if (target !== undefined && ownChain.test(target)) attempt(binary, ["-t", table, "-D", chain, String(index + 1)]);
        }
      }
      const own = chains.filter((c) => ownChain.test(c));
      for (const chain of own) attempt(binary, ["-t", table, "-F", chain]);
      for (const chain of own) attempt(binary, ["-t", table, "-X", chain]);
    }
  }
}

/** kube-router's address sets (KUBE-SRC-*, KUBE-DST-*, kube-router-*), once no rule refers to them. */
export function removeIpsets(): void {
  const sets = attempt("ipset", ["list", "-n"]);
  if (!sets.ok) return;
  for (const name of sets.stdout.split("\n")) {
    if (/^(KUBE-|kube-router-)/.test(name)) attempt("ipset", ["destroy", name]);
  }
}

/**
 * Network namespaces that CNI made (cni-*) and no process is in any more. Only while no other
 * containerd runs on the machine: one of its pods may be between creating its namespace and
 * starting its first process.
 */
export function removeOrphanNetns(): string[] {
  const dir = "/run/netns";
  if (!existsSync(dir)) return [];
  const inUse = new Set<string>();
  for (const entry of readdirSync("/proc")) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      if (readlinkSync(`/proc/${entry}/exe`).endsWith("/containerd")) return [];
    } catch {
      // A kernel thread, or gone already.
    }
    try {
      inUse.add(readlinkSync(`/proc/${entry}/ns/net`));
    } catch {
      // Gone already.
    }
  }
  const removed: string[] = [];
  for (const name of readdirSync(dir).filter((n) => n.startsWith("cni-"))) {
    let inode: string;
    try {
      inode = `net:[${statSync(join(dir, name)).ino}]`;
    } catch {
      continue;
    }
    if (inUse.has(inode)) continue;
    if (!attempt("ip", ["netns", "delete", name]).ok) {
      attempt("umount", ["-l", join(dir, name)]);
      rmSync(join(dir, name), { force: true });
    }
    removed.push(name);
  }
  removeEmptyDirs([dir]);
  return removed;
}

export function tearDownNodeNetwork(): void {
  for (const link of [realNode.bridge, realNode.interface]) {
    // The routes through the node's device go with it.
    if (linkExists(link)) attempt("ip", ["link", "delete", link]);
  }
}

/** Removes directories that the node's programs create outside the state directory, once empty. */
export function removeEmptyDirs(dirs: readonly string[]): void {
  for (const dir of dirs) {
    try {
      rmdirSync(dir);
    } catch {
      // Not empty (someone else's) or not there: left alone.
    }
  }
}
