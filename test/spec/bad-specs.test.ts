import assert from "node:assert/strict";
import { existsSync, mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, it } from "node:test";
import { runCli } from "../support/cli.ts";

/** A small valid platform; each case below breaks it in one way. */
const VALID = `apiVersion: diatonic.ai/v1alpha1
kind: Platform
metadata:
  name: t
spec:
  model:
    source:
      huggingFace: { repo: org/model, revision: abc123 }
    engine:
      kind: vllm
      maxLoraRank: 16
      gpuMemoryUtilization: 0.9
      image: vllm/vllm-openai:v0.34.0
  adapters:
    - name: code
      lora: { source: { url: { url: https://loras.example.com/code.tar.gz, sha256: 5d41402abc4b2a76b9719d911017c592aaaa402abc4b2a76b9719d911017c592 } }, rank: 8 }
      systemPrompt: You write code.
    - name: rag
      rag: { collection: handbook }
  gpu:
    sharing: { mode: timeSlicing, replicas: 4 }
    nodes: [{ name: n1, gpus: [{ model: A, memoryGiB: 24 }] }]
  qdrant:
    storage: 20Gi
  gateway:
    replicas: 2
  ingress:
    className: nginx
    host: llm.example.com
environments:
  local:
    gateway: { auth: optional }
`;

interface BadSpec {
  readonly name: string;
  readonly text: string;
  /** A substring of the offending line; the error must point at that line. */
  readonly line?: string;
  readonly env?: string;
  /** Each must appear in the message. */
  readonly says: readonly string[];
  /** None may appear in the message. */
  readonly never?: readonly string[];
}

const replace = (from: string, to: string): string => {
  assert.ok(VALID.includes(from), `fixture does not contain ${from}`);
  return VALID.replace(from, to);
};

const cases: BadSpec[] = [
  {
    name: "misspelt top-level key",
    text: replace("  adapters:\n", "  adaptors:\n"),
    line: "adaptors:",
    says: ["spec.adaptors", 'unknown key "adaptors"', 'did you mean "adapters"'],
  },
  {
    name: "misspelt nested key",
    text: replace("      systemPrompt: You write code.", "      sytemPrompt: You write code."),
    line: "sytemPrompt",
    says: ["spec.adapters[0].sytemPrompt", 'did you mean "systemPrompt"'],
  },
  {
    name: "string where a number belongs",
    text: replace("    replicas: 2", "    replicas: two"),
    line: "replicas: two",
    says: ["spec.gateway.replicas", "expected number", 'string "two"', "fix: set spec.gateway.replicas to a number"],
  },
  {
    name: "one item where a list belongs",
    text: replace("nodes: [{ name: n1, gpus: [{ model: A, memoryGiB: 24 }] }]", "nodes: { name: n1 }"),
    line: "nodes: { name: n1 }",
    says: ["spec.gpu.nodes", "expected array", "fix: set spec.gpu.nodes to an array"],
  },
  {
    name: "unknown ingress class",
    text: replace("className: nginx", "className: traefik"),
    line: "className: traefik",
    says: ["spec.ingress.className", '"nginx", "contour"'],
  },
  {
    name: "adapter name not a DNS label",
    text: replace("- name: code", "- name: Code_Bot"),
    line: "Code_Bot",
    says: ["spec.adapters[0].name", "DNS-1123", "fix: change spec.adapters[0].name: it must be a DNS-1123 label"],
  },
  {
    name: "duplicate adapter names",
    text: replace("- name: rag", "- name: code"),
    says: ["spec.adapters[1].name", "already used by adapters[0]"],
  },
  {
    name: "duplicate routes",
    text: replace("      systemPrompt: You write code.", "      systemPrompt: You write code.\n      route: /rag"),
    says: ["route /rag is already used"],
  },
  {
    name: "LoRA rank above maxLoraRank",
    text: replace("rank: 8", "rank: 64"),
    line: "rank: 64",
    says: ["spec.adapters[0].lora.rank", "maxLoraRank 16", "raise model.engine.maxLoraRank to at least 64"],
  },
  {
    name: "GPU memory utilisation above 1",
    text: replace("gpuMemoryUtilization: 0.9", "gpuMemoryUtilization: 1.5"),
    line: "gpuMemoryUtilization",
    says: ["spec.model.engine.gpuMemoryUtilization", "≤ 1"],
  },
  {
    name: "image tag latest",
    text: replace("vllm/vllm-openai:v0.34.0", "vllm/vllm-openai:latest"),
    line: "vllm-openai:latest",
    says: ["spec.model.engine.image", "latest"],
  },
  {
    name: "untagged image",
    text: replace("vllm/vllm-openai:v0.34.0", "vllm/vllm-openai"),
    line: "image: vllm/vllm-openai",
    says: ["spec.model.engine.image", "pin a tag or digest"],
  },
  {
    name: "bad storage quantity",
    text: replace("storage: 20Gi", "storage: 20GB"),
    line: "storage: 20GB",
    says: ["spec.qdrant.storage", "Kubernetes quantity"],
  },
  { name: "YAML syntax error", text: replace("    host: llm.example.com", "    host: [llm.example.com"), says: ["YAML syntax"] },
  { name: "duplicate YAML key", text: replace("    replicas: 2", "    replicas: 2\n    replicas: 3"), says: ["YAML syntax", "unique"] },
  {
    name: "wrong apiVersion",
    text: replace("diatonic.ai/v1alpha1", "diatonic.ai/v1"),
    line: "apiVersion",
    says: ["apiVersion", '"diatonic.ai/v1alpha1"'],
  },
  { name: "wrong kind", text: replace("kind: Platform", "kind: Cluster"), line: "kind: Cluster", says: ["kind", '"Platform"'] },
  {
    name: "missing model source",
    text: replace("    source:\n      huggingFace: { repo: org/model, revision: abc123 }\n", ""),
    says: ["spec.model.source", "is required"],
  },
  { name: "environment not defined", text: VALID, env: "qa", says: ['environment "qa" is not defined', "local"] },
  {
    name: "a wrong type inside an overlay: the fix names the overlay's field",
    text: replace("    gateway: { auth: optional }", "    gateway: { auth: optional, replicas: many }"),
    line: "replicas: many",
    says: ["environments.local.gateway.replicas", "fix: set environments.local.gateway.replicas to a number"],
  },
  {
    name: "error inside an overlay points at the overlay",
    text: replace("    gateway: { auth: optional }", "    gateway: { auth: optional, replicsa: 3 }"),
    line: "replicsa",
    says: ["environments.local.gateway.replicsa", 'did you mean "replicas"'],
  },
  {
    name: "vllm without a GPU",
    text: replace("    sharing: { mode: timeSlicing, replicas: 4 }", "    enabled: false"),
    says: ["vllm engine needs a GPU", "llamacpp"],
  },
  {
    name: "ACME issuer without an ACME account",
    text: replace("    host: llm.example.com", "    host: llm.example.com\n    tls: { issuer: acmeProduction }"),
    says: ["needs an ACME account", "certificates.acme"],
  },
  {
    name: "llamacpp without a GGUF file",
    text: replace(
      "      kind: vllm\n      maxLoraRank: 16\n      gpuMemoryUtilization: 0.9\n      image: vllm/vllm-openai:v0.34.0",
      "      kind: llamacpp",
    ),
    says: ["needs a GGUF file"],
  },
  {
    name: "time-slicing replicas below 2",
    text: replace("replicas: 4 }", "replicas: 1 }"),
    line: "mode: timeSlicing",
    says: ["spec.gpu.sharing.replicas", "≥ 2"],
  },
  {
    name: "route shadows the gateway's API",
    text: replace("      systemPrompt: You write code.", "      systemPrompt: You write code.\n      route: /v1"),
    says: ["collides with one of the gateway's own paths"],
  },
  {
    name: "an adapter named like a gateway path (its route is /<name>): rename it, or set route",
    text: replace("    - name: code\n", "    - name: metrics\n"),
    says: ["spec.adapters[0].name", "route /metrics collides with one of the gateway's own paths", "rename the adapter, or set route:"],
  },
  {
    name: "route shadows the web console",
    text: replace("      systemPrompt: You write code.", "      systemPrompt: You write code.\n      route: /console"),
    says: ["route /console collides with one of the gateway's own paths"],
  },
  { name: "empty file", text: "", says: ["the file is empty"] },
  {
    name: "an alias bomb (billion laughs)",
    text: `${VALID}x: &a [1, 1, 1, 1, 1, 1, 1, 1, 1, 1]\ny: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a, *a]\nz: &c [*b, *b, *b, *b, *b, *b, *b, *b, *b, *b]\n`,
    says: ["YAML aliases expand too far"],
  },
  {
    name: "misspelt key in a spec with anchors (read by the yaml package, positions kept)",
    text: replace("      systemPrompt: You write code.", "      systemPrompt: &prompt You write code.\n      sytemPrompt: *prompt"),
    line: "sytemPrompt",
    says: ["spec.adapters[0].sytemPrompt", 'did you mean "systemPrompt"'],
  },
  {
    name: "bad collection name",
    text: replace("collection: handbook", "collection: hand book"),
    line: "collection",
    says: ["spec.adapters[1].rag.collection", "Qdrant collection name"],
  },
  {
    name: "unknown GPU sharing mode",
    text: replace("mode: timeSlicing, replicas: 4", "mode: mps, replicas: 4"),
    line: "mode: mps",
    says: ["spec.gpu.sharing.mode", '"none", "timeSlicing", "mig"'],
  },
  {
    name: "a label key diatonic sets itself",
    text: replace("  name: t\n", "  name: t\n  labels: { app.kubernetes.io/name: mine }\n"),
    line: "app.kubernetes.io/name: mine",
    says: ["metadata.labels", "a label diatonic sets itself"],
  },
  {
    name: "a label value Kubernetes refuses",
    text: replace("  name: t\n", "  name: t\n  labels: { team: ML Platform }\n"),
    line: "team: ML Platform",
    says: ["metadata.labels.team", "Kubernetes label value"],
  },
  {
    name: "tensor parallelism with fewer GPUs than ranks",
    text: replace("      maxLoraRank: 16\n", "      maxLoraRank: 16\n      tensorParallel: 2\n      gpuSlices: 1\n"),
    line: "gpuSlices: 1",
    says: ["spec.model.engine.gpuSlices", "tensorParallel is 2", "fix: set model.engine.gpuSlices to 2"],
  },
  {
    name: "a dedicated adapter's engine with fewer GPUs than the ranks",
    text: replace("      maxLoraRank: 16\n", "      maxLoraRank: 16\n      tensorParallel: 2\n      gpuSlices: 2\n").replace(
      "      systemPrompt: You write code.",
      "      systemPrompt: You write code.\n      serving: dedicated",
    ),
    says: [
      "spec.adapters[0].dedicated.gpuSlices",
      "tensorParallel is 2",
      "adapters[0].dedicated.gpuSlices is 1",
      "fix: set adapters[0].dedicated.gpuSlices to 2",
    ],
  },
  {
    name: "more than one MIG device for one engine",
    text: replace("    sharing: { mode: timeSlicing, replicas: 4 }", "    sharing: { mode: mig, profiles: { 3g.40gb: 2 } }")
      .replace("{ model: A, memoryGiB: 24 }", "{ model: NVIDIA A100-SXM4-80GB, memoryGiB: 80 }")
      .replace("      maxLoraRank: 16\n", "      maxLoraRank: 16\n      tensorParallel: 2\n      gpuSlices: 2\n"),
    line: "gpuSlices: 2",
    says: ["spec.model.engine.gpuSlices", "one MIG device only", "use whole GPUs (gpu.sharing.mode: none) for tensor parallelism"],
  },
  {
    name: "an adapter's maxTokens that fills the whole context",
    text: replace("      maxLoraRank: 16\n", "      maxLoraRank: 16\n      maxModelLen: 4096\n").replace(
      "      systemPrompt: You write code.",
      "      systemPrompt: You write code.\n      sampling: { maxTokens: 4096 }",
    ),
    line: "maxTokens: 4096",
    says: [
      "spec.adapters[0].sampling.maxTokens",
      "leaves no room for the prompt",
      "maxModelLen 4096",
      "fix: lower sampling.maxTokens below 4096",
    ],
  },
  {
    name: "a maxModelLen past the model's context: vLLM would not start",
    text: replace("      maxLoraRank: 16\n", "      maxLoraRank: 16\n      maxModelLen: 32768\n"),
    line: "maxModelLen: 32768",
    says: [
      "spec.model.engine.maxModelLen",
      "maxModelLen 32768 is longer than the model's context of 8192 tokens",
      "fix: lower model.engine.maxModelLen to at most 8192",
      "set model.architecture.contextLength",
    ],
  },
  {
    name: "a LoRA URL with credentials in it",
    text: replace("https://loras.example.com/code.tar.gz", "https://ci:hunter2@loras.example.com/code.tar.gz"),
    line: "hunter2@loras.example.com",
    says: ["spec.adapters[0].lora.source.url.url", "must not hold credentials (user:password@host)"],
    never: ["hunter2"],
  },
  {
    name: "a LoRA at a path on this machine, rendered for a cluster",
    text: replace(
      "source: { url: { url: https://loras.example.com/code.tar.gz, sha256: 5d41402abc4b2a76b9719d911017c592aaaa402abc4b2a76b9719d911017c592 } }",
      "source: { path: loras/code }",
    ),
    line: "path: loras/code",
    says: [
      "spec.adapters[0].lora.source.path",
      "the engines in the cluster cannot read it",
      "fix: publish the LoRA and name it by url: {url: https://…/lora.tar.gz, sha256: …}",
    ],
  },
  {
    name: "a LoRA URL with a malformed sha256",
    text: replace("sha256: 5d41402abc4b2a76b9719d911017c592aaaa402abc4b2a76b9719d911017c592", "sha256: 5d41402"),
    line: "sha256: 5d41402",
    says: ["spec.adapters[0].lora.source.url.sha256", "64 digits"],
  },
  {
    name: "a maxLoraRank vLLM does not accept",
    text: replace("      maxLoraRank: 16\n", "      maxLoraRank: 24\n"),
    line: "maxLoraRank: 24",
    says: ["spec.model.engine.maxLoraRank", "1, 8, 16, 32, 64, 128, 256, 320, 512"],
  },
  {
    name: "fewer CPU LoRA slots than GPU ones",
    text: replace("      maxLoraRank: 16\n", "      maxLoraRank: 16\n      maxLoras: 8\n      maxCpuLoras: 4\n"),
    line: "maxCpuLoras: 4",
    says: ["spec.model.engine.maxCpuLoras", "below maxLoras 8", "fix: set model.engine.maxCpuLoras to at least 8"],
  },
  {
    name: "a dedicated adapter's engine under MIG's mixed strategy without its own profile",
    text: replace(
      "    sharing: { mode: timeSlicing, replicas: 4 }",
      "    sharing: { mode: mig, strategy: mixed, profiles: { 3g.40gb: 1, 1g.10gb: 4 } }",
    )
      .replace("{ model: A, memoryGiB: 24 }", "{ model: NVIDIA A100-SXM4-80GB, memoryGiB: 80 }")
      .replace("      maxLoraRank: 16\n", "      maxLoraRank: 16\n      migProfile: 3g.40gb\n")
      .replace("      systemPrompt: You write code.", "      systemPrompt: You write code.\n      serving: dedicated"),
    line: "- name: code",
    says: [
      "spec.adapters[0].dedicated.migProfile",
      "adapter code's own engine must say which it needs",
      "fix: set adapters[0].dedicated.migProfile to one of: 3g.40gb, 1g.10gb",
    ],
  },
  {
    name: "MIG on GPUs that have none (L4s)",
    text: replace("    sharing: { mode: timeSlicing, replicas: 4 }", "    sharing: { mode: mig, profiles: { 3g.40gb: 1 } }").replace(
      "{ model: A, memoryGiB: 24 }",
      "{ model: NVIDIA L4, memoryGiB: 24 }",
    ),
    line: "model: NVIDIA L4",
    says: [
      "spec.gpu.nodes[0].gpus[0].model",
      "NVIDIA L4 on node n1 has no MIG (only A100, A30, H100, H200, B200",
      "but gpu.sharing is mode: mig",
      "fix: share this node's GPUs by time-slicing",
    ],
  },
  {
    name: "a MIG profile of another card (40 GB slices on an A100 40GB)",
    text: replace("    sharing: { mode: timeSlicing, replicas: 4 }", "    sharing: { mode: mig, profiles: { 3g.40gb: 1 } }").replace(
      "{ model: A, memoryGiB: 24 }",
      "{ model: NVIDIA A100-PCIE-40GB, memoryGiB: 40 }",
    ),
    line: "profiles: { 3g.40gb: 1 }",
    says: [
      "spec.gpu.sharing.profiles.3g.40gb",
      "the A100 40GB has no MIG profile 3g.40gb; its profiles are 1g.5gb",
      "fix: choose MIG devices that fit one card, e.g. {1g.5gb: 2, 2g.10gb: 1, 3g.20gb: 1}",
    ],
  },
  {
    name: "MIG devices larger than the card together",
    text: replace(
      "    sharing: { mode: timeSlicing, replicas: 4 }",
      "    sharing: { mode: mig, profiles: { 3g.40gb: 2, 1g.10gb: 1 } }",
    ).replace("{ model: A, memoryGiB: 24 }", "{ model: NVIDIA H100 80GB HBM3, memoryGiB: 80 }"),
    line: "profiles: { 3g.40gb: 2",
    says: ["spec.gpu.sharing.profiles", "2× 3g.40gb + 1× 1g.10gb takes 9 memory slices (10 GB each); the H100 80GB has 8"],
  },
  {
    name: "an overlay entry for an adapter the base no longer has (lora: null)",
    text: replace(
      "    gateway: { auth: optional }",
      "    gateway: { auth: optional }\n    adapters:\n      - { name: code, lora: null }\n      - { name: summarization, lora: null }",
    ),
    line: "name: summarization",
    says: [
      "environments.local.adapters[1]",
      'adapter "summarization" is not in spec.adapters',
      "fix: remove environments.local.adapters[1], or add an adapter named summarization to spec.adapters",
    ],
  },
  {
    name: "an overlay entry for an adapter the base no longer has (it would come back bare)",
    text: replace(
      "    gateway: { auth: optional }",
      "    gateway: { auth: optional }\n    adapters:\n      - { name: summarization, sampling: { temperature: 0.2 } }",
    ),
    line: "name: summarization",
    says: [
      "environments.local.adapters[0]",
      'adapter "summarization" is not in spec.adapters',
      "an environment can change an adapter the base defines, not add one",
      "or add an adapter named summarization",
    ],
  },
  {
    name: "two overlay entries for one adapter (the second would silently win)",
    text: replace(
      "    gateway: { auth: optional }",
      "    gateway: { auth: optional }\n    adapters:\n      - { name: code, systemPrompt: first }\n      - { name: code, systemPrompt: second }",
    ),
    line: "systemPrompt: second",
    says: [
      "environments.local.adapters[1].name",
      'adapter name "code" is already used by environments.local.adapters[0]',
      "fix: merge the two entries into one",
    ],
  },
  {
    name: "an overlay adapter entry without a name is placed at the entry, not at the base's adapter",
    text: replace("    gateway: { auth: optional }", "    gateway: { auth: optional }\n    adapters:\n      - { systemPrompt: nameless }"),
    line: "systemPrompt: nameless",
    says: [
      "environments.local.adapters[0].name: is required",
      "merge by name",
      "fix: add name: <the adapter to change> to environments.local.adapters[0] (spec.adapters has: code, rag)",
    ],
    never: ["spec.adapters[0].name"],
  },
  {
    name: "an overlay's empty adapter list (it would change nothing)",
    text: replace("    gateway: { auth: optional }", "    gateway: { auth: optional }\n    adapters: []"),
    line: "adapters: []",
    says: ["environments.local.adapters: an empty list changes nothing here", "write adapters: null"],
  },
  {
    name: "a model revision YAML reads as a number: the error is inside the Hugging Face source",
    text: replace("huggingFace: { repo: org/model, revision: abc123 }", "huggingFace: { repo: org/model, revision: 2.0 }"),
    line: "revision: 2.0",
    says: ["spec.model.source.huggingFace.revision: expected a string, got the number 2", 'fix: quote it: revision: "2.0"'],
    never: ["does not match any accepted form"],
  },
  {
    name: "an all-digit LoRA commit YAML reads as a number: the error is inside the LoRA's Hugging Face source",
    text: replace(
      "source: { url: { url: https://loras.example.com/code.tar.gz, sha256: 5d41402abc4b2a76b9719d911017c592aaaa402abc4b2a76b9719d911017c592 } }",
      "source: { huggingFace: { repo: org/code-lora, revision: 20240611 } }",
    ),
    line: "revision: 20240611",
    says: [
      "spec.adapters[0].lora.source.huggingFace.revision: expected a string, got the number 20240611",
      'fix: quote it: revision: "20240611"',
    ],
    never: ["does not match any accepted form"],
  },
  {
    name: "a LoRA source with two forms",
    text: replace(
      "source: { url: { url: https://loras.example.com/code.tar.gz, sha256: 5d41402abc4b2a76b9719d911017c592aaaa402abc4b2a76b9719d911017c592 } }",
      "source: { path: loras/code, huggingFace: { repo: org/code-lora, revision: abc123 } }",
    ),
    says: ["spec.adapters[0].lora.source: does not match any accepted form", "use exactly one of the keys: huggingFace, url, path"],
  },
  {
    name: "a memory request above its limit (the API server refuses the pod)",
    text: replace(
      "      image: vllm/vllm-openai:v0.34.0\n",
      "      image: vllm/vllm-openai:v0.34.0\n      resources: { requests: { memory: 64Gi }, limits: { memory: 32Gi } }\n",
    ),
    line: "requests: { memory: 64Gi }",
    says: [
      "spec.model.engine.resources.requests.memory: requests.memory 64Gi is above limits.memory 32Gi",
      "fix: lower model.engine.resources.requests.memory to at most 32Gi, or raise model.engine.resources.limits.memory to at least 64Gi",
    ],
  },
  {
    name: "a CPU request an overlay raises above the base's limit: placed at the overlay",
    text: replace("  gateway:\n    replicas: 2\n", "  gateway:\n    replicas: 2\n    resources: { limits: { cpu: 500m } }\n").replace(
      "    gateway: { auth: optional }",
      "    gateway: { auth: optional, resources: { requests: { cpu: 750m } } }",
    ),
    line: "requests: { cpu: 750m }",
    says: ["environments.local.gateway.resources.requests.cpu: requests.cpu 750m is above limits.cpu 500m"],
  },
  {
    name: "a second YAML document in the spec",
    text: `${VALID}---\nkind: Leftover\n`,
    line: "---",
    says: ["the spec must be one YAML document, but a second one starts at line", "fix: remove the document that starts at line"],
    never: ["parseAllDocuments"],
  },
  {
    name: "field of another engine kind",
    text: replace("      kind: vllm\n", "      kind: vllm\n      parallel: 4\n"),
    line: "parallel: 4",
    says: ['unknown key "parallel"', "another form of this object"],
  },
];

describe("bad specs: a clear error with file:line:col, spec path and fix; exit 2; nothing written", () => {
  const dir = mkdtempSync(join(tmpdir(), "diatonic-bad-"));
  for (const [index, bad] of cases.entries()) {
    it(bad.name, async () => {
      const file = join(dir, `case-${index}.yaml`);
      writeFileSync(file, bad.text);
      const out = join(dir, `out-${index}`);
      const run = await runCli(["render", "--spec", file, "--env", bad.env ?? "local", "--out", out], dir);
      assert.equal(run.code, 2, `exit code; stderr:\n${run.stderr}`);
      assert.equal(existsSync(out), false, "no output directory is left behind");
      assert.match(run.stderr, new RegExp(`case-${index}\\.yaml:\\d+:\\d+: `), "names file:line:col");
      assert.match(run.stderr, /fix: /, "says how to fix it");
      assert.doesNotMatch(run.stderr, /\n\s+at /, "no stack trace");
      assert.doesNotMatch(run.stderr, /\bis be\b/, "reads as English");
      for (const phrase of bad.says) assert.ok(run.stderr.includes(phrase), `message should say ${JSON.stringify(phrase)}:\n${run.stderr}`);
      for (const phrase of bad.never ?? [])
        assert.ok(!run.stderr.includes(phrase), `message should not say ${JSON.stringify(phrase)}:\n${run.stderr}`);
      if (bad.line) {
        const expected = bad.text.split("\n").findIndex((l) => l.includes(bad.line ?? "")) + 1;
        assert.ok(run.stderr.includes(`case-${index}.yaml:${expected}:`), `points at line ${expected}:\n${run.stderr}`);
      }
    });
  }

  it("a missing spec file names the file and the fix", async () => {
    const run = await runCli(["render", "--spec", join(dir, "nope.yaml"), "--env", "local", "-o", "yaml"], dir);
    assert.equal(run.code, 2);
    assert.match(run.stderr, /nope\.yaml does not exist/);
    assert.match(run.stderr, /fix: pass --spec FILE/);
    // The example it offers to start from is named by a path that works from anywhere.
    const example = /cp (\S+) \.\/platform\.yaml/.exec(run.stderr)?.[1];
    assert.ok(example !== undefined && existsSync(example), run.stderr);
  });

  it("bad flags name the flag and show the usage", async () => {
    const run = await runCli(["render", "--env", "local", "--out", "x", "-o", "yaml", "--spec", "a.yaml"], dir);
    assert.equal(run.code, 2);
    assert.match(run.stderr, /exactly one of --out DIR and -o yaml/);
    const unknown = await runCli(["render", "--envv", "local"], dir);
    assert.equal(unknown.code, 2);
    assert.match(unknown.stderr, /--envv/);
    assert.match(unknown.stderr, /usage: diatonic render/);
  });

  it("the same maxModelLen renders once model.architecture.contextLength says the model takes it (Llama 3.1's 131072)", async () => {
    const file = join(dir, "long-context.yaml");
    writeFileSync(
      file,
      replace("      maxLoraRank: 16\n", "      maxLoraRank: 16\n      maxModelLen: 32768\n").replace(
        "  model:\n",
        "  model:\n    architecture: { contextLength: 131072 }\n",
      ),
    );
    const run = await runCli(["render", "--spec", file, "--env", "local", "-o", "yaml"], dir);
    assert.equal(run.code, 0, run.stderr);
    assert.match(run.stdout, /- --max-model-len\n\s+- "32768"|--max-model-len[= ]"?32768/);
  });

  it(`covers at least 20 distinct bad specs (${cases.length})`, () => {
    assert.ok(cases.length >= 20);
  });
});

describe("one code path: render --out, render -o yaml, validate --spec, plan and apply read a spec alike", () => {
  // The base asks for a certificate from an ACME issuer, but only production declares the ACME account.
  const text = replace("    host: llm.example.com", "    host: llm.example.com\n    tls: { issuer: acmeProduction }").replace(
    "environments:\n",
    "environments:\n  production:\n    certificates: { acme: { email: ops@example.com, solver: { type: http01 } } }\n",
  );
  const dir = mkdtempSync(join(tmpdir(), "diatonic-one-path-"));
  writeFileSync(join(dir, "platform.yaml"), text);
  const line = text.split("\n").findIndex((l) => l.includes("issuer: acmeProduction")) + 1;
  const commands = [
    ["render", "--env", "production", "--out", "out"],
    ["render", "--env", "production", "-o", "yaml"],
    ["validate", "--spec", "platform.yaml", "--env", "production"],
    ["plan", "--env", "production"],
    ["apply", "--env", "production", "--dry-run"],
  ];
  for (const args of commands) {
    it(`${args.join(" ")} refuses the base's issuer without an ACME account, at its line`, async () => {
      const run = await runCli(args, dir);
      assert.equal(run.code, 2, run.stdout + run.stderr);
      assert.ok(run.stderr.includes(`platform.yaml:${line}:`), run.stderr);
      assert.match(run.stderr, /spec\.ingress\.tls\.issuer: issuer acmeProduction needs an ACME account/);
      assert.match(run.stderr, /without any environment overlay/);
      assert.equal(run.stdout, "");
    });
  }
});
