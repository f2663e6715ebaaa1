// qdrant/qdrant:vX.Y.Z from Qdrant's server binary (no registry serves the official image here), laid
// out as the official image is: WORKDIR /qdrant, the binary ./qdrant, config/ beside it, storage/
// and snapshots/ for the volumes, RUN_MODE=production (so the pod's config/production.yaml is read),
// but run as uid 1000 as the rendered StatefulSet asks. Qdrant's web UI (static/) is not included.
import { spawnSync } from "node:child_process";
import { chmodSync, chownSync, createReadStream, createWriteStream, existsSync, mkdirSync, readFileSync, readdirSync, statSync, writeFileSync } from "node:fs";
import { basename, dirname, join, resolve } from "node:path";
import { Transform } from "node:stream";
import { pipeline } from "node:stream/promises";
import { createGunzip } from "node:zlib";
import { createHash } from "node:crypto";
import { InputError, WorldError } from "../../src/errors.ts";
import { builderSources, inputHash, sha256File } from "./cache.ts";
import { allEntries, layerEntries, writeLayer } from "./layer.ts";
import { missingLibraries } from "./libraries.ts";
import { mergeEnv, type ImageRecipe } from "./recipe.ts";

const UID = 1000;
const FILE_NAME = /^qdrant-(\d+\.\d+\.\d+)-x86_64-linux(\.gz)?$/;
/** The image's own defaults; the pod's config/production.yaml (RUN_MODE) overrides them. */
const CONFIG = `storage:
  storage_path: /qdrant/storage
  snapshots_path: /qdrant/snapshots
service:
  http_port: 6333
  grpc_port: 6334
cluster:
  p2p:
    port: 6335
telemetry_disabled: true
`;

export interface QdrantBinary {
  /** The file: `qdrant-X.Y.Z-x86_64-linux.gz` (or not gzipped). */
  readonly path: string;
  readonly version: string;
  readonly gzipped: boolean;
}

/**
 * Qdrant's binary: `binary` if given, else $QDRANT_BIN, else the one in <repoRoot>/../shared/tools/qdrant.
 * A folder is searched for `qdrant-X.Y.Z-x86_64-linux(.gz)`. Undefined when there is none.
 */
export function findQdrant(repoRoot: string, binary: string | undefined = process.env.QDRANT_BIN): QdrantBinary | undefined {
  const where = resolve(binary ?? join(repoRoot, "..", "shared", "tools", "qdrant"));
  if (!existsSync(where)) return undefined;
  const candidates = statSync(where).isDirectory() ? readdirSync(where).filter((name) => FILE_NAME.test(name)).map((name) => join(where, name)) : [where];
  const path = candidates.sort().at(-1);
  if (path === undefined) return undefined;
  const named = FILE_NAME.exec(basename(path));
  if (named !== null) return { path, version: named[1] as string, gzipped: named[2] !== undefined };
  // A plain binary under another name says its version itself.
  const said = /(\d+\.\d+\.\d+)/.exec(spawnSync(path, ["--version"], { encoding: "utf8" }).stdout ?? "")?.[1];
  if (said === undefined) throw new InputError(`${path} is not a Qdrant binary (\`${path} --version\` names no version)`, "point QDRANT_BIN at qdrant-X.Y.Z-x86_64-linux(.gz) or a folder holding it");
  return { path, version: said, gzipped: false };
}

/** The checksum SHA256SUMS beside the binary gives for it (of the gunzipped file), if there is one. */
function expectedSum(binary: QdrantBinary): string | undefined {
  const sums = join(dirname(binary.path), "SHA256SUMS");
  if (!existsSync(sums)) return undefined;
  const unpacked = basename(binary.path).replace(/\.gz$/, "");
  for (const line of readFileSync(sums, "utf8").split("\n")) {
    const [sum, file] = line.trim().split(/\s+/);
    if (sum !== undefined && file?.replace(/^\*/, "") === unpacked) return sum;
  }
  return undefined;
}

/** Copies (gunzipping if need be) the binary to `to`; returns the sha256 of what was written. */
async function unpack(binary: QdrantBinary, to: string): Promise<string> {
  const hash = createHash("sha256");
  const hashing = new Transform({
    transform(chunk: Buffer, _encoding, done) {
      hash.update(chunk);
      done(null, chunk);
    },
  });
  if (binary.gzipped) await pipeline(createReadStream(binary.path), createGunzip(), hashing, createWriteStream(to));
  else await pipeline(createReadStream(binary.path), hashing, createWriteStream(to));
  chmodSync(to, 0o755);
  return hash.digest("hex");
}

export function qdrantRecipe(binary: QdrantBinary): ImageRecipe {
  // As the kubelet normalizes `qdrant/qdrant:vX` (Docker Hub's implicit domain), so must containerd's name be.
  const name = `docker.io/qdrant/qdrant:v${binary.version}`;
  return {
    key: "qdrant",
    name,
    async inputHash(base) {
      return inputHash([
        ...builderSources(["qdrant-image.ts", "layer.ts", "libraries.ts", "oci.ts"]),
        ["name", name],
        ["base", base.hash],
        ["config", CONFIG],
        ["binary", await sha256File(binary.path)],
      ]);
    },
    async build(base, work, progress) {
      const root = join(work, "root");
      const app = join(root, "qdrant");
      for (const dir of ["config", "storage", "snapshots"]) mkdirSync(join(app, dir), { recursive: true, mode: 0o755 });
      const sum = await unpack(binary, join(app, "qdrant"));
      const expected = expectedSum(binary);
      if (expected === undefined) progress(`qdrant: no SHA256SUMS entry beside ${binary.path}: its checksum is not checked`);
      else if (expected !== sum) throw new WorldError(`${binary.path}: sha256 ${sum} after unpacking, SHA256SUMS says ${expected}`, "the binary is damaged or not the one SHA256SUMS lists: fetch it again");
      const said = spawnSync(join(app, "qdrant"), ["--version"], { encoding: "utf8" });
      if (said.status !== 0 || !said.stdout.includes(binary.version)) throw new WorldError(`${binary.path}: \`qdrant --version\` says ${JSON.stringify((said.stdout || said.stderr).trim())}, not ${binary.version}`, "name the file after the version it is");
      writeFileSync(join(app, "config", "config.yaml"), CONFIG, { mode: 0o644 });
      // As the official image built with USER_ID: the app folder and its data folders belong to the user.
      for (const dir of [app, join(app, "storage"), join(app, "snapshots")]) chownSync(dir, UID, UID);
      const entries = layerEntries(root, allEntries);
      const missing = missingLibraries(root, entries, base);
      if (missing.length > 0) throw new WorldError(`${name}: the base image lacks ${missing.map((need) => need.library).join(", ")}, which Qdrant loads`, "add the Debian package that ships them to BASE_PACKAGES in scripts/image/base.ts");
      const blob = await writeLayer(root, entries, join(work, "layer.tar.gz"));
      return {
        config: {
          env: mergeEnv(base.env, { TZ: "Etc/UTC", RUN_MODE: "production" }),
          workdir: "/qdrant",
          user: `${UID}:${UID}`,
          entrypoint: ["/qdrant/qdrant"],
          cmd: [],
          exposed: ["6333", "6334", "6335"],
        },
        layers: [{ blob, createdBy: `${basename(binary.path)} (sha256 ${sum}) as /qdrant/qdrant, config/config.yaml, storage/ and snapshots/ for uid ${UID}` }],
      };
    },
  };
}
