import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import { mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it, type TestContext } from "node:test";
import { parseDocument } from "yaml";
import { applyPlatform } from "../../src/deploy/apply.ts";
import { applySetId } from "../../src/deploy/applyset.ts";
import { humanReporter } from "../../src/deploy/progress.ts";
import { KubeClient } from "../../src/kube/client.ts";
import { ReadinessError, waitForReady } from "../../src/kube/wait.ts";
import { buildEnvironment } from "../../src/render/build.ts";
import type { KubeObject, Placed } from "../../src/render/context.ts";
import { SIMULATION_OWNER_LABEL, simulateCertManager, type CertManagerSimulation } from "../support/cert-manager-sim.ts";
import { runCli } from "../support/cli.ts";
import { restartApiServer } from "../support/apiserver.ts";
import { exclusively } from "../support/tier-lock.ts";
import { clusterSkipReason, testCluster, type TestCluster } from "../support/cluster.ts";
import { pauseImage, restrictedPodSpec } from "../support/cluster-manifests.ts";

const skip = clusterSkipReason();
const failingCertificates: string[] = [];
/** This file's simulated ACME server acts only on its platforms' issuers (other test files run their own). */
const simulationOwner = `deploy-${randomBytes(3).toString("hex")}`;
let cluster: TestCluster;
let certManager: CertManagerSimulation | undefined;

interface Platform {
  readonly file: string;
  readonly namespace: string;
  readonly name: string;
  readonly env: string;
}

type SpecEdit = (doc: ReturnType<typeof parseDocument>) => void;

/** The lab example in a fresh namespace, under a unique platform name (its ClusterIssuers are cluster-wide). */
async function platform(t: TestContext, options: { env?: string; edit?: SpecEdit; secrets?: boolean } = {}): Promise<Platform> {
  // kwok's simulated kubelets: these tests check the deploy mechanics (test/cluster/real-platform.test.ts runs the local environment for real).
  const namespace = await cluster.namespace(t, { simulatedNodes: true });
  const name = `p${randomBytes(3).toString("hex")}`;
  const doc = parseDocument(readFileSync("examples/lab/platform.yaml", "utf8"));
  doc.setIn(["metadata", "name"], name);
  doc.setIn(["metadata", "labels", SIMULATION_OWNER_LABEL], simulationOwner);
  doc.setIn(["spec", "namespace"], namespace);
  // The device plugin is one per cluster; tests give each platform its own so they stay apart.
  doc.setIn(["spec", "gpu", "devicePlugin", "namespace"], `${name}-gpu`);
  options.edit?.(doc);
  const file = join(mkdtempSync(join(tmpdir(), "deploy-")), "platform.yaml");
  writeFileSync(file, doc.toString());
  if (options.secrets !== false) {
    await cluster.kubectl(["-n", namespace, "create", "secret", "generic", "hf-token", "--from-literal=token=hf_test"]);
    await cluster.kubectl(["-n", namespace, "create", "secret", "generic", "qdrant-api-key", "--from-literal=api-key=test"]);
    await cluster.kubectl(["-n", namespace, "create", "secret", "generic", "gateway-api-keys", "--from-literal=keys.yaml=keys: []"]);
  }
  const p = { file, namespace, name, env: options.env ?? "local" };
  t.after(async () => {
    await runCli([
      "destroy",
      "--spec",
      file,
      "--env",
      p.env,
      "--kubeconfig",
      cluster.kubeconfig,
      "--delete-data",
      "--yes",
      "--output",
      "json",
    ]);
  });
  return p;
}

function deploy(command: string, p: Platform, ...extra: string[]) {
  return runCli([command, "--spec", p.file, "--env", p.env, "--kubeconfig", cluster.kubeconfig, "--timeout", "180s", ...extra]);
}

async function members(p: Platform): Promise<string[]> {
  const out = await cluster.kubectl([
    "get",
    "all,configmaps,networkpolicies,pvc",
    "-n",
    p.namespace,
    "-l",
    "applyset.kubernetes.io/part-of",
    "-o",
    "name",
  ]);
  return out
    .split("\n")
    .filter((l) => l !== "")
    .sort();
}

/**
 * A WaitForFirstConsumer storage class whose provisioner nothing runs (deleted after the test): its
 * claims stay Pending, and the scheduler holds their pods while it waits for the volumes.
 */
async function unprovisionedStorageClass(t: TestContext): Promise<string> {
  const name = `nobody-${randomBytes(3).toString("hex")}`;
  await cluster.kubectl(
    ["create", "-f", "-"],
    JSON.stringify({
      apiVersion: "storage.k8s.io/v1",
      kind: "StorageClass",
      metadata: { name },
      provisioner: "example.com/nobody",
      volumeBindingMode: "WaitForFirstConsumer",
    }),
  );
  t.after(() => cluster.kubectl(["delete", "storageclass", name, "--ignore-not-found"]));
  return name;
}

/** Renders and adjusts objects before a library-level apply (for faults the spec cannot express). */
function rendered(p: Platform, adjust: (object: Record<string, unknown>) => void): Placed[] {
  const build = buildEnvironment({ file: p.file, environment: p.env });
  return build.result.placed.map((placed) => {
    const object = structuredClone(placed.object) as unknown as Record<string, unknown>;
    adjust(object);
    return { ...placed, object: object as unknown as KubeObject };
  });
}

function libraryApply(p: Platform, placed: Placed[], timeoutMs: number) {
  return applyPlatform({
    client: new KubeClient({ kubeconfig: cluster.kubeconfig }),
    placed,
    namespace: p.namespace,
    environment: p.env,
    specHash: "test",
    reporter: humanReporter(process.stdout),
    timeoutMs,
    preflight: { secrets: [], optionalSecrets: [] },
  });
}

describe("deploy against the real control plane", { skip, concurrency: 1 }, () => {
  before(async () => {
    cluster = await testCluster();
    await cluster.kubectl(["create", "namespace", "monitoring"]).catch(() => undefined);
    certManager = await simulateCertManager(cluster.kubeconfig, { failing: failingCertificates, owner: simulationOwner });
  });
  after(() => certManager?.stop());

  it("goes from an empty namespace to every phase Ready; a second apply changes nothing", async (t) => {
    const p = await platform(t);
    const first = await deploy("apply", p);
    assert.equal(first.code, 0, first.stdout + first.stderr);
    for (const phase of ["foundation", "certificates", "storage", "engine", "gateway", "edge"])
      assert.match(first.stdout, new RegExp(`✓ ${phase}`));
    assert.match(first.stdout, /applied revision 1/);
    // Every rule of the NetworkPolicies as rendered: a rule without its `from` lets every source in.
    const ingress = JSON.parse(
      await cluster.kubectl(["-n", p.namespace, "get", "networkpolicy", "engine-ingress", "-o", "jsonpath={.spec.ingress}"]),
    ) as { from?: unknown[] }[];
    assert.ok(ingress.length > 0 && ingress.every((rule) => (rule.from ?? []).length > 0), JSON.stringify(ingress));
    // The test cluster runs cert-manager's controller as a process, not a Deployment preflight can find: a warning, not a refusal.
    assert.match(first.stdout, /! preflight controllers: no cert-manager controller found/);
    assert.match(first.stdout, /✓ preflight rules: the \d+ objects pass diatonic validate/);
    const second = await deploy("apply", p);
    assert.equal(second.code, 0, second.stderr);
    assert.match(second.stdout, /no changes: the cluster already matches the spec/);
    const diff = await deploy("diff", p);
    assert.equal(diff.code, 0, diff.stdout);
    const status = await deploy("status", p, "--output", "json");
    assert.equal(status.code, 0, status.stdout);
    const report = JSON.parse(status.stdout) as {
      healthy: boolean;
      objects: { state: string }[];
      url: string;
      trust: unknown;
      missing: string[];
      reasons: string[];
      revision: { number: number; environment: string };
    };
    assert.equal(report.healthy, true);
    assert.deepEqual([report.missing, report.reasons, report.revision.number, report.revision.environment], [[], [], 1, "local"]);
    assert.equal(report.url, "https://llm.localtest.me/v1");
    // local uses the self-signed CA chain: status says how to trust it.
    assert.deepEqual(report.trust, { namespace: p.namespace, secret: "gateway-tls" });
    // The same platform asked about for another environment: not what is live, and the header says what is.
    const other = await runCli(["status", "--spec", p.file, "--env", "production", "--kubeconfig", cluster.kubeconfig]);
    assert.equal(other.code, 1, other.stdout);
    assert.match(
      other.stdout,
      new RegExp(`^platform in ${p.namespace} for environment production: NOT ready — live: revision 1 for environment local \\(apply, `),
    );
    assert.match(
      other.stdout,
      /\n {2}the live revision 1 was applied for environment local, not production\n {2}\d+ live object\(s\) were last applied for environment local, not production: /,
    );
    assert.match(
      other.stdout,
      /missing \(\d+ of the objects the spec renders\):\n {4}Namespace\/\S+-gpu is missing\n[\s\S]*HorizontalPodAutoscaler\/\S+\/gateway is missing/,
    );
    assert.match(other.stdout, /fix: `diatonic apply --env production` brings the cluster to the spec/);
    const human = await deploy("status", p);
    assert.match(
      human.stdout,
      new RegExp(`^platform in ${p.namespace} for environment local: ready — live: revision 1 for environment local \\(apply, `),
    );
    assert.match(
      human.stdout,
      new RegExp(
        `call: https://llm\\.localtest\\.me/v1 .*\\n  its certificate is from the platform's own CA; trust it first:\\n  kubectl -n ${p.namespace} get secret gateway-tls -o jsonpath='\\{\\.data\\.ca\\\\\\.crt\\}' \\| base64 -d > ca\\.crt\\n`,
      ),
    );
    const json = await deploy("apply", p, "--output", "json");
    const events = json.stdout
      .trim()
      .split("\n")
      .map((l) => JSON.parse(l) as { type: string; changed?: number });
    assert.deepEqual(events.at(-1)?.type, "done");
    assert.equal(events.at(-1)?.changed, 0);
  });

  it("two platforms share one device plugin: a different config is refused unless forced, and destroy hands it to the other", async (t) => {
    const shared = `gpu-${randomBytes(3).toString("hex")}`;
    const inShared: SpecEdit = (d) => d.setIn(["spec", "gpu", "devicePlugin", "namespace"], shared);
    const a = await platform(t, { env: "production", edit: inShared });
    const b = await platform(t, { env: "production", edit: inShared });
    t.after(() => cluster.kubectl(["delete", "namespace", shared, "--ignore-not-found", "--wait=false"]));
    const setReplicas = (p: Platform, replicas: number) => {
      const doc = parseDocument(readFileSync(p.file, "utf8"));
      doc.setIn(["spec", "gpu", "sharing", "replicas"], replicas);
      writeFileSync(p.file, doc.toString());
    };
    const owner = async (kind: string) =>
      (
        await cluster.kubectl([
          "-n",
          shared,
          "get",
          kind,
          "nvidia-device-plugin" + (kind === "configmap" ? "-config" : ""),
          "-o",
          "jsonpath={.metadata.labels.applyset\\.kubernetes\\.io/part-of}",
        ])
      ).trim();
    const config = async () =>
      cluster.kubectl(["-n", shared, "get", "configmap", "nvidia-device-plugin-config", "-o", "jsonpath={.data.config\\.yaml}"]);
    const idOf = (p: Platform) => applySetId(p.namespace);

    const generation = async () =>
      (await cluster.kubectl(["-n", shared, "get", "daemonset", "nvidia-device-plugin", "-o", "jsonpath={.metadata.generation}"])).trim();
    const first = await deploy("apply", a);
    assert.equal(first.code, 0, first.stdout + first.stderr);
    assert.equal(await owner("daemonset"), idOf(a));
    const firstGeneration = await generation();

    setReplicas(b, 2);
    const refused = await deploy("apply", b);
    assert.notEqual(refused.code, 0, "a different device plugin config is refused");
    assert.match(
      refused.stdout,
      new RegExp(
        `✗ preflight shared: ConfigMap/${shared}/nvidia-device-plugin-config is also rendered by the platform in namespace ${a.namespace}, with different settings`,
      ),
    );
    assert.match(refused.stdout, /fix: give both platforms the same spec\.gpu .* or pass --force-conflicts/);
    assert.equal(await owner("daemonset"), idOf(a), "nothing was applied");
    assert.match(await config(), /replicas: 4/);

    const forced = await deploy("apply", b, "--force-conflicts");
    assert.equal(forced.code, 0, forced.stdout + forced.stderr);
    assert.match(forced.stdout, /! preflight shared: ConfigMap\/.*--force-conflicts takes it over/);
    assert.match(await config(), /replicas: 2/);
    assert.equal(await owner("daemonset"), idOf(b));
    // The plugin reads its config only at start: a new config rolls its pods (the config's hash is on the template).
    assert.notEqual(await generation(), firstGeneration, "a changed sharing config restarts the device plugin");

    // Both ways: the platform that planned with 4 slices a GPU is now the one refused.
    const back = await deploy("apply", a);
    assert.notEqual(back.code, 0);
    assert.match(back.stdout, new RegExp(`is also rendered by the platform in namespace ${b.namespace}, with different settings`));

    setReplicas(b, 4);
    const same = await deploy("apply", b);
    assert.equal(same.code, 0, same.stdout + same.stderr);
    assert.match(
      same.stdout,
      new RegExp(
        `✓ preflight shared: DaemonSet/${shared}/nvidia-device-plugin is shared with the platform in namespace ${a.namespace}, with the same settings`,
      ),
    );

    // A third platform with a plugin of its own would run a second plugin on the same nodes: a warning.
    const apart = await platform(t, { env: "production" });
    const dry = await deploy("apply", apart, "--dry-run");
    assert.equal(dry.code, 0, dry.stdout + dry.stderr);
    assert.match(
      dry.stdout,
      new RegExp(`! preflight shared: another diatonic device plugin runs as DaemonSet/${shared}/nvidia-device-plugin`),
    );
    assert.match(dry.stdout, new RegExp(`fix: set gpu.devicePlugin.namespace: ${shared}`));
    // Its plugin's namespace does not exist yet: objects in it are reported, not sent to a dry run that would fail.
    assert.match(dry.stdout, /dry run: \d+ object\(s\) would change/);
    assert.equal(
      (await cluster.kubectl(["get", "namespace", `${apart.name}-gpu`, "--ignore-not-found", "-o", "name"])).trim(),
      "",
      "a dry run creates nothing",
    );
    const diff = await deploy("diff", apart);
    assert.equal(diff.code, 1, diff.stdout + diff.stderr);
    assert.match(diff.stdout, new RegExp(`\\+ DaemonSet/${apart.name}-gpu/nvidia-device-plugin \\(create\\)`));

    const gone = await deploy("destroy", b, "--yes");
    assert.equal(gone.code, 0, gone.stdout + gone.stderr);
    assert.match(
      gone.stdout,
      new RegExp(`handed over DaemonSet/${shared}/nvidia-device-plugin to the platform in namespace ${a.namespace}`),
    );
    assert.equal(await owner("daemonset"), idOf(a), "the device plugin stays, in the other platform's ApplySet");
    assert.equal(await owner("configmap"), idOf(a));

    // Handed back and forth: the hand-over's label does not stop the next apply, and another
    // platform's apply with the same settings leaves the plugin's pod template (and pods) alone.
    const handedGeneration = await generation();
    const again = await deploy("apply", b);
    assert.equal(again.code, 0, again.stdout + again.stderr);
    assert.equal(await generation(), handedGeneration, "another platform's apply leaves the plugin's pod template (and pods) alone");
    assert.equal((await deploy("destroy", b, "--yes")).code, 0);
    assert.equal((await deploy("apply", a)).code, 0);

    const last = await deploy("destroy", a, "--yes");
    assert.equal(last.code, 0, last.stdout + last.stderr);
    assert.match(last.stdout, new RegExp(`pruned DaemonSet/${shared}/nvidia-device-plugin`));
    assert.equal(
      (await cluster.kubectl(["-n", shared, "get", "daemonsets,configmaps", "-l", "applyset.kubernetes.io/part-of", "-o", "name"])).trim(),
      "",
    );
  });

  it("a production platform with GPU slices, monitoring and autoscaling comes up", async (t) => {
    const p = await platform(t, { env: "production" });
    const run = await deploy("apply", p);
    assert.equal(run.code, 0, run.stdout + run.stderr);
    // validate's warnings are shown and do not stop the apply.
    assert.match(
      run.stdout,
      /! preflight rules: gpu\/vram: Deployment\/\S+\/engine fits .*not the 8 GiB card on the same node.*\n {4}fix: make it fit the smallest card/,
    );
    // The test cluster serves no metrics API: the HPA (CPU, and requests in flight through prometheus-adapter) cannot scale.
    assert.match(
      run.stdout,
      /! preflight metrics: no APIService v1beta1\.metrics\.k8s\.io is registered: HorizontalPodAutoscaler\/\S+\/gateway \(Resource metric cpu\) will report ScalingActive=False and not scale\n {4}fix: install metrics-server/,
    );
    assert.match(
      run.stdout,
      /! preflight metrics: no APIService v1beta1\.custom\.metrics\.k8s\.io or v1beta2\.custom\.metrics\.k8s\.io is registered: HorizontalPodAutoscaler\/\S+\/gateway \(Pods metric diatonic_gateway_in_flight_requests\).*\n {4}fix: install prometheus-adapter/,
    );
    // status gives the HPA controller's own verdict once it has synced the HPA (it does every 15 s).
    type Report = { healthy: boolean; objects: { resource: string; state: string; reason: string }[]; reasons: string[] };
    let report: Report | undefined;
    let statusCode = 0;
    for (let attempt = 0; attempt < 60; attempt++) {
      const polled = await deploy("status", p, "--output", "json");
      statusCode = polled.code;
      report = JSON.parse(polled.stdout) as Report;
      if (report.objects.some((o) => o.resource.startsWith("HorizontalPodAutoscaler/") && o.state === "failed")) break;
      await new Promise((resolve) => setTimeout(resolve, 2000));
    }
    const hpa = report?.objects.find((o) => o.resource.startsWith("HorizontalPodAutoscaler/"));
    assert.equal(hpa?.state, "failed", JSON.stringify(hpa));
    assert.match(hpa?.reason ?? "", /^not scaling: ScalingActive=False FailedGet\w+Metric: /);
    assert.equal(statusCode, 1, "a dead HPA is not ready");
    assert.ok(
      report?.reasons.some((r) => r.startsWith(`${hpa?.resource ?? ""}: not scaling`)),
      JSON.stringify(report?.reasons),
    );
    const human = await deploy("status", p);
    assert.match(human.stdout, /✗ gateway +HorizontalPodAutoscaler\/\S+\/gateway +not scaling: ScalingActive=False/);
    const status = await deploy("status", p, "--output", "json");
    const { gpu, trust } = JSON.parse(status.stdout) as { gpu: { node: string; used: number; total: number }[]; trust: unknown };
    assert.equal(trust, null, "production's certificate is from Let's Encrypt: nothing to trust by hand");
    const node = gpu.find((g) => g.node === "gpu-node-0");
    assert.equal(node?.total, 8);
    assert.ok((node?.used ?? 0) >= 1, "the engine holds a slice");
  });

  describe("preflight stops before changing anything", () => {
    const cases: { name: string; env?: string; edit?: SpecEdit; secrets?: boolean; says: RegExp }[] = [
      {
        name: "missing Secret",
        secrets: false,
        says: /Secret \S+\/qdrant-api-key does not exist[\s\S]*fix: .*create secret generic qdrant-api-key/,
      },
      {
        name: "the platform's namespace missing: created first, named once",
        secrets: false,
        edit: (d) => d.setIn(["spec", "namespace"], `fresh-${randomBytes(3).toString("hex")}`),
        says: /✗ preflight namespaces: namespace (fresh-\w+) does not exist yet: apply creates it, but the Secrets hf-token, qdrant-api-key must be created in it first\n {4}fix: kubectl create namespace \1, then create the Secrets below\n(?![\s\S]*create namespace)/,
      },
      {
        name: "unknown storage class",
        edit: (d) => d.setIn(["environments", "local", "storageClass"], "nfs-fast"),
        says: /storage class nfs-fast does not exist \(the cluster has: local-path, longhorn\)/,
      },
      {
        name: "too few GPU slices",
        env: "production",
        edit: (d) => d.setIn(["spec", "model", "engine", "replicas"], 9),
        says: /needs 9 nvidia.com\/gpu, the nodes advertise 8/,
      },
      {
        name: "an engine that does not fit its GPU (validate's rules)",
        env: "production",
        // A model that takes the context (Llama 3.1's), so that the spec is valid and preflight finds the VRAM short.
        edit: (d) => {
          d.setIn(["spec", "model", "architecture", "contextLength"], 131072);
          d.setIn(["spec", "model", "engine", "maxModelLen"], 131072);
        },
        says: /✗ preflight rules: gpu\/vram: Deployment\/\S+\/engine needs about [\d.]+ GiB .*KV cache for 131072 tokens.* but gets [\d.]+ GiB on gpu-node-1 GPU 0 .*\n {4}fix: quantise the model/,
      },
      {
        name: "missing CRD",
        env: "production",
        edit: (d) => d.setIn(["spec", "ingress", "className"], "contour"),
        says: /does not serve HTTPProxy[\s\S]*fix: install Contour/,
      },
    ];
    for (const c of cases) {
      it(c.name, async (t) => {
        const p = await platform(t, {
          ...(c.env ? { env: c.env } : {}),
          ...(c.edit ? { edit: c.edit } : {}),
          ...(c.secrets === false ? { secrets: false } : {}),
        });
        const run = await deploy("apply", p);
        assert.equal(run.code, 1, run.stdout);
        assert.match(run.stdout + run.stderr, c.says);
        assert.match(run.stderr, /preflight failed, nothing was changed/);
        assert.deepEqual(await members(p), [], "nothing was applied");
      });
    }

    it("GPU slices another tenant's running pod holds are not free", async (t) => {
      const tenant = await cluster.namespace(t);
      const gpu = { "nvidia.com/gpu": "7" };
      const container = {
        name: "app",
        image: pauseImage,
        securityContext: { allowPrivilegeEscalation: false, capabilities: { drop: ["ALL"] } },
        resources: { requests: { cpu: "10m", memory: "16Mi", ...gpu }, limits: { memory: "32Mi", ...gpu } },
      };
      await cluster.kubectl(
        ["create", "-f", "-"],
        JSON.stringify({
          apiVersion: "v1",
          kind: "Pod",
          metadata: { name: "trainer", namespace: tenant },
          spec: restrictedPodSpec({ containers: [container] }),
        }),
      );
      t.after(() => cluster.kubectl(["-n", tenant, "delete", "pod", "trainer", "--wait=false", "--ignore-not-found"]));
      // The real scheduler places it (7 of the GPU node's 8 slices); kwok runs it.
      await cluster.kubectl(["-n", tenant, "wait", "--for=condition=PodScheduled", "pod/trainer", "--timeout=60s"]);
      const p = await platform(t, { env: "production", edit: (d) => d.setIn(["spec", "model", "engine", "replicas"], 2) });
      const run = await deploy("apply", p, "--dry-run");
      assert.equal(run.code, 1, run.stdout);
      assert.match(
        run.stdout,
        new RegExp(
          `✗ preflight gpu: the platform needs 2 nvidia.com/gpu, and 1 of the 8 the nodes advertise \\(gpu-node-0: 8\\) are free: running pods of other workloads hold 7 \\(${tenant}/trainer on gpu-node-0: 7\\)\n {4}fix: free GPU slices`,
        ),
      );
    });

    it("a Secret without the expected key", async (t) => {
      const p = await platform(t, { secrets: false });
      await cluster.kubectl(["-n", p.namespace, "create", "secret", "generic", "hf-token", "--from-literal=token=x"]);
      await cluster.kubectl(["-n", p.namespace, "create", "secret", "generic", "qdrant-api-key", "--from-literal=key=x"]);
      const run = await deploy("apply", p);
      assert.equal(run.code, 1);
      assert.match(run.stdout, /Secret \S+\/qdrant-api-key has no key api-key \(it has: key\)/);
    });
  });

  it("diff into a monitoring namespace that does not exist gives preflight's explanation, not the raw API error", async (t) => {
    const monitoring = `mon-${randomBytes(3).toString("hex")}`;
    const p = await platform(t, {
      env: "production",
      edit: (d) => d.setIn(["environments", "production", "monitoring", "namespace"], monitoring),
    });
    const diff = await deploy("diff", p);
    assert.equal(diff.code, 2, diff.stdout + diff.stderr);
    assert.match(diff.stderr, new RegExp(`namespace ${monitoring} does not exist, and ConfigMap/diatonic-\\S+-dashboard goes there`));
    assert.match(
      diff.stderr,
      new RegExp(`fix: kubectl create namespace ${monitoring}, or point the spec elsewhere \\(e\\.g\\. monitoring\\.namespace\\)`),
    );
    assert.doesNotMatch(diff.stderr, /namespaces "\S+" not found/);
    const apply = await deploy("apply", p);
    assert.match(
      apply.stdout,
      new RegExp(`✗ preflight namespaces: namespace ${monitoring} does not exist, and ConfigMap/diatonic-\\S+-dashboard goes there`),
      "the same words as apply's preflight",
    );
  });

  it("a pod that cannot be scheduled: apply and status name the scheduler's reason while it waits, and the phase fails with it", async (t) => {
    const p = await platform(t, {
      env: "production",
      edit: (d) => d.setIn(["spec", "gpu", "nodeSelector"], d.createNode({ "nvidia.com/gpu.product": "NVIDIA-H100-80GB" })),
    });
    // Every node counts in the scheduler's message: the kwok nodes and, where it runs, the real node.
    const nodes = (await cluster.kubectl(["get", "nodes", "-o", "name"])).trim().split("\n").length;
    const child = spawn(
      process.execPath,
      // 60 s: the storage phase's share (0.3) must cover Qdrant's claim being bound on a cluster that
      // has just started; at 40 s (12 s for storage) a README run once timed out there, before the engine.
      ["bin/diatonic.js", "apply", "--spec", p.file, "--env", p.env, "--kubeconfig", cluster.kubeconfig, "--timeout", "60s"],
      { stdio: ["ignore", "pipe", "pipe"] },
    );
    t.after(() => child.kill("SIGKILL"));
    let stdout = "";
    let stderr = "";
    let engineStarted = 0;
    const scheduler = new RegExp(
      `waiting: Deployment/\\S+/engine: 0/1 replicas available — pod engine-\\S+: Unschedulable: 0/${nodes} nodes are available: .*didn't match Pod's node affinity/selector`,
    );
    const exited = new Promise<number | null>((resolve) => child.on("exit", resolve));
    const named = new Promise<number>((resolve) => {
      child.stdout.on("data", (chunk: Buffer) => {
        stdout += chunk.toString();
        if (engineStarted === 0 && stdout.includes("… engine")) engineStarted = Date.now();
        if (scheduler.test(stdout)) resolve(Date.now());
      });
    });
    child.stderr.on("data", (chunk: Buffer) => (stderr += chunk.toString()));
    const when = await Promise.race([named, exited.then(() => undefined)]);
    assert.ok(when !== undefined, `apply ended without naming the scheduler's reason while it waited:\n${stdout}`);
    t.diagnostic(`apply named the scheduler's reason ${((when - engineStarted) / 1000).toFixed(1)} s after the engine phase began`);
    // status, while the apply still waits, gives the same reason for the engine.
    const status = await deploy("status", p, "--output", "json");
    assert.equal(status.code, 1, status.stdout);
    const report = JSON.parse(status.stdout) as { objects?: { resource: string; reason: string }[] };
    // Exit 1 is also a failure of the world, whose JSON error line carries no objects: say which.
    assert.ok(report.objects !== undefined, `status failed instead of reporting: ${status.stdout}${status.stderr}`);
    const engine = report.objects.find((o) => /^Deployment\/\S+\/engine$/.test(o.resource));
    assert.match(
      engine?.reason ?? "",
      new RegExp(
        `^0/1 replicas available — pod engine-\\S+: Unschedulable: 0/${nodes} nodes are available: .*didn't match Pod's node affinity/selector`,
      ),
    );
    assert.equal(await exited, 1, stdout);
    assert.ok(stdout.search(scheduler) < stdout.indexOf("✗ engine"), "the reason came while waiting, not at the deadline");
    assert.match(
      stderr,
      new RegExp(
        `Deployment/\\S+/engine[\\s\\S]*Unschedulable: 0/${nodes} nodes are available: .*didn't match Pod's node affinity/selector`,
      ),
    );
  });

  it("an image that cannot be pulled fails its phase at once with the kubelet's reason", async (t) => {
    const p = await platform(t);
    const placed = rendered(p, (o) => {
      if (o["kind"] !== "Deployment" || (o["metadata"] as { name: string }).name !== "engine") return;
      const spec = o["spec"] as { minReadySeconds?: number; template: { spec: { containers: { image: string }[] } } };
      // Readiness is held back while the simulated kubelet reports the pull failure.
      spec.minReadySeconds = 60;
      const container = spec.template.spec.containers[0];
      if (container) container.image = "registry.invalid/diatonic/engine:0.0.0";
    });
    const kubelet = setInterval(() => {
      void cluster
        .kubectlJson<{
          items: { metadata: { name: string }; status?: { podIP?: string; containerStatuses?: { state?: { waiting?: unknown } }[] } }[];
        }>(["-n", p.namespace, "get", "pods", "-l", "app.kubernetes.io/name=engine"])
        .then(async (pods) => {
          for (const pod of pods.items) {
            if (!pod.status?.podIP || pod.status.containerStatuses?.[0]?.state?.waiting) continue;
            const status = {
              status: {
                containerStatuses: [
                  {
                    name: "engine",
                    image: "registry.invalid/diatonic/engine:0.0.0",
                    imageID: "",
                    ready: false,
                    restartCount: 0,
                    state: {
                      waiting: { reason: "ImagePullBackOff", message: 'Back-off pulling image "registry.invalid/diatonic/engine:0.0.0"' },
                    },
                  },
                ],
              },
            };
            await cluster
              .kubectl([
                "-n",
                p.namespace,
                "patch",
                "pod",
                pod.metadata.name,
                "--subresource=status",
                "--type=merge",
                "-p",
                JSON.stringify(status),
              ])
              .catch(() => undefined);
          }
        })
        .catch(() => undefined);
    }, 300);
    t.after(() => clearInterval(kubelet));
    const started = Date.now();
    await assert.rejects(libraryApply(p, placed, 50_000), (error: unknown) => {
      assert.ok(error instanceof ReadinessError, String(error));
      assert.equal(error.failure, "failed");
      assert.match(
        error.message,
        /phase engine failed[\s\S]*ImagePullBackOff \(Back-off pulling image "registry.invalid\/diatonic\/engine:0.0.0"\)/,
      );
      return true;
    });
    assert.ok(Date.now() - started < 45_000, "fails on the evidence, not at the deadline");
  });

  it("a Certificate that stays not ready fails its phase with cert-manager's reason", async (t) => {
    // An ACME issuer (production's), so that the simulated ACME server can fail the challenge.
    const p = await platform(t, { env: "production" });
    failingCertificates.push("gateway-tls");
    t.after(() => failingCertificates.splice(failingCertificates.indexOf("gateway-tls"), 1));
    const run = await runCli(["apply", "--spec", p.file, "--env", p.env, "--kubeconfig", cluster.kubeconfig, "--timeout", "20s"]);
    assert.equal(run.code, 1, run.stdout);
    assert.match(run.stdout, /✗ certificates/);
    assert.match(
      run.stderr,
      /phase certificates did not become ready within \d+s:[\s\S]*Certificate\/\S+\/gateway-tls: .*ACME challenge failed/,
    );
  });

  it("a claim no provisioner serves: the storage phase's deadline names the claim, what it waits for, and where the pod is", async (t) => {
    // A WaitForFirstConsumer class whose provisioner nothing runs: the scheduler picks a node and waits
    // for the volume, so Qdrant's pod reports no problem of its own; only its claims say why.
    const storageClass = await unprovisionedStorageClass(t);
    const p = await platform(t, { edit: (doc) => doc.setIn(["environments", "local", "storageClass"], storageClass) });
    const run = await runCli(["apply", "--spec", p.file, "--env", p.env, "--kubeconfig", cluster.kubeconfig, "--timeout", "30s"]);
    assert.equal(run.code, 1, run.stdout);
    assert.match(run.stdout, /✗ storage/);
    assert.match(run.stderr, /phase storage did not become ready within \d+s:\n\s+StatefulSet\/\S+\/qdrant: 0\/1 replicas ready\n/);
    assert.match(
      run.stderr,
      /pod qdrant-0: claim data-qdrant-0: Pending, no volume bound yet \(ExternalProvisioning: [^\n]*['"]example\.com\/nobody['"]/,
    );
    // The scheduler has either not decided (the claims existed before it first tried) or last spoke
    // before a claim existed (it tried in between the pod and its claims); never "claim not found"
    // beside the claim's own line.
    assert.match(
      run.stderr,
      /pod qdrant-0: not scheduled yet: the scheduler (has given no decision|'s last word predates its claim \S+, which exists now)/,
    );
    assert.doesNotMatch(run.stderr, /persistentvolumeclaim "[^"]+" not found/);
    // While it waited, and in status after, the pod's progress stands beside "0/1 replicas ready".
    assert.match(run.stdout, /waiting: StatefulSet\/\S+\/qdrant: 0\/1 replicas ready — pod qdrant-0: not scheduled yet/);
    const status = await deploy("status", p, "--output", "json");
    const rows = (JSON.parse(status.stdout) as { objects: { resource: string; state: string; reason: string }[] }).objects;
    const qdrant = rows.find((row) => /^StatefulSet\/\S+\/qdrant$/.test(row.resource));
    assert.ok(qdrant, status.stdout);
    assert.equal(qdrant.state, "progressing", status.stdout);
    assert.match(qdrant.reason, /^0\/1 replicas ready — pod qdrant-0: not scheduled yet/);
  });

  it("a claim created after its pod: the scheduler's stale 'not found' is not what the wait or its deadline says", async (t) => {
    // What the test above meets when the scheduler tries the pod before its claims exist: the
    // scheduler keeps its "not found" while it waits for the volume. Here that order is forced.
    const ns = await cluster.namespace(t, { podSecurity: "restricted" });
    const storageClass = await unprovisionedStorageClass(t);
    const deployment = {
      apiVersion: "apps/v1",
      kind: "Deployment",
      metadata: { name: "late", namespace: ns },
      spec: {
        replicas: 1,
        selector: { matchLabels: { app: "late" } },
        template: {
          metadata: { labels: { app: "late" } },
          spec: restrictedPodSpec({ volumes: [{ name: "data", persistentVolumeClaim: { claimName: "late-data" } }] }),
        },
      },
    };
    await cluster.kubectl(["create", "-f", "-"], JSON.stringify(deployment));
    await cluster.kubectl([
      "wait", "pod", "-n", ns, "-l", "app=late", "--timeout=60s",
      "--for=jsonpath={.status.conditions[?(@.type==\"PodScheduled\")].reason}=Unschedulable",
    ]); // prettier-ignore
    const client = new KubeClient({ kubeconfig: cluster.kubeconfig });
    // Before the claim exists the scheduler's word holds, and the wait says it.
    const shown: string[] = [];
    const wait = (timeoutMs: number) =>
      waitForReady(client, [deployment as unknown as KubeObject], {
        timeoutMs,
        label: "phase test",
        onChange: (_object, readiness) => shown.push(readiness.reason),
      }).then(
        () => assert.fail("the Deployment cannot become ready"),
        (error: unknown) => error,
      );
    const missing = await wait(3_000);
    assert.ok(missing instanceof ReadinessError, String(missing));
    assert.match(missing.message, /pod late-\S+: Unschedulable: [^\n]*persistentvolumeclaim "late-data" not found/);
    assert.match(shown.at(-1) ?? "", /— pod late-\S+: Unschedulable: .*persistentvolumeclaim "late-data" not found/);

    await cluster.kubectl(
      ["create", "-f", "-"],
      JSON.stringify({
        apiVersion: "v1",
        kind: "PersistentVolumeClaim",
        metadata: { name: "late-data", namespace: ns },
        spec: { storageClassName: storageClass, accessModes: ["ReadWriteOnce"], resources: { requests: { storage: "1Gi" } } },
      }),
    );
    shown.length = 0;
    const created = await wait(5_000);
    assert.ok(created instanceof ReadinessError, String(created));
    assert.match(created.message, /pod late-\S+: claim late-data: Pending, no volume bound yet/);
    assert.match(
      created.message,
      /pod late-\S+: not scheduled yet: the scheduler's last word predates its claim late-data, which exists now/,
    );
    assert.doesNotMatch(created.message, /not found/);
    assert.match(shown.at(-1) ?? "", /— pod late-\S+: not scheduled yet: the scheduler's last word predates its claim late-data/);
  });

  it("an apply killed mid-phase converges when run again", async (t) => {
    const p = await platform(t);
    const child = spawn(
      process.execPath,
      ["bin/diatonic.js", "apply", "--spec", p.file, "--env", p.env, "--kubeconfig", cluster.kubeconfig],
      { stdio: ["ignore", "pipe", "pipe"] },
    );
    await new Promise<void>((resolve) => {
      child.stdout.on("data", (chunk: Buffer) => {
        if (chunk.toString().includes("… storage")) {
          child.kill("SIGKILL");
          resolve();
        }
      });
      child.on("exit", () => resolve());
    });
    // Half applied, no revision: never "ready" (it was, with 30 of 49 objects live and no engine).
    const half = await deploy("status", p, "--output", "json");
    assert.equal(half.code, 1, half.stdout);
    const report = JSON.parse(half.stdout) as { healthy: boolean; missing: string[]; reasons: string[]; revision: unknown };
    assert.equal(report.healthy, false);
    assert.equal(report.revision, null);
    assert.ok(
      report.missing.some((resource) => /^Deployment\/\S+\/engine$/.test(resource)),
      report.missing.join(", "),
    );
    assert.ok(report.missing.some((resource) => /^Deployment\/\S+\/gateway$/.test(resource)));
    assert.match(report.reasons[0] ?? "", /^no revision is recorded: no apply of this platform has finished/);
    const human = await deploy("status", p);
    assert.match(human.stdout, new RegExp(`^platform in ${p.namespace} for environment local: NOT ready — live: no revision recorded\n`));
    const rerun = await deploy("apply", p);
    assert.equal(rerun.code, 0, rerun.stdout + rerun.stderr);
    const status = await deploy("status", p, "--output", "json");
    assert.equal(status.code, 0, status.stdout);
    assert.equal((JSON.parse(status.stdout) as { healthy: boolean }).healthy, true);
  });

  it(
    "an API server restarted mid-apply: the rerun converges",
    { skip: process.env["DIATONIC_CLUSTER_REUSE"] === "1" ? "needs the project's own control plane" : false },
    // Exclusively: no other file's apply, port-forward or status meets the restart (test/support/tier-lock.ts).
    (t) =>
      exclusively(async () => {
        const p = await platform(t);
        const placed = rendered(p, (o) => {
          if (o["kind"] === "Deployment" && (o["metadata"] as { name: string }).name === "engine")
            (o["spec"] as { minReadySeconds?: number }).minReadySeconds = 6;
        });
        const applying = libraryApply(p, placed, 60_000).then(
          () => "completed",
          (error: unknown) => `failed: ${(error as Error).message}`,
        );
        await new Promise((resolve) => setTimeout(resolve, 3000));
        await restartApiServer();
        const outcome = await applying;
        t.diagnostic(`apply during the restart: ${outcome.split("\n")[0] ?? ""}`);
        const rerun = await deploy("apply", p);
        assert.equal(rerun.code, 0, rerun.stdout + rerun.stderr);
        const status = await deploy("status", p, "--output", "json");
        assert.equal((JSON.parse(status.stdout) as { healthy: boolean }).healthy, true);
      }),
  );

  it(
    "status --watch survives an API server restart: it says so, re-establishes its watches and keeps going until Ctrl-C",
    { skip: process.env["DIATONIC_CLUSTER_REUSE"] === "1" ? "needs the project's own control plane" : false },
    (t) =>
      exclusively(async () => {
        const p = await platform(t);
        const child = spawn(
          process.execPath,
          ["bin/diatonic.js", "status", "--watch", "--spec", p.file, "--env", p.env, "--kubeconfig", cluster.kubeconfig],
          { stdio: ["ignore", "pipe", "pipe"] },
        );
        t.after(() => child.kill("SIGKILL"));
        let stdout = "";
        let stderr = "";
        let exitCode: number | null | undefined;
        const waiters = new Set<() => void>();
        const exited = new Promise<void>((resolve) => child.on("exit", (code) => ((exitCode = code), resolve())));
        child.stdout.on("data", (chunk: Buffer) => {
          stdout += chunk.toString();
          for (const waiter of waiters) waiter();
        });
        child.stderr.on("data", (chunk: Buffer) => (stderr += chunk.toString()));
        /** Whether the output shows `pattern` before the child exits (a bounded wait: 2 minutes at most). */
        const seen = (pattern: RegExp) =>
          Promise.race([
            new Promise<boolean>((resolve) => {
              const look = () => {
                if (!pattern.test(stdout)) return;
                waiters.delete(look);
                resolve(true);
              };
              waiters.add(look);
              look();
            }),
            exited.then(() => pattern.test(stdout)),
            new Promise<boolean>((resolve) => setTimeout(() => resolve(pattern.test(stdout)), 120_000).unref()),
          ]);
        assert.ok(await seen(/nothing deployed in \S+/), `the first report:\n${stdout}${stderr}`);
        const restarted = Date.now();
        await restartApiServer();
        assert.ok(
          await seen(/status --watch [\d:]+: the watch(es)? of [^\n]*pods[^\n]* ended \([^)]*\); re-establishing in [\d.]+ s/),
          `it says the watch ended:\n${stdout}${stderr}`,
        );
        assert.ok(
          await seen(
            /status --watch [\d:]+: the watch(es)? of [^\n]*pods[^\n]* (is|are) re-established\n[\s\S]*nothing deployed in \S+[^\n]*\n$/,
          ),
          `it re-establishes the watch and reports again:\n${stdout}${stderr}`,
        );
        t.diagnostic(`watches re-established and status redrawn ${((Date.now() - restarted) / 1000).toFixed(1)} s after the restart began`);
        assert.equal(exitCode, undefined, `status --watch exited on its own (code ${String(exitCode)}):\n${stdout}${stderr}`);
        child.kill("SIGINT");
        await exited;
        assert.equal(exitCode, 0, stderr);
      }),
  );

  it("a field another tool changed is a clear conflict; --force-conflicts takes it back", async (t) => {
    const p = await platform(t);
    const applied = await deploy("apply", p);
    assert.equal(applied.code, 0, applied.stdout + applied.stderr);
    await cluster.kubectl(["-n", p.namespace, "scale", "deployment", "gateway", "--replicas=3"]);
    // diff shows the conflict as part of the diff, with its own exit code (1 means "changes exist"), and a fix that exists.
    const diff = await deploy("diff", p);
    assert.equal(diff.code, 3, diff.stdout + diff.stderr);
    assert.match(
      diff.stdout,
      /! Deployment\/\S+\/gateway \(update, conflict\)\n {4}! \.spec\.replicas: owned by kubectl \(subresource scale\)\n[\s\S]*\+ +replicas: 1\n/,
    );
    assert.match(diff.stdout, /fix: `diatonic apply --force-conflicts` takes these fields back/);
    const diffJson = JSON.parse((await deploy("diff", p, "--output", "json")).stdout) as {
      conflicts: { resource: string; fields: { field: string; manager: string }[] }[];
    };
    assert.deepEqual(
      diffJson.conflicts.map((c) => [c.resource.split("/")[2], c.fields.map((f) => [f.field, f.manager])]),
      [["gateway", [[".spec.replicas", "kubectl (subresource scale)"]]]],
    );
    assert.equal(
      (await runCli(["diff", "--force-conflicts", "--spec", p.file, "--env", p.env, "--kubeconfig", cluster.kubeconfig])).code,
      2,
      "diff takes no --force-conflicts: the fix does not offer it",
    );
    const conflict = await deploy("apply", p);
    assert.equal(conflict.code, 1, conflict.stdout);
    assert.match(conflict.stderr, /Deployment\/\S+\/gateway: fields owned by another manager: .*\.spec\.replicas/);
    assert.match(conflict.stderr, /--force-conflicts/);
    const forced = await deploy("apply", p, "--force-conflicts");
    assert.equal(forced.code, 0, forced.stderr);
    const replicas = await cluster.kubectl(["-n", p.namespace, "get", "deployment", "gateway", "-o", "jsonpath={.spec.replicas}"]);
    assert.equal(replicas, "1");
  });

  it("prunes a removed adapter, rolls back to the previous revision, and destroy keeps the volumes", async (t) => {
    const p = await platform(t);
    const applied = await deploy("apply", p);
    assert.equal(applied.code, 0, applied.stdout + applied.stderr);
    const doc = parseDocument(readFileSync(p.file, "utf8"));
    doc.deleteIn(["spec", "adapters", 4]);
    doc.deleteIn(["environments", "local", "adapters", 4]);
    writeFileSync(p.file, doc.toString());
    const diff = await deploy("diff", p);
    assert.equal(diff.code, 1, "changes exit 1");
    assert.match(diff.stdout, /- ConfigMap\/\S+\/adapter-summarization \(delete\)/);
    assert.match(diff.stdout, /~ ConfigMap\/\S+\/gateway \(update\)[\s\S]*- +- name: summarization/);
    const dry = await deploy("apply", p, "--dry-run");
    assert.equal(dry.code, 0, dry.stdout + dry.stderr);
    assert.match(dry.stdout, /dry run: \d+ object\(s\) would change, 1 would be pruned/);
    assert.ok((await members(p)).includes("configmap/adapter-summarization"), "a dry run changes nothing");
    const pruned = await deploy("apply", p);
    assert.equal(pruned.code, 0, pruned.stdout + pruned.stderr);
    assert.match(pruned.stdout, /pruned ConfigMap\/\S+\/adapter-summarization/);
    assert.ok(!(await members(p)).includes("configmap/adapter-summarization"));

    const rollback = await deploy("rollback", p);
    assert.equal(rollback.code, 0, rollback.stdout + rollback.stderr);
    assert.match(rollback.stdout, /applied revision 3/);
    assert.ok((await members(p)).includes("configmap/adapter-summarization"), "rollback restores revision 1");
    const status = await deploy("status", p, "--output", "json");
    assert.match(status.stdout, /"note":"rollback to 1"/);

    const unconfirmed = await deploy("destroy", p, "--delete-data");
    assert.equal(unconfirmed.code, 2, "deleting data without a terminal needs --yes");
    assert.match(unconfirmed.stderr, /pass --yes/);
    // The local environment's volumes are Qdrant's (the StatefulSet's claims); the model is each engine pod's own ephemeral claim.
    assert.match(
      await cluster.kubectl(["-n", p.namespace, "get", "pvc", "-o", "name"]),
      /persistentvolumeclaim\/data-qdrant-0/,
      "nothing was deleted",
    );
    assert.ok((await members(p)).includes("statefulset.apps/qdrant"), "nothing was deleted");
    const destroyed = await deploy("destroy", p);
    assert.equal(destroyed.code, 0, destroyed.stderr);
    assert.match(destroyed.stdout, /kept \d+ \(data: .*PersistentVolumeClaim\/\S+\/data-qdrant-0/);
    const claims = await cluster.kubectl(["-n", p.namespace, "get", "pvc", "-o", "name"]);
    assert.match(claims, /persistentvolumeclaim\/data-qdrant-0/);
    const left = await cluster.kubectl(["-n", p.namespace, "get", "deployments,statefulsets,services", "-o", "name"]);
    assert.equal(left.trim(), "");

    // What was kept stays findable: status says the platform was destroyed (exit 1), and a later
    // destroy --delete-data deletes the volumes and the namespace (it found nothing before: the
    // first destroy had deleted the ApplySet parent that lists them).
    const leftStatus = await deploy("status", p);
    assert.equal(leftStatus.code, 1, leftStatus.stdout);
    assert.match(
      leftStatus.stdout,
      new RegExp(`platform in ${p.namespace}: destroyed at \\S+; its data was kept:[\\s\\S]*Namespace/${p.namespace}`),
    );
    // Every volume destroy kept, the StatefulSet's claims (Qdrant's data) too, as destroy listed them.
    const keptByDestroy =
      /kept \d+ \(data: (.*)\)/
        .exec(destroyed.stdout)?.[1]
        ?.split(", ")
        .filter((r) => r.startsWith("PersistentVolumeClaim/")) ?? [];
    assert.ok(keptByDestroy.includes(`PersistentVolumeClaim/${p.namespace}/data-qdrant-0`), destroyed.stdout);
    for (const claim of keptByDestroy)
      assert.ok(leftStatus.stdout.includes(`  ${claim}\n`), `status lists ${claim}:\n${leftStatus.stdout}`);
    const data = await deploy("destroy", p, "--delete-data", "--yes");
    assert.equal(data.code, 0, data.stdout + data.stderr);
    assert.match(
      data.stdout,
      new RegExp(`pruned PersistentVolumeClaim/${p.namespace}/data-qdrant-0[\\s\\S]*pruned Namespace/${p.namespace}`),
    );
    const phase = (await cluster.kubectl(["get", "namespace", p.namespace, "-o", "jsonpath={.status.phase}", "--ignore-not-found"])).trim();
    assert.ok(phase === "" || phase === "Terminating", `namespace ${p.namespace} is ${phase}`);
  });
});
