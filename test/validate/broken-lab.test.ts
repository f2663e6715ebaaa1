import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { mkdirSync, mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, it } from "node:test";
import { runCli } from "../support/cli.ts";

const FIXTURES = "test/validate/fixtures/broken-lab";
const LAB = ["--spec", "examples/lab/platform.yaml", "--env", "production"];

interface Finding {
  ruleId: string;
  severity: string;
  resource: string;
  message: string;
  fix: string;
}

async function findings(args: string[]): Promise<{ code: number; findings: Finding[] }> {
  const run = await runCli(["validate", ...args, "--format", "json"]);
  assert.ok(run.code === 0 || run.code === 1, run.stderr);
  return { code: run.code, findings: (JSON.parse(run.stdout) as { findings: Finding[] }).findings };
}

/** The mistakes of the platform we replace, each caught before anything reaches a cluster. */
const mistakes = [
  {
    fixture: "device-plugin-wrong-schema",
    rule: "gpu/device-plugin-config",
    says: /not a valid NVIDIA device-plugin config.*advertises each GPU once/,
  },
  { fixture: "seven-gpus", rule: "gpu/capacity", says: /will stay Pending: needs 1 nvidia.com\/gpu, 2 exist, 7 requested/ },
  { fixture: "service-target-port", rule: "wiring/service-target-port", says: /targetPort 8000 matches no container port/ },
  { fixture: "ingress-missing-service", rule: "wiring/ingress-backend", says: /Service llm\/llama-proxy, which does not exist/ },
  {
    fixture: "init-container-root",
    rule: "psa/root-user",
    says: /init container fix-permissions runs as uid 0 while runAsNonRoot is true/,
  },
  { fixture: "policy-cuts-api", rule: "network/required-flows", says: /block the ingress controller → Deployment\/llm\/gateway:8080/ },
];

describe("the original lab's mistakes are caught with a useful message", () => {
  for (const m of mistakes) {
    it(`${m.fixture} → ${m.rule}`, async () => {
      const result = await findings([join(FIXTURES, m.fixture), ...LAB]);
      assert.equal(result.code, 1, "errors exit 1");
      const hit = result.findings.find((f) => f.ruleId === m.rule && f.severity === "error" && m.says.test(f.message));
      assert.ok(hit, `expected ${m.rule} matching ${m.says}; got:\n${result.findings.map((f) => `${f.ruleId}: ${f.message}`).join("\n")}`);
      assert.ok(hit.fix.length > 10, "says how to fix it");
    });
  }
});

describe("validate CLI", () => {
  it("renders the spec when given no PATH and exits 0 for the lab", async () => {
    const run = await runCli(["validate", "--spec", "examples/lab/platform.yaml", "--env", "local"]);
    assert.equal(run.code, 0, run.stdout);
    assert.match(run.stdout, /objects checked by \d+ rules: 0 error\(s\)/);
  });

  it("reads a written Kustomize overlay and checks it as kubectl would build it", async () => {
    const dir = mkdtempSync(join(tmpdir(), "validate-tree-"));
    const render = await runCli(["render", "--spec", "examples/lab/platform.yaml", "--env", "local", "--out", join(dir, "out")]);
    assert.equal(render.code, 0, render.stderr);
    const run = await runCli(["validate", join(dir, "out", "overlays", "local"), "--spec", "examples/lab/platform.yaml", "--env", "local"]);
    assert.equal(run.code, 0, run.stdout);
    // The whole tree: the overlay of the environment render was asked for, as the tree records it.
    const whole = await runCli(["validate", join(dir, "out")]);
    assert.equal(whole.code, 0, whole.stdout + whole.stderr);
    assert.match(whole.stderr, /validating \S+out\/overlays\/local, the environment render was asked for/);
    // A tree from an older render does not say which: one overlay must be named.
    const marker = join(dir, "out", ".diatonic-render");
    const { environment: _recorded, ...older } = JSON.parse(readFileSync(marker, "utf8")) as Record<string, unknown>;
    writeFileSync(marker, JSON.stringify(older));
    const unsaid = await runCli(["validate", join(dir, "out")]);
    assert.equal(unsaid.code, 2);
    assert.match(unsaid.stderr, /pass one overlay/);
  });

  it("reads standard input for -: another tool's output piped in (kustomize build, helm template)", () => {
    const input = readFileSync(join(FIXTURES, "seven-gpus", "manifests.yaml"), "utf8");
    let out = "";
    let code = 0;
    try {
      out = execFileSync(process.execPath, ["bin/diatonic.js", "validate", "-", ...LAB], { input, encoding: "utf8" });
    } catch (error) {
      out = (error as { stdout: string }).stdout;
      code = (error as { status: number }).status;
    }
    assert.equal(code, 1, out);
    assert.match(out, /error gpu\/capacity Deployment\/llm\/llama-full-copies \(<stdin>\)/);
    const empty = (() => {
      try {
        execFileSync(process.execPath, ["bin/diatonic.js", "validate", "-"], {
          input: "",
          encoding: "utf8",
          stdio: ["pipe", "pipe", "pipe"],
        });
        return { status: 0, stderr: "" };
      } catch (error) {
        return error as { status: number; stderr: string };
      }
    })();
    assert.equal(empty.status, 2);
    assert.match(empty.stderr, /no Kubernetes objects found in standard input/);
  });

  it("Pod Security: a namespace whose level is unknown is held to restricted as warnings, host access included", async () => {
    const dir = mkdtempSync(join(tmpdir(), "validate-psa-"));
    // A device plugin as NVIDIA's static manifest installs it: a hostPath in kube-system, whose level is not in the files.
    const daemonSet = (namespace: string) =>
      `apiVersion: apps/v1\nkind: DaemonSet\nmetadata: { name: device-plugin, namespace: ${namespace} }\nspec:\n  selector: { matchLabels: { name: dp } }\n  template:\n    metadata: { labels: { name: dp } }\n    spec:\n      containers:\n        - name: plugin\n          image: nvcr.io/nvidia/k8s-device-plugin:v0.17.1\n          volumeMounts: [{ name: dir, mountPath: /var/lib/kubelet/device-plugins }]\n      volumes:\n        - name: dir\n          hostPath: { path: /var/lib/kubelet/device-plugins, type: Directory }\n`;
    writeFileSync(join(dir, "unknown.yaml"), daemonSet("kube-system"));
    const unknown = await findings([join(dir, "unknown.yaml")]);
    assert.deepEqual(
      unknown.findings.filter((f) => f.ruleId === "psa/host-access").map((f) => f.severity),
      ["warning"],
    );
    writeFileSync(
      join(dir, "restricted.yaml"),
      `apiVersion: v1\nkind: Namespace\nmetadata: { name: apps, labels: { pod-security.kubernetes.io/enforce: restricted } }\n---\n${daemonSet("apps")}`,
    );
    const restricted = await findings([join(dir, "restricted.yaml")]);
    assert.deepEqual(
      restricted.findings.filter((f) => f.ruleId === "psa/host-access").map((f) => f.severity),
      ["error"],
    );
  });

  it("a Helm chart or template is named as such, with the command that renders it", async () => {
    const dir = mkdtempSync(join(tmpdir(), "validate-helm-"));
    mkdirSync(join(dir, "templates"));
    writeFileSync(join(dir, "Chart.yaml"), "apiVersion: v2\nname: web\nversion: 0.1.0\n");
    writeFileSync(
      join(dir, "templates", "deployment.yaml"),
      "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: {{ .Release.Name }}-web\nspec:\n  replicas: {{ .Values.replicas }}\n",
    );
    const chart = await runCli(["validate", dir]);
    assert.equal(chart.code, 2);
    assert.match(chart.stderr, /is a Helm chart, and validate reads rendered manifests\n {2}fix: helm template \S+ \| diatonic validate -/);
    const template = await runCli(["validate", join(dir, "templates", "deployment.yaml")]);
    assert.equal(template.code, 2);
    assert.match(template.stderr, /deployment\.yaml is a template \(\{\{ … \}\}\), not rendered manifests\n {2}fix: render it first/);
  });

  it("writes SARIF 2.1.0 with the rules and results", async () => {
    const run = await runCli(["validate", join(FIXTURES, "service-target-port"), "--format", "sarif"]);
    assert.equal(run.code, 1);
    const sarif = JSON.parse(run.stdout) as {
      version: string;
      runs: { tool: { driver: { rules: unknown[] } }; results: { ruleId: string; level: string }[] }[];
    };
    assert.equal(sarif.version, "2.1.0");
    assert.ok((sarif.runs[0]?.tool.driver.rules.length ?? 0) >= 25);
    assert.ok(sarif.runs[0]?.results.some((r) => r.ruleId === "wiring/service-target-port" && r.level === "error"));
  });

  it("bad input exits 2 with the fix: missing path, bad YAML, unknown format, no objects", async () => {
    const dir = mkdtempSync(join(tmpdir(), "validate-bad-"));
    writeFileSync(join(dir, "broken.yaml"), "kind: [unclosed\n");
    writeFileSync(join(dir, "empty.yaml"), "# nothing\n");
    for (const [args, says] of [
      [["validate", join(dir, "nope.yaml")], /does not exist/],
      [["validate", join(dir, "broken.yaml")], /broken\.yaml:\d+:\d+: YAML syntax/],
      [["validate", join(dir, "empty.yaml")], /no Kubernetes objects found/],
      [["validate", join(FIXTURES, "seven-gpus"), "--format", "xml"], /--format "xml" is not one of human, json, sarif/],
      [["validate"], /needs --env/],
    ] as const) {
      const run = await runCli([...args]);
      assert.equal(run.code, 2, `${args.join(" ")}: ${run.stdout}${run.stderr}`);
      assert.match(run.stderr, says);
      assert.match(run.stderr, /fix: /);
    }
  });
});

/** The lab with two spec warnings: the model on the moving branch (spec) and optional keys in staging (overlay). */
function labWithSpecWarnings(): { file: string; revisionLine: number; authLine: number } {
  const dir = mkdtempSync(join(tmpdir(), "spec-warnings-"));
  const file = join(dir, "platform.yaml");
  const text = readFileSync("examples/lab/platform.yaml", "utf8")
    .replace(/revision: 2d2a2ab4\w+/, "revision: main")
    .replace("  staging:\n", "  staging:\n    gateway: { auth: optional }\n");
  writeFileSync(file, text);
  const lines = text.split("\n");
  return {
    file,
    revisionLine: lines.findIndex((l) => l.includes("revision: main")) + 1,
    authLine: lines.findIndex((l) => l.includes("auth: optional }")) + 1,
  };
}

describe("the spec's own warnings reach validate and plan, placed in platform.yaml", () => {
  it("validate lists them as spec/cross-field warnings (exit 0), at the overlay's line for an overlay's value", async () => {
    const lab = labWithSpecWarnings();
    const run = await runCli(["validate", "--spec", lab.file, "--env", "staging"]);
    assert.equal(run.code, 0, run.stdout + run.stderr);
    assert.match(
      run.stdout,
      new RegExp(
        `warning spec/cross-field Platform/lab \\(\\S*platform\\.yaml:${lab.revisionLine}:\\d+\\)\n  at spec\\.model\\.source\\.huggingFace\\.revision\n  the model revision is the moving branch 'main'\n  fix: pin a commit`,
      ),
    );
    assert.match(
      run.stdout,
      new RegExp(
        `warning spec/cross-field Platform/lab \\(\\S*platform\\.yaml:${lab.authLine}:\\d+\\)\n  at environments\\.staging\\.gateway\\.auth\n  API keys are optional in environment staging`,
      ),
    );
    assert.match(run.stdout, /0 error\(s\), 3 warning\(s\)/);
    const sarif = JSON.parse((await runCli(["validate", "--spec", lab.file, "--env", "staging", "--format", "sarif"])).stdout) as {
      runs: { results: { ruleId: string; locations: { physicalLocation: { artifactLocation: { uri: string } } }[] }[] }[];
    };
    const uris = sarif.runs[0]?.results
      .filter((r) => r.ruleId === "spec/cross-field")
      .map((r) => r.locations[0]?.physicalLocation.artifactLocation.uri);
    assert.equal(uris?.length, 2);
    for (const uri of uris ?? []) assert.match(uri ?? "", /platform\.yaml:\d+:\d+$/);
  });

  it("plan names them among what needs attention", async () => {
    const lab = labWithSpecWarnings();
    const run = await runCli(["plan", "--spec", lab.file, "--env", "production"]);
    assert.equal(run.code, 0, run.stdout + run.stderr);
    assert.match(
      run.stdout,
      new RegExp(
        `does not fit / needs attention:[\\s\\S]*warning spec/cross-field Platform/lab \\(\\S*platform\\.yaml:${lab.revisionLine}:\\d+\\): the model revision is the moving branch 'main'\n    fix: pin a commit`,
      ),
    );
  });
});

describe("plan", () => {
  it("prints the GPU table, the VRAM budget, adapters and Secrets", async () => {
    const run = await runCli(["plan", "--spec", "examples/lab/platform.yaml", "--env", "production"]);
    assert.equal(run.code, 0, run.stdout + run.stderr);
    assert.match(run.stdout, /GPUs: 1 of 8 slices requested/);
    assert.match(
      run.stdout,
      /gpu-node-1\s+0\s+NVIDIA GeForce RTX 3060\s+12 GiB\s+1\/4\s+Deployment\/llama3-multi-adapter\/engine\s+[\d.]+ GiB\s+10\.2 GiB\s+yes/,
    );
    assert.match(run.stdout, /VRAM per engine replica: weights [\d.]+ \+ LoRA slots [\d.]+ \+ KV cache/);
    assert.match(run.stdout, /code\s+\/code\s+16\s+shared pool of 4\s+code/);
    assert.match(run.stdout, /gateway-api-keys\s+keys\.yaml/);
  });

  it("says which pods stay Pending when the GPUs are oversubscribed (--format json)", async () => {
    const dir = mkdtempSync(join(tmpdir(), "plan-"));
    const spec = join(dir, "platform.yaml");
    const text = readFileSync("examples/lab/platform.yaml", "utf8").replace(
      "      replicas: 1\n  adapters:",
      "      replicas: 9\n  adapters:",
    );
    writeFileSync(spec, text);
    const run = await runCli(["plan", "--spec", spec, "--env", "production", "--format", "json"]);
    assert.equal(run.code, 1);
    const plan = JSON.parse(run.stdout) as { placement: { pending: { reason: string }[]; totalSlices: number } };
    assert.equal(plan.placement.totalSlices, 8);
    assert.deepEqual(
      plan.placement.pending.map((p) => p.reason),
      ["needs 1 nvidia.com/gpu, 8 exist, 9 requested"],
    );
  });
});
