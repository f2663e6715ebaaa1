import { stringify } from "yaml";
import type { KubeObject } from "../render/context.ts";

/**
 * One YAML document, deterministic: key order as built, no line folding. Written as YAML 1.1 so that
 * strings like `off`, `yes` or `0755` are quoted: Kubernetes' parser would read them as bools/octals.
 */
export function toYaml(value: unknown): string {
  return stringify(value, { version: "1.1", lineWidth: 0, minContentWidth: 0, aliasDuplicateObjects: false });
}

/** A multi-document YAML stream, `---` between documents. */
export function toYamlStream(objects: readonly KubeObject[]): string {
  return objects.map((object) => toYaml(object)).join("---\n");
}
