import { buildEnvironment, type EnvironmentBuild } from "../render/build.ts";
import { RenderContext, type KubeObject } from "../render/context.ts";
import { trafficGraph } from "../render/traffic.ts";
import type { LoadedPlatform } from "../spec/load.ts";
import type { ValidationEnvironment } from "./types.ts";

export interface SpecValidationInput {
  readonly objects: KubeObject[];
  readonly env: ValidationEnvironment;
  readonly platform: LoadedPlatform;
}

/** The objects of a render plus everything the spec knows for the rules, without rendering again. */
export function validationInput(build: EnvironmentBuild): SpecValidationInput {
  const platform = build.platform;
  return {
    objects: build.result.placed.map((p) => p.object),
    platform,
    env: {
      platform,
      storageClasses: [platform.spec.storageClass],
      requiredSecrets: build.result.secrets,
      flows: trafficGraph(new RenderContext(platform)),
      specWarnings: platform.warnings,
    },
  };
}

/**
 * Renders a spec's environment and returns its objects plus everything the spec knows for the rules;
 * `shown` is the file as the user named it, for messages.
 */
export function environmentFromSpec(file: string, environment: string, cwd?: string, shown?: string): SpecValidationInput {
  return validationInput(buildEnvironment({ file, environment, ...(cwd ? { cwd } : {}), ...(shown ? { shown } : {}) }));
}
