// `npm run image:dry-build -- [DOCKERFILE ...] [--out DIR]`: builds our Dockerfiles with the dry build
// (no container engine needed; see dry-build.ts), with progress, and prints what each image is.
import { parseArgs } from "node:util";
import { join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { dryBuild, dryBuildUnavailable } from "./dry-build.ts";

const repo = fileURLToPath(new URL("../..", import.meta.url));
const usage =
  "usage: npm run image:dry-build -- [DOCKERFILE ...] [--out DIR]   (default: docker/gateway.Dockerfile docker/engine.Dockerfile, out/images)";

let parsed;
try {
  parsed = parseArgs({ options: { out: { type: "string" }, help: { type: "boolean", short: "h" } }, allowPositionals: true, strict: true });
} catch (error) {
  console.error(`image:dry-build: ${(error as Error).message}\n${usage}`);
  process.exit(2);
}
if (parsed.values.help) {
  console.log(usage);
  process.exit(0);
}
const unavailable = dryBuildUnavailable();
if (unavailable !== undefined) {
  console.error(`image:dry-build: ${unavailable}`);
  process.exit(1);
}
const files =
  parsed.positionals.length > 0
    ? parsed.positionals.map((file) => resolve(file))
    : ["gateway", "engine"].map((name) => join(repo, "docker", `${name}.Dockerfile`));
const out = resolve(parsed.values.out ?? join(repo, "out", "images"));
for (const [index, file] of files.entries()) {
  try {
    const image = dryBuild({ dockerfile: file, context: repo, dir: join(out, String(index)), onProgress: (line) => console.error(line) });
    console.log(
      `${file}: adds ${(image.addedBytes / 2 ** 20).toFixed(0)} MiB to ${image.base}; runs ${JSON.stringify([...image.entrypoint, ...image.cmd])} as ${image.user} in ${image.workdir}; root folder ${image.root}`,
    );
  } catch (error) {
    console.error(`image:dry-build: ${(error as Error).message}`);
    process.exit(1);
  }
}
