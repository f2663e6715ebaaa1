// Makes a checkout ready to run, so the README's two commands work on a fresh clone: installs the
// locked dependencies when node_modules does not hold what package-lock.json locks, builds the web
// console when its build is stale, and bundles the CLI into dist/bundle/ (what bin/diatonic.js runs when
// it is current) when it is stale. Each step is a no-op, in milliseconds, when nothing changed.
import { execFileSync } from "node:child_process";
import { createHash } from "node:crypto";
import { existsSync, readFileSync, statSync, writeFileSync } from "node:fs";
import { buildCliBundle, cliBundleStale } from "../bin/cli-build.mjs";

// A stamp of the lock file's content, not a time: a checkout's or a worktree's files have new times
// with the same content, and a reinstall for nothing deletes node_modules under whoever uses it.
const lock = "package-lock.json";
const stamp = "node_modules/.diatonic-lock.sha256";
const lockHash = createHash("sha256").update(readFileSync(lock)).digest("hex");
const hidden = "node_modules/.package-lock.json";
if (!existsSync(stamp) && existsSync(hidden) && statSync(hidden).mtimeMs >= statSync(lock).mtimeMs) {
  // Installed before stamps existed, and not older than the lock: take it as current.
  writeFileSync(stamp, `${lockHash}\n`);
}
if (!existsSync(stamp) || readFileSync(stamp, "utf8").trim() !== lockHash) {
  console.error("diatonic: installing dependencies (npm ci)…");
  execFileSync("npm", ["ci", "--no-audit", "--no-fund", "--loglevel=error"], { stdio: "inherit" });
  writeFileSync(stamp, `${lockHash}\n`);
}
// The console's build compares a hash of its inputs with the one it recorded: fast when nothing changed.
execFileSync(process.execPath, ["--import", "tsx", "scripts/console/build.ts", "--if-stale"], { stdio: "inherit" });
if (process.env["DIATONIC_USE_DIST"] !== "0" && cliBundleStale()) {
  console.error("diatonic: bundling the CLI into dist/bundle/ (esbuild; once per change of src/)…");
  await buildCliBundle();
}
