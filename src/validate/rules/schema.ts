import { checkSchema, knownSchema } from "../../render/schema-check.ts";
import { defineRule } from "../finding.ts";
import type { Rule } from "../types.ts";

export const schemaRules: Rule[] = [
  defineRule("schema/kubernetes", "error", "objects match the official Kubernetes and CRD schemas", ({ inventory }, report) =>
    inventory.objects.flatMap((object) => {
      if (!knownSchema(object))
        return [
          report(
            object,
            "apiVersion",
            `no schema is known for ${object.apiVersion} ${object.kind}; it was not checked`,
            "none needed if the CRD is installed; the API server checks it on apply",
            "info",
          ),
        ];
      return checkSchema(object).map((v) =>
        report(
          object,
          v.path.replace(/^\//, "").replace(/\//g, ".") || "(object)",
          `schema: ${v.message}`,
          "fix the field to match the API schema (kubectl explain <kind>.<field>)",
        ),
      );
    }),
  ),
];

const LABEL_VALUE = /^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$/;
const LABEL_NAME = /^([a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*\/)?[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$/;
const SUBDOMAIN = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/;
/** Kinds whose names become DNS labels (Services, Namespaces) and must stay within 63 characters. */
const LABEL_NAMED = new Set(["Service", "Namespace"]);

function labelProblems(labels: Readonly<Record<string, string>> | undefined, where: string): { path: string; message: string }[] {
  return Object.entries(labels ?? {}).flatMap(([key, value]) => {
    const out: { path: string; message: string }[] = [];
    const name = key.includes("/") ? key.slice(key.indexOf("/") + 1) : key;
    if (!LABEL_NAME.test(key) || name.length > 63)
      out.push({ path: `${where}.${key}`, message: `label key ${JSON.stringify(key)} is not a valid label name` });
    if (value.length > 63 || !LABEL_VALUE.test(value))
      out.push({
        path: `${where}.${key}`,
        message: `label value ${JSON.stringify(value)} is not valid (at most 63 characters: letters, digits, '-', '_', '.')`,
      });
    return out;
  });
}

schemaRules.push(
  defineRule("schema/metadata", "error", "names and labels are valid: the API server rejects the rest", ({ inventory }, report) =>
    inventory.objects.flatMap((object) => {
      const findings = [];
      const name = object.metadata.name;
      const limit = LABEL_NAMED.has(object.kind) ? 63 : 253;
      if (name.length > limit || !SUBDOMAIN.test(name))
        findings.push(
          report(
            object,
            "metadata.name",
            `name ${JSON.stringify(name)} is not a valid ${object.kind} name (lower-case DNS name, at most ${limit} characters)`,
            "shorten or rename it",
          ),
        );
      for (const p of labelProblems(object.metadata.labels, "metadata.labels"))
        findings.push(report(object, p.path, p.message, "shorten the value or derive it from a shorter name"));
      for (const t of inventory.templates.filter((t) => t.owner === object)) {
        for (const p of labelProblems(t.labels, `${t.path.replace(/\.spec$/, "")}.metadata.labels`))
          findings.push(report(object, p.path, p.message, "shorten the value or derive it from a shorter name"));
      }
      return findings;
    }),
  ),
);
