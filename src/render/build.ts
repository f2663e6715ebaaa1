import { createHash } from "node:crypto";
import { InputError } from "../errors.ts";
import { SpecError } from "../spec/issues.ts";
import { loadPlatform, readSpec, type LoadedPlatform } from "../spec/load.ts";
import { kustomizeTree } from "../write/kustomize.ts";
import { renderPlatform, type RenderResult } from "./index.ts";

export interface BuildOptions {
  /** platform.yaml path. */
  readonly file: string;
  /** The environment asked for; its problems are reported first. */
  readonly environment: string;
  /** @default process.cwd() */
  readonly cwd?: string;
  /** `file` as the user named it (`--spec` as typed), for messages. @default the path from `cwd` */
  readonly shown?: string;
}

export interface EnvironmentBuild {
  readonly platform: LoadedPlatform;
  readonly result: RenderResult;
}


/** Loads and renders one environment of a spec. */
export function buildEnvironment(options: BuildOptions, text = readSpec(options.file)): EnvironmentBuild {
  const platform = loadPlatform({ file: options.file, environment: options.environment, text, ...(options.cwd ? { cwd: options.cwd } : {}), ...(options.shown ? { shown: options.shown } : {}) });
  return { platform, result: renderPlatform(platform) };
}

export interface TreeBuild extends EnvironmentBuild {
  /** relative path → content of every file of the Kustomize tree. */
  readonly files: Map<string, string>;
}

/**
 * Renders the base (the spec without overlays) and every environment, and lays them out as one
 * Kustomize tree. The tree is a function of the spec alone, so every overlay in it is consistent.
 */
export function buildTree(options: BuildOptions): TreeBuild {
  const text = readSpec(options.file);
  const requested = buildEnvironment(options, text);
  let base: RenderResult;
  try {
    base = renderPlatform(loadPlatform({ file: options.file, environment: null, text, ...(options.cwd ? { cwd: options.cwd } : {}), ...(options.shown ? { shown: options.shown } : {}) }));
  } catch (error) {
    if (error instanceof SpecError) {
      throw new InputError(
        `${error.message}\n(these are problems of the spec without any environment overlay, which the tree's base/ is rendered from)`,
        "make `spec` complete on its own; environments should only override it",
      );
    }
    throw error;
  }
  const environments = new Map<string, RenderResult>([[options.environment, requested.result]]);
  for (const env of requested.platform.environments) {
    if (env === options.environment) continue;
    try {
      environments.set(env, buildEnvironment({ ...options, environment: env }, text).result);
    } catch (error) {
      if (error instanceof SpecError) {
        throw new InputError(`${error.message}\n(in environment ${env}; the written tree holds every environment's overlay)`, `fix environment ${env}, or render it separately with -o yaml`);
      }
      throw error;
    }
  }
  const specHash = createHash("sha256").update(text).digest("hex");
  return { ...requested, files: kustomizeTree({ base, environments, specHash }) };
}
