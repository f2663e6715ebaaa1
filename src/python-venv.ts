// Python tools, each in its own venv under ~/.cache/diatonic, installed from the package index on
// first use (pinned), never again after that: the dev stack's embedding server, and the tests' (the
// RAG stand-ins, the official Python OpenAI client), and the engine bench's peer (llama-cpp-python's
// server, built from source).
import { execFileSync } from "node:child_process";
import { existsSync, mkdirSync } from "node:fs";
import { homedir } from "node:os";
import { join } from "node:path";

export interface PythonInstallOptions {
  /** Extra environment for pip (a source build's CMAKE_ARGS). @default none */
  readonly env?: Readonly<Record<string, string>>;
  /** Told before an install starts and after it ends: a source build can take minutes. @default silent */
  readonly onInstall?: (event: { readonly phase: "start" } | { readonly phase: "done"; readonly ms: number }) => void;
}

/** The venv's python with `requirement` installed; `module` is imported to check an existing venv. */
export function pythonWith(name: string, requirement: string, module: string, options: PythonInstallOptions = {}): string {
  const venv = join(process.env.XDG_CACHE_HOME ?? join(homedir(), ".cache"), "diatonic", name);
  const bin = join(venv, "bin", "python");
  const ready = (): boolean => {
    if (!existsSync(bin)) return false;
    try {
      execFileSync(bin, ["-c", `import ${module}`], { stdio: "ignore" });
      return true;
    } catch {
      return false;
    }
  };
  if (!ready()) {
    options.onInstall?.({ phase: "start" });
    const started = performance.now();
    mkdirSync(venv, { recursive: true });
    execFileSync("python3", ["-m", "venv", venv], { stdio: ["ignore", "ignore", "inherit"] });
    // A source build (llama-cpp-python's: about 11 minutes on 2 cores) needs more than a wheel's 10.
    execFileSync(join(venv, "bin", "pip"), ["install", "--quiet", "--disable-pip-version-check", requirement], {
      stdio: ["ignore", "ignore", "inherit"],
      timeout: 1_800_000,
      env: { ...process.env, ...options.env },
    });
    options.onInstall?.({ phase: "done", ms: performance.now() - started });
  }
  return bin;
}
