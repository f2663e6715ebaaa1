import type { KubeObject } from "../render/context.ts";
import { Inventory } from "./inventory.ts";
import { gpuPodRules } from "./rules/gpu-pods.ts";
import { gpuRules } from "./rules/gpu.ts";
import { networkRules } from "./rules/network.ts";
import { podSecurityRules } from "./rules/pod-security.ts";
import { rbacRules } from "./rules/rbac.ts";
import { schemaRules } from "./rules/schema.ts";
import { specRules } from "./rules/spec.ts";
import { storageScalingRules } from "./rules/storage-scaling.ts";
import { wiringRules } from "./rules/wiring.ts";
import { workloadRules } from "./rules/workload.ts";
import type { Finding, Rule, ValidationEnvironment } from "./types.ts";

/** Every rule, in the order findings are reported. */
export const rules: readonly Rule[] = [
  ...specRules,
  ...schemaRules,
  ...podSecurityRules,
  ...rbacRules,
  ...workloadRules,
  ...wiringRules,
  ...storageScalingRules,
  ...networkRules,
  ...gpuRules,
  ...gpuPodRules,
];

const order = { error: 0, warning: 1, info: 2 } as const;

export interface ValidationResult {
  readonly findings: readonly Finding[];
  readonly objects: number;
  readonly errors: number;
  readonly warnings: number;
}

/** Runs every rule over the objects; findings sorted by severity, then resource. */
export function validateObjects(
  objects: readonly KubeObject[],
  env: ValidationEnvironment = {},
  files: ReadonlyMap<string, string> = new Map(),
): ValidationResult {
  const inventory = new Inventory(objects, files);
  const findings = rules
    .flatMap((rule) => rule.check({ inventory, env }))
    .map((f) => {
      const file = files.get(f.resource);
      return file ? { ...f, file } : f;
    })
    .sort((a, b) => order[a.severity] - order[b.severity] || a.resource.localeCompare(b.resource) || a.ruleId.localeCompare(b.ruleId));
  return {
    findings,
    objects: objects.length,
    errors: findings.filter((f) => f.severity === "error").length,
    warnings: findings.filter((f) => f.severity === "warning").length,
  };
}
