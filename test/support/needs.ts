// One rule for every test tier's needs outside Node and npm (a host tool, root, a server binary, the
// package index): each tier states what it needs. Locally a missing need skips the tier with the
// reason and the command that installs it; in CI (CI=true) it fails the run, where every tier must run.
import assert from "node:assert/strict";
import { accessSync, constants, existsSync } from "node:fs";
import { delimiter, join } from "node:path";
import type { TestContext } from "node:test";
import { kubectlPath } from "../../scripts/cluster/build.ts";
import { PACKAGE_ROOT } from "../../src/paths.ts";
import { pythonWith } from "../../src/python-venv.ts";
import { findQdrant } from "../../src/rag/qdrant-binary.ts";

export const IN_CI = process.env["CI"] === "true";

/** One thing a tier needs: what it is, whether it is missing here, and how to install it. */
export interface Need {
  readonly what: string;
  readonly missing: boolean;
  readonly install: string;
}

/** A program on PATH (an absolute path is checked as is). */
export function which(program: string): string | undefined {
  const candidates = program.includes("/") ? [program] : (process.env["PATH"] ?? "").split(delimiter).map((dir) => join(dir, program));
  for (const candidate of candidates) {
    try {
      accessSync(candidate, constants.X_OK);
      return candidate;
    } catch {
      // Not here.
    }
  }
  return undefined;
}

/** A host program, with the Debian package that has it. */
export function tool(program: string, debianPackage: string): Need {
  return { what: program, missing: which(program) === undefined, install: `apt-get install -y ${debianPackage}` };
}

export function root(why: string): Need {
  return { what: `root (${why})`, missing: process.getuid?.() !== 0, install: "run as root (sudo -E npm test)" };
}

/**
 * The skip reason for a tier whose needs are not all met here, or undefined when they are. In CI a
 * missing need throws: at a test file's top level that fails the file, in a test it fails the test.
 */
export function unmet(tier: string, needs: readonly Need[]): string | undefined {
  const missing = needs.filter((need) => need.missing);
  if (missing.length === 0) return undefined;
  return unmetBecause(tier, missing.map((need) => `${need.what} (${need.install})`).join(", "));
}

/** The same rule for a need a tier finds out about itself (a download, a server that did not start). */
export function unmetBecause(tier: string, reason: string): string {
  const text = `${tier} needs ${reason}`;
  if (IN_CI) throw new Error(`${text}: required in CI (CI=true)`);
  return text;
}

/** In a test: passes when `reason` is undefined; else skips with it, or fails in CI. */
export function ready(t: TestContext, reason: string | undefined): boolean {
  if (reason === undefined) return true;
  if (IN_CI) assert.fail(`${reason}: required in CI (CI=true)`);
  t.skip(reason);
  return false;
}

/** Qdrant's server binary, which the test cluster's Qdrant image is built from (no registry serves it here). */
export function qdrant(): Need {
  return {
    what: "Qdrant's server binary",
    missing: findQdrant(PACKAGE_ROOT) === undefined,
    install: "set QDRANT_BIN to qdrant-X.Y.Z-x86_64-linux.gz or a folder holding it, or keep ../shared/tools/qdrant beside the checkout",
  };
}

/**
 * kubectl for the tests: the one built with the test cluster from Kubernetes' own module, never one
 * installed by hand on the host.
 */
export function kubectl(): Need & { readonly path: string } {
  const built = kubectlPath();
  return {
    what: "the test cluster's kubectl",
    missing: !existsSync(built),
    install: "npm run cluster:build: kubectl is built from Kubernetes' source with the test cluster",
    path: built,
  };
}

/**
 * A Python package in a cached venv (src/python-venv.ts): python3 and the package index the first
 * time, the cache after that. `{python}` when ready, else `{skip}` (or a throw in CI).
 */
export function pythonPackage(
  tier: string,
  venv: string,
  requirement: string,
  module: string,
): { readonly python?: string; readonly skip?: string } {
  if (which("python3") === undefined) return { skip: unmetBecause(tier, "python3 (apt-get install -y python3 python3-venv)") };
  try {
    return { python: pythonWith(venv, requirement, module) };
  } catch (error) {
    const reason = error instanceof Error ? error.message.split("\n")[0] : String(error);
    return {
      skip: unmetBecause(
        tier,
        `${requirement} from the package index, installed once into ~/.cache/diatonic/${venv} (${reason}); run once with the index reachable`,
      ),
    };
  }
}
