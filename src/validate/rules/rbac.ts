import { defineRule } from "../finding.ts";
import type { Finding } from "../types.ts";

interface PolicyRule {
  readonly apiGroups?: readonly string[];
  readonly resources?: readonly string[];
  readonly resourceNames?: readonly string[];
  readonly verbs?: readonly string[];
}

const READ_VERBS = ["get", "list", "watch", "*"];

/** A rule that reads every Secret it can see: get, list or watch on secrets (or `*`) in the core group, with no resourceNames. */
function readsAllSecrets(rule: PolicyRule): string[] {
  const core = (rule.apiGroups ?? []).some((group) => group === "" || group === "*");
  const secrets = (rule.resources ?? []).some((resource) => resource === "secrets" || resource === "*");
  if (!core || !secrets || (rule.resourceNames ?? []).length > 0) return [];
  return (rule.verbs ?? []).filter((verb) => READ_VERBS.includes(verb));
}

export const rbacRules = [
  defineRule("rbac/read-all-secrets", "error", "no Role or ClusterRole lets an application read every Secret", ({ inventory }, report) =>
    [...inventory.ofKind("Role"), ...inventory.ofKind("ClusterRole")].flatMap((role): Finding[] => {
      const rules = (role as unknown as { rules?: readonly PolicyRule[] }).rules ?? [];
      return rules.flatMap((rule, i): Finding[] => {
        const verbs = readsAllSecrets(rule);
        if (verbs.length === 0) return [];
        const scope =
          role.kind === "ClusterRole" ? "in every namespace it is bound for" : `in namespace ${role.metadata.namespace ?? "default"}`;
        return [
          report(
            role,
            `rules[${i}]`,
            `${verbs.join(", ")} on secrets with no resourceNames: whoever is bound to it reads every Secret ${scope} (API keys, TLS keys, tokens)`,
            "name the Secrets it needs in resourceNames, or mount them into the pod instead of reading them from the API",
          ),
        ];
      });
    }),
  ),
];
