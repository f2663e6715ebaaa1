import { withJsonErrors, type Command } from "../command.ts";

/** A subcommand as `diatonic --help` lists it. */
export interface CommandEntry {
  readonly name: string;
  readonly summary: string;
  /**
   * The command's code, loaded only when it runs: a command loads only what it uses (the gateway
   * image carries no llama.cpp, and the gateway does not start the Kubernetes client).
   */
  load(): Promise<Command>;
}

/** Every `diatonic` subcommand, in the order `diatonic --help` lists them. */
export const commands: readonly CommandEntry[] = [
  {
    name: "quickstart",
    summary: "Render and schema-check the bundled lab example for an environment (default local)",
    load: async () => (await import("./quickstart.ts")).quickstartCommand,
  },
  {
    name: "render",
    summary: "Render the platform's Kubernetes objects as a Kustomize tree (--out) or a YAML stream (-o yaml)",
    load: async () => (await import("./render.ts")).renderCommand,
  },
  {
    name: "validate",
    summary: "Check rendered objects (or YAML files/Kustomize trees) against the schemas and the platform's rules",
    load: async () => (await import("./validate.ts")).validateCommand,
  },
  {
    name: "plan",
    summary: "Render, validate and print the GPU capacity plan: slices, placement, VRAM budget, adapters, Secrets",
    load: async () => (await import("./plan.ts")).planCommand,
  },
  {
    name: "apply",
    summary: "Deploy the platform: preflight, then server-side apply phase by phase with readiness gates, prune, record the revision",
    load: async () => withJsonErrors((await import("./deploy.ts")).applyCommand),
  },
  {
    name: "diff",
    summary: "Show what apply would change (server-side dry run vs live objects); exit 0 no changes, 1 changes",
    load: async () => withJsonErrors((await import("./deploy.ts")).diffCommand),
  },
  {
    name: "status",
    summary: "Each component's state and why, GPU slices per node, adapters, certificate expiry, the URL; --watch follows changes",
    load: async () => withJsonErrors((await import("./deploy.ts")).statusCommand),
  },
  {
    name: "rollback",
    summary: "Re-apply a recorded revision (default: the one before the latest) through the same phases",
    load: async () => withJsonErrors((await import("./deploy.ts")).rollbackCommand),
  },
  {
    name: "destroy",
    summary: "Remove the platform in reverse order; volumes and the namespace stay unless --delete-data",
    load: async () => withJsonErrors((await import("./deploy.ts")).destroyCommand),
  },
  {
    name: "schema",
    summary: "Print (or write with --out) the JSON Schema of platform.yaml for editor completion",
    load: async () => (await import("./schema.ts")).schemaCommand,
  },
  {
    name: "model-download",
    summary: "Fetch model or LoRA files from Hugging Face onto a volume (what the rendered download Job runs)",
    load: async () => (await import("./model-download.ts")).modelDownloadCommand,
  },
  {
    name: "engine",
    summary: "Serve a GGUF model and LoRA adapters on the CPU with vLLM's API (llama.cpp); make-test-model writes tiny ones",
    load: async () => (await import("./engine.ts")).engineCommand,
  },
  {
    name: "adapter-agent",
    summary: "Keep an engine's loaded LoRA adapters equal to an adapter set: fetch, load, unload at runtime (the engine pod's sidecar)",
    load: async () => (await import("./adapter-agent.ts")).adapterAgentCommand,
  },
  {
    name: "gateway",
    summary: "Run the OpenAI-compatible adapter gateway from a rendered gateway config",
    load: async () => (await import("./gateway.ts")).gatewayCommand,
  },
  {
    name: "ingest",
    summary: "Chunk, embed and store documents in a RAG adapter's collection (through the gateway's admin API)",
    load: async () => (await import("./ingest.ts")).ingestCommand,
  },
  {
    name: "dev",
    summary: "Run the platform's local stack in one process: engine, gateway with the spec's adapters, embedded vector store",
    load: async () => (await import("./dev.ts")).devCommand,
  },
];
