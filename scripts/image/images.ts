// The platform's images as OCI archives in the image cache, rebuilt only when an input changes, and
// imported into the test cluster's containerd when one is given. `cluster:up` calls ensureImages
// after containerd starts; `npm run cluster:images` calls it by hand.
import { existsSync, mkdirSync, readFileSync, readdirSync, renameSync, rmSync, writeFileSync } from "node:fs";
import { join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { ensureBase, type BaseImage } from "./base.ts";
import { elapsed, imageCacheDir, mib } from "./cache.ts";
import { dockerfileRecipe } from "./app-image.ts";
import { containerdAddress, importImages, type ImportedImage } from "./containerd.ts";
import { writeOciArchive, type OciArchive } from "./oci.ts";
import { findQdrant, sharedQdrantDir } from "../../src/rag/qdrant-binary.ts";
import { qdrantRecipe } from "./qdrant-image.ts";
import type { ImageRecipe } from "./recipe.ts";

export const IMAGE_KEYS = ["gateway", "engine", "qdrant"] as const;
export type ImageKey = (typeof IMAGE_KEYS)[number];

/** The names the rendered manifests use (src/spec/schema.ts defaults). */
export const IMAGE_NAMES = {
  gateway: "ghcr.io/diatonic-ai/gateway:0.1.0",
  engine: "ghcr.io/diatonic-ai/engine:0.1.0",
} as const;

export interface EnsureImagesOptions {
  /** The checkout the Dockerfiles and the build context are in. @default this checkout */
  readonly repoRoot?: string;
  /** containerd's socket to import into; none: build only. @default $DIATONIC_CONTAINERD_ADDRESS */
  readonly containerdAddress?: string;
  /** @default "k8s.io" (the kubelet's CRI namespace) */
  readonly namespace?: string;
  /** Which images. @default all: gateway, engine, qdrant */
  readonly images?: readonly ImageKey[];
  /** Qdrant's server binary, or a folder with it. @default $QDRANT_BIN, else <repoRoot>/../shared/tools/qdrant */
  readonly qdrantBinary?: string;
  /** @default $DIATONIC_IMAGE_CACHE, else ~/.cache/diatonic/images */
  readonly cacheDir?: string;
  /** @default none */
  readonly onProgress?: (line: string) => void;
}

export interface BuiltImage extends OciArchive {
  readonly key: ImageKey;
  /** False when the archive was already in the cache for these inputs. */
  readonly built: boolean;
  readonly inputHash: string;
}

export interface EnsuredImages {
  readonly base: BaseImage;
  readonly images: readonly BuiltImage[];
  /** Images that could not be built here, with why (e.g. no Qdrant binary). */
  readonly skipped: readonly { readonly key: ImageKey; readonly reason: string }[];
  /** The imports, or undefined when no containerd was given. */
  readonly imported: readonly ImportedImage[] | undefined;
}

const defaultRepo = resolve(fileURLToPath(new URL("../..", import.meta.url)));

function recipeFor(key: ImageKey, repoRoot: string, qdrantBinary: string | undefined): ImageRecipe | string {
  if (key === "qdrant") {
    const binary = findQdrant(repoRoot, qdrantBinary ?? process.env.QDRANT_BIN);
    return binary !== undefined
      ? qdrantRecipe(binary)
      : `no Qdrant binary at ${qdrantBinary ?? process.env.QDRANT_BIN ?? sharedQdrantDir(repoRoot)} (set QDRANT_BIN to qdrant-X.Y.Z-x86_64-linux.gz or a folder holding it)`;
  }
  return dockerfileRecipe({ key, name: IMAGE_NAMES[key], dockerfile: join(repoRoot, "docker", `${key}.Dockerfile`), context: repoRoot });
}

/** Removes this image's archives for other inputs: only the newest is kept. */
function pruneOthers(cacheDir: string, key: string, keep: string): void {
  for (const name of readdirSync(cacheDir)) {
    if (name.startsWith(`${key}-`) && /\.oci\.(tar|json)$/.test(name) && !name.startsWith(keep))
      rmSync(join(cacheDir, name), { force: true });
  }
}

async function ensureImage(
  recipe: ImageRecipe,
  key: ImageKey,
  base: BaseImage,
  cacheDir: string,
  progress: (line: string) => void,
): Promise<BuiltImage> {
  const hash = await recipe.inputHash(base);
  const stem = `${key}-${hash.slice(0, 16)}`;
  const archivePath = join(cacheDir, `${stem}.oci.tar`);
  const receipt = join(cacheDir, `${stem}.oci.json`);
  if (existsSync(archivePath) && existsSync(receipt)) {
    const archive = JSON.parse(readFileSync(receipt, "utf8")) as OciArchive;
    progress(`${key}: ${recipe.name} cached, inputs unchanged (${archivePath})`);
    return { ...archive, key, built: false, inputHash: hash };
  }
  const started = performance.now();
  progress(`${key}: building ${recipe.name}…`);
  const work = join(cacheDir, `${stem}.tmp-${process.pid}`);
  rmSync(work, { recursive: true, force: true });
  mkdirSync(work, { recursive: true });
  try {
    const own = await recipe.build(base, work, (line) => progress(`${key}: ${line}`));
    const archive = writeOciArchive(
      {
        name: recipe.name,
        config: own.config,
        layers: [base.layer, ...own.layers.map((layer) => layer.blob)],
        history: [
          `Debian ${base.suite} minbase + ${base.packages.join(", ")} + Node ${base.nodeVersion} (scripts/image/base.ts)`,
          ...own.layers.map((layer) => layer.createdBy),
        ],
      },
      archivePath,
    );
    // The receipt is written last: an archive without one is rebuilt.
    writeFileSync(`${receipt}.tmp-${process.pid}`, `${JSON.stringify(archive, null, 2)}\n`);
    renameSync(`${receipt}.tmp-${process.pid}`, receipt);
    pruneOthers(cacheDir, key, stem);
    const ownSize = own.layers.reduce((total, layer) => total + layer.blob.size, 0);
    progress(
      `${key}: built in ${elapsed(started)}: its layer ${mib(ownSize)} on the base's ${mib(base.layer.size)}, archive ${mib(archive.size)} at ${archivePath}`,
    );
    return { ...archive, key, built: true, inputHash: hash };
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
}

/**
 * Builds the platform's images (each only when its inputs changed) and, given a containerd socket,
 * imports those it does not hold at the same digest. Needs root (debootstrap, the dry build's
 * namespaces); the first run takes minutes, an unchanged one about a second.
 */
export async function ensureImages(options: EnsureImagesOptions = {}): Promise<EnsuredImages> {
  const progress = options.onProgress ?? (() => undefined);
  const repoRoot = resolve(options.repoRoot ?? defaultRepo);
  const cacheDir = options.cacheDir ?? imageCacheDir();
  mkdirSync(cacheDir, { recursive: true });
  const started = performance.now();
  const base = await ensureBase({ cacheDir, onProgress: progress });
  const images: BuiltImage[] = [];
  const skipped: { key: ImageKey; reason: string }[] = [];
  for (const key of options.images ?? IMAGE_KEYS) {
    const recipe = recipeFor(key, repoRoot, options.qdrantBinary);
    if (typeof recipe === "string") {
      progress(`${key}: skipped: ${recipe}`);
      skipped.push({ key, reason: recipe });
      continue;
    }
    images.push(await ensureImage(recipe, key, base, cacheDir, progress));
  }
  progress(`images ready in ${elapsed(started)}`);
  const address = options.containerdAddress ?? containerdAddress();
  const imported =
    address === undefined
      ? undefined
      : await importImages(images, { address, namespace: options.namespace ?? "k8s.io", onProgress: progress });
  return { base, images, skipped, imported };
}
