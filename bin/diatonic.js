#!/usr/bin/env node
// Runs the compiled CLI (dist/, built by the install step) when it is current, else the TypeScript
// sources through tsx, so an edited checkout never runs stale code. DIATONIC_USE_DIST=0 forces the
// sources, =1 the compiled build.
import { pathToFileURL } from "node:url";
import { CLI_MAIN, cliBuildStale } from "./cli-build.mjs";

const choice = process.env.DIATONIC_USE_DIST;
if (choice === "1" || (choice !== "0" && !cliBuildStale())) {
  await import(pathToFileURL(CLI_MAIN).href);
} else {
  const { register } = await import("tsx/esm/api");
  register();
  await import(new URL("../src/cli/main.ts", import.meta.url).href);
}
