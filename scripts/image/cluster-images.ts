// `npm run cluster:images -- [--image NAME ...] [--address SOCKET] [--namespace NS]`: builds the
// platform's images as OCI archives (see images.ts) and imports them into the test cluster's
// containerd when its socket is known (--address, $DIATONIC_CONTAINERD_ADDRESS, or the real node's
// containerd of the test cluster that runs; `cluster:up` does the same on its own).
import { existsSync } from "node:fs";
import { parseArgs } from "node:util";
import { clusterPaths } from "../cluster/config.ts";
import { containerdPaths } from "../cluster/containerd.ts";
import { InputError, WorldError } from "../../src/errors.ts";
import { mib } from "./cache.ts";
import { ensureImages, IMAGE_KEYS, type ImageKey } from "./images.ts";

const usage = `usage: npm run cluster:images -- [--image ${IMAGE_KEYS.join("|")} ...] [--address SOCKET] [--namespace NS]
  --address    containerd's socket to import into (default: $DIATONIC_CONTAINERD_ADDRESS, else the test
               cluster's real node when it runs; none: build only)
  --namespace  containerd namespace (default: k8s.io, the kubelet's)
  Qdrant's binary is taken from $QDRANT_BIN, else ../shared/tools/qdrant beside the checkout.`;

function fail(error: unknown): never {
  if (error instanceof InputError || error instanceof WorldError) {
    console.error(`cluster:images: ${error.message}`);
    if (error.fix) console.error(`  fix: ${error.fix}`);
    process.exit(error instanceof InputError ? 2 : 1);
  }
  throw error;
}

let parsed;
try {
  parsed = parseArgs({
    options: {
      image: { type: "string", multiple: true },
      address: { type: "string" },
      namespace: { type: "string" },
      help: { type: "boolean", short: "h" },
    },
    allowPositionals: false,
    strict: true,
  });
} catch (error) {
  console.error(`cluster:images: ${(error as Error).message}\n${usage}`);
  process.exit(2);
}
if (parsed.values.help) {
  console.log(usage);
  process.exit(0);
}
const unknown = (parsed.values.image ?? []).filter((name) => !(IMAGE_KEYS as readonly string[]).includes(name));
if (unknown.length > 0) {
  console.error(`cluster:images: unknown image ${unknown.join(", ")}\n${usage}`);
  process.exit(2);
}

/** The running test cluster's containerd (its real node), if there is one. */
function clusterContainerd(): string | undefined {
  const { socket } = containerdPaths(clusterPaths().nodeDir);
  return existsSync(socket) ? socket : undefined;
}

try {
  const result = await ensureImages({
    images: parsed.values.image as ImageKey[] | undefined,
    containerdAddress: parsed.values.address ?? (process.env.DIATONIC_CONTAINERD_ADDRESS || clusterContainerd()),
    namespace: parsed.values.namespace,
    onProgress: (line) => console.error(line),
  });
  for (const image of result.images) {
    const imported = result.imported?.find((entry) => entry.name === image.name);
    const state = imported === undefined ? "" : imported.action === "present" ? ", already in containerd" : ", imported";
    console.log(
      `${image.name}  ${image.manifestDigest.slice(0, 19)}…  ${mib(image.size)}  ${image.built ? "built" : "cached"}${state}\n  ${image.path}`,
    );
  }
  for (const skipped of result.skipped) console.log(`${skipped.key}: not built: ${skipped.reason}`);
  if (result.imported === undefined)
    console.log(
      "no containerd given ($DIATONIC_CONTAINERD_ADDRESS or --address): built only; import with `ctr -n k8s.io images import --all-platforms ARCHIVE`",
    );
} catch (error) {
  fail(error);
}
