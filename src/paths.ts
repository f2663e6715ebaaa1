import { relative } from "node:path";

/** A path as the user can type it from `cwd`: relative when it is below `cwd`, absolute elsewhere. */
export function typablePath(cwd: string, path: string): string {
  const shown = relative(cwd, path);
  return shown === "" || shown.startsWith("..") ? path : shown;
}
