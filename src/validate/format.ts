import { rules, type ValidationResult } from "./index.ts";
import type { Finding } from "./types.ts";

export const FORMATS = ["human", "json", "sarif"] as const;
export type Format = (typeof FORMATS)[number];

function human(result: ValidationResult, color: boolean): string {
  const paint = (code: string, text: string) => (color ? `\u001b[${code}m${text}\u001b[0m` : text);
  const mark = { error: paint("31", "error"), warning: paint("33", "warning"), info: paint("36", "info") } as const;
  const lines = result.findings.map(
    (f: Finding) =>
      `${mark[f.severity]} ${f.ruleId} ${f.resource}${f.file ? ` (${f.file})` : ""}\n  at ${f.path}\n  ${f.message}\n  fix: ${f.fix}`,
  );
  const infos = result.findings.length - result.errors - result.warnings;
  lines.push(
    `${result.objects} objects checked by ${rules.length} rules: ${result.errors} error(s), ${result.warnings} warning(s), ${infos} note(s)`,
  );
  return `${lines.join("\n")}\n`;
}

/** SARIF 2.1.0, so CI systems (GitHub code scanning and others) show findings inline. */
function sarif(result: ValidationResult): string {
  const level = { error: "error", warning: "warning", info: "note" } as const;
  return `${JSON.stringify(
    {
      $schema: "https://json.schemastore.org/sarif-2.1.0.json",
      version: "2.1.0",
      runs: [
        {
          tool: {
            driver: {
              name: "diatonic validate",
              informationUri: "https://diatonic.ai",
              rules: rules.map((r) => ({
                id: r.id,
                shortDescription: { text: r.summary },
                defaultConfiguration: { level: level[r.severity] },
              })),
            },
          },
          results: result.findings.map((f) => ({
            ruleId: f.ruleId,
            level: level[f.severity],
            message: { text: `${f.resource} ${f.path}: ${f.message} Fix: ${f.fix}` },
            locations: [
              {
                physicalLocation: { artifactLocation: { uri: f.file ?? f.resource } },
                logicalLocations: [{ fullyQualifiedName: `${f.resource}#${f.path}`, kind: "resource" }],
              },
            ],
          })),
        },
      ],
    },
    null,
    2,
  )}\n`;
}

export function formatResult(result: ValidationResult, format: Format, color = false): string {
  switch (format) {
    case "human":
      return human(result, color);
    case "json":
      return `${JSON.stringify({ objects: result.objects, errors: result.errors, warnings: result.warnings, findings: result.findings }, null, 2)}\n`;
    case "sarif":
      return sarif(result);
  }
}
