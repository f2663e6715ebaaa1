import { z } from "zod";
import { fillResources } from "./resources.ts";
import { dnsLabel, image, quantity } from "./schema-common.ts";
import { Architecture } from "./schema-architecture.ts";
import { Gpu, type GpuNode, type GpuSharing } from "./schema-gpu.ts";

/**
 * zod's options for a schema used a few times in a process (a spec's environments, a render's gateway
 * config): without its eval-compiled fast path, which costs more to build than a handful of parses
 * save (a cold `render --out` of 100 adapters: ~40 ms of CPU less).
 */
export const ONCE = { jitless: true } as const;

export { Architecture, type ArchitectureSpec, type ModelShape } from "./schema-architecture.ts";
export { Gpu, GpuModel, GpuNode, GpuSharing } from "./schema-gpu.ts";

/**
 * The `platform.yaml` schema. Every object is strict (unknown keys are errors) and every optional
 * field has a default sized for a 2-GPU on-prem lab, so the resolved Platform is complete.
 */

export const API_VERSION = "diatonic.ai/v1alpha1";

/** Kubernetes label syntax, and the label keys diatonic sets itself (shared with the JSON Schema export). */
export const LABEL = {
  key: /^([a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*\/)?[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?$/,
  reservedKey: /^(app|applyset)\.kubernetes\.io\//,
  value: /^(([A-Za-z0-9][-A-Za-z0-9_.]{0,61})?[A-Za-z0-9])?$/,
} as const;

const labelKey = z
  .string()
  .regex(LABEL.key, "must be a Kubernetes label key such as team or example.com/team")
  .refine((key) => !LABEL.reservedKey.test(key), "is a label diatonic sets itself (app.kubernetes.io/*, applyset.kubernetes.io/*)");

const labelValue = z
  .string()
  .regex(
    LABEL.value,
    "must be a Kubernetes label value: at most 63 letters, digits, '-', '_' or '.', starting and ending with a letter or digit",
  );

export const SecretKeyRef = z.strictObject({
  name: dnsLabel.describe("Secret name in the platform namespace"),
  key: z.string().min(1).describe("key inside the Secret"),
});

const Resources = z.strictObject({
  requests: z.strictObject({ cpu: quantity.optional(), memory: quantity.optional() }).default({}),
  limits: z.strictObject({ cpu: quantity.optional(), memory: quantity.optional() }).default({}),
});

/** A workload's resources: each of the four values left out takes its default (fillResources). */
function resources(cpu: string, memory: string, cpuLimit: string, memoryLimit: string) {
  const defaults = { requests: { cpu, memory }, limits: { cpu: cpuLimit, memory: memoryLimit } };
  return Resources.default(defaults).transform((given): z.infer<typeof Resources> => {
    const filled = fillResources(given, defaults);
    return { requests: { ...filled.requests }, limits: { ...filled.limits } };
  });
}

const HuggingFaceSource = z.strictObject({
  repo: z.string().regex(/^[\w.-]+\/[\w.-]+$/, "must be a Hugging Face repo id such as meta-llama/Meta-Llama-3-8B-Instruct"),
  revision: z.string().min(1).default("main").describe("branch, tag or commit; pin a commit for reproducible deploys"),
  file: z.string().min(1).optional().describe("a single file of the repo (a GGUF for the llamacpp engine)"),
});

const ModelSource = z.union([
  z.strictObject({ huggingFace: HuggingFaceSource }),
  z.strictObject({
    existingClaim: z.strictObject({
      name: dnsLabel.describe("an existing PersistentVolumeClaim holding the model"),
      path: z.string().default("").describe("folder or file inside the claim"),
    }),
  }),
]);

/** The --max-lora-rank values vLLM accepts (vllm/config/lora.py, v0.34.0). */
export const VLLM_LORA_RANKS = [1, 8, 16, 32, 64, 128, 256, 320, 512] as const;

export const VllmEngine = z.strictObject({
  kind: z.literal("vllm"),
  image: image.default("vllm/vllm-openai:v0.34.0"),
  maxModelLen: z.number().int().min(256).default(8192),
  gpuMemoryUtilization: z.number().gt(0).max(1).default(0.9),
  tensorParallel: z.number().int().min(1).default(1),
  dtype: z.enum(["auto", "bfloat16", "float16", "float32"]).default("auto"),
  quantization: z.enum(["none", "awq", "gptq", "fp8", "bitsandbytes"]).default("none"),
  maxLoras: z.number().int().min(1).default(4).describe("LoRA slots resident on the GPU at once"),
  maxLoraRank: z
    .literal(VLLM_LORA_RANKS, { error: `must be one of vLLM's LoRA ranks: ${VLLM_LORA_RANKS.join(", ")}` })
    .default(16)
    .describe("the largest LoRA rank the engine takes; vLLM accepts only these values"),
  maxCpuLoras: z
    .number()
    .int()
    .min(1)
    .optional()
    .describe(
      "LoRAs each replica keeps in host memory, at least maxLoras; a swap of any other reads its weights from disk (default: 64, whatever the adapter count, so adding one never restarts the engine)",
    ),
  gpuSlices: z.number().int().min(1).default(1).describe("nvidia.com/gpu units requested (time-slices or whole GPUs)"),
  migProfile: z
    .string()
    .regex(/^\d+g\.\d+gb$/)
    .optional()
    .describe("with MIG strategy mixed: the MIG device to request, e.g. 3g.40gb"),
  replicas: z.number().int().min(0).default(1),
  shmSize: quantity.default("2Gi"),
  extraArgs: z.array(z.string()).default([]),
  resources: resources("2", "16Gi", "8", "32Gi"),
});

export const LlamaCppEngine = z.strictObject({
  kind: z.literal("llamacpp"),
  image: image.default("ghcr.io/diatonic-ai/engine:0.1.0"),
  parallel: z.number().int().min(1).default(4).describe("parallel sequences before requests queue"),
  replicas: z.number().int().min(0).default(1),
  resources: resources("1", "4Gi", "4", "8Gi"),
});

export const Engine = z.discriminatedUnion("kind", [VllmEngine, LlamaCppEngine]);

export const Model = z.strictObject({
  name: dnsLabel.default("llama-3-8b-instruct").describe("the base model's served name (what /v1/models lists)"),
  architecture: Architecture.prefault({}).describe("shape of the base model, for the VRAM estimate (defaults: Llama 3 8B)"),
  source: ModelSource,
  size: quantity.default("40Gi").describe("size of the model volume"),
  accessMode: z.enum(["ReadWriteOnce", "ReadWriteMany"]).default("ReadWriteOnce"),
  hfTokenSecret: SecretKeyRef.optional().describe("token for gated Hugging Face repos (Llama 3 is gated)"),
  engine: Engine,
  downloader: z
    .strictObject({
      image: image.default("ghcr.io/diatonic-ai/engine:0.1.0"),
      envConfigMap: dnsLabel
        .default("download-env")
        .describe(
          "an optional ConfigMap whose keys become the downloads' environment: HF_ENDPOINT for a Hugging Face mirror, HTTPS_PROXY, NO_PROXY; none is fine",
        ),
    })
    .prefault({})
    .describe(
      "the init container that fetches the base model into each engine pod before the engine starts (runs `diatonic model-download`)",
    ),
  adapterAgent: z
    .strictObject({
      image: image.default("ghcr.io/diatonic-ai/engine:0.1.0"),
      cacheSize: quantity.default("10Gi").describe("each engine pod's own cache of LoRA files"),
      resources: resources("50m", "128Mi", "1", "512Mi"),
    })
    .prefault({})
    .describe(
      "the sidecar in each engine pod that fetches the adapters' LoRA files and loads and unloads them in the engine at runtime (runs `diatonic adapter-agent`)",
    ),
});

export const Sampling = z.strictObject({
  temperature: z.number().min(0).max(2).optional(),
  topP: z.number().gt(0).max(1).optional(),
  maxTokens: z.number().int().min(1).optional(),
  presencePenalty: z.number().min(-2).max(2).optional(),
  frequencyPenalty: z.number().min(-2).max(2).optional(),
});

export const RagMode = z.enum(["hybrid", "dense", "keyword"]);

export const RagBinding = z.strictObject({
  collection: z.string().regex(/^[a-zA-Z0-9_-]{1,255}$/, "must be a Qdrant collection name: letters, digits, '_' and '-'"),
  topK: z.number().int().min(1).max(50).default(4),
  scoreThreshold: z.number().min(0).max(1).default(0),
  mode: RagMode.default("hybrid"),
  onFailure: z.enum(["fail", "answerWithoutContext"]).default("answerWithoutContext"),
});

export const AdapterLimits = z.strictObject({
  concurrency: z.number().int().min(1).default(8),
  queue: z.number().int().min(0).default(32),
  timeoutSeconds: z.number().int().min(1).max(3600).default(120),
  firstByteTimeoutSeconds: z.number().int().min(1).max(3600).default(60),
});

const Sha256 = z.string().regex(/^[a-f0-9]{64}$/, "must be a sha256 in lower-case hex (64 digits), as sha256sum prints it");

export const LoraSource = z.union([
  z.strictObject({ huggingFace: HuggingFaceSource }),
  z.strictObject({
    url: z
      .strictObject({
        url: z
          .url({ protocol: /^https?$/, error: "must be an http(s) URL of the LoRA file or of a .tar.gz of its folder" })
          .refine((url) => !/^[a-z]+:\/\/[^/?#]*@/i.test(url), {
            error:
              "must not hold credentials (user:password@host): downloads do not send them, and the URL is written into the adapter set; serve the file where the platform may read it, or use a signed URL (its query is kept out of logs)",
          }),
        sha256: Sha256.describe("of the file at the URL: it is checked before the LoRA is loaded"),
      })
      .describe("a LoRA file (.gguf, .safetensors) or a PEFT folder packed as .tar/.tar.gz/.tgz, served by any HTTP(S) server"),
  }),
  z.strictObject({
    path: z.string().min(1).describe("a LoRA file or folder on this machine, relative to the spec file: for `diatonic dev` only"),
  }),
]);

export const Adapter = z.strictObject({
  name: dnsLabel.describe("the adapter's model name for clients"),
  description: z.string().default(""),
  lora: z
    .strictObject({
      source: LoraSource,
      rank: z.number().int().min(1).max(512).default(16),
      alpha: z.number().positive().optional(),
    })
    .optional(),
  systemPrompt: z.string().optional(),
  sampling: Sampling.default({}),
  route: z
    .string()
    .regex(/^\/[a-z0-9][a-z0-9-]*$/, "must be one path segment such as /code")
    .optional()
    .describe("path prefix; defaults to /<name>"),
  rag: RagBinding.optional(),
  limits: AdapterLimits.prefault({}),
  serving: z.enum(["shared", "dedicated"]).default("shared"),
  dedicated: z
    .strictObject({
      gpuSlices: z.number().int().min(1).default(1),
      replicas: z.number().int().min(0).default(1),
      migProfile: z
        .string()
        .regex(/^\d+g\.\d+gb$/, "must be a MIG profile such as 1g.10gb")
        .optional()
        .describe(
          "with MIG strategy mixed: the MIG device this adapter's own engine requests (its own shape, not model.engine.migProfile)",
        ),
    })
    .prefault({})
    .describe("the adapter's own engine, with serving: dedicated: one LoRA slot, and its own GPU shape"),
});

export const Qdrant = z.strictObject({
  enabled: z.boolean().optional().describe("default: on when any adapter has a RAG binding"),
  image: image.default("qdrant/qdrant:v1.19.0").describe("the Qdrant server image; the RAG tests run this version's server"),
  replicas: z.number().int().min(1).default(1),
  storage: quantity.default("20Gi"),
  snapshots: quantity.default("10Gi"),
  apiKeySecret: SecretKeyRef.prefault({ name: "qdrant-api-key", key: "api-key" }),
  resources: resources("250m", "1Gi", "2", "4Gi"),
  backups: z
    .strictObject({
      enabled: z.boolean().default(true),
      schedule: z
        .string()
        .regex(/^(\S+\s+){4}\S+$/, "must be a cron schedule with five fields, e.g. 17 3 * * *")
        .default("17 3 * * *"),
      keep: z.number().int().min(1).max(100).default(7).describe("snapshots kept per Qdrant node; older ones are deleted"),
      image: image.default("curlimages/curl:8.11.1").describe("image with sh and curl that calls Qdrant's snapshot API"),
    })
    .prefault({})
    .describe("a CronJob that takes full Qdrant snapshots into the snapshots volume"),
});

/** What serves embeddings when the platform deploys them. */
export const EMBEDDINGS_SERVERS = ["tei", "llamacpp"] as const;

export const Embeddings = z
  .strictObject({
    endpoint: z.url().optional().describe("base URL of an existing OpenAI-compatible embeddings server; when set, none is deployed"),
    server: z
      .enum(EMBEDDINGS_SERVERS)
      .default("tei")
      .describe(
        "tei: Hugging Face text-embeddings-inference, which fetches `model` itself; llamacpp: the engine image (`diatonic engine`) serving the GGUF `file` of `model`, fetched first by the model-download init container (for CPU environments that run no image but the platform's own)",
      ),
    model: z
      .string()
      .min(1)
      .default("BAAI/bge-small-en-v1.5")
      .describe(
        "Hugging Face model id the embeddings server serves (with llamacpp: the repo holding `file`); the gateway asks for embeddings by this name",
      ),
    revision: z.string().min(1).optional().describe("model revision (pin a commit for reproducible vectors)"),
    file: z
      .string()
      .min(1)
      .optional()
      .describe("with server llamacpp: the GGUF file of `model` to serve, e.g. bge-small-en-v1.5-q8_0.gguf"),
    image: image
      .optional()
      .describe("default: ghcr.io/huggingface/text-embeddings-inference:cpu-1.9.4 (tei), model.downloader.image (llamacpp)"),
    replicas: z.number().int().min(1).default(1),
    cache: quantity.default("2Gi").describe("size of the model cache volume"),
    resources: resources("250m", "512Mi", "2", "2Gi"),
  })
  .describe("embeddings for RAG adapters: an embeddings server is deployed when an adapter uses RAG, unless endpoint is set");

export const Gateway = z.strictObject({
  image: image.default("ghcr.io/diatonic-ai/gateway:0.1.0"),
  replicas: z.number().int().min(1).default(2),
  auth: z.enum(["required", "optional"]).default("required"),
  apiKeysSecret: SecretKeyRef.prefault({ name: "gateway-api-keys", key: "keys.yaml" }),
  rateLimits: z
    .strictObject({
      requestsPerMinute: z.number().int().min(1).default(600),
      tokensPerMinute: z.number().int().min(1).default(200_000),
    })
    .prefault({}),
  maxBodyBytes: z
    .number()
    .int()
    .min(1024)
    .default(4 * 1024 * 1024),
  logPrompts: z.boolean().default(false),
  keylessHosts: z
    .array(
      z
        .string()
        .regex(
          /^(?=.{1,253}$)([a-z0-9]([-a-z0-9]*[a-z0-9])?\.)*[a-z0-9]([-a-z0-9]*[a-z0-9])?$/,
          "must be a lower-case host name, without scheme, port or path, such as gpu-box.lan",
        ),
    )
    .default([])
    .describe(
      "with auth optional: more host names by which requests without a key may reach the gateway (a LAN or load balancer name); besides IP addresses, localhost, cluster names and the ingress host, which are always accepted (a guard against DNS rebinding)",
    ),
  autoscaling: z
    .strictObject({
      enabled: z.boolean().default(true),
      maxReplicas: z.number().int().min(1).default(6),
      targetCpuUtilization: z.number().int().min(10).max(100).default(70),
      inFlightPerPod: z
        .number()
        .int()
        .min(1)
        .default(32)
        .describe("with a metrics adapter: scale when requests in flight per pod pass this"),
    })
    .prefault({})
    .describe("HPA for the gateway; replicas becomes its minimum"),
  resources: resources("250m", "256Mi", "2", "512Mi"),
});

export const TlsIssuer = z.enum(["selfSigned", "acmeStaging", "acmeProduction"]);

export const Ingress = z.strictObject({
  enabled: z.boolean().default(true),
  className: z.enum(["nginx", "contour"]).default("nginx"),
  host: z
    .string()
    .regex(
      /^(?=.{1,253}$)([a-z0-9]([-a-z0-9]*[a-z0-9])?\.)+[a-z0-9]([-a-z0-9]*[a-z0-9])?$/,
      "must be a fully qualified host name such as llm.lab.example.com",
    )
    .default("llm.lab.local"),
  tls: z.strictObject({ issuer: TlsIssuer.default("selfSigned") }).prefault({}),
  controllerNamespace: dnsLabel.optional().describe("namespace of the ingress controller pods (default: ingress-nginx or projectcontour)"),
  maxBodySize: quantity.default("8Mi"),
  timeoutSeconds: z.number().int().min(1).max(3600).default(600),
});

export const Certificates = z.strictObject({
  selfSigned: z
    .strictObject({
      caCommonName: z.string().min(1).default("Diatonic internal CA"),
      clusterResourceNamespace: dnsLabel.default("cert-manager"),
    })
    .prefault({}),
  acme: z
    .strictObject({
      email: z.email("must be an e-mail address for the ACME account"),
      solver: z.discriminatedUnion("type", [
        z.strictObject({ type: z.literal("http01") }),
        z.strictObject({ type: z.literal("dns01Cloudflare"), apiTokenSecret: SecretKeyRef }),
      ]),
    })
    .optional(),
});

export const Monitoring = z.strictObject({
  prometheusOperator: z.boolean().default(false),
  namespace: dnsLabel.default("monitoring").describe("namespace Prometheus scrapes from (allowed in by the NetworkPolicies)"),
  metricsAdapter: z
    .enum(["none", "prometheus-adapter"])
    .default("none")
    .describe("prometheus-adapter serves custom metrics, so the gateway HPA also scales on requests in flight"),
});

export const PlatformSpec = z.strictObject({
  namespace: dnsLabel.default("llama3-multi-adapter"),
  storageClass: z.string().min(1).default("longhorn"),
  model: Model,
  adapters: z.array(Adapter).default([]),
  gpu: Gpu.prefault({}),
  qdrant: Qdrant.prefault({}),
  embeddings: Embeddings.prefault({}),
  gateway: Gateway.prefault({}),
  ingress: Ingress.prefault({}),
  certificates: Certificates.prefault({}),
  monitoring: Monitoring.prefault({}),
});

/** The document as written: `environments.<name>` holds overlays merged onto `spec`. */
export const PlatformDocument = z.strictObject({
  apiVersion: z.literal(API_VERSION),
  kind: z.literal("Platform"),
  metadata: z.strictObject({
    name: dnsLabel,
    labels: z
      .record(labelKey, labelValue)
      .default({})
      .describe(
        "labels on every rendered object and pod template (but the shared device plugin's pods): a team, a cost centre, or kube-prometheus-stack's `release` so that its Prometheus selects the ServiceMonitors and rules",
      ),
  }),
  spec: z.record(z.string(), z.unknown()),
  environments: z.record(dnsLabel, z.record(z.string(), z.unknown())).default({}),
});

export type PlatformSpec = z.infer<typeof PlatformSpec>;
export type AdapterSpec = z.infer<typeof Adapter>;
export type ModelSpec = z.infer<typeof Model>;
export type LoraSourceSpec = z.infer<typeof LoraSource>;
export type VllmEngineSpec = z.infer<typeof VllmEngine>;
export type LlamaCppEngineSpec = z.infer<typeof LlamaCppEngine>;
export type GpuSpec = z.infer<typeof Gpu>;
export type GpuNodeSpec = z.infer<typeof GpuNode>;
export type GpuSharingSpec = z.infer<typeof GpuSharing>;
export type RagBindingSpec = z.infer<typeof RagBinding>;
export type EmbeddingsSpec = z.infer<typeof Embeddings>;
export type SecretKeyRefSpec = z.infer<typeof SecretKeyRef>;
export type TlsIssuerName = z.infer<typeof TlsIssuer>;
export type ResourcesSpec = z.infer<typeof Resources>;

/** A spec resolved for one environment: overlays applied, defaults filled, cross-field rules checked. */
export interface Platform {
  readonly name: string;
  readonly environment: string;
  readonly labels: Readonly<Record<string, string>>;
  readonly spec: PlatformSpec;
}
