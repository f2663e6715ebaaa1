import { z } from "zod";
import { API_VERSION, RagBinding, Sampling } from "../spec/schema.ts";
import { POLICY_NAMES } from "./routing/types.ts";

/**
 * The gateway's configuration: what `render` writes into the gateway ConfigMap and what the gateway
 * validates when it starts or reloads. One schema for both sides.
 */

/** The longest wait a Node timer takes (about 24.8 days): a longer one runs after 1 ms. */
export const MAX_TIMER_MS = 2 ** 31 - 1;

/** Durations the gateway waits out on timers, so longer ones than MAX_TIMER_MS are refused. */
const milliseconds = z
  .number()
  .int()
  .min(1)
  .max(MAX_TIMER_MS, `must be at most ${MAX_TIMER_MS} ms (about 24.8 days), the longest timer Node can set`);

/**
 * The root of an OpenAI-compatible server, which the gateway's paths (`/v1/chat/completions`,
 * `/health`, `/metrics`) go below: a URL written as an OpenAI base URL (`http://vllm:8000/v1`, as
 * SDKs take it) loses its `/v1`, which would otherwise double (`…/v1/v1/chat/completions`, a 404).
 */
export function serverRoot(url: string): string {
  const parsed = new URL(url);
  const path = parsed.pathname.replace(/\/+$/, "");
  if (!path.endsWith("/v1")) return url;
  parsed.pathname = path.slice(0, -"/v1".length);
  return parsed.href.replace(/\/$/, "");
}

const serverUrl = z.url().transform(serverRoot);

export const Upstream = z
  .strictObject({
    /**
     * Root URL of an OpenAI-compatible server, e.g. http://engine-headless.ns.svc.cluster.local:8000
     * (a trailing /v1 is dropped: see serverRoot).
     */
    url: serverUrl,
    /** `dns`: resolve every address behind the host (a headless Service) and balance across them. */
    discovery: z.enum(["static", "dns"]).default("static"),
    connectTimeoutMs: milliseconds.default(2000),
    /** Extra base URLs of the same service, balanced with `url` (static discovery; local runs of several engines). */
    replicas: z.array(serverUrl).optional(),
    /**
     * Health: eject a replica for ejectionMs, doubling up to
     * maxEjectionMs, after ejectAfterFailures requests that fail in a row (passive), or after
     * ejectAfterFailedChecks active checks in a row fail: every checkIntervalMs, a GET of probePath
     * that errs, answers 5xx, or takes past checkTimeoutMs while nothing else comes back from the
     * replica (a frozen engine, or a node gone with connections open, answers no request either).
     */
    health: z
      .strictObject({
        ejectAfterFailures: z.number().int().min(1).optional(),
        ejectionMs: milliseconds.optional(),
        maxEjectionMs: milliseconds.optional(),
        probePath: z.string().startsWith("/").optional(),
        /** 0 turns the active check off. @default 5000 */
        checkIntervalMs: z.union([z.literal(0), milliseconds.min(50)]).optional(),
        /** @default 5000 */
        checkTimeoutMs: milliseconds.min(50).optional(),
        /** Failed checks in a row that eject a replica (apart from ejectAfterFailures, for requests). @default 3 */
        ejectAfterFailedChecks: z.number().int().min(1).optional(),
      })
      .optional(),
    /** Retries before the first byte, on another replica where there is one. */
    maxRetries: z.number().int().min(0).max(5).optional(),
    /** How often `dns` discovery resolves the host again. */
    dnsRefreshMs: milliseconds.min(100).optional(),
    /**
     * Route adapters only to replicas that hold their LoRA, as each replica's /v1/models lists them
     * (polled this often). While none does, the caller gets 503 with Retry-After, never the engine's 404.
     */
    residency: z.strictObject({ pollMs: milliseconds.min(50).default(1000) }).optional(),
    /**
     * Tell each replica's adapter agent (on agentPort at the replica's address) which adapters to keep
     * loaded, as the routing policy places them (policy `diatonic`; src/gateway/placement.ts; the
     * others publish every adapter on every replica), and hear which cannot load. Without it, every
     * agent loads every adapter.
     */
    placement: z
      .strictObject({
        agentPort: z.number().int().min(1).max(65535),
        publishMs: milliseconds.min(100).default(2000),
        ttlMs: milliseconds.min(1000).max(600_000).default(30_000),
        /** Each adapter is kept loaded on at least this many replicas (its homes, then its next-ranked ones): 2 loses no adapter with a replica. */
        minReplicas: z.number().int().min(1).max(64).default(1),
      })
      .refine((p) => p.ttlMs >= 2 * p.publishMs, {
        message: "ttlMs must be at least twice publishMs, or a replica loads every adapter between two publishes",
      })
      .optional(),
  })
  .refine((upstream) => upstream.placement === undefined || upstream.residency !== undefined, {
    message: "placement needs residency: the gateway routes an adapter only to the replicas that have loaded it",
    path: ["placement"],
  });

export const AdapterRoute = z.strictObject({
  name: z.string().min(1),
  route: z.string().regex(/^\/[a-z0-9][a-z0-9-]*$/),
  /** The model name sent upstream: the LoRA module name, or the base model for prompt-only adapters. */
  upstreamModel: z.string().min(1),
  upstream: z.string().min(1),
  description: z.string().default(""),
  /** Where its LoRA comes from, for people and the console (the adapter agent fetches it, not the gateway). */
  lora: z.strictObject({ source: z.string().min(1), rank: z.number().int().min(1) }).optional(),
  systemPrompt: z.string().optional(),
  sampling: Sampling.prefault({}),
  rag: RagBinding.optional(),
  limits: z.strictObject({
    concurrency: z.number().int().min(1),
    queue: z.number().int().min(0),
    timeoutMs: milliseconds,
    firstByteTimeoutMs: milliseconds,
  }),
});

export const VectorStoreConfig = z.discriminatedUnion("kind", [
  z
    .strictObject({
      kind: z.literal("qdrant"),
      url: z.url(),
      apiKeyFile: z.string().optional(),
      /** For collections the gateway creates: copies of each shard (the renderer passes qdrant.replicas). */
      replicationFactor: z.number().int().min(1).optional(),
      /** Copies that must take a write before it is acknowledged (a majority of replicationFactor keeps acknowledged writes through one node's loss). */
      writeConsistencyFactor: z.number().int().min(1).optional(),
      /** Shards per collection; Qdrant's default is the number of nodes. */
      shardNumber: z.number().int().min(1).optional(),
    })
    .refine((store) => store.writeConsistencyFactor === undefined || store.writeConsistencyFactor <= (store.replicationFactor ?? 1), {
      message: "writeConsistencyFactor must be at most replicationFactor (a write cannot wait for more copies than there are)",
      path: ["writeConsistencyFactor"],
    }),
  z.strictObject({ kind: z.literal("embedded"), path: z.string().min(1) }),
]);

/** How requests are spread over an engine's replicas (src/gateway/routing). */
export const Routing = z.strictObject({
  policy: z.enum(POLICY_NAMES).default("diatonic"),
  /** LoRA slots per engine replica where the engine does not report them (vLLM's --max-loras). */
  slots: z.number().int().min(1).default(4),
  /** The cost of a LoRA swap assumed until one is measured, in ms. */
  swapMs: z.number().min(0).max(60_000).default(200),
  /**
   * LoRAs an engine replica keeps in host memory (vLLM's --max-cpu-loras): placement puts no more
   * adapters on a replica than that while the replicas have room (a swap of any other reads its
   * weights from disk). Unbounded without it (the llama.cpp engine keeps every LoRA it read).
   */
  cpuLoras: z.number().int().min(1).optional(),
  /** How often each replica's load (queue, KV cache, adapters in flight) is read from its /metrics. */
  loadPollMs: milliseconds.min(50).max(10_000).default(200),
});

export const GatewayConfig = z.strictObject({
  apiVersion: z.literal(API_VERSION),
  kind: z.literal("GatewayConfig"),
  platform: z.string().min(1),
  /** The spec's environment this config was rendered for (`local`, `production`), shown by the console. */
  environment: z.string().min(1).optional(),
  server: z.strictObject({
    port: z.number().int().min(1).max(65535).default(8080),
    maxBodyBytes: z
      .number()
      .int()
      .min(1024)
      .default(4 * 1024 * 1024),
    logPrompts: z.boolean().default(false),
    /**
     * Host names by which requests without a key may reach the gateway (auth `optional` or
     * `disabled`), besides IP addresses, localhost and cluster names: a guard against DNS rebinding.
     */
    keylessHosts: z
      .array(
        z
          .string()
          .regex(/^[A-Za-z0-9]([-A-Za-z0-9.]*[A-Za-z0-9])?$/, "must be a host name (no scheme, port or path), such as llm.lab.example.com"),
      )
      .optional(),
  }),
  auth: z.strictObject({
    mode: z.enum(["required", "optional", "disabled"]),
    /** YAML file of `{keys: [{sha256, tenant, adapters, scopes}]}`, mounted from a Secret. */
    keysFile: z.string().optional(),
  }),
  rateLimits: z.strictObject({
    requestsPerMinute: z.number().int().min(1),
    tokensPerMinute: z.number().int().min(1),
    /**
     * The limits are the platform's: each gateway replica enforces its share of them, counting the
     * replicas behind this name (the gateway's headless Service, which lists ready pods only).
     */
    sharedBy: z.strictObject({ dns: z.string().min(1), refreshMs: milliseconds.min(100).default(5000) }).optional(),
  }),
  upstreams: z.record(z.string(), Upstream),
  routing: Routing.prefault({}),
  baseModel: z.strictObject({ name: z.string().min(1), upstream: z.string().min(1) }),
  embeddings: z.strictObject({ upstream: z.string().min(1), model: z.string().min(1) }).optional(),
  vectorStore: VectorStoreConfig.optional(),
  adapters: z.array(AdapterRoute),
});

export type GatewayConfig = z.infer<typeof GatewayConfig>;
export type GatewayConfigInput = z.input<typeof GatewayConfig>;
export type AdapterRoute = z.infer<typeof AdapterRoute>;
export type UpstreamConfig = z.infer<typeof Upstream>;
export type RoutingConfig = z.infer<typeof Routing>;
