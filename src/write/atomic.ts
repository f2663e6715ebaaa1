import { existsSync, mkdirSync, readdirSync, renameSync, rmSync, writeFileSync } from "node:fs";
import { basename, dirname, join } from "node:path";
import { InputError } from "../errors.ts";

export const TREE_MARKER = ".diatonic-render";

/**
 * Writes a whole directory tree or nothing: files go to a sibling temp directory that replaces the
 * target in two renames. A target that exists and was not written by diatonic is never overwritten.
 */
export function writeTreeAtomically(target: string, files: ReadonlyMap<string, string>): void {
  if (existsSync(target) && readdirSync(target).length > 0 && !existsSync(join(target, TREE_MARKER))) {
    throw new InputError(
      `output directory ${target} exists, is not empty and was not written by diatonic render`,
      "choose a new --out directory, or empty this one",
    );
  }
  const parent = dirname(target);
  mkdirSync(parent, { recursive: true });
  const staging = join(parent, `.${basename(target)}.tmp-${process.pid}-${Date.now()}`);
  const retired = join(parent, `.${basename(target)}.old-${process.pid}-${Date.now()}`);
  try {
    // Each folder made once: a recursive mkdir per file cost as much as a third of the writes.
    const made = new Set<string>();
    for (const [relativePath, content] of files) {
      const path = join(staging, relativePath);
      const folder = dirname(path);
      if (!made.has(folder)) {
        mkdirSync(folder, { recursive: true });
        made.add(folder);
      }
      writeFileSync(path, content);
    }
    if (existsSync(target)) renameSync(target, retired);
    renameSync(staging, target);
  } catch (error) {
    rmSync(staging, { recursive: true, force: true });
    if (existsSync(retired) && !existsSync(target)) renameSync(retired, target);
    throw error;
  }
  rmSync(retired, { recursive: true, force: true });
}

/** Writes one file through a temp file and a rename, so readers never see half of it. */
export function writeFileAtomically(path: string, content: string): void {
  mkdirSync(dirname(path), { recursive: true });
  const temp = join(dirname(path), `.${basename(path)}.tmp-${process.pid}`);
  writeFileSync(temp, content);
  renameSync(temp, path);
}
