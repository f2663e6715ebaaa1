import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { copyFileSync, mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, it, type TestContext } from "node:test";
import { parse, stringify } from "yaml";
import { AgentMetrics } from "../../src/adapters/metrics.ts";
import { EngineMetrics } from "../../src/engine/metrics.ts";
import { GatewayMetrics } from "../../src/gateway/metrics.ts";
import { buildEnvironment } from "../../src/render/build.ts";
import { renderPlatform } from "../../src/render/index.ts";
import { RenderContext, type KubeObject } from "../../src/render/context.ts";
import {
  alertRules,
  DASHBOARD_KEY,
  monitoringNames,
  renderObservability,
  RULES_KEY,
  SCRAPE_CONFIG_KEY,
  scrapeTargets,
  type GrafanaDashboard,
  type RuleGroup,
} from "../../src/render/observability.ts";
import { checkSchema } from "../../src/render/schema-check.ts";
import { trafficGraph } from "../../src/render/traffic.ts";
import { loadPlatform } from "../../src/spec/load.ts";
import type { Platform } from "../../src/spec/schema.ts";
import { ready, tool, unmet } from "../support/needs.ts";

const EXAMPLE = "examples/lab/platform.yaml";
const PROMTOOL_TESTS = "test/observability/alerts.promtool.yaml";

function platform(env: string, change: (p: Platform) => Platform = (p) => p): Platform {
  return change(loadPlatform({ file: EXAMPLE, environment: env }));
}

function withMonitoring(prometheusOperator: boolean) {
  return (p: Platform): Platform => ({ ...p, spec: { ...p.spec, monitoring: { ...p.spec.monitoring, prometheusOperator } } });
}

function observability(p: Platform): KubeObject[] {
  return renderObservability(new RenderContext(p)).map((placed) => placed.object);
}

function only(objects: readonly KubeObject[], kind: string, name?: string): Record<string, unknown> {
  const found = objects.filter((o) => o.kind === kind && (name === undefined || o.metadata.name === name));
  assert.equal(found.length, 1, `exactly one ${kind}${name ? `/${name}` : ""}`);
  return found[0] as unknown as Record<string, unknown>;
}

function configData(object: Record<string, unknown>): Record<string, string> {
  return object["data"] as Record<string, string>;
}

/** promtool (Debian package `prometheus`): required in CI, a skip with the reason elsewhere. */
function promtool(t: TestContext): boolean {
  return ready(t, unmet("the alert rules tier", [tool("promtool", "prometheus")]));
}

function runPromtool(args: readonly string[], cwd: string): string {
  const result = spawnSync("promtool", args, { cwd, encoding: "utf8" });
  const output = `${result.stdout}${result.stderr}`;
  assert.equal(result.status, 0, `promtool ${args.join(" ")} failed:\n${output}`);
  return output;
}

/** Every metric a query selects (`name{…}`), so a renamed metric breaks this test rather than a dashboard. */
function metricsIn(expr: string): string[] {
  return [...expr.matchAll(/([a-zA-Z_:][a-zA-Z0-9_:]*)\{/g)].map((m) => m[1] ?? "");
}

/** The series the gateway and engine actually export, histograms with their _bucket/_sum/_count. */
async function exportedMetrics(): Promise<Set<string>> {
  const gateway = new GatewayMetrics({ defaultMetrics: false });
  const engine = new EngineMetrics("m", 1, () => ({ running: 0, waiting: 0, runningAdapters: [], waitingAdapters: [] }));
  const agent = new AgentMetrics();
  const names = new Set<string>();
  for (const registry of [gateway.registry, engine.registry, agent.registry]) {
    for (const metric of await registry.getMetricsAsJSON()) {
      names.add(metric.name);
      // prom-client's typings declare a numeric enum; at run time `type` is the exposition name.
      if (String(metric.type) === "histogram") for (const suffix of ["_bucket", "_sum", "_count"]) names.add(`${metric.name}${suffix}`);
    }
  }
  return names;
}

describe("observability", () => {
  it("is rendered and schema-checked with the platform: ServiceMonitors and a PrometheusRule only with prometheus-operator", () => {
    const production = buildEnvironment({ file: EXAMPLE, environment: "production" }).result.placed;
    const local = buildEnvironment({ file: EXAMPLE, environment: "local" }).result.placed;
    const kinds = (placed: typeof local) =>
      placed.filter((p) => p.component === "observability").map((p) => `${p.object.kind}/${p.object.metadata.name}`);
    assert.deepEqual(kinds(production), [
      "ServiceMonitor/gateway",
      "ServiceMonitor/engine",
      "ServiceMonitor/adapter-agent",
      "ServiceMonitor/qdrant",
      "PrometheusRule/diatonic-alerts",
      "ConfigMap/diatonic-lab-llama3-multi-adapter-dashboard",
    ]);
    assert.deepEqual(kinds(local), ["ConfigMap/diatonic-prometheus", "ConfigMap/diatonic-lab-llama3-multi-adapter-dashboard"]);
    for (const p of [...production, ...local]) assert.deepEqual(checkSchema(p.object), []);
  });

  it("a platform whose namespace is its own name names its dashboard once (not diatonic-acme-llm-acme-llm-dashboard)", () => {
    const same = (p: Platform): Platform => ({ ...p, name: "acme-llm", spec: { ...p.spec, namespace: "acme-llm" } });
    const names = (change: (p: Platform) => Platform) =>
      observability(platform("production", change))
        .filter((o) => o.metadata.labels?.["grafana_dashboard"] === "1")
        .map((o) => o.metadata.name);
    assert.deepEqual(names(same), ["diatonic-acme-llm-dashboard"]);
    assert.deepEqual(
      names((p) => p),
      ["diatonic-lab-llama3-multi-adapter-dashboard"],
    );
  });

  it("ServiceMonitors select exactly the ClusterIP Services, port http; Qdrant's sends its API key as a bearer token", () => {
    const objects = buildEnvironment({ file: EXAMPLE, environment: "production" }).result.placed.map((p) => p.object);
    const services = objects.filter((o) => o.kind === "Service") as unknown as {
      metadata: { name: string; namespace: string; labels: Record<string, string> };
      spec: { ports: { name: string }[] };
    }[];
    for (const [monitor, expected] of [
      ["gateway", ["gateway"]],
      ["engine", ["engine"]],
      ["adapter-agent", ["engine"]],
      ["qdrant", ["qdrant"]],
    ] as const) {
      const spec = only(objects, "ServiceMonitor", monitor)["spec"] as {
        selector: { matchLabels: Record<string, string>; matchExpressions: { key: string; operator: string; values: string[] }[] };
        namespaceSelector: { matchNames: string[] };
        endpoints: { port: string; path: string; authorization?: unknown }[];
      };
      const selected = services.filter(
        (s) =>
          spec.namespaceSelector.matchNames.includes(s.metadata.namespace) &&
          Object.entries(spec.selector.matchLabels).every(([k, v]) => s.metadata.labels[k] === v) &&
          spec.selector.matchExpressions.every((e) => e.operator === "In" && e.values.includes(s.metadata.labels[e.key] ?? "")),
      );
      assert.deepEqual(
        selected.map((s) => s.metadata.name),
        expected,
        `ServiceMonitor/${monitor} selects its Services and not their headless twins`,
      );
      for (const s of selected)
        assert.ok(
          s.spec.ports.some((p) => p.name === spec.endpoints[0]?.port),
          `${s.metadata.name} has the scraped port`,
        );
      assert.equal(spec.endpoints[0]?.path, "/metrics");
      assert.deepEqual(
        spec.endpoints[0]?.authorization,
        monitor === "qdrant" ? { type: "Bearer", credentials: { name: "qdrant-api-key", key: "api-key" } } : undefined,
      );
    }
  });

  it("every scraped Service is reachable from the monitoring namespace through the NetworkPolicies' traffic graph", () => {
    for (const dedicated of [false, true]) {
      const p = platform("production", (x) => ({
        ...x,
        spec: {
          ...x.spec,
          adapters: x.spec.adapters.map((a) => (dedicated && a.name === "code" ? { ...a, serving: "dedicated" as const } : a)),
        },
      }));
      const ctx = new RenderContext(p);
      const flows = trafficGraph(ctx);
      const services = renderPlatform(p)
        .placed.map((x) => x.object)
        .filter((o) => o.kind === "Service") as unknown as {
        metadata: { name: string };
        spec: { ports: { name: string; port: number }[] };
      }[];
      for (const service of scrapeTargets(ctx).flatMap((t) => t.services)) {
        const port = services.find((s) => s.metadata.name === service)?.spec.ports.find((x) => x.name === "http")?.port;
        assert.ok(port, `Service ${service} has an http port`);
        assert.ok(
          flows.some(
            (f) =>
              f.from.kind === "monitoring" &&
              f.from.namespace === p.spec.monitoring.namespace &&
              f.to.kind === "workload" &&
              f.to.name === service &&
              f.port === port,
          ),
          `monitoring (${p.spec.monitoring.namespace}) may reach ${service}:${port}`,
        );
      }
    }
  });

  it("an adapter with a dedicated engine is scraped and alerted on with the shared one", () => {
    const p = platform("production", (x) => ({
      ...x,
      spec: { ...x.spec, adapters: x.spec.adapters.map((a) => (a.name === "code" ? { ...a, serving: "dedicated" as const } : a)) },
    }));
    const objects = observability(p);
    const spec = only(objects, "ServiceMonitor", "engine")["spec"] as { selector: { matchExpressions: { values: string[] }[] } };
    assert.deepEqual(spec.selector.matchExpressions[0]?.values, ["engine", "engine-code"]);
    const rules = alertRules(new RenderContext(p)).flatMap((g) => g.rules);
    assert.match(rules.find((r) => r.alert === "DiatonicEngineQueueBacklog")?.expr ?? "", /job=~"engine\|engine-code"/);
  });

  it("passes promtool check rules and promtool test rules (a firing and a quiet case per alert)", (t) => {
    if (!promtool(t)) return;
    const rule = only(observability(platform("production")), "PrometheusRule");
    const groups = (rule["spec"] as { groups: RuleGroup[] }).groups;
    const alerts = groups.flatMap((g) => g.rules.map((r) => r.alert));
    assert.deepEqual(alerts, [
      "DiatonicGatewayErrorRateHigh",
      "DiatonicGatewayLatencyHigh",
      "DiatonicUpstreamUnavailable",
      "DiatonicGatewayDown",
      "DiatonicEngineQueueBacklog",
      "DiatonicEngineDown",
      "DiatonicAdapterFailed",
      "DiatonicAdapterLoadingTooLong",
      "DiatonicAdapterAgentDown",
      "DiatonicQdrantDown",
      "DiatonicCertificateRenewalOverdue",
      "DiatonicCertificateExpiringSoon",
    ]);
    const dir = mkdtempSync(join(tmpdir(), "diatonic-promtool-"));
    writeFileSync(join(dir, "rules.yaml"), stringify({ groups }));
    copyFileSync(PROMTOOL_TESTS, join(dir, "alerts.promtool.yaml"));
    assert.match(runPromtool(["check", "rules", "rules.yaml"], dir), new RegExp(`SUCCESS: ${alerts.length} rules found`));
    assert.match(runPromtool(["test", "rules", "alerts.promtool.yaml"], dir), /SUCCESS/);

    // Each alert is tested both ways: named in a case that expects it and in one that expects silence.
    const cases = (
      parse(readFileSync(PROMTOOL_TESTS, "utf8")) as {
        tests: { alert_rule_test: { alertname: string; exp_alerts: unknown[] }[] }[];
      }
    ).tests.flatMap((test) => test.alert_rule_test);
    for (const alert of alerts) {
      assert.ok(
        cases.some((c) => c.alertname === alert && c.exp_alerts.length > 0),
        `${alert} has a firing case`,
      );
      assert.ok(
        cases.some((c) => c.alertname === alert && c.exp_alerts.length === 0),
        `${alert} has a quiet case`,
      );
    }
  });

  it("follows the spec: no Qdrant job or alert without Qdrant, no certificate alerts without an ingress, a latency threshold without adapters", (t) => {
    const bare = platform("production", (x) => ({
      ...x,
      spec: { ...x.spec, adapters: [], qdrant: { ...x.spec.qdrant, enabled: false }, ingress: { ...x.spec.ingress, enabled: false } },
    }));
    const objects = observability(bare);
    assert.deepEqual(
      objects.filter((o) => o.kind === "ServiceMonitor").map((o) => o.metadata.name),
      ["gateway", "engine", "adapter-agent"],
    );
    const groups = alertRules(new RenderContext(bare));
    assert.deepEqual(
      groups.map((g) => g.name),
      ["diatonic-gateway", "diatonic-engine", "diatonic-adapters"],
    );
    const latency = groups.flatMap((g) => g.rules).find((r) => r.alert === "DiatonicGatewayLatencyHigh");
    // No adapter timeouts to go by: 80% of the ingress timeout, for every adapter label.
    assert.equal(latency?.expr.includes("adapter!~") || latency?.expr.includes(" or"), false);
    assert.match(latency?.expr ?? "", /\) > 480$/);
    if (!promtool(t)) return;
    const dir = mkdtempSync(join(tmpdir(), "diatonic-promtool-"));
    writeFileSync(join(dir, "rules.yaml"), stringify({ groups }));
    assert.match(runPromtool(["check", "rules", "rules.yaml"], dir), /SUCCESS: 9 rules found/);
  });

  it("without prometheus-operator: the same rules as a rules file, and scrape jobs that keep exactly our Services", (t) => {
    const withOperator = only(observability(platform("production", withMonitoring(true))), "PrometheusRule");
    const objects = observability(platform("production", withMonitoring(false)));
    assert.equal(
      objects.some((o) => o.apiVersion.startsWith("monitoring.coreos.com/")),
      false,
    );
    const data = configData(only(objects, "ConfigMap", monitoringNames.prometheus));
    const rules = parse(data[RULES_KEY] ?? "") as { groups: unknown };
    assert.deepEqual(rules.groups, (withOperator["spec"] as { groups: unknown }).groups);
    const scrape = parse(data[SCRAPE_CONFIG_KEY] ?? "") as {
      scrape_configs: {
        job_name: string;
        authorization?: { credentials_file: string };
        kubernetes_sd_configs: unknown;
        relabel_configs: { action?: string; regex?: string; source_labels: string[] }[];
      }[];
    };
    assert.deepEqual(
      scrape.scrape_configs.map((c) => c.job_name),
      [
        "diatonic/llama3-multi-adapter/gateway",
        "diatonic/llama3-multi-adapter/engine",
        "diatonic/llama3-multi-adapter/adapter-agent",
        "diatonic/llama3-multi-adapter/qdrant",
      ],
    );

    // The keep rule against every Service port of the render, as Prometheus's endpoints discovery labels it.
    const services = buildEnvironment({ file: EXAMPLE, environment: "production" })
      .result.placed.map((p) => p.object)
      .filter((o) => o.kind === "Service") as unknown as {
      metadata: { name: string; labels: Record<string, string> };
      spec: { ports: { name: string }[] };
    }[];
    for (const job of scrape.scrape_configs) {
      assert.deepEqual(job.kubernetes_sd_configs, [{ role: "endpoints", namespaces: { names: ["llama3-multi-adapter"] } }]);
      const keep = job.relabel_configs.find((r) => r.action === "keep");
      assert.ok(keep?.regex);
      const regex = new RegExp(`^(?:${keep.regex})$`);
      const kept = services.flatMap((s) =>
        s.spec.ports
          .filter((port) => {
            const meta: Record<string, string> = {
              __meta_kubernetes_service_label_app_kubernetes_io_part_of: s.metadata.labels["app.kubernetes.io/part-of"] ?? "",
              __meta_kubernetes_service_label_app_kubernetes_io_instance: s.metadata.labels["app.kubernetes.io/instance"] ?? "",
              __meta_kubernetes_service_label_app_kubernetes_io_name: s.metadata.labels["app.kubernetes.io/name"] ?? "",
              __meta_kubernetes_endpoint_port_name: port.name,
            };
            return regex.test(keep.source_labels.map((l) => meta[l] ?? "").join(";"));
          })
          .map((port) => `${s.metadata.name}:${port.name}`),
      );
      const name = job.job_name.split("/")[2] ?? "";
      // The agent is scraped on the engine Service's `agent` port, under a job of its own.
      assert.deepEqual(kept, [name === "adapter-agent" ? "engine:agent" : `${name}:http`]);
    }

    if (!promtool(t)) return;
    const dir = mkdtempSync(join(tmpdir(), "diatonic-promtool-"));
    writeFileSync(join(dir, "rules.yaml"), data[RULES_KEY] ?? "");
    writeFileSync(join(dir, "api-key"), "test");
    // Debian's promtool is built without Kubernetes discovery, so the check sees a static target; the
    // discovery block is asserted above. promtool also wants the key file to exist.
    const checked = scrape.scrape_configs.map(({ kubernetes_sd_configs: _sd, ...job }) => ({
      ...job,
      ...(job.authorization ? { authorization: { ...job.authorization, credentials_file: join(dir, "api-key") } } : {}),
      static_configs: [{ targets: ["127.0.0.1:9"] }],
    }));
    writeFileSync(join(dir, "prometheus.yml"), stringify({ rule_files: ["rules.yaml"], scrape_configs: checked }));
    assert.match(runPromtool(["check", "config", "prometheus.yml"], dir), /SUCCESS: 12 rules found/);
  });

  it("every alert and dashboard query selects metrics that the gateway, the engine or cert-manager export", async () => {
    const exported = await exportedMetrics();
    for (const external of ["up", "certmanager_certificate_expiration_timestamp_seconds"]) exported.add(external);
    const groups = alertRules(new RenderContext(platform("production")));
    for (const rule of groups.flatMap((g) => g.rules)) {
      const used = metricsIn(rule.expr);
      assert.ok(used.length > 0, `${rule.alert} selects a metric`);
      for (const metric of used) assert.ok(exported.has(metric), `${rule.alert}: ${metric} is exported`);
    }
  });

  it("renders a valid Grafana dashboard for the sidecar: per-adapter traffic, errors, latency, TTFT, tokens, queues, engine", async () => {
    const exported = await exportedMetrics();
    for (const [env, namespace] of [
      ["production", "monitoring"],
      ["local", "llama3-multi-adapter"],
    ] as const) {
      const map = only(
        observability(platform(env)),
        "ConfigMap",
        "diatonic-lab-llama3-multi-adapter-dashboard",
      ) as unknown as KubeObject & { data: Record<string, string> };
      assert.equal(map.metadata.namespace, namespace, "beside Grafana with the operator, in the platform namespace without");
      assert.equal(map.metadata.labels?.["grafana_dashboard"], "1");
      const dashboard = JSON.parse(map.data[DASHBOARD_KEY] ?? "") as GrafanaDashboard;
      assert.match(dashboard.uid, /^[a-z0-9-]{1,40}$/);
      const ids = dashboard.panels.map((p) => p.id);
      assert.equal(new Set(ids).size, ids.length, "panel ids are unique");
      const exprs = dashboard.panels.flatMap((p) => p.targets.map((target) => ({ panel: p.title, expr: target.expr })));
      const adapterVariable = dashboard.templating.list.find((v) => v["name"] === "adapter") as { query: { query: string } } | undefined;
      assert.ok(adapterVariable);
      exprs.push({ panel: "variable adapter", expr: adapterVariable.query.query });
      for (const { panel, expr } of exprs) {
        const used = metricsIn(expr);
        assert.ok(used.length > 0, `${panel}: ${expr} selects a metric`);
        for (const metric of used) assert.ok(exported.has(metric), `${panel}: ${metric} is exported by the gateway or the engine`);
        assert.match(expr, /namespace="\$namespace"/, `${panel} is scoped to the platform`);
      }
      const everything = exprs.map((e) => e.expr).join("\n");
      for (const metric of [
        "diatonic_gateway_requests_total",
        "diatonic_gateway_request_duration_seconds_bucket",
        "diatonic_gateway_time_to_first_token_seconds_bucket",
        "diatonic_gateway_tokens_total",
        "diatonic_gateway_queue_depth",
        "diatonic_gateway_upstream_retries_total",
        "diatonic_gateway_upstream_ejections_total",
        "vllm:num_requests_running",
        "vllm:num_requests_waiting",
      ]) {
        assert.ok(everything.includes(`${metric}{`), `the dashboard shows ${metric}`);
      }
      assert.match(
        everything,
        /histogram_quantile\(0\.99, sum by \(adapter, le\) \(rate\(diatonic_gateway_request_duration_seconds_bucket/,
      );
      assert.match(
        everything,
        /histogram_quantile\(0\.5, sum by \(adapter, le\) \(rate\(diatonic_gateway_time_to_first_token_seconds_bucket/,
      );
    }
  });
});
