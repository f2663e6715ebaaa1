import type { RequiredSecret } from "../render/context.ts";
import type { Flow } from "../render/traffic.ts";
import type { SpecWarning } from "../spec/load.ts";
import type { Platform } from "../spec/schema.ts";
import type { Inventory } from "./inventory.ts";

export const Severity = { error: "error", warning: "warning", info: "info" } as const;
export type Severity = (typeof Severity)[keyof typeof Severity];

/** One problem: which rule, how bad, which object and field, what is wrong and how to fix it. */
export interface Finding {
  readonly ruleId: string;
  readonly severity: Severity;
  /** `Kind/namespace/name` (cluster-scoped: `Kind/name`). */
  readonly resource: string;
  /** Field path inside the object, e.g. `spec.template.spec.containers[0].image`. */
  readonly path: string;
  readonly message: string;
  readonly fix: string;
  /** Where the object came from, when read from files. */
  readonly file?: string;
}

/** What is known beyond the objects: present when validating a spec, absent for bare YAML. */
export interface ValidationEnvironment {
  readonly platform?: Platform;
  readonly storageClasses?: readonly string[];
  readonly requiredSecrets?: readonly RequiredSecret[];
  readonly flows?: readonly Flow[];
  /** The spec's own cross-field warnings, where they are written in platform.yaml. */
  readonly specWarnings?: readonly SpecWarning[];
}

export interface RuleContext {
  readonly inventory: Inventory;
  readonly env: ValidationEnvironment;
}

/** A check over the whole set of objects. Rules never throw on odd input: they report or skip it. */
export interface Rule {
  readonly id: string;
  readonly severity: Severity;
  readonly summary: string;
  check(context: RuleContext): Finding[];
}
