// qdrant/qdrant:vX.Y.Z from Qdrant's server binary (no registry serves the official image here), laid
// out as the official image is: WORKDIR /qdrant, the binary ./qdrant, config/ beside it, storage/
// and snapshots/ for the volumes, RUN_MODE=production (so the pod's config/production.yaml is read),
// but run as uid 1000 as the rendered StatefulSet asks. Qdrant's web UI (static/) is not included.
import { spawnSync } from "node:child_process";
import { chownSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { basename, join } from "node:path";
import { WorldError } from "../../src/errors.ts";
import { expectedSum, unpackQdrant, type QdrantBinary } from "../../src/rag/qdrant-binary.ts";
import { builderSources, inputHash, sha256File } from "./cache.ts";
import { allEntries, layerEntries, writeLayer } from "./layer.ts";
import { missingLibraries } from "./libraries.ts";
import { mergeEnv, type ImageRecipe } from "./recipe.ts";

const UID = 1000;
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

export function qdrantRecipe(binary: QdrantBinary): ImageRecipe {
  // As the kubelet normalizes `qdrant/qdrant:vX` (Docker Hub's implicit domain), so must containerd's name be.
  const name = `docker.io/qdrant/qdrant:v${binary.version}`;
  return {
    key: "qdrant",
    name,
    async inputHash(base) {
      return inputHash([
        ...builderSources(["qdrant-image.ts", "layer.ts", "libraries.ts", "oci.ts"]),
        ["builder qdrant-binary.ts", readFileSync(new URL("../../src/rag/qdrant-binary.ts", import.meta.url), "utf8")],
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
      const sum = await unpackQdrant(binary, join(app, "qdrant"));
      const expected = expectedSum(binary);
      if (expected === undefined) progress(`qdrant: no SHA256SUMS entry beside ${binary.path}: its checksum is not checked`);
      else if (expected !== sum)
        throw new WorldError(
          `${binary.path}: sha256 ${sum} after unpacking, SHA256SUMS says ${expected}`,
          "the binary is damaged or not the one SHA256SUMS lists: fetch it again",
        );
      const said = spawnSync(join(app, "qdrant"), ["--version"], { encoding: "utf8" });
      if (said.status !== 0 || !said.stdout.includes(binary.version))
        throw new WorldError(
          `${binary.path}: \`qdrant --version\` says ${JSON.stringify((said.stdout || said.stderr).trim())}, not ${binary.version}`,
          "name the file after the version it is",
        );
      writeFileSync(join(app, "config", "config.yaml"), CONFIG, { mode: 0o644 });
      // As the official image built with USER_ID: the app folder and its data folders belong to the user.
      for (const dir of [app, join(app, "storage"), join(app, "snapshots")]) chownSync(dir, UID, UID);
      const entries = layerEntries(root, allEntries);
      const missing = missingLibraries(root, entries, base);
      if (missing.length > 0)
        throw new WorldError(
          `${name}: the base image lacks ${missing.map((need) => need.library).join(", ")}, which Qdrant loads`,
          "add the Debian package that ships them to BASE_PACKAGES in scripts/image/base.ts",
        );
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
        layers: [
          {
            blob,
            createdBy: `${basename(binary.path)} (sha256 ${sum}) as /qdrant/qdrant, config/config.yaml, storage/ and snapshots/ for uid ${UID}`,
          },
        ],
      };
    },
  };
}
