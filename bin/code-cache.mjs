// Runs the CLI's CommonJS build (dist/bundle/cached/main.cjs, made with the bundle by bin/cli-build.mjs)
// with V8's code cache: Node 20 compiles megabytes of bundle on every start, and keeps no cache for ES
// modules (Node 22's module compile cache would). A command's first run that succeeds writes what V8
// compiled for it (functions run included) beside the script; later runs deserialize that instead of
// parsing and compiling (100 adapters: render --out ~100 ms less, validate ~70 ms less).
// V8 itself rejects a cache made by another V8, other flags or another script: the next run writes it
// again. DIATONIC_CODE_CACHE=0 runs the ES module bundle instead.
import { accessSync, existsSync, constants as fsConstants, readdirSync, readFileSync, renameSync, rmSync, writeFileSync } from "node:fs";
import { createRequire } from "node:module";
import { dirname, join } from "node:path";
import { constants, Script } from "node:vm";

/** The CommonJS build's folder inside a bundle folder: main.cjs, commands.json and the code caches. */
export const CACHED_DIR = "cached";

/** Where `command`'s code cache for this Node lives. */
export function codeCacheFile(bundleDir, command) {
  return join(bundleDir, CACHED_DIR, `${command}-${process.version}-${process.arch}.v8cache`);
}

/** Removes every command's code cache: the next run of each is the first after a build. */
export function removeCodeCaches(bundleDir) {
  const dir = join(bundleDir, CACHED_DIR);
  if (!existsSync(dir)) return;
  for (const name of readdirSync(dir)) if (name.endsWith(".v8cache")) rmSync(join(dir, name));
}

/**
 * Runs `command` from `bundleDir`'s CommonJS build when it is one the build runs (commands.json: those
 * that load nothing from node_modules), and returns true; false leaves it to the ES module bundle.
 */
export function runCached(bundleDir, command, argv = process.argv) {
  if (process.env.DIATONIC_CODE_CACHE === "0" || command === undefined) return false;
  const dir = join(bundleDir, CACHED_DIR);
  let commands;
  try {
    ({ commands } = JSON.parse(readFileSync(join(dir, "commands.json"), "utf8")));
  } catch {
    return false;
  }
  if (!Array.isArray(commands) || !commands.includes(command)) return false;
  const file = join(dir, "main.cjs");
  const cacheFile = codeCacheFile(bundleDir, command);
  let cachedData;
  try {
    cachedData = readFileSync(cacheFile);
  } catch {
    // None yet: this run writes it. Where it cannot be written, the ES modules run instead.
    try {
      accessSync(dir, fsConstants.W_OK);
    } catch {
      return false;
    }
  }
  const script = new Script(`(function (exports, require, module, __filename, __dirname) {${readFileSync(file, "utf8")}\n})`, {
    filename: file,
    cachedData,
    importModuleDynamically: constants?.USE_MAIN_CONTEXT_DEFAULT_LOADER,
  });
  // A --help run, or one stopped by bad input, compiles little of the command: leave the cache to its
  // first run that succeeds.
  const helpOnly = argv.includes("--help") || argv.includes("-h");
  if ((cachedData === undefined || script.cachedDataRejected === true) && !helpOnly)
    process.once("exit", (code) => {
      if (code === 0) save(script, cacheFile);
    });
  const module = { exports: {} };
  script.runInThisContext()(module.exports, createRequire(file), module, file, dirname(file));
  return true;
}

/** Writes the script's code cache, whole or not at all (runs in parallel read it); a read-only checkout just goes without. */
function save(script, cacheFile) {
  const partial = `${cacheFile}.${process.pid}.tmp`;
  try {
    writeFileSync(partial, script.createCachedData());
    renameSync(partial, cacheFile);
  } catch {
    rmSync(partial, { force: true });
  }
}
