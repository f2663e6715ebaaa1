// A real local engine (tiny generated model), a local Hub mirror serving tiny LoRA files, and the
// adapter agent between them, with its adapter set in a file the test rewrites as kubelet would.
import { createHash } from "node:crypto";
import { mkdirSync, mkdtempSync, readFileSync, renameSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { pino } from "pino";
import { startAdapterAgent, type AdapterStatus, type RunningAdapterAgent } from "../../src/adapters/index.ts";
import type { AdapterSetEntry } from "../../src/adapters/set.ts";
import { writeGgufFile } from "../../src/engine/gguf/writer.ts";
import { startEngine, type RunningEngine } from "../../src/engine/index.ts";
import { TINY_MODEL_SHAPE, tinyLoraAdapter, writeTestModels } from "../../src/engine/tiny/model.ts";
import { startHubServer, type RunningHub } from "../../src/model/hub-server.ts";
import { tinyAdapterSetYaml } from "../support/agent-replica.ts";

export interface Rig {
  readonly dir: string;
  readonly hub: RunningHub;
  engine: RunningEngine;
  readonly agent: RunningAdapterAgent;
  readonly configFile: string;
  readonly modelPath: string;
  /** Publishes a tiny LoRA at org/<repo>@<revision>/lora.gguf (seed picks its weights); returns its sha256. */
  publish(repo: string, revision: string, seed: number, options?: { rank?: number; embedding?: number }): string;
  /** Rewrites the adapter set file the way kubelet swaps a mounted ConfigMap: a new file, renamed over. */
  setAdapters(adapters: readonly AdapterSetEntry[]): void;
  status(): Promise<AdapterStatus[]>;
  /** Waits until `check` holds for the agent's status (bounded; the message says what was last seen). */
  until(
    what: string,
    check: (adapters: ReadonlyMap<string, AdapterStatus>) => boolean,
    timeoutMs?: number,
  ): Promise<ReadonlyMap<string, AdapterStatus>>;
  /** Stops the engine and starts a new one on the same port (a container restart). */
  restartEngine(): Promise<void>;
  close(): Promise<void>;
}

export function hubSource(repo: string, revision: string): AdapterSetEntry["source"] {
  return { huggingFace: { repo: `org/${repo}`, revision, file: "lora.gguf" } };
}

export async function startRig(options: { maxLoraRank?: number; backoffMs?: number } = {}): Promise<Rig> {
  const dir = mkdtempSync(join(tmpdir(), "diatonic-agent-"));
  const models = writeTestModels(join(dir, "model"));
  const hubRoot = join(dir, "hub");
  mkdirSync(hubRoot);
  const hub = await startHubServer({ root: hubRoot });
  const silent = pino({ level: "silent" });
  const engineOptions = {
    modelPath: models.model,
    servedModelName: "tiny",
    port: 0,
    threads: 1,
    parallel: 4,
    maxLoras: 2,
    maxLoraRank: options.maxLoraRank ?? 8,
    logger: silent,
  };
  let engine = await startEngine(engineOptions);
  const configFile = join(dir, "config", "adapters.yaml");
  mkdirSync(join(dir, "config"));
  const write = (adapters: readonly AdapterSetEntry[]): void => {
    const temp = `${configFile}.tmp`;
    writeFileSync(temp, tinyAdapterSetYaml(adapters, options.maxLoraRank));
    renameSync(temp, configFile);
  };
  write([]);
  const agent = await startAdapterAgent({
    configFile,
    engineUrl: engine.url,
    cacheDir: join(dir, "cache"),
    port: 0,
    host: "127.0.0.1",
    hub: { endpoint: hub.url },
    logger: silent,
    watch: { debounceMs: 20, pollMs: 200 },
    resyncMs: 200,
    backoffMs: options.backoffMs ?? 100,
  });
  const status = async (): Promise<AdapterStatus[]> =>
    ((await (await fetch(`${agent.url}/status`)).json()) as { adapters: AdapterStatus[] }).adapters;
  const rig: Rig = {
    dir,
    hub,
    engine,
    agent,
    configFile,
    modelPath: models.model,
    publish(repo, revision, seed, publishOptions = {}) {
      const folder = join(hubRoot, "org", repo, revision);
      mkdirSync(folder, { recursive: true });
      const file = join(folder, "lora.gguf");
      const shape =
        publishOptions.embedding === undefined ? TINY_MODEL_SHAPE : { ...TINY_MODEL_SHAPE, embedding: publishOptions.embedding };
      writeGgufFile(file, tinyLoraAdapter({ seed, rank: publishOptions.rank ?? 4, shape }));
      return createHash("sha256").update(readFileSync(file)).digest("hex");
    },
    setAdapters: write,
    status,
    async until(what, check, timeoutMs = 30_000) {
      const deadline = Date.now() + timeoutMs;
      let last: AdapterStatus[] = [];
      for (;;) {
        last = await status();
        const byName = new Map(last.map((a) => [a.name, a]));
        if (check(byName)) return byName;
        if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}; the agent reports ${JSON.stringify(last, null, 1)}`);
        await sleep(50);
      }
    },
    async restartEngine() {
      const port = Number(new URL(engine.url).port);
      await engine.close();
      engine = await startEngine({ ...engineOptions, port });
      rig.engine = engine;
    },
    async close() {
      await agent.close();
      await engine.close();
      await hub.close();
      rmSync(dir, { recursive: true, force: true });
    },
  };
  return rig;
}

/** A chat completion to the engine; resolves with the status and the text (streamed when asked). */
export async function chat(
  engineUrl: string,
  model: string,
  options: { maxTokens?: number; stream?: boolean } = {},
): Promise<{ status: number; text: string }> {
  const response = await fetch(`${engineUrl}/v1/chat/completions`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({
      model,
      messages: [{ role: "user", content: "what is a pod" }],
      temperature: 0,
      max_tokens: options.maxTokens ?? 8,
      stream: options.stream ?? false,
    }),
  });
  return { status: response.status, text: await response.text() };
}
