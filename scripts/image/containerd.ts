// Puts image archives into a containerd with its own `ctr`, in the namespace the kubelet's CRI plugin
// uses (k8s.io), so that pods with imagePullPolicy IfNotPresent or Never start from them. An image
// already there with the same manifest digest is left alone: import costs seconds per image.
import { InputError, WorldError } from "../../src/errors.ts";
import { runTool } from "./cache.ts";

export interface ContainerdOptions {
  /** containerd's gRPC socket, e.g. `/run/containerd/containerd.sock`. */
  readonly address: string;
  /** @default "k8s.io" (the CRI plugin's namespace) */
  readonly namespace?: string;
  /** @default "ctr" (on PATH) */
  readonly ctr?: string;
}

export interface ImportOptions extends ContainerdOptions {
  /** @default none */
  readonly onProgress?: (line: string) => void;
}

/** An image archive to import: what `ctr` will name it and the digest it will have. */
export interface ArchiveToImport {
  readonly name: string;
  readonly path: string;
  /** `sha256:…` of its manifest. */
  readonly manifestDigest: string;
}

export interface ImportedImage {
  readonly name: string;
  readonly digest: string;
  /** `present`: already there with this digest, not imported again. */
  readonly action: "imported" | "present";
}

/** The containerd socket the environment names: $DIATONIC_CONTAINERD_ADDRESS, else none. */
export function containerdAddress(env: NodeJS.ProcessEnv = process.env): string | undefined {
  return env.DIATONIC_CONTAINERD_ADDRESS || undefined;
}

function ctrArgs(options: ContainerdOptions, args: readonly string[]): string[] {
  return ["--address", options.address, "--namespace", options.namespace ?? "k8s.io", ...args];
}

const unreachable = (options: ContainerdOptions): string =>
  `start containerd with its gRPC socket at ${options.address}, or set DIATONIC_CONTAINERD_ADDRESS to the socket it has (ctr needs apt-get install -y containerd)`;

/** Image name → manifest digest, as `ctr images ls` lists them in the namespace. */
export async function listImages(options: ContainerdOptions): Promise<Map<string, string>> {
  const { stdout } = await runTool(options.ctr ?? "ctr", ctrArgs(options, ["images", "ls"]), unreachable(options));
  const images = new Map<string, string>();
  // REF TYPE DIGEST SIZE PLATFORMS LABELS; the header is the first line.
  for (const line of stdout.split("\n").slice(1)) {
    const [ref, , digest] = line.trim().split(/\s+/);
    if (ref !== undefined && digest?.startsWith("sha256:")) images.set(ref, digest);
  }
  return images;
}

/** Imports each archive unless containerd has its name at its digest already; checks the name and digest after. */
export async function importImages(archives: readonly ArchiveToImport[], options: ImportOptions): Promise<ImportedImage[]> {
  if (options.address === "")
    throw new InputError("no containerd address was given", "pass the socket's path, e.g. /run/containerd/containerd.sock");
  const progress = options.onProgress ?? (() => undefined);
  const namespace = options.namespace ?? "k8s.io";
  const before = await listImages(options);
  const results: ImportedImage[] = [];
  for (const archive of archives) {
    if (before.get(archive.name) === archive.manifestDigest) {
      progress(`${archive.name}: already in containerd (${namespace}) at ${archive.manifestDigest.slice(0, 19)}…`);
      results.push({ name: archive.name, digest: archive.manifestDigest, action: "present" });
      continue;
    }
    const started = performance.now();
    progress(`${archive.name}: importing ${archive.path} into containerd (${namespace})…`);
    // --all-platforms: our archives hold one linux/amd64 manifest; without it ctr matches the machine's platform.
    await runTool(options.ctr ?? "ctr", ctrArgs(options, ["images", "import", "--all-platforms", archive.path]), unreachable(options));
    const after = await listImages(options);
    const digest = after.get(archive.name);
    if (digest !== archive.manifestDigest) {
      throw new WorldError(
        `${archive.path} was imported, but containerd lists ${archive.name} at ${digest ?? "nothing"}, not ${archive.manifestDigest}`,
        `check the archive's index.json names it (io.containerd.image.name), then \`ctr -n ${namespace} images ls\``,
      );
    }
    progress(`${archive.name}: imported in ${((performance.now() - started) / 1000).toFixed(1)} s`);
    results.push({ name: archive.name, digest, action: "imported" });
  }
  return results;
}
