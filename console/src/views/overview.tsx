import { useMemo } from "preact/hooks";
import type { AdapterResidency, AdapterState, MetricsHistoryView, OverviewView, RecentErrorList } from "../../../src/gateway/admin-api.ts";
import type { Api } from "../api.ts";
import { PALETTE, TimeChart, type ChartSeries } from "../chart.tsx";
import { clock, count, dateTime, milliseconds, rate } from "../format.ts";
import { usePolling } from "../hooks.ts";

const REFRESH_MS = 5000;

const STATE_TEXT: Readonly<Record<AdapterState, string>> = {
  base: "base model",
  loaded: "loaded",
  loading: "loading",
  failed: "cannot load",
  unknown: "not tracked",
};

export function StateBadge({ state }: { readonly state: AdapterState }) {
  return <span class={`badge state-${state}`}>{STATE_TEXT[state]}</span>;
}

/** Why an adapter cannot load, as its replicas' adapter agents report it. */
export function FailureText({ failure }: { readonly failure: AdapterResidency["failure"] }) {
  if (failure === undefined) return null;
  return (
    <span class="small">
      {failure.reason}
      {failure.retryAt !== null && <> (next try {dateTime(failure.retryAt)})</>}
    </span>
  );
}

function Problem({ error }: { readonly error: { readonly message: string } | undefined }) {
  return error === undefined ? null : (
    <p role="alert" class="error">
      {error.message}
    </p>
  );
}

function Charts({ history }: { readonly history: MetricsHistoryView }) {
  const names = Object.keys(history.adapters);
  const colors = new Map(names.map((name, index) => [name, PALETTE[index % PALETTE.length] as string]));
  const of = (pick: (name: string) => readonly (number | null)[], dashed = false, suffix = ""): ChartSeries[] =>
    names.map((name) => ({ label: `${name}${suffix}`, values: pick(name), color: colors.get(name) as string, dashed }));
  const series = useMemo(() => {
    const adapter = (name: string) => history.adapters[name] as NonNullable<MetricsHistoryView["adapters"][string]>;
    return {
      requests: of((name) => adapter(name).requestsPerSecond),
      latency: [...of((name) => adapter(name).p50Seconds, false, " p50"), ...of((name) => adapter(name).p99Seconds, true, " p99")],
      tokens: of((name) => adapter(name).tokensPerSecond),
    };
    // A new answer every refresh: the series follow it.
  }, [history]);
  const minutes = Math.round(history.windowSeconds / 60);
  if (names.length === 0) {
    return (
      <p class="muted">
        No requests yet: charts appear once adapters are used (the gateway samples its metrics every {history.intervalSeconds} s and keeps{" "}
        {minutes} minutes).
      </p>
    );
  }
  return (
    <div class="charts">
      <TimeChart
        title="Requests per second"
        description={`Requests per second for each adapter over the last ${minutes} minutes`}
        times={history.times}
        series={series.requests}
        format={rate}
      />
      <TimeChart
        title="Latency p50 and p99 (dashed)"
        description={`Median and 99th percentile latency for each adapter over the last ${minutes} minutes`}
        times={history.times}
        series={series.latency}
        format={milliseconds}
      />
      <TimeChart
        title="Tokens per second (completion)"
        description={`Completion tokens per second for each adapter over the last ${minutes} minutes`}
        times={history.times}
        series={series.tokens}
        format={rate}
      />
    </div>
  );
}

export function OverviewPage({ api }: { readonly api: Api }) {
  const overview = usePolling((signal) => api.get<OverviewView>("/v1/admin/overview", signal), REFRESH_MS, [api]);
  const history = usePolling((signal) => api.get<MetricsHistoryView>("/v1/admin/metrics", signal), REFRESH_MS, [api]);
  const errors = usePolling((signal) => api.get<RecentErrorList>("/v1/admin/errors", signal), REFRESH_MS, [api]);
  const view = overview.data;
  const cannotLoad = view?.adapters.filter((adapter) => adapter.state === "failed").map((adapter) => adapter.name) ?? [];

  return (
    <>
      <h1>Overview</h1>
      <Problem error={overview.error} />
      {view === undefined ? (
        <p class="muted">Loading…</p>
      ) : (
        <>
          <section aria-labelledby="platform-heading">
            <h2 id="platform-heading" class="visually-hidden">
              Platform
            </h2>
            <div class="stats">
              <div class="stat">
                <span class="stat-label">Platform</span>
                <span class="stat-value">{view.platform}</span>
                <span class="muted small">environment {view.environment ?? "not stated"}</span>
              </div>
              <div class="stat">
                <span class="stat-label">Base model</span>
                <span class="stat-value">{view.baseModel.name}</span>
                <span class="muted small">upstream {view.baseModel.upstream}</span>
              </div>
              <div class="stat">
                <span class="stat-label">Status</span>
                <span class={`stat-value ${!view.ready ? "bad" : view.degraded.length > 0 || cannotLoad.length > 0 ? "warn" : "ok"}`}>
                  {!view.ready ? "Not ready" : view.degraded.length > 0 ? "Degraded" : "Ready"}
                </span>
                <span class="muted small" data-testid="status-detail">
                  {!view.ready
                    ? view.problems.join("; ")
                    : [
                        ...(view.degraded.length > 0 ? [view.degraded.join("; ")] : []),
                        ...(cannotLoad.length > 0 ? [`cannot load: ${cannotLoad.join(", ")} (see below)`] : []),
                      ].join("; ") || "every adapter has a healthy replica"}
                </span>
              </div>
              <div class="stat">
                <span class="stat-label">Gateway replica</span>
                <span class="stat-value mono">{view.gateway.replica}</span>
                <span class="muted small">
                  v{view.version}, up since {dateTime(view.gateway.startedAt)}; config loaded {clock(view.gateway.configLoadedAt)}
                </span>
              </div>
              <div class="stat">
                <span class="stat-label">Vector store</span>
                <span class="stat-value">{view.vectorStore ?? "none"}</span>
                <span class="muted small">auth {view.gateway.auth}</span>
              </div>
            </div>
          </section>

          <section aria-labelledby="replicas-heading">
            <h2 id="replicas-heading">Engine replicas</h2>
            <div class="table-wrap">
              <table>
                <thead>
                  <tr>
                    <th scope="col">Upstream</th>
                    <th scope="col">Replica</th>
                    <th scope="col">Health</th>
                    <th scope="col">In flight</th>
                    <th scope="col">LoRAs loaded</th>
                  </tr>
                </thead>
                <tbody>
                  {view.upstreams.flatMap((upstream) =>
                    upstream.replicas.length === 0
                      ? [
                          <tr key={upstream.name}>
                            <td>{upstream.name}</td>
                            <td colSpan={4} class="error-text">
                              no replicas{upstream.dnsError !== undefined ? `: ${upstream.dnsError}` : ""}
                            </td>
                          </tr>,
                        ]
                      : upstream.replicas.map((replica) => (
                          <tr key={`${upstream.name} ${replica.origin}`}>
                            <td>{upstream.name}</td>
                            <td class="mono">{replica.origin}</td>
                            <td>
                              <span class={`badge ${replica.healthy ? "state-loaded" : "state-failed"}`}>
                                {replica.healthy ? "healthy" : "ejected"}
                              </span>
                            </td>
                            <td>{count(replica.outstanding)}</td>
                            <td>
                              {replica.loras === undefined ? (
                                <span class="muted">not polled</span>
                              ) : replica.loras.length === 0 ? (
                                <span class="muted">none</span>
                              ) : (
                                replica.loras.join(", ")
                              )}
                            </td>
                          </tr>
                        )),
                  )}
                </tbody>
              </table>
            </div>
          </section>

          <section aria-labelledby="residency-heading">
            <h2 id="residency-heading">Where each adapter is loaded</h2>
            <div class="table-wrap">
              <table>
                <thead>
                  <tr>
                    <th scope="col">Adapter</th>
                    <th scope="col">LoRA</th>
                    <th scope="col">State</th>
                    <th scope="col">Replicas</th>
                  </tr>
                </thead>
                <tbody>
                  {view.adapters.map((adapter) => (
                    <tr key={adapter.name}>
                      <td>
                        <strong>{adapter.name}</strong>
                      </td>
                      <td class="mono">{adapter.lora ?? <span class="muted">none</span>}</td>
                      <td>
                        <StateBadge state={adapter.state} /> <FailureText failure={adapter.failure} />
                      </td>
                      <td class="mono">
                        {adapter.replicas.length === 0 ? <span class="muted">none yet</span> : adapter.replicas.join(", ")}
                      </td>
                    </tr>
                  ))}
                </tbody>
              </table>
            </div>
          </section>
        </>
      )}

      <section aria-labelledby="traffic-heading">
        <h2 id="traffic-heading">Traffic</h2>
        <Problem error={history.error} />
        {history.data !== undefined && <Charts history={history.data} />}
      </section>

      <section aria-labelledby="errors-heading">
        <h2 id="errors-heading">Latest errors</h2>
        <Problem error={errors.error} />
        {errors.data !== undefined &&
          (errors.data.data.length === 0 ? (
            <p class="muted">No error responses since this gateway replica started.</p>
          ) : (
            <div class="table-wrap">
              <table>
                <thead>
                  <tr>
                    <th scope="col">Time</th>
                    <th scope="col">Status</th>
                    <th scope="col">Code</th>
                    <th scope="col">Adapter</th>
                    <th scope="col">Tenant</th>
                    <th scope="col">Request</th>
                    <th scope="col">Message</th>
                  </tr>
                </thead>
                <tbody>
                  {errors.data.data.slice(0, 20).map((error) => (
                    <tr key={error.requestId}>
                      <td class="nowrap">{clock(error.time)}</td>
                      <td>{error.status}</td>
                      <td class="mono">{error.code ?? "–"}</td>
                      <td>{error.adapter ?? "–"}</td>
                      <td>{error.tenant ?? "–"}</td>
                      <td class="mono small">
                        {error.method} {error.path}
                      </td>
                      <td>{error.message}</td>
                    </tr>
                  ))}
                </tbody>
              </table>
            </div>
          ))}
      </section>
    </>
  );
}
