// Whether dist/ (the compiled CLI) is current: its stamp is newer than every file under src/ and
// than package.json. Shared by bin/diatonic.js (which runs dist/ only when it is current, else the
// TypeScript sources through tsx) and scripts/ensure-deps.mjs (which compiles it when it is not). In bin/ because the images carry bin/ (they run dist/ with DIATONIC_USE_DIST=1).
import { existsSync, readdirSync, statSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";

const ROOT = fileURLToPath(new URL("..", import.meta.url));
export const CLI_STAMP = join(ROOT, "dist", ".built");
export const CLI_MAIN = join(ROOT, "dist", "cli", "main.js");

/** The newest modification time under a folder, in ms (about 3 ms for src/'s ~300 files). */
function newest(dir) {
  let latest = statSync(dir).mtimeMs;
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    const path = join(dir, entry.name);
    latest = Math.max(latest, entry.isDirectory() ? newest(path) : statSync(path).mtimeMs);
  }
  return latest;
}

export function cliBuildStale() {
  if (!existsSync(CLI_STAMP) || !existsSync(CLI_MAIN)) return true;
  const built = statSync(CLI_STAMP).mtimeMs;
  return newest(join(ROOT, "src")) > built || statSync(join(ROOT, "package.json")).mtimeMs > built || statSync(join(ROOT, "tsconfig.build.json")).mtimeMs > built;
}
