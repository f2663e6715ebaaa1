// An image as an OCI image layout in one tar archive (oci-layout, index.json, blobs/sha256/…), the
// format `ctr images import` reads. index.json names the image twice: containerd takes its full
// name from io.containerd.image.name; other tools read the tag from org.opencontainers.image.ref.name.
import { spawnSync } from "node:child_process";
import { copyFileSync, linkSync, mkdirSync, renameSync, rmSync, statSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { WorldError } from "../../src/errors.ts";
import { sha256 } from "./cache.ts";
import { LAYER_MTIME, type LayerBlob } from "./layer.ts";

export const MediaType = {
  index: "application/vnd.oci.image.index.v1+json",
  manifest: "application/vnd.oci.image.manifest.v1+json",
  config: "application/vnd.oci.image.config.v1+json",
  layer: "application/vnd.oci.image.layer.v1.tar+gzip",
} as const;

/** What the image runs and how: the fields of the config's `config` object that our Dockerfiles set. */
export interface RunConfig {
  /** `KEY=value`, the base's first, as a runtime reads them. */
  readonly env: readonly string[];
  readonly workdir: string;
  /** `UID:GID` or a name. */
  readonly user: string;
  readonly entrypoint: readonly string[];
  readonly cmd: readonly string[];
  /** `8080` or `8080/tcp`. */
  readonly exposed: readonly string[];
}

export interface OciImage {
  /** The full reference containerd and the kubelet know it by, e.g. `ghcr.io/diatonic-ai/gateway:0.1.0`. */
  readonly name: string;
  readonly config: RunConfig;
  /** Bottom first. */
  readonly layers: readonly LayerBlob[];
  /** One line per layer saying what made it (the config's history). */
  readonly history: readonly string[];
}

export interface OciArchive {
  readonly path: string;
  readonly name: string;
  /** `sha256:…` of the manifest: the digest containerd lists the image with. */
  readonly manifestDigest: string;
  readonly configDigest: string;
  /** Bytes of the archive. */
  readonly size: number;
}

interface Descriptor {
  readonly mediaType: string;
  readonly digest: string;
  readonly size: number;
}

const CREATED = new Date(LAYER_MTIME * 1000).toISOString();

/** The tag of a reference (`…:0.1.0` → `0.1.0`); a name without one is `latest`, as docker reads it. */
export function tagOf(name: string): string {
  const last = name.slice(name.lastIndexOf("/") + 1);
  return last.includes(":") ? last.slice(last.indexOf(":") + 1) : "latest";
}

function configJson(image: OciImage): string {
  const { config } = image;
  return JSON.stringify({
    created: CREATED,
    architecture: "amd64",
    os: "linux",
    config: {
      User: config.user,
      Env: config.env,
      Entrypoint: config.entrypoint,
      Cmd: config.cmd,
      WorkingDir: config.workdir,
      ExposedPorts: Object.fromEntries(config.exposed.map((port) => [port.includes("/") ? port : `${port}/tcp`, {}])),
    },
    rootfs: { type: "layers", diff_ids: image.layers.map((layer) => layer.diffId) },
    history: image.history.map((line) => ({ created: CREATED, created_by: line })),
  });
}

/** Hard-links a blob into the layout (same disk, no copy), or copies it where a link cannot be made. */
function placeBlob(from: string, blobs: string, digest: string): void {
  const to = join(blobs, digest.replace(/^sha256:/, ""));
  try {
    linkSync(from, to);
  } catch {
    copyFileSync(from, to);
  }
}

/** Writes the image as an OCI layout archive at `out` (through a temp file). */
export function writeOciArchive(image: OciImage, out: string): OciArchive {
  if (image.history.length !== image.layers.length)
    throw new Error(`${image.name}: ${image.layers.length} layers but ${image.history.length} history lines`);
  const staging = `${out}.tmp-${process.pid}.d`;
  const temp = `${out}.tmp-${process.pid}`;
  rmSync(staging, { recursive: true, force: true });
  const blobs = join(staging, "blobs", "sha256");
  mkdirSync(blobs, { recursive: true });
  try {
    const write = (mediaType: string, text: string): Descriptor => {
      const digest = `sha256:${sha256(text)}`;
      writeFileSync(join(blobs, digest.slice("sha256:".length)), text);
      return { mediaType, digest, size: Buffer.byteLength(text) };
    };
    for (const layer of image.layers) placeBlob(layer.path, blobs, layer.digest);
    const config = write(MediaType.config, configJson(image));
    const manifest = write(
      MediaType.manifest,
      JSON.stringify({
        schemaVersion: 2,
        mediaType: MediaType.manifest,
        config,
        layers: image.layers.map((layer) => ({ mediaType: MediaType.layer, digest: layer.digest, size: layer.size })),
      }),
    );
    const index = {
      schemaVersion: 2,
      mediaType: MediaType.index,
      manifests: [
        {
          ...manifest,
          platform: { architecture: "amd64", os: "linux" },
          annotations: { "io.containerd.image.name": image.name, "org.opencontainers.image.ref.name": tagOf(image.name) },
        },
      ],
    };
    writeFileSync(join(staging, "index.json"), JSON.stringify(index));
    writeFileSync(join(staging, "oci-layout"), JSON.stringify({ imageLayoutVersion: "1.0.0" }));
    const tar = spawnSync(
      "tar",
      [
        "--create",
        `--file=${temp}`,
        `--directory=${staging}`,
        "--sort=name",
        "--owner=0",
        "--group=0",
        "--numeric-owner",
        "--mode=a+r",
        "--format=posix",
        "--pax-option=exthdr.name=%d/PaxHeaders/%f,delete=atime,delete=ctime",
        `--mtime=@${LAYER_MTIME}`,
        "oci-layout",
        "index.json",
        "blobs",
      ],
      { encoding: "utf8" },
    );
    if (tar.status !== 0)
      throw new WorldError(`writing ${out} failed: ${tar.error?.message ?? tar.stderr.trim()}`, `check the disk space in ${out}'s folder`);
    renameSync(temp, out);
    return { path: out, name: image.name, manifestDigest: manifest.digest, configDigest: config.digest, size: statSync(out).size };
  } finally {
    rmSync(staging, { recursive: true, force: true });
    rmSync(temp, { force: true });
  }
}
