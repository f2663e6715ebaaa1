// Builds the control plane from the official Go sources once per version, into the cache.
// One `go build` compiles Kubernetes' three components, etcd and our two helpers together so they
// share compilation; kwok is installed from its own module because its requirements would move
// the versions Kubernetes pins.
import { execFileSync, spawnSync } from "node:child_process";
import { createHash } from "node:crypto";
import { existsSync, mkdirSync, readFileSync, readdirSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, relative } from "node:path";
import { clusterPaths, toolsDir, versions } from "./config.ts";

export const binaries = [
  "kube-apiserver",
  "kube-controller-manager",
  "kube-scheduler",
  "etcd",
  "pki",
  "provisioner",
  "kwok",
] as const;
export type Binary = (typeof binaries)[number];

export class ClusterBuildError extends Error {
  override name = "ClusterBuildError";
}

export function binaryPath(name: Binary, binDir = clusterPaths().binDir): string {
  return join(binDir, name);
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
    throw new ClusterBuildError(
      "the test cluster is built from source and needs the Go toolchain (`go` on PATH, 1.24 or newer)",
    );
  }
  return result.stdout.trim();
}

/** Changes whenever a source, a pinned version or the Go toolchain changes. */
export function buildStamp(): string {
  const hash = createHash("sha256");
  hash.update(JSON.stringify(versions));
  hash.update(goVersion());
  for (const file of goSources(toolsDir)) {
    hash.update(relative(toolsDir, file));
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
}

/** Builds what is missing or stale; returns at once when the cache is current. */
export function ensureBinaries(log: (line: string) => void = console.error): BuildResult {
  const { binDir } = clusterPaths();
  const started = performance.now();
  const stamp = buildStamp();
  const stampFile = join(binDir, ".stamp");
  const current =
    existsSync(stampFile) &&
    readFileSync(stampFile, "utf8").trim() === stamp &&
    binaries.every((name) => existsSync(binaryPath(name, binDir)));
  if (current) return { binDir, built: false, seconds: (performance.now() - started) / 1000 };

  mkdirSync(binDir, { recursive: true });
  rmSync(stampFile, { force: true });
  const env = { ...process.env, GOFLAGS: "-mod=readonly", CGO_ENABLED: "0" };
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
      "./etcd",
      "./pki",
      "./provisioner",
    ],
    { cwd: toolsDir, env },
  );
  log(`cluster: building kwok ${versions.kwok}`);
  run("go", ["install", "-trimpath", "-ldflags", "-s -w", `sigs.k8s.io/kwok/cmd/kwok@${versions.kwok}`], {
    cwd: toolsDir,
    env: { ...env, GOFLAGS: "", GOBIN: binDir },
  });
  writeFileSync(stampFile, stamp + "\n");
  const seconds = (performance.now() - started) / 1000;
  log(`cluster: build took ${seconds.toFixed(1)} s`);
  return { binDir, built: true, seconds };
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
