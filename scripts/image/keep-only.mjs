// Cuts an image's node_modules down to what the image's `diatonic` commands load: the packages their
// compiled code imports or requires (followed from dist/cli/main.js and dist/cli/commands/<command>.js,
// lazy imports included) and their dependencies, nothing else. Run in a Dockerfile's build stage after
// `npm prune --omit=dev`:
//   node scripts/image/keep-only.mjs gateway [COMMAND ...] [--drop PACKAGE ...]
// --drop removes a package that a kept one lists as an optional or peer dependency but that the
// command never uses (e.g. LanceDB's optional embedding functions), with what only it needs.
// Plain JavaScript on purpose: it runs where only Node and the build's output exist.
import { existsSync, readdirSync, readFileSync, rmSync, statSync } from "node:fs";
import { dirname, join, resolve } from "node:path";

// Static and dynamic imports, and packages loaded with require: `require("x")` and
// `createRequire(import.meta.url)("x")` (src/yaml-package.ts loads `yaml` so, on first use).
const IMPORT =
  /(?:^\s*(?:import|export)\b[^;]*?\bfrom\s*|^\s*import\s*|\bimport\(\s*|\brequire\(\s*|\bcreateRequire\([^)]*\)\(\s*)["']([^"']+)["']/gm;
/** commands/index.js lazily imports every command: those imports are the ones not to follow. */
const REGISTRY = join("cli", "commands", "index.js");

function usage(message) {
  console.error(`keep-only: ${message}\nusage: node scripts/image/keep-only.mjs COMMAND [--drop PACKAGE ...]`);
  process.exit(2);
}

const args = process.argv.slice(2);
const commandList = [];
const dropped = new Set();
for (let i = 0; i < args.length; i++) {
  if (args[i] === "--drop" && args[i + 1] !== undefined) dropped.add(args[++i]);
  else if (!args[i].startsWith("-")) commandList.push(args[i]);
  else usage(`unexpected argument ${args[i]}`);
}
if (commandList.length === 0) usage("name the commands the image runs");
const command = commandList.join(" + ");

const dist = resolve("dist");
const entries = commandList.map((name) => join(dist, "cli", "commands", `${name}.js`));
for (const entry of entries)
  if (!existsSync(entry)) usage(`${entry} does not exist: build first (tsc), and name a command in src/cli/commands/`);

/** Package names the commands' compiled code imports. */
function importedPackages() {
  const packages = new Set();
  const seen = new Set();
  const queue = [join(dist, "cli", "main.js"), ...entries];
  while (queue.length > 0) {
    const file = queue.pop();
    if (seen.has(file)) continue;
    seen.add(file);
    const source = readFileSync(file, "utf8");
    for (const match of source.matchAll(IMPORT)) {
      const specifier = match[1];
      if (file.endsWith(REGISTRY) && match[0].includes("import(")) continue;
      if (specifier.startsWith(".")) queue.push(resolve(dirname(file), specifier));
      else if (!specifier.startsWith("node:"))
        packages.add(
          specifier
            .split("/")
            .slice(0, specifier.startsWith("@") ? 2 : 1)
            .join("/"),
        );
    }
  }
  return packages;
}

/** The folder `name` resolves to from `from` (a package folder or the project), as Node looks it up. */
function locate(name, from) {
  for (let dir = from; ; dir = dirname(dir)) {
    const candidate = join(dir, "node_modules", name);
    if (existsSync(join(candidate, "package.json"))) return candidate;
    if (dir === dirname(dir) || dir === process.cwd()) return undefined;
  }
}

const kept = new Set();
const queue = [...importedPackages()].map((name) => ({ name, from: process.cwd(), required: true }));
while (queue.length > 0) {
  const { name, from, required } = queue.pop();
  if (dropped.has(name)) continue;
  const dir = locate(name, from);
  if (dir === undefined) {
    // Optional and peer dependencies may be absent (another platform's binary, an unused peer).
    if (required) usage(`${name} (needed from ${from}) is not installed: run npm ci first`);
    continue;
  }
  if (kept.has(dir)) continue;
  kept.add(dir);
  const manifest = JSON.parse(readFileSync(join(dir, "package.json"), "utf8"));
  for (const dep of Object.keys(manifest.dependencies ?? {})) queue.push({ name: dep, from: dir, required: true });
  for (const dep of Object.keys({ ...manifest.optionalDependencies, ...manifest.peerDependencies }))
    queue.push({ name: dep, from: dir, required: false });
}

function size(path) {
  const stat = statSync(path, { throwIfNoEntry: false });
  if (stat === undefined || !stat.isDirectory()) return stat?.size ?? 0;
  return readdirSync(path).reduce((total, entry) => total + size(join(path, entry)), 0);
}

/** Removes every package folder under `modules` that is not kept (nested node_modules too). */
let removed = 0;
let removedBytes = 0;
function sweep(modules) {
  if (!existsSync(modules)) return;
  for (const entry of readdirSync(modules)) {
    if (entry === ".bin" || entry === ".package-lock.json") {
      rmSync(join(modules, entry), { recursive: true, force: true });
      continue;
    }
    const dirs = entry.startsWith("@")
      ? readdirSync(join(modules, entry)).map((name) => join(modules, entry, name))
      : [join(modules, entry)];
    for (const dir of dirs) {
      if (kept.has(dir)) sweep(join(dir, "node_modules"));
      else {
        removedBytes += size(dir);
        removed++;
        rmSync(dir, { recursive: true, force: true });
      }
    }
    if (entry.startsWith("@") && readdirSync(join(modules, entry)).length === 0) rmSync(join(modules, entry), { recursive: true });
  }
}
sweep(resolve("node_modules"));
const mib = (bytes) => `${(bytes / 2 ** 20).toFixed(0)} MiB`;
console.log(
  `keep-only ${command}: kept ${kept.size} packages (${mib(size(resolve("node_modules")))}), removed ${removed} (${mib(removedBytes)})`,
);
