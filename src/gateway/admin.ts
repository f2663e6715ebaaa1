import type { ServerResponse } from "node:http";
import { VERSION } from "../render/context.ts";
import type { AdapterList, AdapterResidency, AdapterView, OverviewView, RecentErrorList, SessionView, UsageView } from "./admin-api.ts";
import { mayUse, requireScope, type Principal } from "./auth.ts";
import { methodNotAllowed, notFound } from "./errors.ts";
import type { MetricsHistory } from "./history.ts";
import { RATE_LIMIT_CODES } from "./limits.ts";
import type { GatewayMetrics } from "./metrics.ts";
import type { RecentErrors } from "./recent-errors.ts";
import type { ModelTarget, Runtime, Snapshot } from "./runtime.ts";

/** What the admin API reads: the gateway's own state, nothing it has to ask anyone else for. */
export interface AdminContext {
  readonly snapshot: Snapshot;
  /** Undefined: no key was presented to /v1/admin/session (the one view that answers without one). */
  readonly principal: Principal | undefined;
  readonly runtime: Runtime;
  readonly metrics: GatewayMetrics;
  readonly history: MetricsHistory;
  readonly errors: RecentErrors;
  /** This gateway replica's name (the host's, so a pod's). */
  readonly replica: string;
  readonly startedAt: Date;
}

export const ADMIN_PREFIX = "/v1/admin/";
export const SESSION_PATH = `${ADMIN_PREFIX}session`;
const ADMIN_VIEWS = ["session", "overview", "adapters", "metrics", "errors", "usage"] as const;
type AdminView = (typeof ADMIN_VIEWS)[number];

function isAdminView(name: string): name is AdminView {
  return (ADMIN_VIEWS as readonly string[]).includes(name);
}

/** Where a target runs now, from its upstream pool's replicas and the LoRAs each lists. */
export function residencyOf(target: ModelTarget): AdapterResidency {
  const pool = target.upstream.describe();
  const healthy = pool.replicas.filter((replica) => replica.healthy).map((replica) => replica.origin);
  const base = { name: target.name, lora: target.lora ?? null, upstream: pool.name };
  if (target.lora === undefined) return { ...base, state: "base", replicas: healthy };
  const lora = target.lora;
  // Without residency polling nobody knows: requests go to any healthy replica.
  if (pool.replicas.every((replica) => replica.loras === undefined)) return { ...base, state: "unknown", replicas: healthy };
  const holding = pool.replicas.filter((replica) => replica.loras?.includes(lora) === true).map((replica) => replica.origin);
  if (holding.length > 0) return { ...base, state: "loaded", replicas: holding };
  const failure = target.upstream.adapterFailure(lora);
  if (failure === undefined) return { ...base, state: "loading", replicas: holding };
  return {
    ...base,
    state: "failed",
    replicas: holding,
    failure: {
      reason: failure.reason,
      replicas: failure.replicas,
      retryAt: failure.retryAt === undefined ? null : new Date(failure.retryAt).toISOString(),
    },
  };
}

/** The adapters a key may see, as /v1/models lists them. */
function adapterTargets(snapshot: Snapshot, principal: Principal): ModelTarget[] {
  return [...snapshot.models.values()].filter((target) => target.adapter !== undefined && mayUse(principal, target.name));
}

function session(context: AdminContext): SessionView {
  const { principal } = context;
  const mode = context.snapshot.config.auth.mode;
  if (principal === undefined)
    return {
      object: "admin.session",
      auth: mode,
      signedIn: false,
      tenant: null,
      scopes: mode === "disabled" ? ["inference", "admin"] : [],
    };
  return {
    object: "admin.session",
    auth: mode,
    signedIn: mode !== "disabled",
    tenant: mode === "disabled" ? null : principal.tenant,
    scopes: [...principal.scopes],
  };
}

function overview(context: AdminContext, principal: Principal): OverviewView {
  const { snapshot, runtime } = context;
  const { config } = snapshot;
  const { ready, problems, degraded } = runtime.readiness();
  return {
    object: "admin.overview",
    platform: config.platform,
    environment: config.environment ?? null,
    version: VERSION,
    gateway: {
      replica: context.replica,
      startedAt: context.startedAt.toISOString(),
      configLoadedAt: snapshot.loadedAt.toISOString(),
      auth: config.auth.mode,
    },
    baseModel: { name: config.baseModel.name, upstream: config.baseModel.upstream },
    vectorStore: config.vectorStore?.kind ?? null,
    ready,
    problems,
    degraded,
    upstreams: runtime.upstreams(),
    adapters: adapterTargets(snapshot, principal).map(residencyOf),
  };
}

function adapters(context: AdminContext, principal: Principal): AdapterList {
  const data = adapterTargets(context.snapshot, principal).map((target): AdapterView => {
    const adapter = target.adapter as NonNullable<ModelTarget["adapter"]>;
    return {
      ...residencyOf(target),
      route: adapter.route,
      description: adapter.description,
      upstreamModel: adapter.upstreamModel,
      loraSource: adapter.lora ?? null,
      systemPrompt: adapter.systemPrompt ?? null,
      sampling: adapter.sampling,
      rag: adapter.rag ?? null,
      limits: adapter.limits,
    };
  });
  return { object: "list", data };
}

async function usage(context: AdminContext): Promise<UsageView> {
  const byTenant = new Map<string, { requests: number; errors: number; tokensIn: number; tokensOut: number }>();
  for (const { tenant, ...totals } of context.metrics.tenantTotals()) byTenant.set(tenant, totals);
  const limited = await context.metrics.rateLimitedByTenant();
  const tenants = new Set([...byTenant.keys(), ...limited.keys()]);
  // "-": requests refused before a key named a tenant (a missing or invalid key).
  const data = [...tenants].sort().map((tenant) => {
    const sum = byTenant.get(tenant) ?? { requests: 0, errors: 0, tokensIn: 0, tokensOut: 0 };
    const limits = limited.get(tenant) ?? {};
    return {
      tenant,
      ...sum,
      rateLimited: { requests: limits[RATE_LIMIT_CODES.requests] ?? 0, tokens: limits[RATE_LIMIT_CODES.tokens] ?? 0 },
    };
  });
  return { object: "admin.usage", replica: context.replica, since: context.startedAt.toISOString(), data };
}

function recentErrors(context: AdminContext): RecentErrorList {
  return { object: "list", replica: context.replica, capacity: context.errors.capacity, data: context.errors.list() };
}

/**
 * `GET /v1/admin/{overview,adapters,metrics,errors,usage}`: read-only views for the console, admin
 * scope only; and `GET /v1/admin/session`, which any caller may ask.
 */
export async function handleAdmin(method: string, path: string, res: ServerResponse, context: AdminContext): Promise<void> {
  const name = path.slice(ADMIN_PREFIX.length);
  const { principal } = context;
  if (name !== "session") {
    if (principal === undefined) throw new Error("admin views other than session need a principal");
    requireScope(principal, "admin");
  }
  if (!isAdminView(name))
    throw notFound(
      `no admin view ${JSON.stringify(name)}: the admin API has ${ADMIN_VIEWS.map((view) => ADMIN_PREFIX + view).join(", ")}`,
      "unknown_route",
    );
  if (method !== "GET") throw methodNotAllowed(path, "GET, HEAD");
  const admin = principal as Principal;
  const answers: Record<AdminView, () => unknown> = {
    session: () => session(context),
    overview: () => overview(context, admin),
    adapters: () => adapters(context, admin),
    metrics: () => context.history.view(),
    errors: () => recentErrors(context),
    usage: () => usage(context),
  };
  const body = JSON.stringify(await answers[name]());
  // Live numbers and configuration: never cached by a browser or a proxy.
  res.writeHead(200, { "content-type": "application/json", "content-length": Buffer.byteLength(body), "cache-control": "no-store" });
  res.end(body);
}
