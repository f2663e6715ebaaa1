import { qdrantEnabled, type RenderContext, type RequiredSecret } from "./context.ts";

/** The Secrets the rendered platform reads. Their values are never rendered, printed or logged. */
export function requiredSecrets(ctx: RenderContext): RequiredSecret[] {
  const { spec } = ctx.platform;
  const ns = ctx.namespace;
  const secrets: RequiredSecret[] = [];
  const token = spec.model.hfTokenSecret;
  if (token) {
    secrets.push({
      namespace: ns,
      name: token.name,
      key: token.key,
      purpose: "Hugging Face token for the model download Job (gated repos such as Llama 3)",
      create: `kubectl -n ${ns} create secret generic ${token.name} --from-literal=${token.key}=<hf_...>`,
    });
  }
  const keys = spec.gateway.apiKeysSecret;
  secrets.push({
    namespace: ns,
    name: keys.name,
    key: keys.key,
    purpose: `gateway API keys as SHA-256 hashes with tenant and allowed adapters${spec.gateway.auth === "optional" ? " (optional here: without it the gateway runs open)" : ""}`,
    create: [
      `KEY="sk-$(openssl rand -hex 24)"; echo "give this key to the team: $KEY"`,
      `printf 'keys:\\n  - sha256: %s\\n    tenant: team-a\\n    adapters: ["*"]\\n    scopes: [inference]\\n' "$(printf %s "$KEY" | sha256sum | cut -d' ' -f1)" > ${keys.key}`,
      `kubectl -n ${ns} create secret generic ${keys.name} --from-file=${keys.key}`,
    ].join("\n"),
  });
  if (qdrantEnabled(spec)) {
    const q = spec.qdrant.apiKeySecret;
    secrets.push({
      namespace: ns,
      name: q.name,
      key: q.key,
      purpose: "Qdrant API key (the gateway and Qdrant both read it)",
      create: `kubectl -n ${ns} create secret generic ${q.name} --from-literal=${q.key}="$(openssl rand -hex 32)"`,
    });
  }
  const solver = spec.certificates.acme?.solver;
  if (solver?.type === "dns01Cloudflare") {
    secrets.push({
      namespace: spec.certificates.selfSigned.clusterResourceNamespace,
      name: solver.apiTokenSecret.name,
      key: solver.apiTokenSecret.key,
      purpose: "Cloudflare API token for cert-manager's DNS-01 solver (Zone:DNS:Edit)",
      create: `kubectl -n ${spec.certificates.selfSigned.clusterResourceNamespace} create secret generic ${solver.apiTokenSecret.name} --from-literal=${solver.apiTokenSecret.key}=<token>`,
    });
  }
  return secrets;
}

export function secretsReadme(ctx: RenderContext, secrets: readonly RequiredSecret[]): string {
  const rows = secrets.map((s) => `| \`${s.namespace}\` | \`${s.name}\` | \`${s.key}\` | ${s.purpose} |`);
  const commands = secrets.map((s) => `# ${s.name}\n${s.create}`);
  return [
    `# Secrets for platform \`${ctx.platform.name}\` (${ctx.platform.environment})`,
    "",
    "The rendered manifests reference these Secrets but never contain their values. Create them before `apply`.",
    "",
    "| namespace | name | key | purpose |",
    "|---|---|---|---|",
    ...rows,
    "",
    "```sh",
    ...commands,
    "```",
    "",
  ].join("\n");
}
