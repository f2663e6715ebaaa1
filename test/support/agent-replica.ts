// Engine replicas with their adapter agents, as tests and the routing benchmark run them: the tiny
// generated model, and the adapter set file (the `<engine>-adapters` ConfigMap's adapters.yaml).
import { pino } from "pino";
import { stringify } from "yaml";
import { startAdapterAgent, type RunningAdapterAgent, type StartAdapterAgentOptions } from "../../src/adapters/index.ts";
import type { AdapterSetEntry } from "../../src/adapters/set.ts";
import { startEngine, type RunningEngine } from "../../src/engine/index.ts";
import { API_VERSION } from "../../src/spec/schema.ts";

export function tinyAdapterSetYaml(adapters: readonly AdapterSetEntry[], maxLoraRank = 8): string {
  return stringify({ apiVersion: API_VERSION, kind: "AdapterSet", engine: "engine", baseModel: "tiny", maxLoraRank, adapters });
}

/**
 * A local engine on `host` (two slots for LoRAs, two sequences) and its adapter agent on the same
 * address at `agentPort`, as in a pod; both silent, the agent quick to poll and retry.
 */
export async function startAgentReplica(options: {
  readonly modelPath: string;
  readonly host: string;
  readonly setFile: string;
  readonly cacheDir: string;
  readonly agentPort: number;
  readonly agent?: Pick<StartAdapterAgentOptions, "backoffMs" | "placementGraceMs">;
}): Promise<{ engine: RunningEngine; agent: RunningAdapterAgent }> {
  const silent = pino({ level: "silent" });
  const engine = await startEngine({
    modelPath: options.modelPath,
    servedModelName: "tiny",
    host: options.host,
    port: 0,
    threads: 1,
    parallel: 2,
    maxLoras: 2,
    maxLoraRank: 8,
    logger: silent,
  });
  const agent = await startAdapterAgent({
    configFile: options.setFile,
    engineUrl: engine.url,
    cacheDir: options.cacheDir,
    host: options.host,
    port: options.agentPort,
    logger: silent,
    watch: { debounceMs: 20, pollMs: 200 },
    resyncMs: 100,
    ...options.agent,
  });
  return { engine, agent };
}
