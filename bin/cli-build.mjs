// The compiled CLI that bin/diatonic.js runs in a checkout: src/cli/main.ts bundled by esbuild into
// dist/bundle/ (one file per command, loaded on demand), built by the install step
// (scripts/ensure-deps.mjs) when stale. One bundle loads in a third of the time the same modules take
// one by one (~130 ms against ~350 ms of CPU for render's). Beside it, dist/bundle/cached/ holds the same
// CLI as one CommonJS script, which bin/code-cache.mjs runs with V8's code cache for the commands that
// load no package from node_modules (render, validate, plan…). Container images run tsc's dist/ instead
// (DIATONIC_USE_DIST=1). In bin/ because the images carry bin/.
import { existsSync, mkdirSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { isBuiltin } from "node:module";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { CACHED_DIR } from "./code-cache.mjs";

const ROOT = fileURLToPath(new URL("..", import.meta.url));
export const BUNDLE_DIR = join(ROOT, "dist", "bundle");
export const BUNDLE_MAIN = join(BUNDLE_DIR, "main.mjs");
const STAMP = join(BUNDLE_DIR, ".built");
/** tsc's output, what the images run. */
export const DIST_MAIN = join(ROOT, "dist", "cli", "main.js");

/** Packages loaded from node_modules as they are: native addons, wasm, worker threads, or big and lazy. */
const EXTERNAL = [
  "node-llama-cpp",
  "@lancedb/lancedb",
  "apache-arrow",
  "better-sqlite3",
  "re2-wasm",
  "@kubernetes/client-node",
  "pino",
  "undici",
  "@qdrant/js-client-rest",
  "playwright-core",
  "tsx",
];

/**
 * Modules the bundle takes from src/ instead of what a package imports, each to keep code off every
 * cold command's startup (the bundle's commands would otherwise compile or run it on every start):
 * - kubernetes-models' RE2 runtime → one that compiles its WebAssembly on first use (~50 ms);
 * - ajv-i18n's index of every language → English only, all its users call (~160 KB of code);
 * - zod's index of every locale → English only, the one zod configures (~370 KB of code).
 * `importer`, where given, matches the importing file's path: the import path alone is too common.
 */
export const SUBSTITUTES = [
  { path: "@kubernetes-models/validate/runtime/re2", file: join(ROOT, "src", "validate", "lazy-re2.ts") },
  { path: "ajv-i18n", file: join(ROOT, "src", "bundle", "ajv-i18n-en.ts") },
  {
    path: "../locales/index.js",
    importer: /\/node_modules\/zod\/v4\/(?:classic\/external|core\/index)\.js$/,
    file: join(ROOT, "src", "bundle", "zod-locales-en.ts"),
  },
];

/** An esbuild plugin that resolves each of SUBSTITUTES' import paths to its file. */
export const substitutes = {
  name: "diatonic-substitutes",
  setup(build) {
    const escape = (path) => path.replace(/[.*+?^${}()|[\]\\/]/g, "\\$&");
    build.onResolve({ filter: new RegExp(`^(?:${SUBSTITUTES.map(({ path }) => escape(path)).join("|")})$`) }, (args) => {
      const found = SUBSTITUTES.find(
        ({ path, importer }) => path === args.path && (importer === undefined || importer.test(args.importer)),
      );
      return found === undefined ? undefined : { path: found.file };
    });
  },
};

/** The newest modification time under a folder, in ms (about 3 ms for src/'s ~300 files). */
function newest(dir) {
  let latest = statSync(dir).mtimeMs;
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    const path = join(dir, entry.name);
    latest = Math.max(latest, entry.isDirectory() ? newest(path) : statSync(path).mtimeMs);
  }
  return latest;
}

/** Whether the bundle is missing or older than src/, package.json or this file. */
export function cliBundleStale() {
  if (!existsSync(STAMP) || !existsSync(BUNDLE_MAIN)) return true;
  const built = statSync(STAMP).mtimeMs;
  return (
    newest(join(ROOT, "src")) > built ||
    statSync(join(ROOT, "package.json")).mtimeMs > built ||
    statSync(fileURLToPath(import.meta.url)).mtimeMs > built
  );
}

/** Each `diatonic` command and the module its `load()` imports, as src/cli/commands/index.ts lists them. */
export function commandModules(index = readFileSync(join(ROOT, "src", "cli", "commands", "index.ts"), "utf8")) {
  return [...index.matchAll(/\bname: "([^"]+)",[^]*?\bimport\("\.\/([^"]+)"\)/g)].map(([, name, file]) => ({
    name,
    module: `src/cli/commands/${file}`,
  }));
}

/**
 * The commands whose whole module graph (static and dynamic imports, from esbuild's metafile of a
 * build run in ROOT) reaches no package left in node_modules: the CommonJS build runs them whole. A
 * command that reaches one is left to the ES module bundle: some of those packages are ES modules
 * only, and node-llama-cpp's has top-level await, which require() refuses (ERR_REQUIRE_ASYNC_MODULE).
 * The metafile does not show createRequire() calls (src/yaml-package.ts, src/validate/lazy-re2.ts):
 * they load CommonJS packages, the same in both builds.
 */
export function selfContainedCommands(metafile, modules = commandModules()) {
  const packageReached = (start) => {
    const seen = new Set([start]);
    const queue = [start];
    while (queue.length > 0) {
      const input = metafile.inputs[queue.pop()];
      if (input === undefined) return `${start} (not in the build)`;
      for (const { path, external } of input.imports) {
        if (external) {
          // esbuild's own helpers, shared between chunks, show as "<runtime>".
          if (!isBuiltin(path) && path !== "<runtime>") return path;
        } else if (!seen.has(path)) {
          seen.add(path);
          queue.push(path);
        }
      }
    }
    return undefined;
  };
  return modules.filter(({ module }) => packageReached(module) === undefined).map(({ name }) => name);
}

/** An esbuild plugin that builds each of these command modules as a module that throws when it is loaded. */
function leaveOut(modules) {
  const left = new Map();
  for (const { name, module } of modules) left.set(join(ROOT, module), [...(left.get(join(ROOT, module)) ?? []), name]);
  return {
    name: "diatonic-leave-out",
    setup(build) {
      build.onLoad({ filter: /[\\/]src[\\/]cli[\\/]commands[\\/][^\\/]+\.ts$/ }, ({ path }) => {
        const names = left.get(path);
        if (names === undefined) return undefined;
        const message = `diatonic ${names.join(", ")} is not in the CommonJS build: it loads packages, and runs from dist/bundle/main.mjs`;
        return { contents: `throw new Error(${JSON.stringify(message)});`, loader: "js" };
      });
    },
  };
}

/** Bundles the CLI into `dir` (dist/bundle/, stamped as current, unless another folder is given: tests); returns esbuild's metafile. */
export async function buildCliBundle(dir = BUNDLE_DIR) {
  const { build } = await import("esbuild");
  // Chunk names carry content hashes: clear the last build's, or they pile up. The code caches go with them.
  rmSync(dir, { recursive: true, force: true });
  const common = {
    entryPoints: { main: join(ROOT, "src", "cli", "main.ts") },
    absWorkingDir: ROOT,
    bundle: true,
    platform: "node",
    target: "node20",
    external: EXTERNAL,
    plugins: [substitutes],
    sourcemap: "linked",
    logLevel: "error",
    metafile: true,
  };
  const result = await build({
    ...common,
    outdir: dir,
    outExtension: { ".js": ".mjs" },
    splitting: true,
    format: "esm",
    chunkNames: "chunks/[name]-[hash]",
    // CommonJS packages inside the bundle call require() for node's modules.
    banner: { js: "import { createRequire as __diatonicRequire } from 'node:module'; const require = __diatonicRequire(import.meta.url);" },
  });
  // The same CLI as one CommonJS script, for the commands that load no package: V8 keeps a code cache
  // only for scripts on Node 20 (not for ES modules). The other commands' modules are left out (a third
  // less to read and hash at every start). Strict, as the ES modules are; import.meta.url is the
  // script's own URL.
  const served = selfContainedCommands(result.metafile);
  const cached = join(dir, CACHED_DIR);
  mkdirSync(cached, { recursive: true });
  await build({
    ...common,
    outfile: join(cached, "main.cjs"),
    format: "cjs",
    plugins: [substitutes, leaveOut(commandModules().filter(({ name }) => !served.includes(name)))],
    define: { "import.meta.url": "__diatonicModuleUrl" },
    banner: { js: '"use strict"; var __diatonicModuleUrl = require("node:url").pathToFileURL(__filename).href;' },
  });
  writeFileSync(join(cached, "commands.json"), `${JSON.stringify({ commands: served })}\n`);
  if (dir === BUNDLE_DIR) writeFileSync(STAMP, `${new Date().toISOString()}\n`);
  return result.metafile;
}
