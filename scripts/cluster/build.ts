// Builds the control plane from the official Go sources once per version, into the cache.
// One `go build` compiles Kubernetes' components (the control plane, and kubelet, kube-proxy and
// kubectl for the real node), etcd and our helpers together so they share compilation; kwok is
// installed from its own module because its requirements would move the versions Kubernetes pins,
// and cert-manager's controller and CoreDNS (tools/addons) and kube-router for the same reason.
import { execFileSync, spawnSync } from "node:child_process";
import { createHash } from "node:crypto";
import { existsSync, mkdirSync, readFileSync, readdirSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, relative } from "node:path";
import { z } from "zod";
import { clusterPaths, repoRoot, toolsDir, versions } from "./config.ts";

export const binaries = [
  "kube-apiserver",
  "kube-controller-manager",
  "kube-scheduler",
  "kubelet",
  "kube-proxy",
  "kubectl",
  "etcd",
  "pki",
  "provisioner",
  "probe",
  "ociimage",
  "cri-reset",
  "kwok",
] as const;

/** Built from tools/addons, a module of their own. */
export const addons = ["cert-manager", "coredns"] as const;
export type Binary = (typeof binaries)[number] | (typeof addons)[number] | "kube-router";

export const addonsDir = join(repoRoot, "tools", "addons");

export class ClusterBuildError extends Error {
  override name = "ClusterBuildError";
}

export function binaryPath(name: Binary, binDir = clusterPaths().binDir): string {
  return join(binDir, name);
}

/** The kubectl built with the cluster (same version): what the cluster scripts and tests run. */
export function kubectlPath(binDir = clusterPaths().binDir): string {
  return binaryPath("kubectl", binDir);
}

function goSources(dir: string): string[] {
  const out: string[] = [];
  for (const entry of readdirSync(dir, { withFileTypes: true }).sort((a, b) => a.name.localeCompare(b.name))) {
    const path = join(dir, entry.name);
    if (entry.isDirectory()) out.push(...goSources(path));
    else if (entry.name.endsWith(".go") || entry.name === "go.mod" || entry.name === "go.sum") out.push(path);
  }
  return out;
}

function goVersion(): string {
  const result = spawnSync("go", ["env", "GOVERSION"], { encoding: "utf8" });
  if (result.error || result.status !== 0) {
    throw new ClusterBuildError("the test cluster is built from source and needs the Go toolchain (`go` on PATH, 1.24 or newer)");
  }
  return result.stdout.trim();
}

/** Changes whenever a source, a pinned version or the Go toolchain changes. */
export function buildStamp(dir = toolsDir): string {
  const hash = createHash("sha256");
  hash.update(JSON.stringify(versions));
  hash.update(goVersion());
  for (const file of goSources(dir)) {
    hash.update(relative(dir, file));
    hash.update(readFileSync(file));
  }
  return hash.digest("hex").slice(0, 16);
}

function ldflags(): string {
  const v = versions.kubernetes;
  const [major, minor] = v.slice(1).split(".");
  const vars: Record<string, string> = {
    gitVersion: v,
    gitMajor: major ?? "",
    gitMinor: minor ?? "",
    gitTreeState: "clean",
    buildDate: "1970-01-01T00:00:00Z",
  };
  const sets = ["k8s.io/component-base/version", "k8s.io/client-go/pkg/version"].flatMap((pkg) =>
    Object.entries(vars).map(([name, value]) => `-X ${pkg}.${name}=${value}`),
  );
  return ["-s", "-w", ...sets].join(" ");
}

export interface BuildResult {
  readonly binDir: string;
  readonly built: boolean;
  readonly seconds: number;
  /** Seconds each part took the last time it was built (kept in the cache). */
  readonly partSeconds: Readonly<Record<string, number>>;
}

const Seconds = z.record(z.string(), z.number());

function recordedSeconds(binDir: string): Record<string, number> {
  const file = join(binDir, ".build-seconds.json");
  if (!existsSync(file)) return {};
  const parsed = Seconds.safeParse(JSON.parse(readFileSync(file, "utf8")));
  return parsed.success ? parsed.data : {};
}

function recordSeconds(binDir: string, part: string, seconds: number): void {
  const all = { ...recordedSeconds(binDir), [part]: Number(seconds.toFixed(1)) };
  writeFileSync(join(binDir, ".build-seconds.json"), JSON.stringify(all, null, 2) + "\n");
}

/** A part of the build: current when its stamp file matches and its binaries exist. */
function buildPart(binDir: string, part: { name: string; stamp: string; binaries: readonly Binary[]; build: () => void }): boolean {
  const stampFile = join(binDir, `.stamp${part.name === "kubernetes" ? "" : `-${part.name}`}`);
  const current =
    existsSync(stampFile) &&
    readFileSync(stampFile, "utf8").trim() === part.stamp &&
    part.binaries.every((name) => existsSync(binaryPath(name, binDir)));
  if (current) return false;
  mkdirSync(binDir, { recursive: true });
  rmSync(stampFile, { force: true });
  const started = performance.now();
  part.build();
  recordSeconds(binDir, part.name, (performance.now() - started) / 1000);
  writeFileSync(stampFile, part.stamp + "\n");
  return true;
}

/** Builds what is missing or stale; returns at once when the cache is current. */
export function ensureBinaries(log: (line: string) => void = console.error): BuildResult {
  const { binDir } = clusterPaths();
  const started = performance.now();
  const env = { ...process.env, GOFLAGS: "-mod=readonly", CGO_ENABLED: "0" };
  const kubernetes = buildPart(binDir, {
    name: "kubernetes",
    stamp: buildStamp(),
    binaries,
    build: () => buildKubernetes(binDir, env, log),
  });
  const addonsBuilt = buildPart(binDir, {
    name: "addons",
    stamp: buildStamp(addonsDir),
    binaries: addons,
    build: () => buildAddons(binDir, env, log),
  });
  const kubeRouter = buildPart(binDir, {
    name: "kube-router",
    stamp: `${versions.kubeRouter} ${goVersion()}`,
    binaries: ["kube-router"],
    build: () => {
      log(`cluster: building kube-router ${versions.kubeRouter} (NetworkPolicy enforcement on the real node)`);
      run(
        "go",
        ["install", "-trimpath", "-ldflags", "-s -w", `github.com/cloudnativelabs/kube-router/v2/cmd/kube-router@${versions.kubeRouter}`],
        {
          cwd: toolsDir,
          env: { ...env, GOFLAGS: "", GOBIN: binDir },
        },
      );
    },
  });
  const built = kubernetes || addonsBuilt || kubeRouter;
  const seconds = (performance.now() - started) / 1000;
  if (built) log(`cluster: build took ${seconds.toFixed(1)} s`);
  return { binDir, built, seconds, partSeconds: recordedSeconds(binDir) };
}

function buildKubernetes(binDir: string, env: NodeJS.ProcessEnv, log: (line: string) => void): void {
  log(`cluster: building Kubernetes ${versions.kubernetes}, etcd ${versions.etcd} and helpers into ${binDir}`);
  run(
    "go",
    [
      "build",
      "-trimpath",
      "-ldflags",
      ldflags(),
      "-o",
      binDir + "/",
      "k8s.io/kubernetes/cmd/kube-apiserver",
      "k8s.io/kubernetes/cmd/kube-controller-manager",
      "k8s.io/kubernetes/cmd/kube-scheduler",
      "k8s.io/kubernetes/cmd/kubelet",
      "k8s.io/kubernetes/cmd/kube-proxy",
      "k8s.io/kubernetes/cmd/kubectl",
      "./etcd",
      "./pki",
      "./provisioner",
      "./probe",
      "./ociimage",
      "./cri-reset",
    ],
    { cwd: toolsDir, env },
  );
  log(`cluster: building kwok ${versions.kwok}`);
  run("go", ["install", "-trimpath", "-ldflags", "-s -w", `sigs.k8s.io/kwok/cmd/kwok@${versions.kwok}`], {
    cwd: toolsDir,
    env: { ...env, GOFLAGS: "", GOBIN: binDir },
  });
}

function buildAddons(binDir: string, env: NodeJS.ProcessEnv, log: (line: string) => void): void {
  // The CRDs the cluster installs and the controller that serves them are one version.
  const goMod = readFileSync(join(addonsDir, "go.mod"), "utf8");
  for (const [module, version] of [
    ["github.com/cert-manager/cert-manager", versions.certManager],
    ["github.com/coredns/coredns", versions.coredns],
  ] as const) {
    if (!goMod.includes(`\t${module} ${version}\n`)) {
      throw new ClusterBuildError(
        `tools/addons/go.mod does not require ${module} ${version} (scripts/cluster/config.ts); ` +
          `fix: cd tools/addons && go get ${module}@${version} && go mod tidy`,
      );
    }
  }
  log(`cluster: building cert-manager ${versions.certManager} and CoreDNS ${versions.coredns} into ${binDir}`);
  run("go", ["build", "-trimpath", "-ldflags", "-s -w", "-o", binDir + "/", ...addons.map((a) => `./${a}`)], {
    cwd: addonsDir,
    env,
  });
}

function run(command: string, args: readonly string[], options: { cwd: string; env: NodeJS.ProcessEnv }): void {
  try {
    execFileSync(command, args, { ...options, stdio: ["ignore", "inherit", "inherit"] });
  } catch (error) {
    throw new ClusterBuildError(`\`${command} ${args.slice(0, 2).join(" ")} …\` failed in ${options.cwd}`, {
      cause: error,
    });
  }
}

/** Directory of a Go module version in the module cache, downloading it if needed. */
export function goModuleDir(module: string, version: string): string {
  // Outside any module, so no go.mod is touched.
  const out = execFileSync("go", ["mod", "download", "-json", `${module}@${version}`], {
    cwd: tmpdir(),
    encoding: "utf8",
    env: { ...process.env, GOFLAGS: "" },
  });
  const parsed: unknown = JSON.parse(out);
  if (typeof parsed === "object" && parsed !== null && "Dir" in parsed && typeof parsed.Dir === "string") {
    return parsed.Dir;
  }
  throw new ClusterBuildError(`go mod download ${module}@${version} gave no directory: ${out}`);
}
