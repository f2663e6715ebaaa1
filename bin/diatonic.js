#!/usr/bin/env node
// Runs the bundled CLI (dist/bundle/, made by the install step) when it is current, else the
// TypeScript sources through tsx, so an edited checkout never runs stale code. Images run tsc's dist/
// (DIATONIC_USE_DIST=1); DIATONIC_USE_DIST=0 forces the sources.
import { pathToFileURL } from "node:url";
import { BUNDLE_DIR, BUNDLE_MAIN, cliBundleStale, DIST_MAIN } from "./cli-build.mjs";
import { runCached } from "./code-cache.mjs";

const choice = process.env.DIATONIC_USE_DIST;
if (choice === "1") {
  await import(pathToFileURL(DIST_MAIN).href);
} else if (choice !== "0" && !cliBundleStale()) {
  // render, validate, plan… from the CommonJS build with V8's code cache (bin/code-cache.mjs); the rest as ES modules.
  if (!runCached(BUNDLE_DIR, process.argv[2])) await import(pathToFileURL(BUNDLE_MAIN).href);
} else {
  const { register } = await import("tsx/esm/api");
  register();
  await import(new URL("../src/cli/main.ts", import.meta.url).href);
}
