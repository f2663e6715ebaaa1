// Makes a checkout ready to run, so the README's two commands work on a fresh clone: installs the
// locked dependencies when node_modules does not hold what package-lock.json locks, builds the web
// console when its build is stale, and compiles the CLI into dist/ (what bin/diatonic.js runs when it
// is current) when it is stale. Each step is a no-op, in milliseconds, when nothing changed.
import { execFileSync, spawnSync } from "node:child_process";
import { createHash } from "node:crypto";
import { existsSync, readFileSync, statSync, writeFileSync } from "node:fs";
import { cliBuildStale, CLI_STAMP } from "../bin/cli-build.mjs";

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
if (process.env["DIATONIC_USE_DIST"] !== "0" && cliBuildStale()) {
  console.error("diatonic: compiling the CLI into dist/ (tsc; once per change of src/)…");
  const tsc = spawnSync(process.execPath, ["node_modules/typescript/bin/tsc", "-p", "tsconfig.build.json"], { stdio: ["ignore", "ignore", "inherit"] });
  // A checkout with type errors still runs: from its sources, through tsx (lint and typecheck say why).
  if (tsc.status === 0) writeFileSync(CLI_STAMP, `${new Date().toISOString()}\n`);
  else console.error("diatonic: the CLI did not compile (npm run typecheck says why); it runs from src/ through tsx meanwhile");
}
