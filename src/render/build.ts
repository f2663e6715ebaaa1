import { createHash } from "node:crypto";
import { loadSpec, readSpec, type LoadedPlatform, type LoadedSpec } from "../spec/load.ts";
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
  /** The whole spec, checked: the base and every environment (what `render --out` writes). */
  readonly spec: LoadedSpec;
}

/** Loads the spec (checking the base and every environment) and renders the environment asked for. */
export function buildEnvironment(options: BuildOptions, text = readSpec(options.file)): EnvironmentBuild {
  const spec = loadSpec({
    file: options.file,
    environment: options.environment,
    text,
    ...(options.cwd ? { cwd: options.cwd } : {}),
    ...(options.shown ? { shown: options.shown } : {}),
  });
  return { platform: spec.requested, result: renderPlatform(spec.requested), spec };
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
  const environments = new Map<string, RenderResult>();
  for (const [env, platform] of requested.spec.environments)
    environments.set(env, env === options.environment ? requested.result : renderPlatform(platform));
  const specHash = createHash("sha256").update(text).digest("hex");
  return {
    ...requested,
    files: kustomizeTree({ base: renderPlatform(requested.spec.base), environments, specHash, requested: options.environment }),
  };
}
