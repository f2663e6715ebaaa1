import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { mkdtempSync, renameSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Writable } from "node:stream";
import OpenAI from "openai";
import { pino, type Logger } from "pino";
import { stringify } from "yaml";
import { GatewayConfig, type GatewayConfigInput } from "../../../src/gateway/config.ts";
import { startGateway, type GatewayOptions, type RunningGateway } from "../../../src/gateway/server.ts";

export const KEYS = {
  all: "sk-test-all-adapters",
  code: "sk-test-code-only",
  noScope: "sk-test-admin-only",
} as const;

const sha256 = (key: string) => createHash("sha256").update(key).digest("hex");

export function keysYaml(): string {
  return stringify({
    keys: [
      { sha256: sha256(KEYS.all), tenant: "acme", adapters: ["*"], scopes: ["inference"] },
      { sha256: sha256(KEYS.code), tenant: "beta", adapters: ["code"], scopes: ["inference"] },
      { sha256: sha256(KEYS.noScope), tenant: "ops", adapters: ["*"], scopes: ["admin"] },
    ],
  });
}

const limits = { concurrency: 8, queue: 8, timeoutMs: 3000, firstByteTimeoutMs: 1000 };

export interface TestLimits {
  readonly concurrency?: number;
  readonly queue?: number;
  readonly timeoutMs?: number;
  readonly firstByteTimeoutMs?: number;
}

/** The test adapters with some limits changed. */
export function adaptersWith(upstreamUrl: string, changed: TestLimits): GatewayConfigInput["adapters"] {
  return testConfig(upstreamUrl).adapters.map((adapter) => ({ ...adapter, limits: { ...adapter.limits, ...changed } }));
}

/** A config like the renderer's, pointed at test upstreams, with small timeouts. */
export function testConfig(upstreamUrl: string, overrides: Partial<GatewayConfigInput> = {}, dir?: string): GatewayConfigInput {
  return {
    apiVersion: "diatonic.ai/v1alpha1",
    kind: "GatewayConfig",
    platform: "test",
    server: { port: 8080, maxBodyBytes: 4096, logPrompts: false },
    auth: { mode: "required", ...(dir !== undefined ? { keysFile: join(dir, "keys.yaml") } : {}) },
    rateLimits: { requestsPerMinute: 10_000, tokensPerMinute: 10_000_000 },
    upstreams: {
      engine: {
        url: upstreamUrl,
        discovery: "static",
        connectTimeoutMs: 300,
        health: { ejectAfterFailures: 2, ejectionMs: 100, maxEjectionMs: 400 },
      },
    },
    baseModel: { name: "llama-base", upstream: "engine" },
    embeddings: { upstream: "engine", model: "llama-base" },
    adapters: [
      {
        name: "code",
        route: "/code",
        upstreamModel: "code-lora",
        upstream: "engine",
        systemPrompt: "You write code.",
        sampling: { temperature: 0.2, maxTokens: 64 },
        limits,
      },
      { name: "chatbot", route: "/chatbot", upstreamModel: "llama-base", upstream: "engine", sampling: {}, limits },
      {
        name: "handbook",
        route: "/handbook",
        upstreamModel: "llama-base",
        upstream: "engine",
        systemPrompt: "Answer from the context.",
        sampling: {},
        rag: { collection: "handbook", onFailure: "answerWithoutContext" },
        limits,
      },
      {
        name: "strict",
        route: "/strict",
        upstreamModel: "llama-base",
        upstream: "engine",
        sampling: {},
        rag: { collection: "handbook", onFailure: "fail" },
        limits,
      },
      {
        name: "narrow",
        route: "/narrow",
        upstreamModel: "llama-base",
        upstream: "engine",
        sampling: {},
        limits: { ...limits, concurrency: 1, queue: 0 },
      },
    ],
    ...overrides,
  };
}

/** Log lines the gateway wrote, parsed. */
export class LogCapture {
  readonly lines: Record<string, unknown>[] = [];
  readonly logger: Logger;
  constructor() {
    const sink = new Writable({
      write: (chunk: Buffer, _encoding, done) => {
        for (const line of chunk.toString("utf8").split("\n"))
          if (line.trim() !== "") this.lines.push(JSON.parse(line) as Record<string, unknown>);
        done();
      },
    });
    this.logger = pino({ level: "info" }, sink);
  }
  find(message: string): Record<string, unknown>[] {
    return this.lines.filter((line) => line.msg === message);
  }
}

export interface TestGateway {
  readonly gateway: RunningGateway;
  readonly dir: string;
  readonly configFile: string;
  readonly logs: LogCapture;
  client(key?: string, prefix?: string): OpenAI;
  writeConfig(config: GatewayConfigInput | string): void;
  close(): Promise<void>;
}

/**
 * A config for a gateway that needs no key (auth disabled, generous rate limits, port 8080): the
 * envelope every RAG test shares, with its upstreams, adapters and stores given.
 */
export function keylessGatewayConfig(
  parts: Omit<GatewayConfigInput, "apiVersion" | "kind" | "platform" | "server" | "auth" | "rateLimits"> &
    Partial<Pick<GatewayConfigInput, "server" | "rateLimits">>,
): GatewayConfig {
  return GatewayConfig.parse({
    apiVersion: "diatonic.ai/v1alpha1",
    kind: "GatewayConfig",
    platform: "test",
    server: { port: 8080 },
    auth: { mode: "disabled" },
    rateLimits: { requestsPerMinute: 10_000, tokensPerMinute: 10_000_000 },
    ...parts,
  });
}

/** An adapter on the tiny model of upstream `engine` at temperature 0, with a RAG binding: as the RAG tests serve one. */
export function ragAdapter(
  name: string,
  rag: NonNullable<GatewayConfigInput["adapters"][number]["rag"]>,
  adapterLimits: TestLimits,
): GatewayConfigInput["adapters"][number] {
  return {
    name,
    route: `/${name}`,
    upstreamModel: "tiny",
    upstream: "engine",
    sampling: { temperature: 0, maxTokens: 4 },
    rag,
    limits: { ...limits, ...adapterLimits },
  };
}

/**
 * A gateway config over engine replicas with adapter agents at agentPort: residency, placement and
 * the diatonic policy, polled fast; one adapter per LoRA name, at temperature 0.
 */
export function placementConfig(
  engineUrls: readonly string[],
  agentPort: number,
  adapters: readonly string[],
  adapterLimits: TestLimits,
): Partial<GatewayConfigInput> {
  const [first, ...rest] = engineUrls;
  return {
    upstreams: {
      engine: {
        url: first ?? "",
        replicas: rest,
        discovery: "static",
        connectTimeoutMs: 1000,
        residency: { pollMs: 100 },
        placement: { agentPort, publishMs: 200, ttlMs: 1000 },
      },
    },
    routing: { policy: "diatonic", slots: 2, swapMs: 5, loadPollMs: 100 },
    baseModel: { name: "tiny", upstream: "engine" },
    adapters: adapters.map((name) => ({
      name,
      route: `/${name}`,
      upstreamModel: name,
      upstream: "engine",
      sampling: { temperature: 0, maxTokens: 4 },
      limits: { ...limits, ...adapterLimits },
    })),
  };
}

/** Writes the config (and keys) to a temp dir and starts a gateway on a free port. */
export async function startTestGateway(
  upstreamUrl: string,
  overrides: Partial<GatewayConfigInput> = {},
  options: Partial<GatewayOptions> = {},
): Promise<TestGateway> {
  const dir = mkdtempSync(join(tmpdir(), "diatonic-gateway-"));
  const configFile = join(dir, "config.yaml");
  writeFileSync(join(dir, "keys.yaml"), keysYaml());
  const writeConfig = (config: GatewayConfigInput | string) => {
    const text = typeof config === "string" ? config : stringify(GatewayConfig.parse(config));
    // Write then rename, as an editor or a ConfigMap swap would: the watcher never sees half a file.
    writeFileSync(`${configFile}.tmp`, text);
    renameSync(`${configFile}.tmp`, configFile);
  };
  writeConfig(testConfig(upstreamUrl, overrides, dir));
  const logs = new LogCapture();
  const gateway = await startGateway({
    configFile,
    port: 0,
    logger: logs.logger,
    defaultMetrics: false,
    watch: { debounceMs: 20, pollMs: 200 },
    ...options,
  });
  return {
    gateway,
    dir,
    configFile,
    logs,
    client: (key: string = KEYS.all, prefix = "") =>
      new OpenAI({ apiKey: key, baseURL: `${gateway.url}${prefix}/v1`, maxRetries: 0, timeout: 5000 }),
    writeConfig,
    close: async () => {
      await gateway.close();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

/** Polls until `check` holds, failing after `timeoutMs`. */
export async function eventually(check: () => boolean | Promise<boolean>, timeoutMs = 5000, what = "condition"): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (await check()) return;
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
  throw new Error(`timed out waiting for ${what}`);
}

/** The OpenAI SDK error a call rejects with; fails the test if it succeeds or throws anything else. */
export async function apiError(promise: Promise<unknown>): Promise<InstanceType<typeof OpenAI.APIError>> {
  try {
    await promise;
  } catch (error) {
    if (error instanceof OpenAI.APIError) return error;
    throw error;
  }
  assert.fail("expected an API error");
}
