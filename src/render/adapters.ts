import type { IConfigMap } from "kubernetes-models/v1/ConfigMap";
import { adapterRoute } from "../spec/rules.ts";
import { toYaml } from "../write/yaml.ts";
import { names, type KubeObject, type Placed, type RenderContext } from "./context.ts";
import { describeSource } from "../adapters/set.ts";
import { adapterSetName, engineServiceFor, upstreamModelFor } from "./engine.ts";

/**
 * Each adapter's own record, in its own file: routing metadata, the LoRA it runs, its RAG binding
 * and which Secret holds the vector store's credentials. Adding an adapter adds one file.
 */
export function renderAdapters(ctx: RenderContext): Placed[] {
  const { spec } = ctx.platform;
  return spec.adapters.map((adapter) => {
    const record = {
      name: adapter.name,
      description: adapter.description,
      route: adapterRoute(adapter),
      serving: adapter.serving,
      engineService: engineServiceFor(adapter),
      upstreamModel: upstreamModelFor(spec, adapter),
      // The engine's adapter agent fetches and loads it: its state is on the agent's /status.
      lora: adapter.lora
        ? { source: describeSource(adapter.lora.source), rank: adapter.lora.rank, adapterSet: adapterSetName(engineServiceFor(adapter)) }
        : null,
      rag: adapter.rag ? { ...adapter.rag, vectorStore: { service: names.qdrant, credentialsSecret: spec.qdrant.apiKeySecret } } : null,
    };
    const configMap: IConfigMap = {
      apiVersion: "v1",
      kind: "ConfigMap",
      metadata: {
        ...ctx.meta(names.adapterConfig(adapter.name), "adapter"),
        labels: { ...ctx.labels(names.adapterConfig(adapter.name), "adapter"), "diatonic.ai/adapter": adapter.name },
      },
      data: { "adapter.yaml": toYaml(record) },
    };
    return { object: configMap as KubeObject, component: `adapters/${adapter.name}` };
  });
}
