import { readFile } from "node:fs/promises";
import { parse as parseYaml } from "yaml";
import { InputError } from "../errors.ts";
import { textHash } from "../file-watch.ts";
import { PlatformDocument } from "../spec/schema.ts";
import { GatewayConfig } from "./config.ts";

/** Reads and validates a gateway config file: the schema the renderer writes, plus its cross-references. */
export async function loadGatewayConfig(file: string): Promise<GatewayConfig> {
  return (await readGatewayConfig(file)).config;
}

/** loadGatewayConfig, with the hash of the exact text it read (a FileWatcher baseline). */
export async function readGatewayConfig(file: string): Promise<{ config: GatewayConfig; hash: string }> {
  let text: string;
  try {
    text = await readFile(file, "utf8");
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    throw new InputError(
      code === "ENOENT" ? `gateway config ${file} does not exist` : `cannot read gateway config ${file}: ${(error as Error).message}`,
      "pass --config FILE: the config.yaml of the `gateway` ConfigMap that `diatonic render` writes",
    );
  }
  return { config: parseGatewayConfig(text, file), hash: textHash(text) };
}

export function parseGatewayConfig(text: string, file: string): GatewayConfig {
  let document: unknown;
  try {
    document = parseYaml(text);
  } catch (error) {
    throw new InputError(`${file}: not valid YAML: ${(error as Error).message}`);
  }
  const platformKind = PlatformDocument.shape.kind.value;
  if ((document as { kind?: unknown } | null)?.kind === platformKind) {
    throw new InputError(
      `${file} is a platform spec (kind: ${platformKind}), not a gateway config (kind: GatewayConfig)`,
      `to run the platform on this machine: diatonic dev --spec ${file}; on a cluster the gateway reads the config.yaml of the \`gateway\` ConfigMap that \`diatonic render\` writes`,
    );
  }
  const parsed = GatewayConfig.safeParse(document);
  if (!parsed.success) {
    const lines = parsed.error.issues.map((issue) => `  ${issue.path.map(String).join(".") || "(document)"}: ${issue.message}`);
    throw new InputError(
      `${file}: not a valid GatewayConfig:\n${lines.join("\n")}`,
      "render it again with `diatonic render`, or fix the fields named above",
    );
  }
  checkReferences(parsed.data, file);
  return parsed.data;
}

/** What the schema cannot say on its own: names that must point at something, names that must be unique. */
function checkReferences(config: GatewayConfig, file: string): void {
  const problems: string[] = [];
  const upstream = (where: string, name: string) => {
    if (!(name in config.upstreams)) problems.push(`${where}: upstream ${JSON.stringify(name)} is not in upstreams`);
  };
  upstream("baseModel.upstream", config.baseModel.upstream);
  if (config.embeddings) upstream("embeddings.upstream", config.embeddings.upstream);
  const names = new Set<string>([config.baseModel.name]);
  const routes = new Set<string>(["/v1"]);
  config.adapters.forEach((adapter, index) => {
    upstream(`adapters[${index}].upstream`, adapter.upstream);
    if (names.has(adapter.name))
      problems.push(`adapters[${index}].name: ${JSON.stringify(adapter.name)} is used twice (or is the base model's name)`);
    if (routes.has(adapter.route)) problems.push(`adapters[${index}].route: ${adapter.route} is used twice (or is reserved)`);
    names.add(adapter.name);
    routes.add(adapter.route);
  });
  if (problems.length > 0) throw new InputError(`${file}: ${problems.join("; ")}`);
}
