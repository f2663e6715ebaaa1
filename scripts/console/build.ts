// Builds the web console (console/) into console/dist/: one script and one stylesheet bundled by
// esbuild, with content hashes in their names (served as immutable), and index.html naming them
// (served no-cache). Written to a temporary folder and renamed into place.
//   node --import tsx scripts/console/build.ts             build
//   node --import tsx scripts/console/build.ts --if-stale  build only when an input changed
import { createHash } from "node:crypto";
import {
  chmodSync,
  copyFileSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  renameSync,
  rmSync,
  statSync,
  writeFileSync,
} from "node:fs";
import { basename, dirname, extname, join, relative, sep } from "node:path";
import { fileURLToPath } from "node:url";
import { build } from "esbuild";

const REPO = fileURLToPath(new URL("../..", import.meta.url));
export const CONSOLE_SOURCE = join(REPO, "console");
export const CONSOLE_OUT = join(CONSOLE_SOURCE, "dist");
/** Written last into the output: what it was built from. Dot files are not served. */
const STAMP = ".build.json";

export interface ConsoleBuild {
  readonly outDir: string;
  /** Served path under /console/ → bytes. */
  readonly files: Readonly<Record<string, number>>;
  readonly inputs: string;
}

function filesUnder(dir: string): string[] {
  return readdirSync(dir)
    .sort()
    .flatMap((entry) => {
      const path = join(dir, entry);
      if (entry === "dist" || entry === "node_modules") return [];
      return statSync(path).isDirectory() ? filesUnder(path) : [path];
    });
}

/**
 * A hash of everything the build reads: the console's sources, the API types it imports, this script
 * and the locked dependency versions.
 */
export function inputsHash(): string {
  const hash = createHash("sha256");
  const inputs = [
    ...filesUnder(CONSOLE_SOURCE),
    join(REPO, "src", "gateway", "admin-api.ts"),
    fileURLToPath(import.meta.url),
    join(REPO, "package-lock.json"),
  ];
  for (const file of inputs) {
    hash.update(relative(REPO, file));
    hash.update(readFileSync(file));
  }
  return hash.digest("hex").slice(0, 16);
}

export function isStale(outDir = CONSOLE_OUT): boolean {
  try {
    const stamp = JSON.parse(readFileSync(join(outDir, STAMP), "utf8")) as { inputs?: unknown };
    return stamp.inputs !== inputsHash() || !existsSync(join(outDir, "index.html"));
  } catch {
    return true;
  }
}

/** `name-HASH.ext`, as esbuild names its outputs. */
function hashedName(file: string, body: Buffer): string {
  const hash = createHash("sha256").update(body).digest("hex").slice(0, 8).toUpperCase();
  const extension = extname(file);
  return `${basename(file, extension)}-${hash}${extension}`;
}

export async function buildConsole(outDir = CONSOLE_OUT): Promise<ConsoleBuild> {
  const inputs = inputsHash();
  mkdirSync(dirname(outDir), { recursive: true });
  const staging = mkdtempSync(join(dirname(outDir), ".console-build-"));
  // mkdtemp makes it private; the gateway may run as another user than the build (the image does).
  chmodSync(staging, 0o755);
  try {
    const assets = join(staging, "assets");
    const result = await build({
      absWorkingDir: REPO,
      entryPoints: { app: join(CONSOLE_SOURCE, "src", "main.tsx") },
      outdir: assets,
      entryNames: "[name]-[hash]",
      assetNames: "[name]-[hash]",
      bundle: true,
      format: "esm",
      platform: "browser",
      target: ["chrome111", "firefox111", "safari16.4"],
      jsx: "automatic",
      jsxImportSource: "preact",
      minify: true,
      sourcemap: false,
      legalComments: "none",
      metafile: true,
      logLevel: "warning",
    });
    const outputs = Object.keys(result.metafile.outputs).map((path) => basename(path));
    const script = outputs.find((name) => name.startsWith("app-") && name.endsWith(".js"));
    const style = outputs.find((name) => name.startsWith("app-") && name.endsWith(".css"));
    if (script === undefined || style === undefined)
      throw new Error(`the console build wrote ${outputs.join(", ")}: expected app-HASH.js and app-HASH.css`);
    const favicon = hashedName("favicon.svg", readFileSync(join(CONSOLE_SOURCE, "favicon.svg")));
    copyFileSync(join(CONSOLE_SOURCE, "favicon.svg"), join(assets, favicon));
    const names: Record<string, string> = { "app.js": script, "app.css": style, "favicon.svg": favicon };
    const html = readFileSync(join(CONSOLE_SOURCE, "index.html"), "utf8").replace(/\{\{([\w.]+)\}\}/g, (placeholder, key: string) => {
      const name = names[key];
      if (name === undefined) throw new Error(`console/index.html: unknown placeholder ${placeholder}`);
      return name;
    });
    writeFileSync(join(staging, "index.html"), html);
    const files: Record<string, number> = {};
    for (const file of filesUnder(staging)) files[relative(staging, file).split(sep).join("/")] = statSync(file).size;
    writeFileSync(join(staging, STAMP), `${JSON.stringify({ inputs, files }, null, 2)}\n`);
    const previous = `${outDir}.previous`;
    rmSync(previous, { recursive: true, force: true });
    if (existsSync(outDir)) renameSync(outDir, previous);
    renameSync(staging, outDir);
    rmSync(previous, { recursive: true, force: true });
    return { outDir, files, inputs };
  } catch (error) {
    rmSync(staging, { recursive: true, force: true });
    throw error;
  }
}

/** Builds when the output is missing or older than its inputs; says so on stderr. */
export async function ensureConsoleBuilt(): Promise<void> {
  if (!isStale()) return;
  const built = await buildConsole();
  const kib = (bytes: number) => `${(bytes / 1024).toFixed(1)} KiB`;
  console.error(
    `diatonic: built the web console into ${relative(REPO, built.outDir)}/ (${Object.entries(built.files)
      .map(([name, bytes]) => `${name} ${kib(bytes)}`)
      .join(", ")})`,
  );
}

if (process.argv[1] !== undefined && fileURLToPath(import.meta.url) === process.argv[1]) {
  const ifStale = process.argv.includes("--if-stale");
  await (ifStale ? ensureConsoleBuilt() : buildConsole().then((built) => console.log(JSON.stringify(built.files, null, 2))));
}
