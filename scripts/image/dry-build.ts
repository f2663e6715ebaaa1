// Builds and runs our Dockerfiles without a container engine (this machine has none), so that what
// the images hold and how they start is checked on every test run. Each stage is a root folder; RUN
// and the container run in a private mount namespace, chrooted into it, with the machine's own /usr
// (read-only) and a few files of its /etc standing in for the base image (the FROM line must name
// the same Node major).
// Everything the Dockerfile adds — context files, installs, builds, deletions, the user, the
// entrypoint — is done as written. The container runs with a read-only root, as the rendered pods
// ask, non-root, with the volumes given. Needs root (mount namespaces); `dryBuildUnavailable()` says
// why not where it cannot run.
import { spawn, spawnSync, type ChildProcess } from "node:child_process";
import {
  chmodSync,
  copyFileSync,
  existsSync,
  lstatSync,
  mkdirSync,
  readdirSync,
  readFileSync,
  readlinkSync,
  rmSync,
  statSync,
  symlinkSync,
} from "node:fs";
import { basename, dirname, join, posix } from "node:path";
import { parseDockerfile, type Instruction } from "./dockerfile.ts";

export interface DryBuildOptions {
  /** The Dockerfile, e.g. `docker/gateway.Dockerfile`. */
  readonly dockerfile: string;
  /** The build context: a git checkout. Its files are those git lists (a fresh clone's), less .dockerignore's. */
  readonly context: string;
  /** Where the stages' root folders are made; emptied first. */
  readonly dir: string;
  /** @default none */
  readonly onProgress?: (line: string) => void;
  /** npm's cache, at /root/.npm for RUN steps so that `npm ci` needs no downloads. @default `npm config get cache` */
  readonly npmCache?: string;
}

export interface DryImage {
  readonly root: string;
  /** The final stage's FROM. */
  readonly base: string;
  readonly env: Readonly<Record<string, string>>;
  readonly workdir: string;
  /** USER, or "0:0". */
  readonly user: string;
  readonly entrypoint: readonly string[];
  readonly cmd: readonly string[];
  readonly exposed: readonly string[];
  readonly healthcheck: readonly string[] | undefined;
  /** What the Dockerfile adds on top of its base image, in bytes (hard links counted once). */
  readonly addedBytes: number;
}

export interface RunVolume {
  /** Where it appears in the container. */
  readonly path: string;
  /** A host folder; none: an empty, writable folder (an emptyDir). */
  readonly source?: string;
  /** @default false */
  readonly readOnly?: boolean;
}

export interface RunOptions {
  /** Replace CMD, as a pod's `args` does. @default the image's CMD */
  readonly args?: readonly string[];
  /** `UID:GID`, as a pod's runAsUser/runAsGroup. @default the image's USER */
  readonly user?: string;
  /** Added to the image's ENV. @default {} */
  readonly env?: Readonly<Record<string, string>>;
  /** @default [] */
  readonly volumes?: readonly RunVolume[];
  /** As readOnlyRootFilesystem. @default true */
  readonly readOnlyRoot?: boolean;
}

/** The image's paths the machine's own system stands in for: bound read-only, never written. */
const SYSTEM = ["usr"] as const;
/** What a base image's /etc holds that installs and Node need (users, name resolution, CA certificates). */
const BASE_ETC = [
  "passwd",
  "group",
  "hosts",
  "resolv.conf",
  "nsswitch.conf",
  "host.conf",
  "gai.conf",
  "ssl",
  "ca-certificates.conf",
] as const;
const DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";
/** Links into /usr that makeRoot copies from the machine (a merged /usr). */
const USR_LINKS = ["bin", "sbin", "lib", "lib64"] as const;

/**
 * What a stage root holds that stands in for the base image or serves the build, not the image:
 * the machine's system (mountpoints and links), the base's /etc files, /dev, /proc and the npm
 * cache's mountpoint. A real image takes these from its base layer instead (scripts/image/app-image.ts).
 */
export const STAND_INS: readonly string[] = [...SYSTEM, ...USR_LINKS, "dev", "proc", "root/.npm", ...BASE_ETC.map((name) => `etc/${name}`)];

interface Mount {
  readonly kind: "bind" | "tmpfs" | "proc";
  readonly source: string;
  readonly target: string;
  readonly readOnly: boolean;
}

const quote = (value: string): string => `'${value.replaceAll("'", `'\\''`)}'`;

/** Why dry builds cannot run here, or undefined when they can. */
export function dryBuildUnavailable(): string | undefined {
  if (process.platform !== "linux") return "dry builds need Linux mount namespaces";
  if (process.getuid?.() !== 0) return "dry builds need root (mount namespaces and chroot)";
  const probe = spawnSync("unshare", ["--mount", "--propagation", "private", "true"], { encoding: "utf8" });
  if (probe.error !== undefined || probe.status !== 0) return `unshare --mount failed: ${probe.error?.message ?? probe.stderr.trim()}`;
  return undefined;
}

/** The container path's place under a stage root; refuses paths that leave it or land on the stand-in system. */
function inRoot(root: string, path: string, where: string): string {
  const normal = posix.normalize(path);
  if (!normal.startsWith("/") || normal.split("/").includes(".."))
    throw new Error(`${where}: ${path} is not an absolute path inside the image`);
  const top = normal.split("/")[1] ?? "";
  if ((SYSTEM as readonly string[]).includes(top) || top === "proc" || top === "dev") {
    throw new Error(`${where}: ${path} is in /${top}, which the dry build takes from this machine (it cannot be written)`);
  }
  return join(root, normal);
}

/** An empty root: mountpoints for the stand-in system, the base's /etc files, and /bin, /lib... as the machine has them. */
function makeRoot(root: string): void {
  for (const dir of [...SYSTEM, "etc", "dev", "proc", "tmp", "root"]) mkdirSync(join(root, dir), { recursive: true });
  chmodSync(join(root, "tmp"), 0o1777);
  for (const name of BASE_ETC) {
    if (!existsSync(`/etc/${name}`)) continue;
    const copied = spawnSync("cp", ["-a", `/etc/${name}`, join(root, "etc", name)], { encoding: "utf8" });
    if (copied.status !== 0) throw new Error(`copying /etc/${name} into the stage failed: ${copied.stderr.trim()}`);
  }
  for (const link of USR_LINKS) {
    const host = `/${link}`;
    if (!existsSync(host)) continue;
    if (lstatSync(host).isSymbolicLink()) symlinkSync(readlinkSync(host), join(root, link));
    else throw new Error(`/${link} is not a link into /usr on this machine: the dry build needs a merged /usr`);
  }
}

function systemMounts(root: string): Mount[] {
  return [
    ...SYSTEM.map((dir) => ({ kind: "bind" as const, source: `/${dir}`, target: join(root, dir), readOnly: true })),
    { kind: "bind", source: "/dev", target: join(root, "dev"), readOnly: false },
    { kind: "proc", source: "proc", target: join(root, "proc"), readOnly: false },
  ];
}

function mountLines(mounts: readonly Mount[]): string[] {
  return mounts.flatMap((mount) => {
    if (mount.kind === "proc") return [`mount -t proc proc ${quote(mount.target)}`];
    if (mount.kind === "tmpfs")
      return [
        `mount -t tmpfs -o mode=1777 tmpfs ${quote(mount.target)}`,
        ...(mount.readOnly ? [`mount -o remount,ro ${quote(mount.target)}`] : []),
      ];
    return [
      `mount --bind ${quote(mount.source)} ${quote(mount.target)}`,
      ...(mount.readOnly ? [`mount -o remount,bind,ro ${quote(mount.target)}`] : []),
    ];
  });
}

/** `UID:GID` (numbers, or root), for setpriv. */
function userIds(user: string): { uid: number; gid: number } {
  if (user === "root") return { uid: 0, gid: 0 };
  const match = /^(\d+)(?::(\d+))?$/.exec(user);
  if (match === null) throw new Error(`USER ${user}: the dry build needs a numeric UID[:GID] (as the pods' runAsUser is)`);
  const uid = Number(match[1]);
  return { uid, gid: match[2] !== undefined ? Number(match[2]) : uid };
}

/** A command in the root, chrooted, as `user`, in `workdir`, with exactly `env`, after `mounts`. */
function namespaced(
  root: string,
  mounts: readonly Mount[],
  user: string,
  workdir: string,
  env: Readonly<Record<string, string>>,
  argv: readonly string[],
): string[] {
  const { uid, gid } = userIds(user);
  const exec = [
    "exec chroot",
    quote(root),
    `/usr/bin/setpriv --reuid=${uid} --regid=${gid} --clear-groups`,
    "/usr/bin/env -i",
    ...Object.entries(env).map(([key, value]) => quote(`${key}=${value}`)),
    `/bin/sh -c 'cd "$0" && exec "$@"'`,
    quote(workdir),
    ...argv.map(quote),
  ].join(" ");
  const script = ["set -eu", ...mountLines(mounts), exec].join("\n");
  return ["--mount", "--propagation", "private", "/bin/sh", "-c", script];
}

/** The context's files (relative paths): what git lists, tracked or not ignored, less .dockerignore's entries. */
export function contextFiles(context: string): Set<string> {
  const listed = spawnSync("git", ["-C", context, "ls-files", "-z", "--cached", "--others", "--exclude-standard"], { encoding: "utf8" });
  if (listed.status !== 0) throw new Error(`the build context ${context} must be a git checkout: ${listed.stderr.trim()}`);
  const ignoreFile = join(context, ".dockerignore");
  const ignored = existsSync(ignoreFile)
    ? readFileSync(ignoreFile, "utf8")
        .split("\n")
        .map((line) => line.trim())
        .filter((line) => line !== "" && !line.startsWith("#"))
    : [];
  for (const pattern of ignored) {
    if (/[*?[!]/.test(pattern)) throw new Error(`.dockerignore: ${pattern}: the dry build reads plain paths only (no wildcards or !)`);
  }
  const prefixes = ignored.map((pattern) => pattern.replace(/^\.?\/+/, "").replace(/\/+$/, ""));
  return new Set(
    listed.stdout
      .split("\0")
      .filter((file) => file !== "" && existsSync(join(context, file)))
      .filter((file) => !prefixes.some((prefix) => file === prefix || file.startsWith(`${prefix}/`))),
  );
}

function copyFromContext(context: string, files: ReadonlySet<string>, sources: readonly string[], dest: string, where: string): void {
  const many = sources.length > 1;
  for (const raw of sources) {
    const source = posix
      .normalize(raw)
      .replace(/^\.\/?/, "")
      .replace(/\/+$/, "");
    if (files.has(source)) {
      const target = many || dest.endsWith("/") || (existsSync(dest) && statSync(dest).isDirectory()) ? join(dest, basename(source)) : dest;
      copyOne(join(context, source), target);
      continue;
    }
    const under = [...files].filter((file) => source === "" || file.startsWith(`${source}/`));
    if (under.length === 0) throw new Error(`${where}: ${raw} is not in the build context`);
    // A folder's contents go into the destination, as Docker copies them.
    for (const file of under) copyOne(join(context, file), join(dest, source === "" ? file : file.slice(source.length + 1)));
  }
}

function copyOne(from: string, to: string): void {
  mkdirSync(dirname(to), { recursive: true });
  copyFileSync(from, to);
  chmodSync(to, statSync(from).mode & 0o777);
}

/** COPY --from: a path of an earlier stage, with cp -a (modes, links and times kept). */
function copyFromStage(sourceRoot: string, source: string, dest: string, where: string): void {
  const from = inRoot(sourceRoot, source, where);
  const isDirectory = statSync(from, { throwIfNoEntry: false })?.isDirectory();
  if (isDirectory === undefined) throw new Error(`${where}: ${source} does not exist in that stage`);
  mkdirSync(isDirectory ? dest : dirname(dest), { recursive: true });
  const result = spawnSync("cp", ["-a", isDirectory ? `${from}/.` : from, dest], { encoding: "utf8" });
  if (result.status !== 0) throw new Error(`${where}: copying ${source} failed: ${result.stderr.trim()}`);
}

/** Bytes under `root` outside the stand-in system (its mountpoints and the base's /etc files), each file once. */
function addedBytes(root: string): number {
  const seen = new Set<number>();
  const base = new Set([...SYSTEM, "dev", "proc"].map((dir) => join(root, dir)).concat(BASE_ETC.map((name) => join(root, "etc", name))));
  let total = 0;
  const walk = (dir: string): void => {
    for (const entry of readdirSync(dir, { withFileTypes: true })) {
      const path = join(dir, entry.name);
      if (base.has(path)) continue;
      const stat = lstatSync(path);
      if (entry.isDirectory()) walk(path);
      else if (!seen.has(stat.ino)) {
        seen.add(stat.ino);
        total += stat.size;
      }
    }
  };
  walk(root);
  return total;
}

function npmCacheDir(): string {
  const result = spawnSync("npm", ["config", "get", "cache"], { encoding: "utf8" });
  return result.status === 0 ? result.stdout.trim() : join(process.env.HOME ?? "/root", ".npm");
}

interface Stage {
  readonly name: string;
  readonly root: string;
  base: string;
  env: Record<string, string>;
  workdir: string;
  user: string;
  entrypoint: string[];
  cmd: string[];
  exposed: string[];
  healthcheck: string[] | undefined;
}

function runStep(stage: Stage, command: readonly string[], npmCache: string, where: string): void {
  mkdirSync(join(stage.root, "root", ".npm"), { recursive: true });
  const mounts: Mount[] = [
    ...systemMounts(stage.root),
    { kind: "tmpfs", source: "tmpfs", target: join(stage.root, "tmp"), readOnly: false },
    { kind: "bind", source: npmCache, target: join(stage.root, "root", ".npm"), readOnly: false },
  ];
  const env = { PATH: DEFAULT_PATH, HOME: userIds(stage.user).uid === 0 ? "/root" : "/", ...stage.env };
  const result = spawnSync("unshare", namespaced(stage.root, mounts, stage.user, stage.workdir, env, command), {
    encoding: "utf8",
    maxBuffer: 64 * 1024 * 1024,
  });
  if (result.status !== 0) {
    const output = `${result.stdout}${result.stderr}`.trim().slice(-3000);
    throw new Error(`${where}: RUN failed (exit ${result.status ?? result.signal}):\n${output}`);
  }
}

/** Builds every stage of the Dockerfile; the last one is the image. */
export function dryBuild(options: DryBuildOptions): DryImage {
  const file = options.dockerfile;
  const instructions: Instruction[] = parseDockerfile(readFileSync(file, "utf8"), file);
  const files = contextFiles(options.context);
  const npmCache = options.npmCache ?? npmCacheDir();
  const progress = options.onProgress ?? (() => undefined);
  rmSync(options.dir, { recursive: true, force: true });
  const stages: Stage[] = [];
  let stage: Stage | undefined;
  const label = basename(file);
  instructions.forEach((instruction, index) => {
    const where = `${file}:${instruction.line}`;
    const step = `${label} ${index + 1}/${instructions.length} ${instruction.kind} (line ${instruction.line})`;
    const started = performance.now();
    // RUN steps take seconds to minutes: say what is running before it starts.
    if (instruction.kind === "RUN") progress(`${step}…`);
    if (instruction.kind === "FROM") {
      const major = /^node:(\d+)[.-]?/.exec(instruction.image)?.[1];
      const ours = process.versions.node.split(".")[0];
      if (major !== ours)
        throw new Error(
          `${where}: FROM ${instruction.image}: the dry build stands in for node:${ours} images with this machine's Node ${process.versions.node}`,
        );
      const root = join(options.dir, `stage-${stages.length}`);
      makeRoot(root);
      stage = {
        name: instruction.stage ?? String(stages.length),
        root,
        base: instruction.image,
        env: {},
        workdir: "/",
        user: "0:0",
        entrypoint: [],
        cmd: [],
        exposed: [],
        healthcheck: undefined,
      };
      stages.push(stage);
    } else {
      if (stage === undefined) throw new Error(`${where}: ${instruction.kind} before FROM`);
      const current = stage;
      switch (instruction.kind) {
        case "WORKDIR":
          current.workdir = posix.resolve(current.workdir, instruction.path);
          mkdirSync(inRoot(current.root, current.workdir, where), { recursive: true });
          break;
        case "COPY": {
          const destPath = posix.resolve(current.workdir, instruction.dest) + (instruction.dest.endsWith("/") ? "/" : "");
          const dest = inRoot(current.root, destPath, where) + (destPath.endsWith("/") ? "/" : "");
          if (instruction.from === undefined) copyFromContext(options.context, files, instruction.sources, dest, where);
          else {
            const source = stages.find((candidate) => candidate.name === instruction.from);
            if (source === undefined || source === current) throw new Error(`${where}: no earlier stage named ${instruction.from}`);
            for (const path of instruction.sources) copyFromStage(source.root, posix.resolve(source.workdir, path), dest, where);
          }
          break;
        }
        case "RUN":
          runStep(current, instruction.command, npmCache, where);
          break;
        case "ENV":
          Object.assign(current.env, instruction.values);
          break;
        case "USER":
          userIds(instruction.user);
          current.user = instruction.user;
          break;
        case "EXPOSE":
          current.exposed.push(...instruction.ports);
          break;
        case "HEALTHCHECK":
          current.healthcheck = [...instruction.command];
          break;
        case "ENTRYPOINT":
          current.entrypoint = [...instruction.command];
          current.cmd = [];
          break;
        case "CMD":
          current.cmd = [...instruction.command];
          break;
      }
    }
    progress(`${step} done in ${Math.round(performance.now() - started)} ms`);
  });
  const last = stages.at(-1);
  if (last === undefined) throw new Error(`${file}: no FROM`);
  for (const earlier of stages.slice(0, -1)) rmSync(earlier.root, { recursive: true, force: true });
  return {
    root: last.root,
    base: last.base,
    env: { ...last.env },
    workdir: last.workdir,
    user: last.user,
    entrypoint: last.entrypoint,
    cmd: last.cmd,
    exposed: last.exposed,
    healthcheck: last.healthcheck,
    addedBytes: addedBytes(last.root),
  };
}

/**
 * Starts the image's entrypoint as its container would: chrooted into the image, as its user (or
 * `options.user`), with a read-only root, the volumes mounted, the image's ENV and the host's
 * network. Kill the returned process to stop it.
 */
export function runImage(image: DryImage, options: RunOptions = {}): ChildProcess {
  const root = image.root;
  const user = options.user ?? image.user;
  const mounts: Mount[] = [];
  // Mountpoints are made before the root turns read-only, as a container runtime makes them.
  for (const volume of options.volumes ?? []) mkdirSync(inRoot(root, volume.path, "volume"), { recursive: true });
  if (options.readOnlyRoot ?? true) mounts.push({ kind: "bind", source: root, target: root, readOnly: true });
  mounts.push(...systemMounts(root));
  for (const volume of options.volumes ?? []) {
    const target = join(root, posix.normalize(volume.path));
    if (volume.source === undefined) mounts.push({ kind: "tmpfs", source: "tmpfs", target, readOnly: volume.readOnly ?? false });
    else mounts.push({ kind: "bind", source: volume.source, target, readOnly: volume.readOnly ?? false });
  }
  const env = { PATH: DEFAULT_PATH, HOME: "/", ...image.env, ...options.env };
  const argv = [...image.entrypoint, ...(options.args ?? image.cmd)];
  if (argv.length === 0) throw new Error("the image has no ENTRYPOINT or CMD, and no args were given");
  return spawn("unshare", namespaced(root, mounts, user, image.workdir, env, argv), { stdio: ["ignore", "pipe", "pipe"] });
}
