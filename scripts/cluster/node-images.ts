// The real node's own images, built from source rather than pulled (nothing is pulled here):
// the pause image from Kubernetes' build/pause/linux/pause.c, linked statically with gcc, CoreDNS
// (tools/addons), and the probe image the cluster's smoke check runs (tools/cluster/probe). Each is
// a one-layer OCI archive written by tools/cluster/ociimage, cached beside the binaries.
import { createHash } from "node:crypto";
import { existsSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { binaryPath, goModuleDir } from "./build.ts";
import { must } from "./command.ts";
import { versions, type ClusterPaths } from "./config.ts";
import { pauseImage } from "./containerd.ts";
import { corednsImage } from "./dns.ts";

export const probeImage = "diatonic.test/probe:0";

export interface NodeImages {
  readonly archives: readonly string[];
  readonly built: boolean;
  readonly seconds: number;
}

export function ensureNodeImages(paths: ClusterPaths, log: (line: string) => void): NodeImages {
  const started = performance.now();
  const { imageDir, binDir } = paths;
  const pauseSource = join(goModuleDir("k8s.io/kubernetes", versions.kubernetes), "build", "pause", "linux", "pause.c");
  const ociimage = binaryPath("ociimage", binDir);
  const probe = binaryPath("probe", binDir);
  const coredns = binaryPath("coredns", binDir);
  const archives = { pause: join(imageDir, "pause.tar"), probe: join(imageDir, "probe.tar"), coredns: join(imageDir, "coredns.tar") };
  const hash = createHash("sha256");
  for (const file of [pauseSource, ociimage, probe, coredns]) hash.update(readFileSync(file));
  const stamp = hash.digest("hex").slice(0, 16);
  const stampFile = join(imageDir, ".stamp");
  const current =
    existsSync(stampFile) && readFileSync(stampFile, "utf8").trim() === stamp && Object.values(archives).every((a) => existsSync(a));
  const done = (built: boolean): NodeImages => ({
    archives: Object.values(archives),
    built,
    seconds: (performance.now() - started) / 1000,
  });
  if (current) return done(false);

  log(`cluster: building the real node's images (${pauseImage}, ${corednsImage}, ${probeImage}) into ${imageDir}`);
  mkdirSync(imageDir, { recursive: true });
  const pauseBinary = join(imageDir, "pause");
  // The flags of build/pause/Makefile.
  must("gcc", ["-Os", "-Wall", "-Werror", "-static", `-DVERSION=v${versions.pause}-diatonic`, "-o", pauseBinary, pauseSource]);
  must("strip", [pauseBinary]);
  const image = (name: string, out: string, file: string, extra: readonly string[]): void => {
    must(ociimage, ["--out", out, "--name", name, "--arch", process.arch === "arm64" ? "arm64" : "amd64", ...extra, "--file", file]);
  };
  image(pauseImage, archives.pause, `/pause=${pauseBinary}`, ["--entrypoint", "/pause", "--user", "65535"]);
  image(probeImage, archives.probe, `/probe=${probe}`, ["--entrypoint", "/probe", "--cmd", "serve", "--user", "65532"]);
  image(corednsImage, archives.coredns, `/coredns=${coredns}`, ["--entrypoint", "/coredns", "--user", "65532"]);
  writeFileSync(stampFile, stamp + "\n");
  return done(true);
}
