import { buildEnvironment } from "../render/build.ts";
import { RenderContext, type KubeObject } from "../render/context.ts";
import { trafficGraph } from "../render/traffic.ts";
import type { LoadedPlatform } from "../spec/load.ts";
import type { ValidationEnvironment } from "./types.ts";

/** Renders a spec's environment and returns its objects plus everything the spec knows for the rules. */
export function environmentFromSpec(file: string, environment: string, cwd?: string): { objects: KubeObject[]; env: ValidationEnvironment; platform: LoadedPlatform } {
  const build = buildEnvironment({ file, environment, ...(cwd ? { cwd } : {}) });
  const platform = build.platform;
  return {
    objects: build.result.placed.map((p) => p.object),
    platform,
    env: {
      platform,
      storageClasses: [platform.spec.storageClass],
      requiredSecrets: build.result.secrets,
      flows: trafficGraph(new RenderContext(platform)),
    },
  };
}
