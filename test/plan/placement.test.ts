import assert from "node:assert/strict";
import { mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, it } from "node:test";
import { parseAllDocuments } from "yaml";
import { LLAMA3_ARCHITECTURES, namedBillions } from "../../src/spec/architectures.ts";
import { runCli } from "../support/cli.ts";

/** Llama 3 70B on whole GPUs (no sharing, unless `gpu` says otherwise), tensor parallel over two of them. */
function spec70b(options: { architecture?: string; tensorParallel?: number; nodes?: string; engine?: string; gpu?: string } = {}): string {
  const tp = options.tensorParallel ?? 2;
  const text = `apiVersion: diatonic.ai/v1alpha1
kind: Platform
metadata: { name: big }
spec:
  namespace: llm
  model:
    name: llama-3-70b-instruct
${options.architecture ?? ""}    source: { huggingFace: { repo: meta-llama/Meta-Llama-3-70B-Instruct, revision: 7129260dd854a80eb10ace5f61c20324b472b31c } }
    size: 150Gi
    engine: { kind: vllm, image: vllm/vllm-openai:v0.6.6, dtype: bfloat16, maxModelLen: 8192, gpuMemoryUtilization: 0.92, tensorParallel: ${tp}, gpuSlices: ${tp}, maxLoras: 2, maxLoraRank: 16${options.engine ?? ""} }
  adapters:
    - { name: code, lora: { source: { huggingFace: { repo: org/code-lora, revision: v1 } }, rank: 16 } }
  gpu:
    sharing: ${options.gpu ?? "{ mode: none }"}
    nodes: ${options.nodes ?? "[{ name: n1, gpus: [{ model: NVIDIA H100 80GB HBM3, memoryGiB: 80 }, { model: NVIDIA H100 80GB HBM3, memoryGiB: 80 }] }]"}
  ingress: { className: nginx, host: llm.example.com }
environments:
  production: { gateway: { replicas: 2 } }
`;
  const file = join(mkdtempSync(join(tmpdir(), "plan-tp-")), "platform.yaml");
  writeFileSync(file, text);
  return file;
}

const SHAPE_8B = "    architecture: { parametersBillions: 8.03 }\n";

/** An engine of one rank, small enough for any card (planned as 8B), on node n1's one GPU shared as `gpu` says. */
function oneRankSpec(gpu: string, card: string, engine = ""): string {
  return spec70b({ architecture: SHAPE_8B, tensorParallel: 1, engine, gpu, nodes: `[{ name: n1, gpus: [{ model: ${card} }] }]` });
}
const SHAPE_70B =
  "    architecture: { parametersBillions: 70.55, layers: 80, hiddenSize: 8192, intermediateSize: 28672, kvHeads: 8, headDim: 128, vocabSize: 128256 }\n";

describe("plan: tensor parallelism over whole GPUs", () => {
  it("places each rank on its own GPU of one node (it used to call the pod Pending: '2 exist, 2 requested')", async () => {
    const run = await runCli(["plan", "--spec", spec70b({ architecture: SHAPE_70B }), "--env", "production"]);
    assert.equal(run.code, 0, run.stdout + run.stderr);
    assert.match(run.stdout, /GPUs: 2 of 2 slices requested/);
    assert.match(run.stdout, /n1\s+0\s+NVIDIA H100 80GB HBM3\s+80 GiB\s+1\/1\s+Deployment\/llm\/engine\s+[\d.]+ GiB\s+73\.6 GiB\s+yes/);
    assert.match(run.stdout, /n1\s+1\s+NVIDIA H100 80GB HBM3\s+80 GiB\s+1\/1\s+Deployment\/llm\/engine\s+[\d.]+ GiB\s+73\.6 GiB\s+yes/);
    assert.match(run.stdout, /VRAM per engine replica, on each of its 2 GPUs \(tensor parallel\): weights 6\d\.\d+ /);
    assert.doesNotMatch(run.stdout, /PENDING|spec\/cross-field/);
  });

  it("a group larger than any node stays Pending, and says so", async () => {
    const twoNodes =
      "[{ name: n1, gpus: [{ model: H100, memoryGiB: 80 }, { model: H100, memoryGiB: 80 }] }, { name: n2, gpus: [{ model: H100, memoryGiB: 80 }, { model: H100, memoryGiB: 80 }] }]";
    const run = await runCli([
      "plan",
      "--spec",
      spec70b({ architecture: SHAPE_70B, tensorParallel: 4, nodes: twoNodes }),
      "--env",
      "production",
    ]);
    assert.equal(run.code, 1, run.stdout + run.stderr);
    assert.match(run.stdout, /PENDING Deployment\/llm\/engine: needs 4 nvidia.com\/gpu on one node, the largest node has 2/);
  });

  it("warns when the model's name states another size than model.architecture, and gives Llama 3's shape", async () => {
    const run = await runCli(["plan", "--spec", spec70b(), "--env", "production"]);
    assert.match(
      run.stdout,
      /warning spec\/cross-field Platform\/big \(\S+platform\.yaml:\d+:\d+\): the model is named as 70B parameters \(Meta-Llama-3-70B-Instruct\), but model\.architecture describes 8\.03B \(Llama 3 8B's shape, the default\): its VRAM plan is too small by about 9×\n {4}fix: set model\.architecture to Llama 3 70B's shape: \{ parametersBillions: 70\.55, layers: 80, hiddenSize: 8192, intermediateSize: 28672, kvHeads: 8, headDim: 128, vocabSize: 128256 \}/,
    );
    // The fix, pasted, is a valid spec that plans without the warning (the first test).
    assert.equal(
      SHAPE_70B.trim(),
      `architecture: { ${Object.entries(LLAMA3_ARCHITECTURES.get(70) ?? {})
        .map(([k, v]) => `${k}: ${String(v)}`)
        .join(", ")} }`,
    );
  });

  it("MIG's mixed strategy: a pod gets only the profile it asks for (it was put on a smaller profile's device)", async () => {
    const file = oneRankSpec(
      "{ mode: mig, strategy: mixed, profiles: { 3g.40gb: 1, 1g.10gb: 4 } }",
      "NVIDIA A100 80GB, memoryGiB: 80",
      ", migProfile: 3g.40gb, replicas: 2",
    );
    const run = await runCli(["plan", "--spec", file, "--env", "production"]);
    assert.equal(run.code, 1, run.stdout + run.stderr);
    assert.match(run.stdout, /n1\s+0\s+NVIDIA A100 80GB MIG 3g\.40gb\s+40 GiB\s+1\/1\s+Deployment\/llm\/engine #\d/);
    assert.doesNotMatch(run.stdout, /MIG 1g\.10gb\s+10 GiB\s+1\/1/, "no engine on a 1g.10gb device");
    assert.match(run.stdout, /PENDING Deployment\/llm\/engine #\d: needs 1 nvidia\.com\/mig-3g\.40gb, 1 exist, 2 requested/);
  });

  it("MIG on L4s is refused, and a layout larger than the card too (two L4s showed 40 GiB MIG slices that 'fit')", async () => {
    const l4s = oneRankSpec(
      "{ mode: mig, strategy: mixed, profiles: { 3g.40gb: 1 } }",
      "NVIDIA L4, memoryGiB: 24",
      ", migProfile: 3g.40gb",
    );
    for (const command of ["plan", "validate"]) {
      const run = await runCli([command, "--spec", l4s, "--env", "production"]);
      assert.equal(run.code, 2, run.stdout + run.stderr);
      assert.match(run.stderr, /spec\.gpu\.nodes\[0\]\.gpus\[0\]\.model: NVIDIA L4 on node n1 has no MIG/);
      assert.doesNotMatch(run.stdout, /MIG 3g\.40gb/);
    }
    const tooMany = oneRankSpec(
      "{ mode: mig, strategy: mixed, profiles: { 3g.40gb: 3 } }",
      "NVIDIA A100 80GB PCIe, memoryGiB: 80",
      ", migProfile: 3g.40gb",
    );
    const run = await runCli(["plan", "--spec", tooMany, "--env", "production"]);
    assert.equal(run.code, 2, run.stdout + run.stderr);
    assert.match(run.stderr, /spec\.gpu\.sharing\.profiles\.3g\.40gb: 3× 3g\.40gb does not fit one A100 80GB, which holds at most 2/);
  });

  it("a dedicated adapter's engine asks for its own MIG profile, not the shared engine's, and is planned on it", async () => {
    const shared = oneRankSpec(
      "{ mode: mig, strategy: mixed, profiles: { 3g.40gb: 1, 1g.10gb: 4 } }",
      "NVIDIA A100 80GB, memoryGiB: 80",
      ", migProfile: 3g.40gb",
    );
    const file = join(mkdtempSync(join(tmpdir(), "plan-dedicated-")), "platform.yaml");
    writeFileSync(
      file,
      readFileSync(shared, "utf8").replace(
        "rank: 16 } }\n",
        "rank: 16 } }\n    - { name: sql, lora: { source: { huggingFace: { repo: org/sql-lora, revision: v1 } }, rank: 16 }, serving: dedicated, dedicated: { migProfile: 1g.10gb } }\n",
      ),
    );
    const rendered = await runCli(["render", "--spec", file, "--env", "production", "-o", "yaml"]);
    assert.equal(rendered.code, 0, rendered.stderr);
    const deployments = parseAllDocuments(rendered.stdout).map(
      (d) =>
        d.toJS() as {
          kind: string;
          metadata: { name: string };
          spec?: { template?: { spec?: { containers: { resources: { limits: Record<string, string> } }[] } } };
        },
    );
    const limits = (name: string) =>
      deployments.find((o) => o.kind === "Deployment" && o.metadata.name === name)?.spec?.template?.spec?.containers[0]?.resources.limits;
    assert.equal(limits("engine")?.["nvidia.com/mig-3g.40gb"], "1");
    assert.deepEqual(
      Object.keys(limits("engine-sql") ?? {}).filter((k) => k.startsWith("nvidia.com/")),
      ["nvidia.com/mig-1g.10gb"],
    );
    const run = await runCli(["plan", "--spec", file, "--env", "production"]);
    assert.match(run.stdout, /MIG 1g\.10gb\s+10 GiB\s+1\/1\s+Deployment\/llm\/engine-sql/);
    assert.match(run.stdout, /sql\s+\/sql\s+16\s+dedicated engine \(MIG 1g\.10gb\)/);
  });

  it("time-slices renamed by default are requested and planned as nvidia.com/gpu.shared, the only name the plugin then advertises", async () => {
    const file = oneRankSpec("{ mode: timeSlicing, replicas: 4, renameByDefault: true }", "NVIDIA L40S, memoryGiB: 48");
    const rendered = await runCli(["render", "--spec", file, "--env", "production", "-o", "yaml"]);
    assert.equal(rendered.code, 0, rendered.stderr);
    assert.match(rendered.stdout, /limits:\n(\s+\S+: \S+\n)*?\s+nvidia\.com\/gpu\.shared: "1"/);
    assert.doesNotMatch(rendered.stdout, /^\s+nvidia\.com\/gpu: "1"$/m);
    assert.match(rendered.stdout, /renameByDefault: true/);
    const run = await runCli(["plan", "--spec", file, "--env", "production"]);
    assert.equal(run.code, 0, run.stdout + run.stderr);
    assert.match(run.stdout, /GPUs: 1 of 4 slices requested/);
    assert.match(run.stdout, /n1\s+0\s+NVIDIA L40S\s+48 GiB\s+1\/4\s+Deployment\/llm\/engine/);
  });

  it("reads the size a model's name states", () => {
    for (const [name, billions] of [
      ["Meta-Llama-3-70B-Instruct", 70],
      ["llama-3-8b-instruct-awq", 8],
      ["Meta-Llama-3-8B-Instruct-Q4_K_M.gguf", 8],
      ["Qwen2.5-1.5B-Instruct", 1.5],
      ["Llama-3.1-405B", 405],
      ["Mixtral-8x7B-v0.1", undefined],
      ["llama-3-8b-to-70b-merge", undefined],
      ["my-model", undefined],
      ["bert-base-4bit", undefined],
    ] as const) {
      assert.equal(namedBillions(name), billions, name);
    }
  });
});
