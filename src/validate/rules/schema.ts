import { checkSchema, knownSchema } from "../../render/schema-check.ts";
import { defineRule } from "../finding.ts";

export const schemaRules = [
  defineRule("schema/kubernetes", "error", "objects match the official Kubernetes and CRD schemas", ({ inventory }, report) =>
    inventory.objects.flatMap((object) => {
      if (!knownSchema(object)) return [report(object, "apiVersion", `no schema is known for ${object.apiVersion} ${object.kind}; it was not checked`, "none needed if the CRD is installed; the API server checks it on apply", "info")];
      return checkSchema(object).map((v) => report(object, v.path.replace(/^\//, "").replace(/\//g, ".") || "(object)", `schema: ${v.message}`, "fix the field to match the API schema (kubectl explain <kind>.<field>)"));
    }),
  ),
];
