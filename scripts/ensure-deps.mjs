// Installs the locked dependencies when node_modules is missing or older than the lock file, and
// builds the web console when its build is missing or stale, so the README's two commands work on a
// fresh clone.
import { execFileSync } from "node:child_process";
import { existsSync, statSync } from "node:fs";

const lock = "package-lock.json";
const marker = "node_modules/.package-lock.json";
const stale = !existsSync(marker) || statSync(marker).mtimeMs < statSync(lock).mtimeMs;
if (stale) {
  console.error("diatonic: installing dependencies (npm ci)…");
  execFileSync("npm", ["ci", "--no-audit", "--no-fund", "--loglevel=error"], { stdio: "inherit" });
}
// The console's build compares a hash of its inputs with the one it recorded: fast when nothing changed.
execFileSync(process.execPath, ["--import", "tsx", "scripts/console/build.ts", "--if-stale"], { stdio: "inherit" });
