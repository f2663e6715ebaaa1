import type { IPrometheusRule } from "@kubernetes-models/prometheus-operator/monitoring.coreos.com/v1/PrometheusRule";
import type { IServiceMonitor } from "@kubernetes-models/prometheus-operator/monitoring.coreos.com/v1/ServiceMonitor";
import type { IConfigMap } from "kubernetes-models/v1/ConfigMap";
import type { SecretKeyRefSpec } from "../spec/schema.ts";
import { toYaml } from "../write/yaml.ts";
import { renderCertificates } from "./certs.ts";
import { names, type KubeObject, type Placed, type RenderContext, qdrantEnabled } from "./context.ts";
import { contentHash } from "./pod.ts";
import { engineWorkloads } from "./traffic.ts";

const COMPONENT = "observability";
export const SCRAPE_CONFIG_KEY = "prometheus-scrape.yaml";
export const RULES_KEY = "prometheus-rules.yaml";
export const DASHBOARD_KEY = "diatonic.json";
/** Names of the observability objects in the platform namespace. */
export const monitoringNames = { prometheus: "diatonic-prometheus", rules: "diatonic-alerts" } as const;
/** Where a Prometheus without the operator is expected to mount the Qdrant key Secret (the operator's own convention). */
const SECRETS_DIR = "/etc/prometheus/secrets";

/** One scrape job: the platform's Services of one kind, all serving /metrics on their `http` port. */
export interface ScrapeTarget {
  /** The job label of its series: the Service name, as prometheus-operator sets it (the agent's is set apart). */
  readonly job: "gateway" | "engine" | "qdrant" | "adapter-agent";
  readonly services: readonly string[];
  /** The Services' port it scrapes. */
  readonly port: "http" | "agent";
  /** Qdrant protects /metrics with its API key (sent as `Authorization: Bearer`, which Qdrant accepts). */
  readonly bearer?: SecretKeyRefSpec;
}

/** ClusterIP Services only: the headless twins select the same pods, and scraping both doubles every series. */
export function scrapeTargets(ctx: RenderContext): ScrapeTarget[] {
  const { spec } = ctx.platform;
  return [
    { job: "gateway", services: [names.gateway], port: "http" },
    { job: "engine", services: engineWorkloads(spec), port: "http" },
    // The adapter agent beside each engine, on the engine Services' `agent` port, under a job of its own.
    { job: "adapter-agent", services: engineWorkloads(spec), port: "agent" },
    ...(qdrantEnabled(spec)
      ? [{ job: "qdrant" as const, services: [names.qdrant], port: "http" as const, bearer: spec.qdrant.apiKeySecret }]
      : []),
  ];
}

export interface AlertRule {
  readonly alert: string;
  readonly expr: string;
  readonly for: string;
  readonly labels: Readonly<Record<string, string>>;
  readonly annotations: { readonly summary: string; readonly description: string };
}

export interface RuleGroup {
  readonly name: string;
  readonly rules: readonly AlertRule[];
}

function matcher(values: readonly string[]): string {
  return values.length === 1 ? `="${values[0] ?? ""}"` : `=~"${values.join("|")}"`;
}

/** Adapters grouped by timeout; the largest group is written as the complement so that it also covers the base model. */
function latencyExpr(ctx: RenderContext, gateway: string): { expr: string; thresholds: string } {
  const { spec } = ctx.platform;
  const byTimeout = new Map<number, string[]>();
  for (const adapter of spec.adapters) {
    const list = byTimeout.get(adapter.limits.timeoutSeconds) ?? [];
    list.push(adapter.name);
    byTimeout.set(adapter.limits.timeoutSeconds, list);
  }
  const groups = [...byTimeout.entries()].sort((a, b) => b[1].length - a[1].length || a[0] - b[0]);
  const fallback = groups[0]?.[0] ?? spec.ingress.timeoutSeconds;
  const others = groups.slice(1);
  const p99 = (adapters: string) =>
    `histogram_quantile(0.99, sum by (namespace, adapter, le) (rate(diatonic_gateway_request_duration_seconds_bucket{${gateway}${adapters}}[10m])))`;
  const limit = (seconds: number) => Math.round(seconds * 0.8 * 10) / 10;
  const otherNames = others.flatMap(([, list]) => list);
  const parts = [
    `${p99(otherNames.length > 0 ? `,adapter!~"${otherNames.join("|")}"` : "")} > ${limit(fallback)}`,
    ...others.map(([timeout, list]) => `${p99(`,adapter${matcher(list)}`)} > ${limit(timeout)}`),
  ];
  const thresholds = [
    `${limit(fallback)}s${others.length > 0 ? " by default" : ""}`,
    ...others.map(([timeout, list]) => `${limit(timeout)}s for ${list.join(", ")}`),
  ].join("; ");
  return { expr: parts.join("\nor\n"), thresholds };
}

/** `for: 5m` of an absent series also catches Prometheus not scraping the job at all (ServiceMonitor not selected). */
/** The `job` label values of a target's series: its Services' names, or the agent's own job. */
function jobsOf(target: ScrapeTarget): readonly string[] {
  return target.port === "agent" ? [target.job] : target.services;
}

function downAlert(ctx: RenderContext, target: ScrapeTarget, perInstance: boolean): AlertRule {
  const up = `up{namespace="${ctx.namespace}",job${matcher(jobsOf(target))}}`;
  const what = { gateway: "gateway", engine: "engine", qdrant: "Qdrant", "adapter-agent": "adapter agent" }[target.job];
  return {
    alert: `Diatonic${{ gateway: "Gateway", engine: "Engine", qdrant: "Qdrant", "adapter-agent": "AdapterAgent" }[target.job]}Down`,
    expr: perInstance ? `${up} == 0\nor\nabsent(${up})` : `max by (namespace, job) (${up}) == 0\nor\nabsent(${up})`,
    for: "5m",
    labels: { severity: "critical", platform: ctx.platform.name },
    annotations: {
      summary: perInstance
        ? `${what} {{ if $labels.pod }}pod {{ $labels.pod }} {{ end }}in {{ $labels.namespace }} is down or not scraped`
        : `no ${what} in {{ $labels.namespace }} is up or scraped`,
      description:
        `Prometheus has had no successful scrape of ${what} (job ${jobsOf(target).join(", ")}) for 5 minutes. ` +
        `Runbook: \`kubectl -n ${ctx.namespace} get pods -l app.kubernetes.io/instance=${ctx.platform.name}\`, then the pod's events and logs; ` +
        (target.bearer ? `a 401 on the scrape means Prometheus has the wrong key from Secret ${target.bearer.name}; ` : "") +
        `if the pods are healthy and the series is absent, the ServiceMonitor or scrape config is not picked up by Prometheus.`,
    },
  };
}

/**
 * The platform's alerts. Every selector is scoped to the platform's namespace: PrometheusRules are
 * evaluated over all of Prometheus's series, and two platforms must not alert for each other.
 */
export function alertRules(ctx: RenderContext): RuleGroup[] {
  const { spec } = ctx.platform;
  const ns = ctx.namespace;
  const targets = scrapeTargets(ctx);
  const gateway = `namespace="${ns}",job="${names.gateway}"`;
  const engineServices = targets.find((t) => t.job === "engine")?.services ?? [names.engine];
  const requests = (extra: string) => `sum by (namespace, adapter) (rate(diatonic_gateway_requests_total{${gateway}${extra}}[5m]))`;
  const latency = latencyExpr(ctx, gateway);
  const labels = (severity: string) => ({ severity, platform: ctx.platform.name });
  const groups: RuleGroup[] = [
    {
      name: "diatonic-gateway",
      rules: [
        {
          alert: "DiatonicGatewayErrorRateHigh",
          // At least 3 requests a minute, so one failed request out of two does not page anybody.
          expr: `(\n  ${requests(`,status=~"5.."`)}\n/\n  ${requests("")}\n) > 0.05\nand on (namespace, adapter)\n  ${requests("")} > 0.05`,
          for: "10m",
          labels: labels("critical"),
          annotations: {
            summary: "{{ $labels.adapter }}: {{ $value | humanizePercentage }} of requests fail with 5xx",
            description:
              "More than 5% of the gateway's responses for adapter {{ $labels.adapter }} in {{ $labels.namespace }} have been 5xx for 10 minutes. " +
              "Runbook: 502/504 point at the engine (check DiatonicEngineDown, its logs, `diatonic status`); 503 at a full adapter queue " +
              "(raise `limits.concurrency`/`queue` or engine replicas); RAG adapters also fail when Qdrant is down. The gateway's JSON logs carry the error code per request.",
          },
        },
        {
          alert: "DiatonicGatewayLatencyHigh",
          expr: latency.expr,
          for: "15m",
          labels: labels("warning"),
          annotations: {
            summary: "{{ $labels.adapter }}: p99 request latency {{ $value | humanizeDuration }}",
            description:
              `The p99 of complete request durations for adapter {{ $labels.adapter }} in {{ $labels.namespace }} has been above 80% of its timeout (${latency.thresholds}) for 15 minutes: ` +
              "requests are about to be cut off. Runbook: compare with diatonic_gateway_time_to_first_token_seconds (queueing) and vllm:num_requests_waiting (engine saturation); " +
              "lower the adapter's `sampling.maxTokens`, add engine replicas or raise `limits.timeoutSeconds`.",
          },
        },
        {
          alert: "DiatonicUpstreamUnavailable",
          // What the gateways see, whatever the cause (engine down or loading, a NetworkPolicy, DNS):
          // no gateway replica has a healthy replica of this upstream, so its adapters get 503.
          expr: `max by (namespace, upstream) (diatonic_gateway_upstream_healthy_replicas{${gateway}}) == 0`,
          for: "5m",
          labels: labels("critical"),
          annotations: {
            summary: "upstream {{ $labels.upstream }}: no healthy replica for 5 minutes",
            description:
              "No gateway in {{ $labels.namespace }} has a healthy replica of upstream {{ $labels.upstream }} for 5 minutes: every request for its adapters gets 503. " +
              "The gateways stay ready (the other adapters still answer) and list it under `degraded` on /readyz. Runbook: `diatonic status --env <env>` " +
              "(is the engine running and ready?), DiatonicEngineDown, then the gateway's logs for connect errors (a NetworkPolicy or DNS would show there).",
          },
        },
        downAlert(ctx, targets[0] as ScrapeTarget, false),
      ],
    },
    {
      name: "diatonic-engine",
      rules: [
        {
          alert: "DiatonicEngineQueueBacklog",
          // vLLM queues only when its batch (KV cache or max-num-seqs) is full: a queue that never drains for 10 minutes is saturation.
          expr: `sum by (namespace, job) (vllm:num_requests_waiting{namespace="${ns}",job${matcher(engineServices)}}) > 0`,
          for: "10m",
          labels: labels("warning"),
          annotations: {
            summary: "{{ $labels.job }}: {{ $value }} requests waiting in the engine for 10 minutes",
            description:
              "The engine {{ $labels.job }} in {{ $labels.namespace }} has had requests waiting without a break for 10 minutes. " +
              "Runbook: check vllm:num_requests_running and GPU memory (KV cache); add engine replicas or GPU slices, lower `maxModelLen`, " +
              "or lower the adapters' `limits.concurrency` so the gateway queues (and sheds) instead.",
          },
        },
        downAlert(ctx, targets[1] as ScrapeTarget, false),
      ],
    },
    {
      name: "diatonic-adapters",
      rules: [
        {
          alert: "DiatonicAdapterFailed",
          // The agent retries a failed adapter with backoff; failed for 10 minutes is not a blip.
          expr: `max by (namespace, pod, adapter) (diatonic_adapter_state{namespace="${ns}",job="adapter-agent",state="failed"}) == 1`,
          for: "10m",
          labels: labels("warning"),
          annotations: {
            summary: "adapter {{ $labels.adapter }} has failed to load on {{ $labels.pod }} for 10 minutes",
            description:
              "The adapter agent in {{ $labels.pod }} ({{ $labels.namespace }}) cannot fetch or load LoRA {{ $labels.adapter }}, and retries with backoff. " +
              `Requests for it go to replicas that hold it, or get 503 while none does. Runbook: \`diatonic status --env <env>\` shows the reason per replica; ` +
              "check the adapter's source (revision, URL, sha256), its rank against model.engine.maxLoraRank, and `kubectl logs {{ $labels.pod }} -c adapter-agent`.",
          },
        },
        {
          alert: "DiatonicAdapterLoadingTooLong",
          expr: `max by (namespace, pod, adapter) (diatonic_adapter_state{namespace="${ns}",job="adapter-agent",state="loading"}) == 1`,
          for: "30m",
          labels: labels("warning"),
          annotations: {
            summary: "adapter {{ $labels.adapter }} has been loading on {{ $labels.pod }} for 30 minutes",
            description:
              "The adapter agent in {{ $labels.pod }} ({{ $labels.namespace }}) has not finished fetching or loading {{ $labels.adapter }} in 30 minutes: a very large download, " +
              "or an engine that never serves. Runbook: `diatonic status` shows the progress or the wait; `kubectl logs {{ $labels.pod }} -c adapter-agent`.",
          },
        },
        downAlert(ctx, targets[2] as ScrapeTarget, true),
      ],
    },
  ];
  const qdrant = targets.find((t) => t.job === "qdrant");
  if (qdrant) groups.push({ name: "diatonic-qdrant", rules: [downAlert(ctx, qdrant, true)] });
  const certificate = renderCertificates(ctx)
    .map((p) => p.object as KubeObject & { spec?: { renewBefore?: string } })
    .find((o) => o.kind === "Certificate" && o.metadata.name === names.gatewayTls && o.metadata.namespace === ns);
  if (certificate) {
    const renewDays = Math.floor(Number(/^(\d+)h$/.exec(certificate.spec?.renewBefore ?? "")?.[1] ?? "360") / 24);
    const metric = "certmanager_certificate_expiration_timestamp_seconds";
    // cert-manager's own ServiceMonitor keeps the Certificate's namespace as `exported_namespace` unless it honors labels.
    const expiry = `(\n  ${metric}{name="${names.gatewayTls}",namespace="${ns}"}\n  or\n  ${metric}{name="${names.gatewayTls}",exported_namespace="${ns}"}\n) - time()`;
    const runbook =
      `Runbook: \`kubectl -n ${ns} describe certificate ${names.gatewayTls}\` and its CertificateRequest/Order/Challenge; for ACME check that ` +
      `${spec.ingress.host} resolves to the ingress and (HTTP-01) that /.well-known/acme-challenge is reachable.`;
    groups.push({
      name: "diatonic-certificates",
      rules: [
        {
          alert: "DiatonicCertificateRenewalOverdue",
          expr: `${expiry} < ${renewDays - 1} * 86400`,
          for: "1h",
          labels: labels("warning"),
          annotations: {
            summary: `certificate ${names.gatewayTls} expires in {{ $value | humanizeDuration }} and has not been renewed`,
            description: `cert-manager renews ${names.gatewayTls} ${renewDays} days before it expires; a day later it still has not. ${runbook}`,
          },
        },
        {
          alert: "DiatonicCertificateExpiringSoon",
          expr: `${expiry} < 3 * 86400`,
          for: "10m",
          labels: labels("critical"),
          annotations: {
            summary: `certificate ${names.gatewayTls} expires in {{ $value | humanizeDuration }}`,
            description: `The ingress certificate for ${spec.ingress.host} expires in less than 3 days; clients will then refuse the connection. ${runbook}`,
          },
        },
      ],
    });
  }
  return groups;
}

/** `scrape_configs` for a Prometheus without the operator: endpoints discovery in our namespace, kept to our Services. */
export function scrapeConfigs(ctx: RenderContext): unknown[] {
  return scrapeTargets(ctx).map((target) => ({
    job_name: `diatonic/${ctx.namespace}/${target.job}`,
    metrics_path: "/metrics",
    scheme: "http",
    ...(target.bearer
      ? { authorization: { type: "Bearer", credentials_file: `${SECRETS_DIR}/${target.bearer.name}/${target.bearer.key}` } }
      : {}),
    kubernetes_sd_configs: [{ role: "endpoints", namespaces: { names: [ctx.namespace] } }],
    relabel_configs: [
      {
        action: "keep",
        source_labels: [
          "__meta_kubernetes_service_label_app_kubernetes_io_part_of",
          "__meta_kubernetes_service_label_app_kubernetes_io_instance",
          "__meta_kubernetes_service_label_app_kubernetes_io_name",
          "__meta_kubernetes_endpoint_port_name",
        ],
        regex: `diatonic;${ctx.platform.name};(${target.services.join("|")});${target.port}`,
      },
      // The same target labels prometheus-operator sets, so the alert rules work with either.
      { source_labels: ["__meta_kubernetes_namespace"], target_label: "namespace" },
      { source_labels: ["__meta_kubernetes_service_name"], target_label: "service" },
      { source_labels: ["__meta_kubernetes_pod_name"], target_label: "pod" },
      target.port === "agent"
        ? { target_label: "job", replacement: target.job }
        : { source_labels: ["__meta_kubernetes_service_name"], target_label: "job" },
    ],
  }));
}

function serviceMonitor(ctx: RenderContext, target: ScrapeTarget): IServiceMonitor {
  return {
    apiVersion: "monitoring.coreos.com/v1",
    kind: "ServiceMonitor",
    metadata: ctx.meta(target.job, COMPONENT),
    spec: {
      selector: {
        matchLabels: { "app.kubernetes.io/part-of": "diatonic", "app.kubernetes.io/instance": ctx.platform.name },
        matchExpressions: [{ key: "app.kubernetes.io/name", operator: "In", values: [...target.services] }],
      },
      namespaceSelector: { matchNames: [ctx.namespace] },
      endpoints: [
        {
          port: target.port,
          path: "/metrics",
          scheme: "http",
          ...(target.port === "agent"
            ? { relabelings: [{ targetLabel: "job", replacement: target.job, action: "replace" as const }] }
            : {}),
          // The operator reads this Secret from the ServiceMonitor's namespace: ours, where the key already lives.
          ...(target.bearer
            ? { authorization: { type: "Bearer", credentials: { name: target.bearer.name, key: target.bearer.key } } }
            : {}),
        },
      ],
    },
  };
}

export interface DashboardPanel {
  readonly id: number;
  readonly type: "timeseries";
  readonly title: string;
  readonly description: string;
  readonly gridPos: { readonly x: number; readonly y: number; readonly w: number; readonly h: number };
  readonly datasource: { readonly type: "prometheus"; readonly uid: string };
  readonly fieldConfig: { readonly defaults: { readonly unit: string }; readonly overrides: readonly never[] };
  readonly options: { readonly legend: { readonly displayMode: "table"; readonly placement: "bottom"; readonly calcs: readonly string[] } };
  readonly targets: readonly { readonly refId: string; readonly expr: string; readonly legendFormat: string }[];
}

export interface GrafanaDashboard {
  readonly uid: string;
  readonly title: string;
  readonly panels: readonly DashboardPanel[];
  readonly templating: { readonly list: readonly Record<string, unknown>[] };
  readonly [field: string]: unknown;
}

/** Gateway and engine at a glance: traffic, errors, latency and TTFT per adapter, tokens, queues, upstream health. */
export function grafanaDashboard(ctx: RenderContext): GrafanaDashboard {
  const engines = scrapeTargets(ctx).find((t) => t.job === "engine")?.services ?? [names.engine];
  const gw = `namespace="$namespace",job="${names.gateway}"`;
  const byAdapter = `${gw},adapter=~"$adapter"`;
  const engine = `namespace="$namespace",job${matcher(engines)}`;
  const rate = (metric: string, selector: string) => `rate(${metric}{${selector}}[$__rate_interval])`;
  const quantile = (q: string, metric: string, selector: string, by: string) =>
    `histogram_quantile(${q}, sum by (${by}, le) (${rate(`${metric}_bucket`, selector)}))`;
  type Target = readonly [expr: string, legend: string];
  const specs: readonly (readonly [title: string, unit: string, description: string, targets: readonly Target[]])[] = [
    [
      "Requests per second",
      "reqps",
      "Gateway requests by adapter (every status).",
      [[`sum by (adapter) (${rate("diatonic_gateway_requests_total", byAdapter)})`, "{{adapter}}"]],
    ],
    [
      "Errors (5xx share)",
      "percentunit",
      "Share of gateway responses that are 5xx, by adapter.",
      [
        [
          `sum by (adapter) (${rate("diatonic_gateway_requests_total", `${byAdapter},status=~"5.."`)}) / sum by (adapter) (${rate("diatonic_gateway_requests_total", byAdapter)})`,
          "{{adapter}}",
        ],
      ],
    ],
    [
      "Request latency p50 / p99",
      "s",
      "Request to last byte, at the gateway.",
      [
        [quantile("0.5", "diatonic_gateway_request_duration_seconds", byAdapter, "adapter"), "p50 {{adapter}}"],
        [quantile("0.99", "diatonic_gateway_request_duration_seconds", byAdapter, "adapter"), "p99 {{adapter}}"],
      ],
    ],
    [
      "Time to first token p50 / p99",
      "s",
      "Request to the first byte of the engine's response, at the gateway.",
      [
        [quantile("0.5", "diatonic_gateway_time_to_first_token_seconds", byAdapter, "adapter"), "p50 {{adapter}}"],
        [quantile("0.99", "diatonic_gateway_time_to_first_token_seconds", byAdapter, "adapter"), "p99 {{adapter}}"],
      ],
    ],
    [
      "Tokens per second",
      "short",
      "Prompt (in) and completion (out) tokens by adapter at the gateway; prefill and generation at the engine.",
      [
        [`sum by (adapter, direction) (${rate("diatonic_gateway_tokens_total", byAdapter)})`, "{{adapter}} {{direction}}"],
        [`sum (${rate("vllm:prompt_tokens_total", engine)})`, "engine prompt"],
        [`sum (${rate("vllm:generation_tokens_total", engine)})`, "engine generation"],
      ],
    ],
    [
      "Gateway queue and in flight",
      "short",
      "Requests waiting for an adapter's concurrency slot, and requests upstream.",
      [
        [`sum by (adapter) (diatonic_gateway_queue_depth{${byAdapter}})`, "queued {{adapter}}"],
        [`sum by (adapter) (diatonic_gateway_in_flight_requests{${byAdapter}})`, "in flight {{adapter}}"],
      ],
    ],
    [
      "Upstream retries and ejections",
      "short",
      "Retries before the first byte, and replicas ejected by passive health checks (per second).",
      [
        [`sum by (upstream, reason) (${rate("diatonic_gateway_upstream_retries_total", gw)})`, "retry {{upstream}} {{reason}}"],
        [`sum by (upstream) (${rate("diatonic_gateway_upstream_ejections_total", gw)})`, "ejected {{upstream}}"],
      ],
    ],
    [
      "Rate limited",
      "reqps",
      "Requests rejected by a per-key rate limit, by tenant and limit.",
      [[`sum by (tenant, limit) (${rate("diatonic_gateway_rate_limited_total", gw)})`, "{{tenant}} {{limit}}"]],
    ],
    [
      "Engine requests running / waiting",
      "short",
      "vLLM's batch (running) and queue (waiting), per engine.",
      [
        [`sum by (job) (vllm:num_requests_running{${engine}})`, "running {{job}}"],
        [`sum by (job) (vllm:num_requests_waiting{${engine}})`, "waiting {{job}}"],
      ],
    ],
    [
      "Engine latency p99",
      "s",
      "Time to first token and end-to-end latency inside the engine, per engine.",
      [
        [quantile("0.99", "vllm:time_to_first_token_seconds", engine, "job"), "TTFT {{job}}"],
        [quantile("0.99", "vllm:e2e_request_latency_seconds", engine, "job"), "e2e {{job}}"],
      ],
    ],
  ];
  const panels = specs.map(([title, unit, description, targets], index): DashboardPanel => ({
    id: index + 1,
    type: "timeseries",
    title,
    description,
    gridPos: { x: (index % 2) * 12, y: Math.floor(index / 2) * 8, w: 12, h: 8 },
    datasource: { type: "prometheus", uid: "${datasource}" },
    fieldConfig: { defaults: { unit }, overrides: [] },
    options: { legend: { displayMode: "table", placement: "bottom", calcs: ["mean", "max"] } },
    targets: targets.map(([expr, legendFormat], t) => ({ refId: String.fromCharCode(65 + t), expr, legendFormat })),
  }));
  return {
    uid: `diatonic-${contentHash([ctx.platform.name, ctx.namespace])}`,
    title: ctx.namespace === ctx.platform.name ? `Diatonic: ${ctx.platform.name}` : `Diatonic: ${ctx.platform.name} (${ctx.namespace})`,
    tags: ["diatonic", "llm"],
    timezone: "browser",
    schemaVersion: 39,
    version: 1,
    editable: true,
    refresh: "30s",
    time: { from: "now-6h", to: "now" },
    panels,
    templating: {
      list: [
        { name: "datasource", label: "Data source", type: "datasource", query: "prometheus", current: {}, hide: 0 },
        // Fixed to the platform's namespace: the dashboard is rendered per platform.
        { name: "namespace", type: "constant", query: ctx.namespace, hide: 2 },
        {
          name: "adapter",
          label: "Adapter",
          type: "query",
          datasource: { type: "prometheus", uid: "${datasource}" },
          query: { query: `label_values(diatonic_gateway_requests_total{${gw}}, adapter)`, refId: "adapters" },
          definition: `label_values(diatonic_gateway_requests_total{${gw}}, adapter)`,
          refresh: 2,
          multi: true,
          includeAll: true,
          allValue: ".*",
          current: { text: "All", value: "$__all" },
          sort: 1,
        },
      ],
    },
  };
}

/**
 * The dashboard's ConfigMap name, unique in the monitoring namespace that platforms share: the platform
 * and its namespace, each named once (`diatonic-acme-llm-dashboard` when the namespace is the platform's name).
 */
export function dashboardName(ctx: RenderContext): string {
  const owner = ctx.namespace === ctx.platform.name ? ctx.platform.name : `${ctx.platform.name}-${ctx.namespace}`;
  return `diatonic-${owner}-dashboard`;
}

/**
 * Monitoring for the platform. With prometheus-operator: ServiceMonitors and a PrometheusRule next to
 * the workloads (the Qdrant key Secret must be in the ServiceMonitor's namespace), and the dashboard in
 * the monitoring namespace, which is where Grafana's sidecar looks by default. Without it, one ConfigMap
 * with a scrape-config file and a rules file in the platform namespace, the only namespace sure to exist
 * (a laptop cluster may have no monitoring at all): a plain Prometheus reads files, so its operator
 * mounts or copies them; the dashboard stays beside it.
 */
export function renderObservability(ctx: RenderContext): Placed[] {
  const { monitoring } = ctx.platform.spec;
  const groups = alertRules(ctx);
  const objects: KubeObject[] = [];
  if (monitoring.prometheusOperator) {
    for (const target of scrapeTargets(ctx)) objects.push(serviceMonitor(ctx, target) as KubeObject);
    const rule: IPrometheusRule = {
      apiVersion: "monitoring.coreos.com/v1",
      kind: "PrometheusRule",
      metadata: ctx.meta(monitoringNames.rules, COMPONENT),
      spec: { groups: groups.map((g) => ({ name: g.name, rules: g.rules.map((r) => ({ ...r })) })) },
    };
    objects.push(rule as KubeObject);
  } else {
    const header = (what: string) => `# ${what} for platform ${ctx.platform.name} in namespace ${ctx.namespace}, rendered by diatonic.\n`;
    const config: IConfigMap = {
      apiVersion: "v1",
      kind: "ConfigMap",
      metadata: ctx.meta(monitoringNames.prometheus, COMPONENT),
      data: {
        [SCRAPE_CONFIG_KEY]:
          header("Scrape jobs") +
          `# Load with \`scrape_config_files\` (Prometheus >= 2.43) or paste under \`scrape_configs\`. The qdrant job reads the\n` +
          `# API key from ${SECRETS_DIR}/<secret>/<key>: copy that Secret into Prometheus's namespace and mount it there.\n` +
          toYaml({ scrape_configs: scrapeConfigs(ctx) }),
        [RULES_KEY]: header("Alerting rules") + "# Load with `rule_files`.\n" + toYaml({ groups }),
      },
    };
    objects.push(config as KubeObject);
  }
  const dashboard = grafanaDashboard(ctx);
  const meta = ctx.meta(dashboardName(ctx), COMPONENT, monitoring.prometheusOperator ? { namespace: monitoring.namespace } : {});
  const dashboardMap: IConfigMap = {
    apiVersion: "v1",
    kind: "ConfigMap",
    // `grafana_dashboard: "1"` is what Grafana's dashboard sidecar (grafana and kube-prometheus-stack charts) watches for.
    metadata: { ...meta, labels: { ...meta.labels, grafana_dashboard: "1" } },
    data: { [DASHBOARD_KEY]: `${JSON.stringify(dashboard, null, 2)}\n` },
  };
  objects.push(dashboardMap as KubeObject);
  return objects.map((object) => ({ object, component: COMPONENT }));
}
