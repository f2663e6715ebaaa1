import { z } from "zod";
import { API_VERSION, LABEL, PlatformDocument, PlatformSpec } from "./schema.ts";

/** An overlay may set any subset of the spec, and `null` removes a key: no `required`, nulls allowed. */
function optionalDeep(node: unknown): unknown {
  if (Array.isArray(node)) return node.map(optionalDeep);
  if (typeof node !== "object" || node === null) return node;
  return Object.fromEntries(
    Object.entries(node)
      .filter(([key]) => key !== "required")
      .map(([key, value]) => {
        if (key !== "properties" || typeof value !== "object" || value === null) return [key, optionalDeep(value)];
        const properties = Object.entries(value).map(([name, schema]) => [name, { anyOf: [optionalDeep(schema), { type: "null" }] }]);
        return [key, Object.fromEntries(properties)];
      }),
  );
}

/** JSON Schema of platform.yaml for editors (yaml-language-server, VS Code): spec plus overlays. */
export function platformJsonSchema(): Record<string, unknown> {
  const spec = z.toJSONSchema(PlatformSpec, { io: "input", unrepresentable: "any", target: "draft-7" }) as Record<string, unknown>;
  const { $schema: _drop, ...specBody } = spec;
  return {
    $schema: "http://json-schema.org/draft-07/schema#",
    $id: "https://diatonic.ai/schemas/platform.v1alpha1.json",
    title: "Diatonic Platform",
    description: "One spec for Llama 3 with many LoRA adapters on Kubernetes; environments overlay it.",
    type: "object",
    additionalProperties: false,
    required: ["apiVersion", "kind", "metadata", "spec"],
    properties: {
      apiVersion: { const: API_VERSION },
      kind: { const: "Platform" },
      metadata: {
        type: "object",
        additionalProperties: false,
        required: ["name"],
        properties: {
          name: { type: "string", pattern: "^[a-z0-9]([-a-z0-9]*[a-z0-9])?$" },
          labels: {
            type: "object",
            description: PlatformDocument.shape.metadata.shape.labels.description,
            propertyNames: { pattern: LABEL.key.source, not: { pattern: LABEL.reservedKey.source } },
            additionalProperties: { type: "string", pattern: LABEL.value.source },
          },
        },
      },
      spec: specBody,
      environments: {
        type: "object",
        description: "Overlays merged onto spec: objects merge, null removes a key, adapters merge by name.",
        additionalProperties: optionalDeep(specBody),
      },
    },
  };
}
