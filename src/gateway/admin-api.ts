// The read-only admin API that the web console reads (GET /v1/admin/*, admin scope): the shapes of
// its answers. Types only and no imports, so that the console's own build checks itself against them.

/**
 * Where an adapter runs: on the base model (no LoRA), on replicas that hold its LoRA, not yet, or
 * not at all: the adapter agents of every replica it is placed on failed to load it.
 */
export type AdapterState = "base" | "loaded" | "loading" | "failed" | "unknown";

export interface ReplicaView {
  readonly origin: string;
  readonly healthy: boolean;
  /** Requests this gateway has running on the replica. */
  readonly outstanding: number;
  /** The LoRAs the replica's /v1/models lists; absent where residency is not polled. */
  readonly loras?: readonly string[];
}

export interface UpstreamView {
  readonly name: string;
  readonly replicas: readonly ReplicaView[];
  readonly dnsError?: string;
}

export interface AdapterResidency {
  readonly name: string;
  /** The LoRA its requests run on; null for an adapter on the base model (a system prompt, RAG). */
  readonly lora: string | null;
  readonly upstream: string;
  readonly state: AdapterState;
  /** The replicas it runs on now: those holding its LoRA, or every healthy one for the base model. */
  readonly replicas: readonly string[];
  /** With state `failed`: why, as the adapter agents report it, where, and when they try again. */
  readonly failure?: {
    readonly reason: string;
    readonly replicas: readonly string[];
    readonly retryAt: string | null;
  };
}

/**
 * `GET /v1/admin/session`: what the caller's key (or no key) may do here. Answered without a key, so
 * that the console can tell "sign in" from "open" without an error response; a key that is presented
 * must be valid.
 */
export interface SessionView {
  readonly object: "admin.session";
  readonly auth: "required" | "optional" | "disabled";
  /** Whether the request presented a key (it was valid, or the answer would be 401). */
  readonly signedIn: boolean;
  readonly tenant: string | null;
  readonly scopes: readonly ("inference" | "admin")[];
}

export interface OverviewView {
  readonly object: "admin.overview";
  readonly platform: string;
  /** The spec's environment the config was rendered for (`local`, `production`), where it says. */
  readonly environment: string | null;
  readonly version: string;
  readonly gateway: {
    /** This gateway replica (its host name, the pod's name in a cluster): the numbers are its own. */
    readonly replica: string;
    readonly startedAt: string;
    readonly configLoadedAt: string;
    readonly auth: "required" | "optional" | "disabled";
  };
  readonly baseModel: { readonly name: string; readonly upstream: string };
  readonly vectorStore: "qdrant" | "embedded" | null;
  /** Taking traffic (a config is loaded). */
  readonly ready: boolean;
  /** Why not ready. */
  readonly problems: readonly string[];
  /** Adapters (and the base model) with no healthy replica: their requests get 503 until one is back. */
  readonly degraded: readonly string[];
  readonly upstreams: readonly UpstreamView[];
  readonly adapters: readonly AdapterResidency[];
}

export interface SamplingView {
  readonly temperature?: number;
  readonly topP?: number;
  readonly maxTokens?: number;
  readonly presencePenalty?: number;
  readonly frequencyPenalty?: number;
}

export interface RagView {
  readonly collection: string;
  readonly topK: number;
  readonly scoreThreshold: number;
  readonly mode: "hybrid" | "dense" | "keyword";
  readonly onFailure: "fail" | "answerWithoutContext";
}

export interface AdapterView extends AdapterResidency {
  readonly route: string;
  readonly description: string;
  readonly upstreamModel: string;
  /** Where the LoRA's weights come from, as the spec says (a URL without its query or credentials). */
  readonly loraSource: { readonly source: string; readonly rank: number } | null;
  readonly systemPrompt: string | null;
  readonly sampling: SamplingView;
  readonly rag: RagView | null;
  readonly limits: {
    readonly concurrency: number;
    readonly queue: number;
    readonly timeoutMs: number;
    readonly firstByteTimeoutMs: number;
  };
}

export interface AdapterList {
  readonly object: "list";
  readonly data: readonly AdapterView[];
}

/** One value per interval, oldest first; null where the interval had no request. */
export interface AdapterHistory {
  readonly requestsPerSecond: readonly number[];
  readonly errorsPerSecond: readonly number[];
  readonly p50Seconds: readonly (number | null)[];
  readonly p99Seconds: readonly (number | null)[];
  /** Completion tokens per second. */
  readonly tokensPerSecond: readonly number[];
}

export interface MetricsHistoryView {
  readonly object: "admin.metrics";
  readonly replica: string;
  readonly intervalSeconds: number;
  readonly windowSeconds: number;
  /** The end of each interval, in Unix seconds. */
  readonly times: readonly number[];
  readonly adapters: Readonly<Record<string, AdapterHistory>>;
}

/** An error response, as kept for the console: never a prompt, never a key. */
export interface RecentError {
  readonly time: string;
  readonly requestId: string;
  readonly method: string;
  readonly path: string;
  readonly adapter: string | null;
  readonly tenant: string | null;
  readonly status: number;
  readonly code: string | null;
  readonly message: string;
}

export interface RecentErrorList {
  readonly object: "list";
  readonly replica: string;
  readonly capacity: number;
  /** Newest first. */
  readonly data: readonly RecentError[];
}

export interface TenantUsage {
  readonly tenant: string;
  readonly requests: number;
  readonly errors: number;
  readonly tokensIn: number;
  readonly tokensOut: number;
  /** Requests refused by the tenant's keys' rate limits, by limit. */
  readonly rateLimited: { readonly requests: number; readonly tokens: number };
}

export interface UsageView {
  readonly object: "admin.usage";
  readonly replica: string;
  /** Counts are this gateway replica's since it started. */
  readonly since: string;
  readonly data: readonly TenantUsage[];
}
