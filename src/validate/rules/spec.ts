import { defineRule } from "../finding.ts";
import type { Rule } from "../types.ts";

/**
 * The spec's own cross-field warnings (src/spec/rules.ts), so that validate, plan and apply show
 * them as render does, placed at their line in platform.yaml. Only when validating a spec.
 */
export const specRules: readonly Rule[] = [
  defineRule(
    "spec/cross-field",
    "warning",
    "the spec's own checks across fields (a moving model revision, optional API keys outside local, …)",
    (context, report) => {
      const platform = context.env.platform;
      if (platform === undefined) return [];
      return (context.env.specWarnings ?? []).map((warning) => ({
        ...report(`Platform/${platform.name}`, warning.path, warning.message, warning.fix),
        file: warning.at,
      }));
    },
  ),
];
