import type { KubeObject } from "../render/context.ts";
import { resourceId } from "../render/schema-check.ts";
import type { Finding, Rule, Severity } from "./types.ts";

/** Builds findings for one rule, with the rule's severity unless a finding says otherwise. */
export function reporter(rule: Pick<Rule, "id" | "severity">) {
  return (object: KubeObject | string, path: string, message: string, fix: string, severity: Severity = rule.severity): Finding => ({
    ruleId: rule.id,
    severity,
    resource: typeof object === "string" ? object : resourceId(object),
    path,
    message,
    fix,
  });
}

/** Defines a rule; `check` gets a `report` bound to the rule. */
export function defineRule(
  id: string,
  severity: Severity,
  summary: string,
  check: (context: Parameters<Rule["check"]>[0], report: ReturnType<typeof reporter>) => Finding[],
): Rule {
  const rule = { id, severity, summary };
  const report = reporter(rule);
  return { ...rule, check: (context) => check(context, report) };
}
