// The base image our Dockerfiles name (node:20.19-slim, node:20.19-bookworm-slim), made here because
// no registry serves it: a Debian minbase root from this machine's Debian mirror, this machine's
// Node at /usr/local/bin/node and the `node` user (uid 1000), as the official image has them.
// Built once per input hash into the image cache (a few minutes: debootstrap downloads ~100 packages).
import { spawnSync } from "node:child_process";
import {
  appendFileSync,
  chmodSync,
  chownSync,
  copyFileSync,
  existsSync,
  lstatSync,
  mkdirSync,
  readFileSync,
  readdirSync,
  renameSync,
  rmSync,
  statSync,
  writeFileSync,
} from "node:fs";
import { join } from "node:path";
import { InputError, WorldError } from "../../src/errors.ts";
import { builderSources, elapsed, inputHash, mib, runTool } from "./cache.ts";
import { allEntries, layerEntries, writeLayer, type LayerBlob } from "./layer.ts";

/**
 * Beyond minbase: CA certificates (TLS to model hubs and the Qdrant cloud); libstdc++6 and
 * libgcc-s1 are what Node, llama.cpp's binaries, LanceDB's and Qdrant's link against (ldd).
 */
export const BASE_PACKAGES = ["ca-certificates", "libgcc-s1", "libstdc++6"] as const;
export const BASE_SUITE = "bookworm";
const PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";
/** The official node image's user; our Dockerfiles run as its uid and gid. */
export const NODE_USER = { name: "node", uid: 1000, gid: 1000, home: "/home/node" } as const;
/** What a slim Debian image leaves out: documentation, manuals, translations, package lists, logs. */
const SLIM = [
  "usr/share/man",
  "usr/share/info",
  "usr/share/locale",
  "usr/share/lintian",
  "var/cache/apt",
  "var/lib/apt/lists",
  "var/log",
  "var/cache/debconf/templates.dat-old",
] as const;

export interface BaseOptions {
  /** Where bases are kept, one folder per input hash. */
  readonly cacheDir: string;
  /** The Node binary put in the image. @default process.execPath (the Node the dry build's stages use too) */
  readonly node?: string;
  /** @default the Debian mirror in /etc/apt/sources.list(.d), else http://deb.debian.org/debian */
  readonly mirror?: string;
  /** @default none */
  readonly onProgress?: (line: string) => void;
}

export interface BaseImage {
  /** The input hash the base is kept under. */
  readonly hash: string;
  readonly layer: LayerBlob;
  /** The image config's Env, as the official image sets it. */
  readonly env: readonly string[];
  readonly nodeVersion: string;
  readonly suite: string;
  readonly packages: readonly string[];
  /** Every path the base holds (relative, no leading slash), with whether it is a directory. */
  readonly paths: ReadonlyMap<string, "dir" | "other">;
}

interface BaseRecord {
  readonly hash: string;
  readonly layer: Omit<LayerBlob, "path">;
  readonly env: readonly string[];
  readonly nodeVersion: string;
  readonly suite: string;
  readonly packages: readonly string[];
  readonly mirror: string;
  readonly buildSeconds: number;
}

/** Why a base cannot be built here (with the fix), or undefined when it can. */
export function baseUnavailable(): string | undefined {
  if (process.platform !== "linux") return "the base image is made with debootstrap, on Linux";
  if (process.getuid?.() !== 0) return "the base image is made with debootstrap and chroot, which need root";
  if (spawnSync("debootstrap", ["--version"]).error !== undefined) return "debootstrap is not installed (apt-get install -y debootstrap)";
  return undefined;
}

/** The first Debian mirror apt uses for `suite` (deb822 .sources or one-line .list files). */
export function debianMirror(suite: string = BASE_SUITE, aptDir = "/etc/apt"): string {
  const files = [
    join(aptDir, "sources.list"),
    ...(existsSync(join(aptDir, "sources.list.d"))
      ? readdirSync(join(aptDir, "sources.list.d"))
          .sort()
          .map((name) => join(aptDir, "sources.list.d", name))
      : []),
  ];
  for (const file of files.filter((name) => /\.(list|sources)$/.test(name) && existsSync(name))) {
    const text = readFileSync(file, "utf8");
    if (file.endsWith(".sources")) {
      for (const stanza of text.split(/\n\s*\n/)) {
        const field = (name: string): string[] => new RegExp(`^${name}:\\s*(.*)$`, "mi").exec(stanza)?.[1]?.trim().split(/\s+/) ?? [];
        if (field("Types").includes("deb") && field("Suites").includes(suite) && field("URIs")[0] !== undefined)
          return field("URIs")[0] as string;
      }
    } else {
      for (const line of text.split("\n")) {
        const parts = line
          .replace(/\[[^\]]*\]/, "")
          .trim()
          .split(/\s+/);
        if (parts[0] === "deb" && parts[2] === suite && parts[1] !== undefined) return parts[1];
      }
    }
  }
  return "http://deb.debian.org/debian";
}

function nodeVersionOf(node: string): string {
  const result = spawnSync(node, ["--version"], { encoding: "utf8" });
  if (result.status !== 0)
    throw new InputError(
      `${node} --version failed: ${result.error?.message ?? result.stderr.trim()}`,
      "pass the path of a Node 20 binary as `node`",
    );
  return result.stdout.trim().replace(/^v/, "");
}

function readPaths(file: string): Map<string, "dir" | "other"> {
  const paths = new Map<string, "dir" | "other">();
  for (const line of readFileSync(file, "utf8").split("\n")) {
    if (line.length > 2) paths.set(line.slice(2), line.startsWith("d ") ? "dir" : "other");
  }
  return paths;
}

function loaded(dir: string): BaseImage | undefined {
  const recordFile = join(dir, "base.json");
  if (!existsSync(recordFile)) return undefined;
  const record = JSON.parse(readFileSync(recordFile, "utf8")) as BaseRecord;
  return { ...record, layer: { ...record.layer, path: join(dir, "layer.tar.gz") }, paths: readPaths(join(dir, "paths.txt")) };
}

/** Adds the official image's `node` user and group (uid/gid 1000) and its home. */
function addNodeUser(rootfs: string): void {
  const { name, uid, gid, home } = NODE_USER;
  appendFileSync(join(rootfs, "etc", "passwd"), `${name}:x:${uid}:${gid}::${home}:/bin/bash\n`);
  appendFileSync(join(rootfs, "etc", "group"), `${name}:x:${gid}:\n`);
  appendFileSync(join(rootfs, "etc", "shadow"), `${name}:!::0:99999:7:::\n`);
  appendFileSync(join(rootfs, "etc", "gshadow"), `${name}:!::\n`);
  mkdirSync(join(rootfs, home), { mode: 0o755 });
  chownSync(join(rootfs, home), uid, gid);
}

function slim(rootfs: string): void {
  for (const path of SLIM) {
    const full = join(rootfs, path);
    if (!existsSync(full)) continue;
    // Keep the folders apt and dpkg expect; drop what is in them.
    if (statSync(full).isDirectory()) for (const entry of readdirSync(full)) rmSync(join(full, entry), { recursive: true, force: true });
    else rmSync(full);
  }
  // Documentation goes, its copyright files stay (as in Debian's slim images).
  const docs = join(rootfs, "usr", "share", "doc");
  for (const pkg of existsSync(docs) ? readdirSync(docs) : []) {
    for (const entry of readdirSync(join(docs, pkg)))
      if (entry !== "copyright") rmSync(join(docs, pkg, entry), { recursive: true, force: true });
  }
  // The runtime mounts the pod's own; what debootstrap copied from this machine must not ship.
  writeFileSync(join(rootfs, "etc", "resolv.conf"), "");
  writeFileSync(join(rootfs, "etc", "hosts"), "127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n");
  for (const name of ["resolv.conf", "hosts"]) chmodSync(join(rootfs, "etc", name), 0o644);
  rmSync(join(rootfs, "etc", "hostname"), { force: true });
  // The runtime gives a container its own /dev; debootstrap's device nodes would only be hidden.
  for (const entry of readdirSync(join(rootfs, "dev"))) rmSync(join(rootfs, "dev", entry), { recursive: true, force: true });
}

/** Checks what the images rely on: Node starts inside the root (so its libraries are there), /tmp is 1777, uid 1000 can read /usr. */
function check(rootfs: string, nodeVersion: string): void {
  const ran = spawnSync("chroot", [rootfs, "/usr/local/bin/node", "-p", "process.version"], { encoding: "utf8" });
  if (ran.status !== 0 || ran.stdout.trim() !== `v${nodeVersion}`) {
    throw new WorldError(
      `the base's /usr/local/bin/node does not start inside it: ${ran.stderr.trim() || ran.stdout.trim()}`,
      `add the missing library's Debian package to BASE_PACKAGES in scripts/image/base.ts`,
    );
  }
  const tmp = statSync(join(rootfs, "tmp")).mode & 0o7777;
  if (tmp !== 0o1777) throw new WorldError(`the base's /tmp has mode ${tmp.toString(8)}, not 1777`, "check debootstrap's output");
  const unreadable = layerEntries(join(rootfs, "usr"), (path) => {
    const mode = lstatSync(join(rootfs, "usr", path)).mode;
    return (mode & 0o004) === 0 || ((mode & 0o170000) === 0o040000 && (mode & 0o001) === 0) ? "emit" : "descend";
  });
  if (unreadable.length > 0)
    throw new WorldError(
      `the base's /usr has paths other users cannot read: ${unreadable.slice(0, 5).join(", ")}`,
      "check the umask debootstrap ran with",
    );
}

function baseKey(options: BaseOptions): { node: string; nodeVersion: string; packages: string[]; hash: string; dir: string } {
  const node = options.node ?? process.execPath;
  const nodeVersion = nodeVersionOf(node);
  const packages = [...BASE_PACKAGES];
  const hash = inputHash([
    ["suite", BASE_SUITE],
    ["packages", packages.join(",")],
    ["node", nodeVersion],
    ...builderSources(["base.ts", "layer.ts"]),
  ]);
  return { node, nodeVersion, packages, hash, dir: join(options.cacheDir, `base-${hash.slice(0, 16)}`) };
}

/** The base for these inputs if it is in the cache already (then nothing needs root or the network). */
export function cachedBase(options: BaseOptions): BaseImage | undefined {
  return loaded(baseKey(options).dir);
}

/** The cached base for these inputs, built first if it is not there. */
export async function ensureBase(options: BaseOptions): Promise<BaseImage> {
  const progress = options.onProgress ?? (() => undefined);
  const { node, nodeVersion, packages, hash, dir } = baseKey(options);
  const cached = loaded(dir);
  if (cached !== undefined) {
    progress(`base: Debian ${BASE_SUITE} + Node ${nodeVersion}, cached (${mib(cached.layer.size)}) in ${dir}`);
    return cached;
  }
  const unavailable = baseUnavailable();
  if (unavailable !== undefined)
    throw new InputError(
      `cannot build the base image: ${unavailable}`,
      "run `npm run cluster:images` as root on Debian or Ubuntu with debootstrap installed",
    );

  const mirror = options.mirror ?? debianMirror();
  const started = performance.now();
  const work = join(options.cacheDir, `base-${hash.slice(0, 16)}.tmp-${process.pid}`);
  const rootfs = join(work, "rootfs");
  rmSync(work, { recursive: true, force: true });
  mkdirSync(work, { recursive: true });
  try {
    progress(
      `base: building Debian ${BASE_SUITE} minbase + ${packages.join(", ")} from ${mirror}, with Node ${nodeVersion} (once per input; a few minutes)…`,
    );
    // In a mount namespace of its own: the /proc and /sys debootstrap mounts in the root go with it, even if it fails.
    await runTool(
      "unshare",
      [
        "--mount",
        "--propagation",
        "private",
        "debootstrap",
        "--variant=minbase",
        `--include=${packages.join(",")}`,
        BASE_SUITE,
        rootfs,
        mirror,
      ],
      `check that ${mirror} serves ${BASE_SUITE} (apt-get update works) and that there is disk space in ${options.cacheDir}`,
      (line) => {
        if (
          /^I: (Retrieving Release|Resolving dependencies|Checking component|Installing core|Configuring required|Base system installed)/.test(
            line,
          )
        )
          progress(`base: ${line.slice(3)} (${elapsed(started)})`);
      },
    );
    mkdirSync(join(rootfs, "usr", "local", "bin"), { recursive: true });
    copyFileSync(node, join(rootfs, "usr", "local", "bin", "node"));
    chmodSync(join(rootfs, "usr", "local", "bin", "node"), 0o755);
    addNodeUser(rootfs);
    slim(rootfs);
    check(rootfs, nodeVersion);

    const entries = layerEntries(rootfs, allEntries);
    writeFileSync(
      join(work, "paths.txt"),
      entries.map((path) => `${lstatSync(join(rootfs, path)).isDirectory() ? "d" : "f"} ${path}\n`).join(""),
    );
    progress(`base: writing its layer (${entries.length} entries)…`);
    const layer = await writeLayer(rootfs, entries, join(work, "layer.tar.gz"));
    const record: BaseRecord = {
      hash,
      layer: { digest: layer.digest, diffId: layer.diffId, size: layer.size, tarSize: layer.tarSize },
      env: [`PATH=${PATH}`, `NODE_VERSION=${nodeVersion}`],
      nodeVersion,
      suite: BASE_SUITE,
      packages,
      mirror,
      buildSeconds: Math.round((performance.now() - started) / 100) / 10,
    };
    writeFileSync(join(work, "base.json"), `${JSON.stringify(record, null, 2)}\n`);
    rmSync(rootfs, { recursive: true, force: true });
    try {
      renameSync(work, dir);
    } catch (error) {
      // Another build of the same inputs finished first: theirs is as good as ours.
      if (loaded(dir) === undefined) throw error;
    }
    progress(`base: built in ${elapsed(started)}: layer ${mib(layer.size)} (${mib(layer.tarSize)} unpacked), ${dir}`);
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
  const built = loaded(dir);
  if (built === undefined) throw new WorldError(`the base image in ${dir} was not written`, `remove ${dir} and run again`);
  return built;
}
