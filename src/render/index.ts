import { WorldError } from "../errors.ts";
import type { Platform } from "../spec/schema.ts";
import { renderAdapters } from "./adapters.ts";
import { renderCertificates } from "./certs.ts";
import { names, RenderContext, type Placed, type RequiredSecret, qdrantEnabled } from "./context.ts";
import { embeddingsDeployed, embeddingsNames, renderEmbeddings } from "./embeddings.ts";
import { renderEngine } from "./engine.ts";
import { renderGateway } from "./gateway.ts";
import { renderGpu } from "./gpu.ts";
import { renderIngress } from "./ingress.ts";
import { renderNamespace } from "./namespace.ts";
import { renderNetworkPolicies } from "./network.ts";
import { renderObservability } from "./observability.ts";
import { renderQdrant } from "./qdrant.ts";
import { QDRANT_SNAPSHOT_JOB, renderQdrantSnapshots } from "./qdrant-snapshots.ts";
import { renderRbac } from "./rbac.ts";
import { renderScaling } from "./scaling.ts";
import { checkSchema, type SchemaViolation } from "./schema-check.ts";
import { requiredSecrets } from "./secrets.ts";

export interface RenderResult {
  readonly platform: Platform;
  /** Objects in apply order, each with the component (file, an adapter's own included) it belongs to. */
  readonly placed: readonly Placed[];
  readonly secrets: readonly RequiredSecret[];
  /** Steps the operator must take outside the rendered objects (GPU Operator, MIG labels). */
  readonly notes: readonly string[];
}

/** Component files in the order `render -o yaml` streams them and `apply` phases them. */
export const COMPONENT_ORDER = [
  "namespace",
  "rbac",
  "certificates",
  "gpu",
  "qdrant",
  "embeddings",
  "engine",
  "gateway",
  "adapters",
  "ingress",
  "network",
  "scaling",
  "observability",
] as const;

function componentRank(component: string): number {
  const head = component.startsWith("adapters/") ? "adapters" : component;
  const rank = (COMPONENT_ORDER as readonly string[]).indexOf(head);
  return rank < 0 ? COMPONENT_ORDER.length : rank;
}

/** Renders every object of the platform and checks each against its schema. Throws on violations. */
export function renderPlatform(platform: Platform): RenderResult {
  const ctx = new RenderContext(platform);
  const { spec } = platform;
  const workloads = [
    { name: names.gateway, component: "gateway" },
    { name: names.engine, component: "engine" },
    ...(qdrantEnabled(spec) ? [{ name: names.qdrant, component: "vector-store" }] : []),
    ...(qdrantEnabled(spec) && spec.qdrant.backups.enabled ? [{ name: QDRANT_SNAPSHOT_JOB, component: "vector-store" }] : []),
    ...(embeddingsDeployed(spec) ? [{ name: embeddingsNames.service, component: "embeddings" }] : []),
  ];
  const gpu = renderGpu(ctx);
  const placed: Placed[] = [
    ...renderNamespace(ctx),
    ...renderRbac(ctx, workloads),
    ...renderCertificates(ctx),
    ...gpu.placed,
    ...renderQdrant(ctx),
    ...renderQdrantSnapshots(ctx),
    ...renderEmbeddings(ctx),
    ...renderEngine(ctx),
    ...renderGateway(ctx),
    ...renderAdapters(ctx),
    ...renderIngress(ctx),
    ...renderObservability(ctx),
    ...renderNetworkPolicies(ctx),
    ...renderScaling(ctx),
  ];
  const ordered = placed
    .map((p, index) => ({ p, index }))
    .sort((a, b) => componentRank(a.p.component) - componentRank(b.p.component) || a.index - b.index)
    .map(({ p }) => p);
  const violations: SchemaViolation[] = ordered.flatMap((p) => checkSchema(p.object));
  if (violations.length > 0) {
    // The spec was valid, so an invalid object is our bug: say so rather than blame the input.
    throw new WorldError(
      `rendered objects failed their schema:\n${violations.map((v) => `  ${v.resource} ${v.path}: ${v.message}`).join("\n")}`,
      "this is a bug in diatonic; please report it with the spec",
    );
  }
  return { platform, placed: ordered, secrets: requiredSecrets(ctx), notes: gpu.notes };
}
