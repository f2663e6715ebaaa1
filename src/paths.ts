import { readFileSync } from "node:fs";
import { dirname, join, relative } from "node:path";
import { fileURLToPath } from "node:url";

/** A path as the user can type it from `cwd`: relative when it is below `cwd`, absolute elsewhere. */
export function typablePath(cwd: string, path: string): string {
  const shown = relative(cwd, path);
  return shown === "" || shown.startsWith("..") ? path : shown;
}

/**
 * The package's root folder (where package.json names "diatonic"), found upwards from this module: the
 * same answer from the TypeScript sources, the compiled dist/ and the bundled CLI, whose modules sit
 * at different depths.
 */
export const PACKAGE_ROOT: string = (() => {
  let dir = dirname(fileURLToPath(import.meta.url));
  for (;;) {
    try {
      if ((JSON.parse(readFileSync(join(dir, "package.json"), "utf8")) as { name?: unknown }).name === "diatonic") return dir;
    } catch {
      // No package.json here, or not ours.
    }
    const parent = dirname(dir);
    if (parent === dir) throw new Error(`diatonic's package.json was not found above ${fileURLToPath(import.meta.url)}`);
    dir = parent;
  }
})();
