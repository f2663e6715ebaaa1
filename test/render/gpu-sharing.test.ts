// GPU sharing per node: MIG on an A100, time-slicing on two L4s, from one spec.
import assert from "node:assert/strict";
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, it } from "node:test";
import { parse } from "yaml";
import { buildEnvironment } from "../../src/render/build.ts";
import type { KubeObject } from "../../src/render/context.ts";
import { runCli } from "../support/cli.ts";

const SPEC = `apiVersion: diatonic.ai/v1alpha1
kind: Platform
metadata: { name: mixed }
spec:
  namespace: llm
  model:
    source: { huggingFace: { repo: casperhansen/llama-3-8b-instruct-awq, revision: 2d2a2ab4b2aa5ff3e0fc04e1b8f4ba1e4ae0b4dd } }
    engine: { kind: vllm, quantization: awq, dtype: float16, gpuMemoryUtilization: 0.45, migProfile: 3g.40gb }
  adapters:
    - { name: code, lora: { source: { huggingFace: { repo: org/code-lora, revision: v1 } }, rank: 16 } }
    - { name: sql, lora: { source: { huggingFace: { repo: org/sql-lora, revision: v1 } }, rank: 16 }, serving: dedicated, dedicated: { replicas: 2 } }
  gpu:
    sharing: { mode: timeSlicing, replicas: 4 }
    sharingConfigs:
      a100-mig: { mode: mig, strategy: mixed, profiles: { 3g.40gb: 1, 2g.20gb: 1, 1g.10gb: 2 } }
    nodes:
      - { name: gpu-a100-1, sharingConfig: a100-mig, gpus: [{ model: NVIDIA A100-SXM4-80GB, memoryGiB: 80 }] }
      - { name: gpu-l4-1, gpus: [{ model: NVIDIA L4, memoryGiB: 24 }] }
      - { name: gpu-l4-2, gpus: [{ model: NVIDIA L4, memoryGiB: 24 }] }
  ingress: { host: llm.example.com }
environments:
  production: {}
`;

function specFile(text = SPEC): string {
  const file = join(mkdtempSync(join(tmpdir(), "gpu-sharing-")), "platform.yaml");
  writeFileSync(file, text);
  return file;
}

type Json = Record<string, unknown>;
const find = (list: readonly KubeObject[], kind: string, name: string): Json => {
  const found = list.find((o) => o.kind === kind && o.metadata.name === name);
  assert.ok(found, `${kind}/${name}`);
  return found as unknown as Json;
};
const podSpec = (object: Json) => (object["spec"] as { template: { spec: Json } }).template.spec;
const limitsOf = (object: Json) =>
  (podSpec(object)["containers"] as { resources: { limits: Record<string, string> } }[])[0]?.resources.limits ?? {};

describe("GPU sharing per node", () => {
  const build = buildEnvironment({ file: specFile(), environment: "production" });
  const list = build.result.placed.map((p) => p.object);

  it("renders NVIDIA's named configs: gpu.sharing as default, each sharingConfig under its name", () => {
    const data = find(list, "ConfigMap", "nvidia-device-plugin-config")["data"] as Record<string, string>;
    assert.deepEqual(Object.keys(data), ["default", "a100-mig"]);
    assert.deepEqual(parse(data["default"] ?? ""), {
      version: "v1",
      flags: { migStrategy: "none", failOnInitError: true },
      sharing: {
        timeSlicing: { renameByDefault: false, failRequestsGreaterThanOne: true, resources: [{ name: "nvidia.com/gpu", replicas: 4 }] },
      },
    });
    assert.deepEqual(parse(data["a100-mig"] ?? ""), { version: "v1", flags: { migStrategy: "mixed", failOnInitError: true } });
  });

  it("runs the plugin as NVIDIA's chart does for per-node configs: config-manager reads the node label and may read nodes, nothing more", () => {
    const pod = podSpec(find(list, "DaemonSet", "nvidia-device-plugin"));
    assert.equal(pod["shareProcessNamespace"], true);
    assert.equal(pod["automountServiceAccountToken"], true);
    const env = (container: unknown) =>
      Object.fromEntries((container as { env: { name: string; value?: string }[] }).env.map((e) => [e.name, e.value]));
    const [init] = pod["initContainers"] as Json[];
    assert.deepEqual(init?.["command"], ["config-manager"]);
    assert.equal(env(init)["NODE_LABEL"], "nvidia.com/device-plugin.config");
    assert.equal(env(init)["DEFAULT_CONFIG"], "default");
    assert.equal(env(init)["ONESHOT"], "true");
    const containers = pod["containers"] as Json[];
    assert.deepEqual(
      containers.map((c) => c["name"]),
      ["device-plugin", "config-manager"],
    );
    assert.equal(env(containers[1])["PROCESS_TO_SIGNAL"], "nvidia-device-plugin");
    assert.equal(env(containers[0])["CONFIG_FILE"], "/config/config.yaml");
    assert.deepEqual(
      (pod["volumes"] as Json[]).map((v) => v["name"]),
      ["device-plugins", "available-configs", "config"],
    );
    // config-manager links CONFIG_FILE_DST to a file under CONFIG_FILE_SRCDIR (a symlink, not a copy):
    // the plugin reads it through the link, so it must mount that folder at the same path.
    type Mount = { name: string; mountPath: string };
    const mountsOf = (container: unknown) => (container as { volumeMounts: Mount[] }).volumeMounts;
    const source = env(containers[1])["CONFIG_FILE_SRCDIR"] ?? "";
    const shared = mountsOf(containers[0]).find((m) => m.mountPath === source);
    assert.ok(shared, `the plugin mounts ${source}, where its config file's link points`);
    assert.equal(shared.name, mountsOf(containers[1]).find((m) => m.mountPath === source)?.name);
    assert.equal(env(containers[1])["CONFIG_FILE_DST"], env(containers[0])["CONFIG_FILE"]);
    // MIG on a node: the plugin watches MIG devices' health as NVIDIA's chart runs it.
    assert.equal(env(containers[0])["NVIDIA_MIG_MONITOR_DEVICES"], "all");
    assert.deepEqual((containers[0]?.["securityContext"] as Json)["capabilities"], { add: ["SYS_ADMIN"] });
    assert.deepEqual(find(list, "ClusterRole", "nvidia-device-plugin-node-reader")["rules"], [
      { apiGroups: [""], resources: ["nodes"], verbs: ["get", "list", "watch"] },
    ]);
    assert.deepEqual(find(list, "ClusterRoleBinding", "nvidia-device-plugin-node-reader")["subjects"], [
      { kind: "ServiceAccount", name: "nvidia-device-plugin", namespace: "nvidia-device-plugin" },
    ]);
  });

  it("restarts the plugin when its config changes (neither it nor config-manager reads the ConfigMap again), and only then", () => {
    const hashOf = (text: string) => {
      const objects = buildEnvironment({ file: specFile(text), environment: "production" }).result.placed.map((p) => p.object);
      const template = (find(objects, "DaemonSet", "nvidia-device-plugin")["spec"] as { template: { metadata: Json } }).template;
      return (template.metadata["annotations"] as Record<string, string>)["diatonic.ai/device-plugin-config"];
    };
    const before = hashOf(SPEC);
    assert.match(before ?? "", /^[0-9a-f]{8}$/);
    assert.equal(
      hashOf(SPEC.replace("metadata: { name: mixed }", "metadata: { name: other }")),
      before,
      "a platform's name is not the config",
    );
    assert.notEqual(hashOf(SPEC.replace("replicas: 4 }", "replicas: 8 }")), before, "4 slices a GPU became 8");
  });

  it("lays MIG out on the A100 only, and says which node to label with what", () => {
    const layout = parse(
      (find(list, "ConfigMap", "diatonic-mig-parted-config")["data"] as Record<string, string>)["config.yaml"] ?? "",
    ) as { "mig-configs": Record<string, unknown> };
    assert.deepEqual(Object.keys(layout["mig-configs"]), ["all-disabled", "diatonic-a100-mig"]);
    const notes = build.result.notes.join("\n");
    assert.match(
      notes,
      /kubectl label node gpu-a100-1 nvidia\.com\/device-plugin\.config=a100-mig --overwrite; nodes without the label use gpu\.sharing \(config default\)/,
    );
    assert.match(
      notes,
      /kubectl label node gpu-a100-1 nvidia\.com\/mig\.config=diatonic-a100-mig --overwrite so it applies 1× 3g\.40gb, 1× 2g\.20gb, 2× 1g\.10gb; other nodes keep MIG off/,
    );
    assert.doesNotMatch(notes, /gpu-l4-\d nvidia\.com\/mig\.config/);
  });

  it("each engine asks for what its nodes advertise: the shared one a MIG device, the dedicated one an L4 time-slice", () => {
    assert.deepEqual(
      Object.keys(limitsOf(find(list, "Deployment", "engine"))).filter((k) => k.startsWith("nvidia.com/")),
      ["nvidia.com/mig-3g.40gb"],
    );
    assert.deepEqual(
      Object.keys(limitsOf(find(list, "Deployment", "engine-sql"))).filter((k) => k.startsWith("nvidia.com/")),
      ["nvidia.com/gpu"],
    );
  });

  it("plan lays them out per node (MIG devices on the A100, 4 slices per L4), validate is clean", async () => {
    const file = specFile();
    const run = await runCli(["plan", "--spec", file, "--env", "production"]);
    assert.equal(run.code, 0, run.stdout + run.stderr);
    assert.match(
      run.stdout,
      /gpu-a100-1\s+0\s+NVIDIA A100-SXM4-80GB MIG 3g\.40gb\s+40 GiB\s+1\/1\s+Deployment\/llm\/engine\s+\S+ GiB\s+\S+ GiB\s+yes/,
    );
    assert.match(run.stdout, /gpu-l4-1\s+0\s+NVIDIA L4\s+24 GiB\s+1\/4\s+Deployment\/llm\/engine-sql #\d/);
    assert.match(run.stdout, /gpu-l4-2\s+0\s+NVIDIA L4\s+24 GiB\s+1\/4\s+Deployment\/llm\/engine-sql #\d/);
    assert.doesNotMatch(run.stdout, /NVIDIA L4 MIG/);
    const validate = await runCli(["validate", "--spec", file, "--env", "production"]);
    assert.equal(validate.code, 0, validate.stdout);
    // An L4 has no smaller card beside it: the A100's 1g.10gb MIG device is another node's, under another resource.
    assert.match(validate.stdout, / 0 error\(s\), 0 warning\(s\)/, validate.stdout);
  });

  it("refuses a node naming a config that does not exist, and MIG sent to the L4s", async () => {
    const unknown = await runCli([
      "render",
      "--spec",
      specFile(SPEC.replace("sharingConfig: a100-mig", "sharingConfig: a100")),
      "--env",
      "production",
      "-o",
      "yaml",
    ]);
    assert.equal(unknown.code, 2);
    assert.match(
      unknown.stderr,
      /spec\.gpu\.nodes\[0\]\.sharingConfig: node gpu-a100-1 names sharing config a100, which gpu\.sharingConfigs does not define\n\s+fix: use one of: a100-mig/,
    );
    const l4 = await runCli([
      "plan",
      "--spec",
      specFile(SPEC.replace("{ name: gpu-l4-1, gpus", "{ name: gpu-l4-1, sharingConfig: a100-mig, gpus")),
      "--env",
      "production",
    ]);
    assert.equal(l4.code, 2);
    assert.match(
      l4.stderr,
      /spec\.gpu\.nodes\[1\]\.gpus\[0\]\.model: NVIDIA L4 on node gpu-l4-1 has no MIG .* but gpu\.sharingConfigs\.a100-mig is mode: mig/,
    );
  });
});
