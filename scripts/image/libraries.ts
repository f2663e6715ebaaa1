// The shared libraries an image's own binaries (Node addons, llama.cpp's, Qdrant) need and the base
// lacks. A missing one only shows when the container starts, as a dlopen error deep in a log: here it
// fails the build and names the library.
import { spawnSync } from "node:child_process";
import { closeSync, lstatSync, openSync, readSync } from "node:fs";
import { basename, join } from "node:path";
import type { BaseImage } from "./base.ts";

const ELF = Buffer.from([0x7f, 0x45, 0x4c, 0x46]);
/** Where the dynamic loader looks in a Debian root (merged /usr). */
const LIBRARY_DIR = /^(usr\/)?(local\/)?lib(32|64|x32)?\//;

function isElf(path: string): boolean {
  const head = Buffer.alloc(4);
  const fd = openSync(path, "r");
  try {
    return readSync(fd, head, 0, 4, 0) === 4 && head.equals(ELF);
  } finally {
    closeSync(fd);
  }
}

export interface NeededLibrary {
  /** The image's file, relative to its root. */
  readonly file: string;
  /** The library's name (soname), or the loader's path. */
  readonly library: string;
}

/** What `ldd` says `file` loads from outside `root` (loaders and libraries), "not found" ones included. */
function neededOutside(root: string, file: string): string[] {
  const result = spawnSync("ldd", [join(root, file)], { encoding: "utf8" });
  // Static binaries and non-executable ELF objects (e.g. debug files) have nothing to load.
  if (result.status !== 0) return [];
  return result.stdout.split("\n").flatMap((line) => {
    const linked = /^\s*(\S+) => (\S+)/.exec(line);
    if (linked !== null) return linked[2]?.startsWith(`${root}/`) ? [] : [linked[1] as string];
    const loader = /^\s*(\/\S+) \(0x/.exec(line);
    return loader !== null ? [loader[1] as string] : [];
  });
}

/** The libraries `entries` of `root` need that neither the base nor the image itself has. */
export function missingLibraries(root: string, entries: readonly string[], base: BaseImage): NeededLibrary[] {
  const provided = new Set<string>();
  for (const path of base.paths.keys()) if (LIBRARY_DIR.test(path)) provided.add(basename(path));
  for (const entry of entries) if (LIBRARY_DIR.test(entry)) provided.add(basename(entry));
  const missing: NeededLibrary[] = [];
  for (const file of entries) {
    if (!lstatSync(join(root, file)).isFile() || !isElf(join(root, file))) continue;
    for (const library of neededOutside(root, file)) {
      if (!provided.has(basename(library))) missing.push({ file, library });
    }
  }
  return missing;
}
