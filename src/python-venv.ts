// Python tools, each in its own venv under ~/.cache/diatonic, installed from the package index on
// first use (pinned), never again after that: the dev stack's embedding server, and the tests' (the
// RAG stand-ins, the official Python OpenAI client).
import { execFileSync } from "node:child_process";
import { existsSync, mkdirSync } from "node:fs";
import { homedir } from "node:os";
import { join } from "node:path";

/** The venv's python with `requirement` installed; `module` is imported to check an existing venv. */
export function pythonWith(name: string, requirement: string, module: string): string {
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
    mkdirSync(venv, { recursive: true });
    execFileSync("python3", ["-m", "venv", venv], { stdio: ["ignore", "ignore", "inherit"] });
    execFileSync(join(venv, "bin", "pip"), ["install", "--quiet", "--disable-pip-version-check", requirement], { stdio: ["ignore", "ignore", "inherit"], timeout: 600_000 });
  }
  return bin;
}
