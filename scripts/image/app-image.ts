// An image built from one of our Dockerfiles: the dry build (dry-build.ts) runs every stage, and the
// final stage's own files — what the Dockerfile added, not the machine's stand-ins for the base —
// become one layer on the real base.
import { lstatSync, readFileSync, readdirSync } from "node:fs";
import { join, posix, relative } from "node:path";
import { InputError, WorldError } from "../../src/errors.ts";
import type { BaseImage } from "./base.ts";
import { builderSources, inputHash, sha256 } from "./cache.ts";
import { parseDockerfile } from "./dockerfile.ts";
import { contextFiles, dryBuild, dryBuildUnavailable, STAND_INS } from "./dry-build.ts";
import { layerEntries, writeLayer, type EntryChoice } from "./layer.ts";
import { missingLibraries } from "./libraries.ts";
import { mergeEnv, type ImageRecipe } from "./recipe.ts";

export interface DockerfileRecipeOptions {
  /** Short name, e.g. `gateway`. */
  readonly key: string;
  /** Full reference, e.g. `ghcr.io/diatonic-ai/gateway:0.1.0`. */
  readonly name: string;
  /** The Dockerfile (absolute). */
  readonly dockerfile: string;
  /** The build context: a git checkout (absolute). */
  readonly context: string;
}

/** The context files the Dockerfile copies (COPY without --from), with package-lock.json always: sorted relative paths. */
function copiedFiles(dockerfile: string, context: string): string[] {
  const sources = parseDockerfile(readFileSync(dockerfile, "utf8"), dockerfile).flatMap((instruction) =>
    instruction.kind === "COPY" && instruction.from === undefined
      ? instruction.sources.map((source) =>
          posix
            .normalize(source)
            .replace(/^\.\/?/, "")
            .replace(/\/+$/, ""),
        )
      : [],
  );
  const files = [...contextFiles(context)].filter(
    (file) => file === "package-lock.json" || sources.some((source) => source === "" || file === source || file.startsWith(`${source}/`)),
  );
  return files.sort();
}

/**
 * Which of the dry stage's paths are the image's own: stand-ins are left out, and the base's folders
 * are not repeated (so a Dockerfile that changes the mode or owner of a base folder is not carried; none of ours does).
 */
function ownPaths(base: BaseImage): (path: string, isDirectory: boolean) => EntryChoice {
  const standIns = new Set(STAND_INS);
  return (path, isDirectory) => {
    if (standIns.has(path)) return "skip";
    return isDirectory && base.paths.get(path) === "dir" ? "descend" : "emit";
  };
}

export function dockerfileRecipe(options: DockerfileRecipeOptions): ImageRecipe {
  const { key, name, dockerfile, context } = options;
  const shown = relative(context, dockerfile);
  return {
    key,
    name,
    async inputHash(base) {
      const parts: [string, string][] = [
        ...builderSources(["app-image.ts", "dry-build.ts", "dockerfile.ts", "layer.ts", "libraries.ts", "oci.ts"]),
        ["name", name],
        ["base", base.hash],
        ["dockerfile", readFileSync(dockerfile, "utf8")],
      ];
      for (const file of copiedFiles(dockerfile, context)) {
        const path = join(context, file);
        parts.push([`file ${file} ${(lstatSync(path).mode & 0o777).toString(8)}`, sha256(readFileSync(path))]);
      }
      return inputHash(parts);
    },
    async build(base, work, progress) {
      const unavailable = dryBuildUnavailable();
      if (unavailable !== undefined)
        throw new InputError(`cannot build ${name} from ${shown}: ${unavailable}`, "run `npm run cluster:images` as root on Linux");
      const image = dryBuild({ dockerfile, context, dir: join(work, "stages"), onProgress: (line) => progress(line) });
      // The machine's /usr is bound there only while a step runs: anything left in the folder was written around it.
      const leftInUsr = readdirSync(join(image.root, "usr"));
      if (leftInUsr.length > 0)
        throw new WorldError(
          `${shown}: the dry build left files in /usr (${leftInUsr.join(", ")})`,
          "a Dockerfile step must not write to /usr: the base image owns it",
        );
      const entries = layerEntries(image.root, ownPaths(base));
      const missing = missingLibraries(image.root, entries, base);
      if (missing.length > 0) {
        const list = missing.map((need) => `/${need.file} needs ${need.library}`).join("; ");
        throw new WorldError(
          `${name}: the base image lacks libraries that ${shown}'s files load: ${list}`,
          "add the Debian package that ships them to BASE_PACKAGES in scripts/image/base.ts",
        );
      }
      progress(`writing its layer (${entries.length} entries, ${(image.addedBytes / 2 ** 20).toFixed(0)} MiB)…`);
      const blob = await writeLayer(image.root, entries, join(work, "layer.tar.gz"));
      return {
        config: {
          env: mergeEnv(base.env, image.env),
          workdir: image.workdir,
          user: image.user,
          entrypoint: image.entrypoint,
          cmd: image.cmd,
          exposed: image.exposed,
        },
        layers: [{ blob, createdBy: `${shown}: the final stage's own files (dry build)` }],
      };
    },
  };
}
