import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { existsSync, mkdtempSync, readdirSync, readFileSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, relative } from "node:path";
import { describe, it } from "node:test";
import { parseAllDocuments, parse } from "yaml";
import { buildEnvironment, buildTree } from "../../src/render/build.ts";
import type { KubeObject } from "../../src/render/context.ts";
import { DEVICE_PLUGIN_CONFIG_KEY } from "../../src/render/gpu.ts";
import { GatewayConfig } from "../../src/gateway/config.ts";
import { objectKey } from "../../src/write/kustomize.ts";
import { runCli } from "../support/cli.ts";
import { buildRenderedTree } from "../../src/write/kustomize-build.ts";
import { kubectl, unmet } from "../support/needs.ts";
import { labSpec } from "../support/lab-spec.ts";

const EXAMPLE = "examples/lab/platform.yaml";
const ENVS = ["local", "staging", "production"] as const;

function objects(env: string): KubeObject[] {
  return buildEnvironment({ file: EXAMPLE, environment: env }).result.placed.map((p) => p.object);
}

function find(list: readonly KubeObject[], kind: string, name: string): Record<string, unknown> {
  const found = list.find((o) => o.kind === kind && o.metadata.name === name);
  assert.ok(found, `${kind}/${name} is rendered`);
  return found as unknown as Record<string, unknown>;
}

function readTree(dir: string): Map<string, string> {
  const files = new Map<string, string>();
  const walk = (path: string) => {
    for (const entry of readdirSync(path)) {
      const full = join(path, entry);
      if (statSync(full).isDirectory()) walk(full);
      else files.set(relative(dir, full), readFileSync(full, "utf8"));
    }
  };
  walk(dir);
  return files;
}

/** The round trip through kubectl needs the test cluster's kubectl (see test/support/needs.ts). */
const KUBECTL = kubectl();
const kubectlSkip = unmet("the kustomize round trip", [KUBECTL]);

describe("render", () => {
  it("is deterministic: the same spec gives the same bytes, stream and tree", () => {
    const a = buildTree({ file: EXAMPLE, environment: "local" });
    const b = buildTree({ file: EXAMPLE, environment: "local" });
    assert.deepEqual([...a.files.entries()], [...b.files.entries()]);
  });

  it("labels every object with app.kubernetes.io/* and never renders a Secret", () => {
    for (const env of ENVS) {
      for (const object of objects(env)) {
        assert.notEqual(object.kind, "Secret", "secrets are referenced, never rendered");
        const labels = object.metadata.labels ?? {};
        for (const key of [
          "app.kubernetes.io/name",
          "app.kubernetes.io/instance",
          "app.kubernetes.io/part-of",
          "app.kubernetes.io/managed-by",
        ]) {
          assert.ok(key in labels, `${object.kind}/${object.metadata.name} has ${key}`);
        }
      }
    }
  });

  it("puts the spec's metadata.labels on every object and pod template (but the shared device plugin's), never in a selector", () => {
    // The example's metadata.labels: { team: ml-platform }.
    const selectors: unknown[] = [];
    for (const env of ENVS) {
      for (const object of objects(env)) {
        assert.equal(object.metadata.labels?.team, "ml-platform", `${object.kind}/${object.metadata.name} in ${env}`);
        const spec = (
          object as unknown as {
            spec?: {
              selector?: unknown;
              template?: { metadata?: { labels?: Record<string, string> } };
              jobTemplate?: { spec?: { template?: { metadata?: { labels?: Record<string, string> } } } };
            };
          }
        ).spec;
        const template = spec?.template ?? spec?.jobTemplate?.spec?.template;
        // The device plugin's pods are every platform's (src/deploy/shared.ts): no platform's labels.
        const shared = object.metadata.annotations?.["diatonic.ai/shared"] !== undefined;
        if (template !== undefined && shared)
          assert.deepEqual(
            Object.keys(template.metadata?.labels ?? {}).filter((key) => key === "team" || key === "app.kubernetes.io/instance"),
            [],
            `${object.kind}/${object.metadata.name}'s pods in ${env}`,
          );
        else if (template !== undefined)
          assert.equal(template.metadata?.labels?.team, "ml-platform", `${object.kind}/${object.metadata.name}'s pods in ${env}`);
        if (spec?.selector !== undefined) selectors.push(spec.selector);
      }
    }
    assert.ok(selectors.length > 0);
    assert.doesNotMatch(JSON.stringify(selectors), /ml-platform/);
  });

  it("serves every adapter from one vLLM with runtime LoRA updating, the agent beside it, the model fetched before it starts", () => {
    const list = objects("production");
    type Container = {
      name: string;
      args: string[];
      env?: { name: string; value?: string }[];
      restartPolicy?: string;
      resources: { limits: Record<string, string> };
      startupProbe: { failureThreshold: number; periodSeconds: number };
      readinessProbe?: unknown;
      volumeMounts: { name: string; mountPath: string; readOnly?: boolean }[];
    };
    const engine = find(list, "Deployment", "engine") as {
      spec: {
        strategy: { type: string; rollingUpdate: { maxSurge: number; maxUnavailable: number } };
        template: {
          spec: {
            securityContext?: { runAsUser?: number };
            initContainers: Container[];
            containers: Container[];
            volumes: { name: string; ephemeral?: unknown; emptyDir?: unknown; configMap?: { name: string } }[];
          };
        };
        progressDeadlineSeconds: number;
      };
    };
    const pod = engine.spec.template.spec;
    const container = pod.containers[0];
    assert.ok(container);
    const args = container.args.join(" ");
    assert.match(args, /--enable-lora --max-loras 4 --max-lora-rank 16/);
    assert.doesNotMatch(args, /--lora-modules/, "adapters are not fixed at start: adding one must not restart the engine");
    assert.ok(container.env?.some((e) => e.name === "VLLM_ALLOW_RUNTIME_LORA_UPDATING" && e.value === "true"));
    // vLLM's image has no passwd entry for the pod's uid: without USER, importing vLLM (torch's
    // getpass.getuser()) fails with "getpwuid(): uid not found: 1000".
    assert.equal(pod.securityContext?.runAsUser, 1000);
    assert.ok(
      container.env?.some((e) => e.name === "USER" && e.value !== undefined && e.value !== ""),
      "vLLM needs USER",
    );
    assert.match(args, /--quantization awq/);
    assert.equal(container.resources.limits["nvidia.com/gpu"], "1");
    assert.ok(
      container.startupProbe.failureThreshold * container.startupProbe.periodSeconds >= 1200,
      "startup probe allows a 20-minute model load",
    );
    assert.ok(engine.spec.progressDeadlineSeconds >= 1800);
    assert.equal(
      list.filter((o) => o.kind === "Deployment" && o.metadata.name.startsWith("engine")).length,
      1,
      "one engine, not one per adapter",
    );
    // The model is on the node before the engine starts: the first init container downloads it.
    assert.deepEqual(
      pod.initContainers.map((c) => c.name),
      ["model-download", "adapter-agent"],
    );
    assert.match(
      pod.initContainers[0]?.args.join(" ") ?? "",
      /^model-download \/models\/llama-3-8b-instruct=casperhansen\/llama-3-8b-instruct-awq@2d2a2ab/,
    );
    const agent = pod.initContainers[1];
    assert.equal(agent?.restartPolicy, "Always", "a native sidecar");
    assert.equal(agent?.readinessProbe, undefined, "the pod is Ready when the engine serves, whatever its adapters do");
    assert.deepEqual(agent?.args, [
      "adapter-agent",
      "--config",
      "/etc/diatonic/adapters/adapters.yaml",
      "--engine",
      "http://127.0.0.1:8000",
      "--cache",
      "/adapters",
      "--port",
      "8001",
    ]);
    // Per-pod storage: no ReadWriteOnce claim shared by pods that may land on different nodes.
    const volumes = new Map(pod.volumes.map((v) => [v.name, v]));
    assert.ok(volumes.get("models")?.ephemeral, "the model's claim is the pod's own");
    assert.ok(volumes.get("adapters")?.emptyDir, "LoRA files are cached per pod");
    assert.equal(volumes.get("adapter-set")?.configMap?.name, "engine-adapters");
    assert.equal(
      list.some((o) => o.kind === "PersistentVolumeClaim" && (o.metadata.name === "models" || o.metadata.name === "adapters")),
      false,
    );
    assert.equal(
      list.some((o) => o.kind === "Job"),
      false,
      "no download Job racing the engine",
    );
    // The agent's adapter set is the spec's LoRAs, by source.
    const set = parse((find(list, "ConfigMap", "engine-adapters") as { data: Record<string, string> }).data["adapters.yaml"] ?? "") as {
      kind: string;
      adapters: { name: string; source: unknown }[];
    };
    assert.equal(set.kind, "AdapterSet");
    assert.deepEqual(
      set.adapters.map((a) => a.name),
      ["chatbot", "code", "rag", "architecture", "summarization"],
    );
    assert.deepEqual(set.adapters[1]?.source, {
      huggingFace: { repo: "diatonic-lab/llama3-8b-code-lora", revision: "5f1c7e2d9a8b4c3e6f70a1b2c3d4e5f6a7b8c9d0" },
    });
    // One replica on a GPU the lab fills: a rollout replaces it (no room for a second vLLM beside it).
    assert.deepEqual(engine.spec.strategy, { type: "RollingUpdate", rollingUpdate: { maxSurge: 0, maxUnavailable: 1 } });
  });

  it("vLLM keeps 64 LoRAs in host memory whatever the adapter count (its own default, max-loras, reads every swap from disk): adding a LoRA leaves the engine's pod template as it was", () => {
    const dir = mkdtempSync(join(tmpdir(), "diatonic-cpu-loras-"));
    const engineOf = (file: string) => {
      const list = buildEnvironment({ file, environment: "production" }).result.placed.map((p) => p.object);
      return find(list, "Deployment", "engine") as { spec: { template: { spec: { containers: { args: string[] }[] } } } };
    };
    const argsOf = (file: string) => engineOf(file).spec.template.spec.containers[0]?.args.join(" ") ?? "";
    assert.match(argsOf(EXAMPLE), /--max-loras 4 --max-lora-rank 16 --max-cpu-loras 64( |$)/);
    const withMore = join(dir, "more.yaml");
    writeFileSync(withMore, labSpec({ adapters: 3 }));
    assert.deepEqual(engineOf(withMore).spec.template, engineOf(EXAMPLE).spec.template, "adding adapters must not restart the engine");
    const set = join(dir, "set.yaml");
    writeFileSync(set, labSpec({ engine: "      maxCpuLoras: 12\n" }));
    assert.match(argsOf(set), /--max-cpu-loras 12( |$)/);
  });

  it("engine rollouts and drains never take every replica: a PDB, anti-affinity, and a surge only where the GPUs have room", () => {
    const dir = mkdtempSync(join(tmpdir(), "diatonic-replicas-"));
    const spec = join(dir, "platform.yaml");
    const write = (replicas: number, gpus: string) =>
      writeFileSync(
        spec,
        readFileSync(EXAMPLE, "utf8")
          .replace("      replicas: 1\n  adapters:", `      replicas: ${replicas}\n  adapters:`)
          .replace(
            "          - { model: NVIDIA GeForce RTX 3060, memoryGiB: 12 }\n          - { model: NVIDIA GeForce RTX 3060 Ti, memoryGiB: 8 }",
            gpus,
          ),
      );
    const twelve = "          - { model: NVIDIA GeForce RTX 3060, memoryGiB: 12 }";
    write(2, `${twelve}\n${twelve}`);
    let list = buildEnvironment({ file: spec, environment: "production" }).result.placed.map((p) => p.object);
    type Engine = {
      spec: {
        strategy: { rollingUpdate: { maxSurge: number; maxUnavailable: number } };
        template: {
          spec: {
            affinity?: {
              podAntiAffinity?: { preferredDuringSchedulingIgnoredDuringExecution: { podAffinityTerm: { topologyKey: string } }[] };
            };
          };
        };
      };
    };
    let engine = find(list, "Deployment", "engine") as Engine;
    assert.deepEqual(
      engine.spec.strategy.rollingUpdate,
      { maxSurge: 0, maxUnavailable: 1 },
      "two 12 GiB cards, both taken: one replica at a time",
    );
    assert.equal(
      engine.spec.template.spec.affinity?.podAntiAffinity?.preferredDuringSchedulingIgnoredDuringExecution[0]?.podAffinityTerm.topologyKey,
      "kubernetes.io/hostname",
    );
    const pdb = find(list, "PodDisruptionBudget", "engine") as {
      spec: { maxUnavailable: number; selector: { matchLabels: Record<string, string> } };
    };
    assert.equal(pdb.spec.maxUnavailable, 1);
    write(2, `${twelve}\n${twelve}\n${twelve}`);
    list = buildEnvironment({ file: spec, environment: "production" }).result.placed.map((p) => p.object);
    engine = find(list, "Deployment", "engine") as Engine;
    assert.deepEqual(
      engine.spec.strategy.rollingUpdate,
      { maxSurge: 1, maxUnavailable: 0 },
      "a third card: the new pod starts before an old one stops",
    );
    write(1, twelve);
    list = buildEnvironment({ file: spec, environment: "production" }).result.placed.map((p) => p.object);
    assert.equal(
      list.some((o) => o.kind === "PodDisruptionBudget" && o.metadata.name === "engine"),
      false,
      "one replica: a budget would only block drains",
    );
  });

  it("needs no label that only GPU feature discovery sets: the plugin finds GPU nodes as NVIDIA's chart does, the engines by the GPUs it advertises; a spec's nodeSelector binds both", () => {
    type Pod = { spec: { template: { spec: { nodeSelector?: Record<string, string>; affinity?: { nodeAffinity?: unknown } } } } };
    const podOf = (list: readonly KubeObject[], kind: string, name: string) =>
      (find(list, kind, name) as unknown as Pod).spec.template.spec;
    const plugin = podOf(objects("production"), "DaemonSet", "nvidia-device-plugin");
    assert.equal(plugin.nodeSelector, undefined);
    const terms = JSON.stringify(plugin.affinity?.nodeAffinity);
    for (const label of ["feature.node.kubernetes.io/pci-10de.present", "nvidia.com/gpu.present"]) assert.ok(terms.includes(label), label);
    assert.equal(podOf(objects("production"), "Deployment", "engine").nodeSelector, undefined);
    const dir = mkdtempSync(join(tmpdir(), "diatonic-node-selector-"));
    const file = join(dir, "platform.yaml");
    writeFileSync(file, readFileSync(EXAMPLE, "utf8").replace("  gpu:\n", "  gpu:\n    nodeSelector: { pool: gpu }\n"));
    const list = buildEnvironment({ file, environment: "production" }).result.placed.map((p) => p.object);
    assert.deepEqual(podOf(list, "DaemonSet", "nvidia-device-plugin").nodeSelector, { pool: "gpu" });
    assert.equal(podOf(list, "DaemonSet", "nvidia-device-plugin").affinity, undefined);
    assert.deepEqual(podOf(list, "Deployment", "engine").nodeSelector, { pool: "gpu" });
  });

  it("writes NVIDIA's real time-slicing schema", () => {
    const cm = find(objects("production"), "ConfigMap", "nvidia-device-plugin-config") as { data: Record<string, string> };
    const config = parse(cm.data[DEVICE_PLUGIN_CONFIG_KEY] ?? "") as Record<string, unknown>;
    assert.deepEqual(config, {
      version: "v1",
      flags: { migStrategy: "none", failOnInitError: true },
      sharing: {
        timeSlicing: { renameByDefault: false, failRequestsGreaterThanOne: true, resources: [{ name: "nvidia.com/gpu", replicas: 4 }] },
      },
    });
    // Time-slicing needs no capability: only MIG's health watch takes CAP_SYS_ADMIN.
    const plugin = find(objects("production"), "DaemonSet", "nvidia-device-plugin") as {
      spec: { template: { spec: { containers: { securityContext: { capabilities: unknown }; env: { name: string }[] }[] } } };
    };
    const container = plugin.spec.template.spec.containers[0];
    assert.deepEqual(container?.securityContext.capabilities, { drop: ["ALL"] });
    assert.ok(!container.env.some((e) => e.name === "NVIDIA_MIG_MONITOR_DEVICES"));
  });

  it("with the GPU Operator managing the plugin, its config goes to the operator's namespace (where the operator reads it), and no plugin is rendered", () => {
    const dir = mkdtempSync(join(tmpdir(), "diatonic-operator-"));
    const withOperator = (devicePlugin: string) => {
      const file = join(dir, `${devicePlugin.length}.yaml`);
      writeFileSync(file, readFileSync(EXAMPLE, "utf8").replace("devicePlugin: { managedBy: diatonic }", devicePlugin));
      return buildEnvironment({ file, environment: "production" });
    };
    const build = withOperator("devicePlugin: { managedBy: gpu-operator }");
    const list = build.result.placed.map((p) => p.object);
    assert.equal(
      (find(list, "ConfigMap", "nvidia-device-plugin-config") as { metadata: { namespace: string } }).metadata.namespace,
      "gpu-operator",
    );
    assert.equal(
      list.some((o) => o.kind === "DaemonSet" || (o.kind === "Namespace" && o.metadata.name === "gpu-operator")),
      false,
    );
    assert.ok(
      build.result.notes.some((n) => n.includes("(namespace gpu-operator)")),
      build.result.notes.join("\n"),
    );
    // An operator installed elsewhere (OpenShift's nvidia-gpu-operator): the namespace given wins.
    const openshift = withOperator("devicePlugin: { managedBy: gpu-operator, namespace: nvidia-gpu-operator }").result.placed.map(
      (p) => p.object,
    );
    assert.equal(
      (find(openshift, "ConfigMap", "nvidia-device-plugin-config") as { metadata: { namespace: string } }).metadata.namespace,
      "nvidia-gpu-operator",
    );
  });

  it("MIG (mixed): the plugin's strategy, a mig-parted layout, the engine asking for its profile, and what to do on the nodes", () => {
    const dir = mkdtempSync(join(tmpdir(), "diatonic-mig-"));
    const file = join(dir, "platform.yaml");
    const text = readFileSync(EXAMPLE, "utf8")
      .replace(
        "sharing: { mode: timeSlicing, replicas: 4, failRequestsGreaterThanOne: true }",
        "sharing: { mode: mig, strategy: mixed, profiles: { 3g.40gb: 2 } }",
      )
      .replace(/- \{ model: NVIDIA GeForce RTX 3060[^}]*\}/g, "- { model: NVIDIA A100-SXM4-80GB, memoryGiB: 80 }")
      .replace("      gpuSlices: 1\n", "      gpuSlices: 1\n      migProfile: 3g.40gb\n");
    writeFileSync(file, text);
    const build = buildEnvironment({ file, environment: "production" });
    const list = build.result.placed.map((p) => p.object);
    const plugin = parse(
      (find(list, "ConfigMap", "nvidia-device-plugin-config") as { data: Record<string, string> }).data[DEVICE_PLUGIN_CONFIG_KEY] ?? "",
    ) as { flags: { migStrategy: string }; sharing?: unknown };
    assert.equal(plugin.flags.migStrategy, "mixed");
    assert.equal(plugin.sharing, undefined);
    const layout = parse(
      (find(list, "ConfigMap", "diatonic-mig-parted-config") as { data: Record<string, string> }).data["config.yaml"] ?? "",
    ) as { "mig-configs": Record<string, unknown[]> };
    assert.deepEqual(layout["mig-configs"]["diatonic"], [{ devices: "all", "mig-enabled": true, "mig-devices": { "3g.40gb": 2 } }]);
    assert.match(JSON.stringify(find(list, "Deployment", "engine")), /"limits":\{[^}]*"nvidia\.com\/mig-3g\.40gb":"1"/);
    assert.ok(
      build.result.notes.some((n) =>
        /MIG manager at ConfigMap nvidia-device-plugin\/diatonic-mig-parted-config .*nvidia\.com\/mig\.config=diatonic .*2× 3g\.40gb/.test(
          n,
        ),
      ),
      build.result.notes.join("\n"),
    );
  });

  it("local runs llama.cpp without a GPU, device plugin or LoRA volume", () => {
    const list = objects("local");
    assert.equal(
      list.some((o) => o.kind === "DaemonSet"),
      false,
    );
    assert.equal(
      list.some((o) => o.metadata.namespace === "nvidia-device-plugin"),
      false,
    );
    const engine = JSON.stringify(find(list, "Deployment", "engine"));
    assert.doesNotMatch(engine, /nvidia\.com\/gpu/);
    assert.match(engine, /"engine","--model","\/models\/llama-3-8b-instruct\/Meta-Llama-3-8B-Instruct-Q4_K_M.gguf"/);
    assert.equal(
      list.some((o) => o.kind === "PersistentVolumeClaim" && o.metadata.name === "adapters"),
      false,
    );
  });

  it("the gateway ConfigMap holds a routing table the gateway's own schema accepts", () => {
    const cm = find(objects("staging"), "ConfigMap", "gateway") as { data: Record<string, string> };
    const config = GatewayConfig.parse(parse(cm.data["config.yaml"] ?? ""));
    assert.deepEqual(
      config.adapters.map((a) => [a.name, a.route, a.upstreamModel]),
      [
        ["chatbot", "/chatbot", "chatbot"],
        ["code", "/code", "code"],
        ["rag", "/rag", "rag"],
        ["architecture", "/architecture", "architecture"],
        ["summarization", "/summarization", "summarization"],
      ],
    );
    assert.equal(config.adapters.find((a) => a.name === "rag")?.rag?.collection, "handbook");
    assert.equal(config.vectorStore?.kind, "qdrant");
    const local = GatewayConfig.parse(
      parse((find(objects("local"), "ConfigMap", "gateway") as { data: Record<string, string> }).data["config.yaml"] ?? ""),
    );
    assert.ok(
      local.adapters.every((a) => a.upstreamModel === "llama-3-8b-instruct"),
      "prompt-only adapters go to the base model on llama.cpp",
    );
    // Placement keeps no more adapters on a vLLM replica than its --max-cpu-loras; llama.cpp keeps every LoRA it read.
    assert.deepEqual(config.routing, { policy: "diatonic", slots: 4, swapMs: 200, loadPollMs: 200, cpuLoras: 64 });
    assert.equal(local.routing.cpuLoras, undefined);
  });

  it("every pod in the platform namespace meets Pod Security restricted", () => {
    for (const env of ENVS) {
      for (const object of objects(env)) {
        if (object.metadata.namespace !== "llama3-multi-adapter") continue;
        const spec = (object as unknown as { spec?: { template?: { spec?: Record<string, unknown> }; jobTemplate?: unknown } }).spec;
        const pod = spec?.template?.spec as
          { securityContext?: Record<string, unknown>; containers: { securityContext?: Record<string, unknown> }[] } | undefined;
        if (!pod) continue;
        assert.equal(pod.securityContext?.["runAsNonRoot"], true, `${object.kind}/${object.metadata.name} runAsNonRoot`);
        assert.deepEqual(pod.securityContext?.["seccompProfile"], { type: "RuntimeDefault" });
        for (const c of pod.containers) {
          assert.equal(c.securityContext?.["allowPrivilegeEscalation"], false);
          assert.deepEqual(c.securityContext?.["capabilities"], { drop: ["ALL"] });
        }
      }
    }
  });

  it("staging and production get ACME certificates; local a self-signed CA chain", () => {
    const issuerOf = (env: string) =>
      (find(objects(env), "Certificate", "gateway-tls") as { spec: { issuerRef: { name: string } } }).spec.issuerRef.name;
    assert.equal(issuerOf("local"), "lab-ca");
    assert.equal(issuerOf("staging"), "lab-letsencrypt-staging");
    assert.equal(issuerOf("production"), "lab-letsencrypt-production");
    const ca = find(objects("local"), "Certificate", "lab-ca") as { spec: { isCA: boolean; issuerRef: { name: string } } };
    assert.equal(ca.spec.isCA, true);
    assert.equal(ca.spec.issuerRef.name, "lab-selfsigned");
  });

  it("the ingress turns buffering off for streams and uses no snippet annotations", () => {
    const ingress = find(objects("production"), "Ingress", "gateway") as { metadata: { annotations: Record<string, string> } };
    assert.equal(ingress.metadata.annotations["nginx.ingress.kubernetes.io/proxy-buffering"], "off");
    assert.ok(Object.keys(ingress.metadata.annotations).every((k) => !k.includes("snippet")));
  });

  it("a dedicated adapter gets its own engine in its own file; contour gets an HTTPProxy", async () => {
    const dir = mkdtempSync(join(tmpdir(), "diatonic-dedicated-"));
    const text = readFileSync(EXAMPLE, "utf8")
      .replace(
        "      limits: { concurrency: 4, queue: 16, timeoutSeconds: 300 }",
        "      limits: { concurrency: 4, queue: 16, timeoutSeconds: 300 }\n      serving: dedicated\n      dedicated: { gpuSlices: 2 }",
      )
      .replace("    className: nginx", "    className: contour")
      .replace("      - { name: code, lora: null, ", "      - { name: code, lora: null, serving: shared, ");
    const spec = join(dir, "platform.yaml");
    (await import("node:fs")).writeFileSync(spec, text);
    const run = await runCli(["render", "--spec", spec, "--env", "production", "--out", join(dir, "out")], dir);
    assert.equal(run.code, 0, run.stderr);
    const adapterFile = readFileSync(join(dir, "out/base/adapters/code.yaml"), "utf8");
    const docs = parseAllDocuments(adapterFile).map((d) => d.toJS() as KubeObject);
    assert.deepEqual(
      docs.map((d) => `${d.kind}/${d.metadata.name}`),
      [
        "ConfigMap/engine-code-adapters",
        "Deployment/engine-code",
        "Service/engine-code",
        "Service/engine-code-headless",
        "ConfigMap/adapter-code",
      ],
    );
    assert.match(adapterFile, /nvidia.com\/gpu: "2"/);
    // A dedicated engine serves one LoRA: one slot, not the shared engine's four.
    assert.match(adapterFile, /- --max-loras\n\s+- "1"/);
    assert.match(readFileSync(join(dir, "out/base/ingress.yaml"), "utf8"), /kind: HTTPProxy/);
  });

  it("quickstart renders and validates the bundled example and prints a summary", async () => {
    const dir = mkdtempSync(join(tmpdir(), "diatonic-quickstart-"));
    const run = await runCli(["quickstart", "--out", join(dir, "lab")], dir);
    assert.equal(run.code, 0, run.stderr);
    assert.match(run.stdout, /platform lab, environment local: \d+ objects/);
    assert.match(run.stdout, /validated them with \d+ rules .*: 0 error\(s\)/);
    assert.ok(readTree(join(dir, "lab")).has("overlays/local/kustomization.yaml"));
    // The commands it suggests run as printed from where it was run (outside the checkout here).
    const plan = /^ {2}node (\S+) plan --spec (\S+) --env production\s+#/m.exec(run.stdout);
    assert.ok(plan, run.stdout);
    const planned = execFileSync(process.execPath, [plan[1] ?? "", "plan", "--spec", plan[2] ?? "", "--env", "production"], {
      cwd: dir,
      encoding: "utf8",
    });
    assert.match(planned, /^plan for lab \(production\)/);
    assert.match(run.stdout, new RegExp(`^ {2}cat lab/overlays/local/SECRETS\\.md\\s+# the Secrets to create first$`, "m"));
    assert.ok(existsSync(join(dir, "lab/overlays/local/SECRETS.md")));
  });

  it("the summary names the first few adapters and counts the rest, so 1,000 adapters stay one short line", async () => {
    const dir = mkdtempSync(join(tmpdir(), "diatonic-many-"));
    const many = Array.from({ length: 1000 }, (_, i) => `    - { name: a${i}, systemPrompt: You are adapter ${i}. }`).join("\n");
    writeFileSync(join(dir, "platform.yaml"), readFileSync(EXAMPLE, "utf8").replace("  adapters:\n", `  adapters:\n${many}\n`));
    const run = await runCli(["render", "--env", "production", "-o", "yaml"], dir);
    assert.equal(run.code, 0, run.stderr);
    const line = run.stderr.split("\n").find((l) => l.includes("adapters:")) ?? "";
    assert.match(line, /with 1005 adapters: a0, a1, a2, a3, a4 and 1000 more$/);
    assert.ok(line.length < 160, line);
  });

  it("render --out DIR then validate DIR: validates the environment render was asked for, and says so (built in-process: no kubectl)", async () => {
    const dir = mkdtempSync(join(tmpdir(), "diatonic-validate-tree-"));
    const rendered = await runCli(["render", "--spec", join(process.cwd(), EXAMPLE), "--env", "staging", "--out", "out"], dir);
    assert.equal(rendered.code, 0, rendered.stderr);
    assert.equal((JSON.parse(readFileSync(join(dir, "out/.diatonic-render"), "utf8")) as { environment: string }).environment, "staging");
    const run = await runCli(["validate", "out", "--format", "json"], dir);
    assert.equal(run.code, 0, run.stdout + run.stderr);
    assert.match(
      run.stderr,
      /validating out\/overlays\/staging, the environment render was asked for \(for another, pass out\/overlays\/local or out\/overlays\/production\)/,
    );
    const result = JSON.parse(run.stdout) as { objects: number; findings: { file?: string }[] };
    assert.equal(result.objects, objects("staging").length);
  });

  it("adding an adapter adds one file to the tree, base/adapters/<name>.yaml: each overlay sets the environment label with one patch", () => {
    const dir = mkdtempSync(join(tmpdir(), "diatonic-one-more-"));
    const spec = join(dir, "platform.yaml");
    writeFileSync(
      spec,
      readFileSync(EXAMPLE, "utf8").replace("  adapters:\n", "  adapters:\n    - { name: extra, systemPrompt: You are extra. }\n"),
    );
    const before = buildTree({ file: EXAMPLE, environment: "local" }).files;
    const after = buildTree({ file: spec, environment: "local" }).files;
    assert.deepEqual(
      [...after.keys()].filter((path) => !before.has(path)),
      ["base/adapters/extra.yaml"],
    );
    for (const env of ENVS) {
      assert.equal(
        after.get(`overlays/${env}/patches/environment.yaml`),
        `- op: replace\n  path: /metadata/labels/diatonic.ai~1environment\n  value: ${env}\n`,
      );
      const patches = [...after.entries()].filter(([path]) => path.startsWith(`overlays/${env}/patches/`));
      assert.ok(
        patches.every(
          ([path, text]) => path.endsWith("/environment.yaml") || !text.includes("path: /metadata/labels/diatonic.ai~1environment"),
        ),
        `${env}: no object's own patch sets the label again`,
      );
    }
  });

  it("refuses to overwrite a directory it did not write", async () => {
    const dir = mkdtempSync(join(tmpdir(), "diatonic-foreign-"));
    (await import("node:fs")).writeFileSync(join(dir, "precious.txt"), "keep me");
    const run = await runCli(["render", "--spec", EXAMPLE, "--env", "local", "--out", dir]);
    assert.equal(run.code, 2);
    assert.match(run.stderr, /was not written by diatonic render/);
    assert.equal(readFileSync(join(dir, "precious.txt"), "utf8"), "keep me");
  });

  /** The same objects, compared by identity and content. */
  const assertSameObjects = (actual: readonly KubeObject[], expected: readonly KubeObject[], what: string) => {
    const left = new Map(actual.map((o) => [objectKey(o), JSON.parse(JSON.stringify(o)) as KubeObject]));
    const right = new Map(expected.map((o) => [objectKey(o), JSON.parse(JSON.stringify(o)) as KubeObject]));
    assert.deepEqual([...left.keys()].sort(), [...right.keys()].sort(), `${what}: same objects`);
    for (const [key, object] of right) assert.deepEqual(left.get(key), object, `${what}: ${key} is identical`);
  };

  for (const example of [EXAMPLE, "examples/production/platform.yaml"]) {
    it(`the written tree builds into exactly the objects of -o yaml, in-process as validate builds it (${example})`, async () => {
      const dir = mkdtempSync(join(tmpdir(), "diatonic-tree-"));
      const run = await runCli(["render", "--spec", example, "--env", "local", "--out", join(dir, "out")]);
      assert.equal(run.code, 0, run.stderr);
      for (const env of ENVS) {
        const built = buildRenderedTree(join(dir, "out", "overlays", env));
        assert.ok(built !== undefined, `${env}: the tree uses only what render writes`);
        assertSameObjects(
          built.map((b) => b.object),
          buildEnvironment({ file: example, environment: env }).result.placed.map((p) => p.object),
          env,
        );
      }
    });

    it(
      `kubectl kustomize builds the written tree into exactly the objects of -o yaml (${example})`,
      { skip: kubectlSkip ?? false },
      async () => {
        const dir = mkdtempSync(join(tmpdir(), "diatonic-tree-"));
        const run = await runCli(["render", "--spec", example, "--env", "local", "--out", join(dir, "out")]);
        assert.equal(run.code, 0, run.stderr);
        assert.ok(readTree(join(dir, "out")).has("overlays/local/kustomization.yaml"));
        for (const env of ENVS) {
          const built = execFileSync(KUBECTL.path, ["kustomize", join(dir, "out", "overlays", env)], {
            encoding: "utf8",
            maxBuffer: 64 * 1024 * 1024,
          });
          assertSameObjects(
            parseAllDocuments(built).map((d) => d.toJS() as KubeObject),
            buildEnvironment({ file: example, environment: env }).result.placed.map((p) => p.object),
            env,
          );
        }
      },
    );
  }

  it("a tree that uses more of Kustomize than render writes is left to kubectl (the in-process build declines)", () => {
    const dir = mkdtempSync(join(tmpdir(), "diatonic-tree-foreign-"));
    const object = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: a\n  namespace: n\ndata:\n  k: v\n";
    writeFileSync(join(dir, "a.yaml"), object);
    const tree = (kustomization: string, patch?: string) => {
      writeFileSync(
        join(dir, "kustomization.yaml"),
        `apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\nresources: [a.yaml]\n${kustomization}`,
      );
      if (patch !== undefined) writeFileSync(join(dir, "p.yaml"), patch);
      return buildRenderedTree(dir);
    };
    const target = "patches:\n  - path: p.yaml\n    target: {group: '', version: v1, kind: ConfigMap, name: a, namespace: n}\n";
    assert.deepEqual(
      tree(target, "- op: replace\n  path: /data/k\n  value: w\n")?.map((b) => (b.object as KubeObject & { data?: unknown }).data),
      [{ k: "w" }],
      "what render writes: built",
    );
    assert.equal(tree("namePrefix: x-\n"), undefined, "a name prefix");
    assert.equal(tree("configMapGenerator:\n  - name: g\n    literals: [a=b]\n"), undefined, "a generator");
    assert.equal(tree(target, "- op: add\n  path: /data/list/0\n  value: w\n"), undefined, "an array index");
    assert.equal(
      tree(target, "- op: replace\n  path: /data/missing\n  value: w\n"),
      undefined,
      "a replace of nothing (kubectl's error is the one to show)",
    );
    assert.equal(
      tree("patches:\n  - path: p.yaml\n", "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: a, namespace: n}\ndata: {k: w}\n"),
      undefined,
      "a strategic merge",
    );
  });
});
