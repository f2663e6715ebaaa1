import { PLACED_ELSEWHERE } from "../adapters/agent.ts";
import type { LiveRevision } from "./status-spec.ts";
import type { StatusReport } from "./status.ts";

/** status as people read it: the header with the live revision, why it is not ready, then each part. */
/** The live revision, as the header names it. */
function live(revision: LiveRevision | null): string {
  if (revision === null) return "live: no revision recorded";
  return `live: revision ${revision.number} for environment ${revision.environment || "(unknown)"} (${revision.note}, ${revision.appliedAt})`;
}

export function formatStatus(report: StatusReport): string {
  if (report.objects.length === 0 && report.destroyedAt === null) {
    return `nothing deployed in ${report.namespace} (no ApplySet parent found); run ${report.fix ?? "diatonic apply"}\n`;
  }
  const lines: string[] = [];
  if (report.destroyedAt !== null) {
    lines.push(`platform in ${report.namespace}: destroyed at ${report.destroyedAt}; its data was kept:`);
    for (const o of report.objects) lines.push(`  ${o.resource}`);
    lines.push("`diatonic apply` brings the platform back on this data; `diatonic destroy --delete-data --yes` deletes it");
    return `${lines.join("\n")}\n`;
  }
  lines.push(
    `platform in ${report.namespace}${report.environment !== null ? ` for environment ${report.environment}` : ""}: ${report.healthy ? "ready" : "NOT ready"} — ${live(report.revision)}`,
  );
  // The table below gives each live object's state; here what it cannot show: what is missing or stale.
  const shown = new Set(report.objects.map((o) => `${o.resource}: ${o.reason}`));
  const aboutMissing = (reason: string) => report.missing.some((resource) => reason.startsWith(`${resource} `));
  for (const reason of report.reasons) if (!shown.has(reason) && !aboutMissing(reason)) lines.push(`  ${reason}`);
  if (report.missing.length > 0) {
    lines.push(`  missing (${report.missing.length} of the objects the spec renders):`);
    for (const reason of report.reasons) if (aboutMissing(reason)) lines.push(`    ${reason}`);
  }
  if (report.fix !== null) lines.push(`  fix: ${report.fix}`);
  if (report.url) lines.push(`call: ${report.url}  (OpenAI-compatible; model = an adapter name)`);
  if (report.url && report.trust) {
    lines.push(
      `  its certificate is from the platform's own CA; trust it first:`,
      `  kubectl -n ${report.trust.namespace} get secret ${report.trust.secret} -o jsonpath='{.data.ca\\.crt}' | base64 -d > ca.crt`,
      `  then curl --cacert ca.crt …, or NODE_EXTRA_CA_CERTS=ca.crt for Node clients (diatonic ingest too)`,
    );
  }
  lines.push("", "components:");
  const width = Math.max(...report.objects.map((o) => o.resource.length));
  for (const o of [...report.objects].sort((a, b) => a.component.localeCompare(b.component) || a.resource.localeCompare(b.resource))) {
    lines.push(
      `  ${o.state === "ready" ? "✓" : o.state === "failed" ? "✗" : "…"} ${o.component.padEnd(14)} ${o.resource.padEnd(width)}  ${o.reason}`,
    );
  }
  if (report.gpu.length > 0) {
    lines.push("", "GPU slices:");
    for (const g of report.gpu) lines.push(`  ${g.node}: ${g.used}/${g.total} ${g.resource} in use`);
  }
  if (report.adapters.length > 0) {
    lines.push("", "adapters:");
    for (const a of report.adapters) {
      const loaded = a.replicas.filter((r) => r.state === "loaded").length;
      // Replicas the gateways' placement keeps it off are not a problem: counted, not listed.
      const elsewhere = a.replicas.filter((r) => r.state === "unloaded" && r.reason === PLACED_ELSEWHERE).length;
      const summary =
        a.replicas.length === 0
          ? "base model, no LoRA"
          : a.route === "-"
            ? "removed"
            : `loaded on ${loaded}/${a.replicas.length} replica(s)${elsewhere > 0 ? ` (placed on ${a.replicas.length - elsewhere})` : ""}`;
      lines.push(`  ${a.name.padEnd(16)} ${a.route.padEnd(16)} → ${a.upstreamModel}  ${summary}`);
      for (const r of a.replicas) {
        if ((r.state === "loaded" || r.reason === PLACED_ELSEWHERE) && a.route !== "-") continue;
        lines.push(`      ${r.pod}: ${r.state}${r.since ? ` since ${r.since}` : ""}${r.reason ? ` — ${r.reason}` : ""}`);
      }
    }
  }
  if (report.restarts.length > 0) {
    lines.push("", "restarted containers:");
    for (const r of report.restarts) {
      const last = r.lastTermination;
      lines.push(
        `  ${r.pod}/${r.container}: ${r.restarts} restart(s)${last ? `, last ended ${last.reason}${last.exitCode !== null ? ` (exit ${last.exitCode})` : ""}${last.finishedAt ? ` at ${last.finishedAt}` : ""}` : ""}`,
      );
    }
  }
  if (report.certificates.length > 0) {
    lines.push("", "certificates:");
    for (const c of report.certificates)
      lines.push(`  ${c.name}: ${c.ready ? "ready" : "NOT ready"}${c.notAfter ? `, expires ${c.notAfter}` : ""}`);
  }
  return `${lines.join("\n")}\n`;
}
