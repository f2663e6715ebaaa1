import { architectureYaml, LLAMA3_ARCHITECTURES, namedBillions } from "./architectures.ts";
import { checkGpuSharing, checkMigProfiles, getsMigDevice } from "./gpu-sharing.ts";
import { formatPath } from "./issues.ts";
import type { Path } from "./overlay.ts";
import { checkResources } from "./resources.ts";
import { adaptersWithin, DEFAULT_MAX_CPU_LORAS, gib, largestBytes, loraHostCache } from "./lora-cache.ts";
import type { LoraSourceSpec, Platform, PlatformSpec } from "./schema.ts";

/** A cross-field problem the schema alone cannot see. Paths are relative to the merged spec. */
export interface SpecFinding {
  readonly severity: "error" | "warning";
  readonly path: Path;
  readonly message: string;
  readonly fix: string;
}

export function adapterRoute(adapter: { readonly name: string; readonly route?: string | undefined }): string {
  return adapter.route ?? `/${adapter.name}`;
}

/** True when a LoRA source names a GGUF file, the only form llama.cpp loads. */
export function isGgufLora(source: LoraSourceSpec): boolean {
  const file = "path" in source ? source.path : "url" in source ? new URL(source.url.url).pathname : source.huggingFace.file;
  return file !== undefined && file.toLowerCase().endsWith(".gguf");
}

export interface CheckPlatformOptions {
  /**
   * LoRA files on this machine (`lora.source.path`) are allowed: the platform runs here
   * (`diatonic dev`), not on a cluster whose engines could not read them. @default false
   */
  readonly localPaths?: boolean;
}

/**
 * The VRAM plan is only as right as `model.architecture`, which defaults to Llama 3 8B's shape: a
 * model whose name states another size (`Meta-Llama-3-70B-Instruct`) would be planned as an 8B one.
 */
function checkArchitecture(platform: Platform, warning: (path: Path, message: string, fix: string) => void): void {
  const { model } = platform.spec;
  const source = "huggingFace" in model.source ? model.source.huggingFace : undefined;
  const names = [source?.file, source?.repo.split("/").pop(), model.name].filter((name): name is string => name !== undefined);
  let named: { name: string; billions: number } | undefined;
  for (const name of names) {
    const billions = namedBillions(name);
    if (billions !== undefined) {
      named = { name, billions };
      break;
    }
  }
  const described = model.architecture.parametersBillions;
  const off = named === undefined ? 1 : Math.max(named.billions / described, described / named.billions);
  if (named === undefined || off < 1.25) return;
  const known = LLAMA3_ARCHITECTURES.get(named.billions);
  const isDefault = described === LLAMA3_ARCHITECTURES.get(8)?.parametersBillions;
  warning(
    ["model", "architecture"],
    `the model is named as ${named.billions}B parameters (${named.name}), but model.architecture describes ${described}B${isDefault ? " (Llama 3 8B's shape, the default)" : ""}: its VRAM plan is ${named.billions > described ? "too small" : "too large"} by about ${Math.round(off)}×`,
    known
      ? `set model.architecture to Llama 3 ${named.billions}B's shape: ${architectureYaml(known)}`
      : "set model.architecture to the model's shape, from its config.json (num_hidden_layers, hidden_size, intermediate_size, num_key_value_heads, head_dim, vocab_size)",
  );
}

/**
 * The shared vLLM engine's LoRA cache in host memory: every adapter beyond it is read from disk on
 * each swap, and the adapters it does hold must fit the container's memory limit beside vLLM itself.
 */
function checkLoraHostCache(
  spec: PlatformSpec,
  error: (path: Path, message: string, fix: string) => void,
  warning: (path: Path, message: string, fix: string) => void,
): void {
  const cache = loraHostCache(spec);
  if (cache === undefined) return;
  const path: Path = ["model", "engine", "maxCpuLoras"];
  if (cache.replicas > 0 && cache.places > cache.room) {
    const each = Math.min(cache.adapters, Math.ceil(cache.places / cache.replicas));
    warning(
      path,
      `${cache.adapters} LoRA adapters share the engine, each kept loaded on ${cache.copies} of its ${cache.replicas} replica(s): ${cache.places} places, but each replica keeps ${cache.capacity} in host memory (maxCpuLoras), ${cache.room} in all: a replica that holds more reads a LoRA's weights from disk again on each swap past them`,
      `set model.engine.maxCpuLoras to ${each} (${gib(largestBytes(cache, each))} of host memory per replica at their ranks), or run more engine replicas (model.engine.replicas), or give the engine fewer adapters`,
    );
  }
  if (cache.limitBytes === undefined) return;
  const memory: Path = ["model", "engine", "resources", "limits", "memory"];
  const limit = spec.model.engine.resources.limits.memory as string;
  // Half the limit for the cache, half for vLLM itself; fewer cached adapters only down to the GPU slots.
  const fits = adaptersWithin(cache, cache.limitBytes / 2);
  const fix = `raise model.engine.resources.limits.memory to at least ${gib(cache.bytes * 2)}${fits >= cache.maxLoras && fits < cache.capacity ? `, or set model.engine.maxCpuLoras to ${fits} (adapters past it are read from disk on each swap)` : ""}`;
  if (cache.bytes >= cache.limitBytes)
    error(
      memory,
      `the ${Math.min(cache.adapters, cache.capacity)} LoRAs an engine replica keeps in host memory take ${gib(cache.bytes)} at their ranks, past its memory limit ${limit}: the container would be killed for memory as they load`,
      fix,
    );
  else if (cache.bytes > cache.limitBytes / 2)
    warning(
      memory,
      `the ${Math.min(cache.adapters, cache.capacity)} LoRAs an engine replica keeps in host memory take ${gib(cache.bytes)} at their ranks, more than half its memory limit ${limit}, which vLLM's own host memory (several GiB) shares`,
      fix,
    );
}

export function checkPlatform(platform: Platform, options: CheckPlatformOptions = {}): SpecFinding[] {
  const { spec } = platform;
  const findings: SpecFinding[] = [];
  const error = (path: Path, message: string, fix: string) => findings.push({ severity: "error", path, message, fix });
  const warning = (path: Path, message: string, fix: string) => findings.push({ severity: "warning", path, message, fix });
  const engine = spec.model.engine;

  const context = spec.model.architecture.contextLength;
  if (engine.kind === "vllm" && engine.maxModelLen > context) {
    error(
      ["model", "engine", "maxModelLen"],
      `maxModelLen ${engine.maxModelLen} is longer than the model's context of ${context} tokens (model.architecture.contextLength): vLLM refuses to start ("User-specified max_model_len is greater than the derived max_model_len")`,
      `lower model.engine.maxModelLen to at most ${context}, or, if the model takes longer contexts, set model.architecture.contextLength to its config.json's max_position_embeddings (Llama 3.1 and later: 131072)`,
    );
  }

  const names = new Map<string, number>();
  const routes = new Map<string, number>();
  spec.adapters.forEach((adapter, index) => {
    const at: Path = ["adapters", index];
    const sameName = names.get(adapter.name);
    if (sameName !== undefined)
      error(
        [...at, "name"],
        `adapter name ${JSON.stringify(adapter.name)} is already used by adapters[${sameName}]`,
        "give each adapter a unique name",
      );
    names.set(adapter.name, index);
    if (adapter.name === spec.model.name)
      error(
        [...at, "name"],
        `adapter name ${JSON.stringify(adapter.name)} is the base model's name`,
        "rename the adapter; clients select the base model by this name",
      );
    const route = adapterRoute(adapter);
    const sameRoute = routes.get(route);
    if (sameRoute !== undefined)
      error([...at, "route"], `route ${route} is already used by adapters[${sameRoute}]`, "give each adapter its own route prefix");
    routes.set(route, index);
    if (route === "/v1" || route === "/healthz" || route === "/readyz" || route === "/metrics" || route === "/console") {
      error(
        [...at, adapter.route === undefined ? "name" : "route"],
        `route ${route} collides with one of the gateway's own paths (/v1, /healthz, /readyz, /metrics, /console)`,
        adapter.route === undefined
          ? `the route is /<name> when route is not set: rename the adapter, or set route: to another prefix`
          : "set route: to another prefix",
      );
    }

    const maxTokens = adapter.sampling.maxTokens;
    if (engine.kind === "vllm" && maxTokens !== undefined && maxTokens >= engine.maxModelLen) {
      error(
        [...at, "sampling", "maxTokens"],
        `maxTokens ${maxTokens} leaves no room for the prompt in model.engine.maxModelLen ${engine.maxModelLen}: vLLM refuses every request that uses the default`,
        `lower sampling.maxTokens below ${engine.maxModelLen} (by the longest prompt you expect), or raise model.engine.maxModelLen`,
      );
    }
    if (adapter.lora && engine.kind === "vllm" && adapter.lora.rank > engine.maxLoraRank) {
      error(
        [...at, "lora", "rank"],
        `LoRA rank ${adapter.lora.rank} exceeds model.engine.maxLoraRank ${engine.maxLoraRank}; vLLM would refuse to load it`,
        `raise model.engine.maxLoraRank to at least ${adapter.lora.rank}`,
      );
    }
    if (adapter.lora && "path" in adapter.lora.source && options.localPaths !== true) {
      error(
        [...at, "lora", "source", "path"],
        `${adapter.lora.source.path} is a path on this machine: the engines in the cluster cannot read it (\`path\` is for \`diatonic dev\`)`,
        "publish the LoRA and name it by url: {url: https://…/lora.tar.gz, sha256: …} (a file, or its folder as .tar.gz), or by huggingFace: {repo, revision}",
      );
    }
    if (adapter.lora && engine.kind === "llamacpp" && !isGgufLora(adapter.lora.source)) {
      warning(
        [...at, "lora"],
        "the llamacpp engine loads only GGUF LoRAs; this adapter is served as the base model with its system prompt",
        "point lora.source at a .gguf (convert_lora_to_gguf.py), or set lora: null in this environment",
      );
    }
    if (adapter.serving === "dedicated" && engine.kind !== "vllm") {
      error([...at, "serving"], "dedicated serving needs the vllm engine", "use serving: shared in environments with the llamacpp engine");
    }
    if (adapter.rag && spec.qdrant.enabled === false) {
      error([...at, "rag"], "this adapter retrieves from Qdrant, but qdrant.enabled is false", "enable qdrant or remove the rag binding");
    }
  });

  if (engine.kind === "vllm") {
    // Each vLLM Deployment: the shared engine and every dedicated adapter's, with where its GPU count is set.
    const engines: { readonly path: Path; readonly gpuSlices: number; readonly migProfile: string | undefined }[] = [
      { path: ["model", "engine", "gpuSlices"], gpuSlices: engine.gpuSlices, migProfile: engine.migProfile },
      ...spec.adapters.flatMap((adapter, index) =>
        adapter.serving === "dedicated"
          ? [
              {
                path: ["adapters", index, "dedicated", "gpuSlices"] as Path,
                gpuSlices: adapter.dedicated.gpuSlices,
                migProfile: adapter.dedicated.migProfile,
              },
            ]
          : [],
      ),
    ];
    const tp = engine.tensorParallel;
    for (const { path, gpuSlices, migProfile } of engines) {
      const field = formatPath(path);
      if (getsMigDevice(spec, migProfile) && gpuSlices > 1) {
        // CUDA shows a process one MIG device only: a second one in the same container goes unused.
        error(
          path,
          `under MIG a container can use one MIG device only (CUDA enumerates one per process), but ${field} is ${gpuSlices}`,
          "set gpuSlices (and tensorParallel) to 1 with a MIG profile the model fits, or use whole GPUs (gpu.sharing.mode: none) for tensor parallelism",
        );
      } else if (tp > 1 && gpuSlices !== tp) {
        // vLLM runs one tensor-parallel rank per GPU: the pod gets exactly that many.
        error(
          path,
          `model.engine.tensorParallel is ${tp}, so vLLM runs ${tp} ranks, one per GPU, but ${field} is ${gpuSlices}`,
          `set ${field} to ${tp}`,
        );
      }
    }
    checkArchitecture(platform, warning);
  }
  if (engine.kind === "vllm" && engine.maxCpuLoras !== undefined && engine.maxCpuLoras < engine.maxLoras) {
    error(
      ["model", "engine", "maxCpuLoras"],
      `maxCpuLoras ${engine.maxCpuLoras} is below maxLoras ${engine.maxLoras}: vLLM refuses to start`,
      `set model.engine.maxCpuLoras to at least ${engine.maxLoras}, or leave it out (the default is ${DEFAULT_MAX_CPU_LORAS})`,
    );
  }
  checkLoraHostCache(spec, error, warning);
  checkResources(spec, error);
  if (engine.kind === "vllm" && !spec.gpu.enabled) {
    error(
      ["model", "engine", "kind"],
      "the vllm engine needs a GPU, but gpu.enabled is false",
      "use engine kind llamacpp for GPU-less environments, or enable the GPU",
    );
  }
  if (spec.gpu.enabled && spec.gpu.nodes.length === 0 && engine.kind === "vllm") {
    warning(
      ["gpu", "nodes"],
      "no GPU nodes are declared, so capacity cannot be planned",
      "list the GPU nodes with their GPUs' memory under gpu.nodes",
    );
  }
  checkGpuSharing(spec, error);
  checkMigProfiles(spec, error);
  if (spec.ingress.enabled && spec.ingress.tls.issuer !== "selfSigned" && spec.certificates.acme === undefined) {
    error(
      ["ingress", "tls", "issuer"],
      `issuer ${spec.ingress.tls.issuer} needs an ACME account`,
      "add certificates.acme with email and solver, or use issuer selfSigned",
    );
  }
  if ("huggingFace" in spec.model.source && spec.model.source.huggingFace.revision === "main") {
    warning(
      ["model", "source", "huggingFace", "revision"],
      "the model revision is the moving branch 'main'",
      "pin a commit so every deploy serves the same weights",
    );
  }
  if (
    engine.kind === "llamacpp" &&
    "huggingFace" in spec.model.source &&
    !spec.model.source.huggingFace.file?.toLowerCase().endsWith(".gguf")
  ) {
    error(
      ["model", "source", "huggingFace", "file"],
      "the llamacpp engine needs a GGUF file",
      "set model.source.huggingFace.file to a .gguf file of the repo",
    );
  }
  const embeddings = spec.embeddings;
  if (embeddings.server === "llamacpp" && embeddings.endpoint === undefined && !embeddings.file?.toLowerCase().endsWith(".gguf")) {
    error(
      ["embeddings", "file"],
      "embeddings.server llamacpp serves a GGUF file of embeddings.model, but embeddings.file names none",
      "set embeddings.file to a .gguf of the repo, e.g. model: CompendiumLabs/bge-small-en-v1.5-gguf with file: bge-small-en-v1.5-q8_0.gguf",
    );
  }
  if (embeddings.server === "tei" && embeddings.file !== undefined) {
    warning(
      ["embeddings", "file"],
      "embeddings.file is read only with embeddings.server llamacpp; text-embeddings-inference fetches the whole model repo",
      "remove embeddings.file, or set embeddings.server: llamacpp",
    );
  }
  if (spec.gateway.auth === "optional" && platform.environment !== "local") {
    warning(
      ["gateway", "auth"],
      `API keys are optional in environment ${platform.environment}`,
      "set gateway.auth: required outside local development",
    );
  }
  return findings;
}
