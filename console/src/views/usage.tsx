import type { UsageView as Usage } from "../../../src/gateway/admin-api.ts";
import type { Api } from "../api.ts";
import { count, dateTime } from "../format.ts";
import { usePolling } from "../hooks.ts";

/** `-`: requests refused before a key named a tenant. */
function tenantName(tenant: string) {
  return tenant === "-" ? <span class="muted">(no valid key)</span> : tenant;
}

export function UsageView({ api }: { readonly api: Api }) {
  const usage = usePolling((signal) => api.get<Usage>("/v1/admin/usage", signal), 10_000, [api]);
  const data = usage.data;
  return (
    <>
      <h1>Usage</h1>
      {usage.error !== undefined && (
        <p role="alert" class="error">
          {usage.error.message}
        </p>
      )}
      {data === undefined ? (
        <p class="muted">Loading…</p>
      ) : (
        <>
          <p class="muted">
            Counted by gateway replica <span class="mono">{data.replica}</span> since {dateTime(data.since)}. Each replica counts its own
            requests; Prometheus sums them across replicas (<span class="mono">diatonic_gateway_requests_total</span>).
          </p>
          {data.data.length === 0 ? (
            <p class="muted">No requests yet.</p>
          ) : (
            <div class="table-wrap">
              <table data-testid="usage">
                <thead>
                  <tr>
                    <th scope="col">Tenant</th>
                    <th scope="col" class="num">
                      Requests
                    </th>
                    <th scope="col" class="num">
                      Errors
                    </th>
                    <th scope="col" class="num">
                      Prompt tokens
                    </th>
                    <th scope="col" class="num">
                      Completion tokens
                    </th>
                    <th scope="col" class="num">
                      Rate-limited (requests/min)
                    </th>
                    <th scope="col" class="num">
                      Rate-limited (tokens/min)
                    </th>
                  </tr>
                </thead>
                <tbody>
                  {data.data.map((tenant) => (
                    <tr key={tenant.tenant}>
                      <th scope="row">{tenantName(tenant.tenant)}</th>
                      <td class="num">{count(tenant.requests)}</td>
                      <td class="num">{count(tenant.errors)}</td>
                      <td class="num">{count(tenant.tokensIn)}</td>
                      <td class="num">{count(tenant.tokensOut)}</td>
                      <td class="num">{count(tenant.rateLimited.requests)}</td>
                      <td class="num">{count(tenant.rateLimited.tokens)}</td>
                    </tr>
                  ))}
                </tbody>
              </table>
            </div>
          )}
        </>
      )}
    </>
  );
}
