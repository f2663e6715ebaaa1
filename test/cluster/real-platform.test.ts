// The lab's `local` environment on the real node (real-0): `diatonic apply --env local` until every
// pod is Running and Ready by its own probes (the models come from a Hugging Face mirror the test
// serves on the node's address, see test/support/real-platform.ts), then real requests through a
// port-forward with the OpenAI SDK, RAG through `diatonic ingest`, the NetworkPolicies as kube-router
// enforces them, an engine container killed under the gateway, and the adapter set changed at runtime.
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it, type TestContext } from "node:test";
import { setTimeout as sleep } from "node:timers/promises";
import OpenAI, { APIError } from "openai";
import { realNode } from "../../scripts/cluster/config.ts";
import { SIMULATION_OWNER_LABEL, simulateCertManager, type CertManagerSimulation } from "../support/cert-manager-sim.ts";
import { probePod } from "../support/cluster-manifests.ts";
import { runCli } from "../support/cli.ts";
import { clusterSkipReason, hasRealNode, testCluster, type TestCluster } from "../support/cluster.ts";
import { qdrant, unmet } from "../support/needs.ts";
import {
  ctr,
  holdRealNode,
  portForward,
  preparePlatform,
  startMirror,
  type DeployedPlatform,
  type Mirror,
} from "../support/real-platform.ts";

// The lab's Qdrant runs from an image the cluster builds from Qdrant's binary: without it, apply cannot become Ready.
const skip = clusterSkipReason() || (unmet("the real node's lab platform", [qdrant()]) ?? false);

interface ContainerStatus {
  name: string;
  ready: boolean;
  started?: boolean;
  restartCount: number;
  containerID?: string;
  state?: { running?: unknown; waiting?: { reason?: string } };
}
interface Pod {
  metadata: { name: string; uid: string; labels?: Record<string, string> };
  spec: { nodeName?: string };
  status: {
    phase: string;
    podIP?: string;
    conditions?: { type: string; status: string }[];
    containerStatuses?: ContainerStatus[];
    initContainerStatuses?: ContainerStatus[];
  };
}
interface StatusJson {
  healthy: boolean;
  reasons: string[];
  objects: { resource: string; state: string; reason: string }[];
  restarts: { pod: string; container: string; restarts: number; lastTermination: { reason: string; exitCode: number | null } | null }[];
  adapters: { name: string; route: string; loaded: boolean | null; replicas: { pod: string; state: string; reason?: string }[] }[];
}

const ready = (pod: Pod): boolean => pod.status.conditions?.some((c) => c.type === "Ready" && c.status === "True") ?? false;

describe("cluster tier: the lab's local environment on the real node", { skip, concurrency: 1 }, () => {
  let cluster: TestCluster;
  let release: (() => void) | undefined;
  let mirror: Mirror | undefined;
  let platform: DeployedPlatform | undefined;
  let gateway: { url: string; stop: () => void } | undefined;
  let acme: CertManagerSimulation | undefined;
  /** This file's simulated ACME server acts only on its platform's issuers (other test files run their own). */
  const simulationOwner = `real-platform-${randomBytes(3).toString("hex")}`;

  before(async () => {
    cluster = await testCluster();
    if (!("name" in cluster.realNode)) return;
    release = await holdRealNode();
    mirror = await startMirror();
    // The lab's ACME issuers cannot reach Let's Encrypt from here: a simulated ACME server marks them registered.
    acme = await simulateCertManager(cluster.kubeconfig, { owner: simulationOwner });
  });
  after(async () => {
    gateway?.stop();
    await platform?.destroy();
    acme?.stop();
    await mirror?.close();
    release?.();
  });

  /** The platform applied by the first test; later tests need it. */
  function deployed(t: TestContext): DeployedPlatform | undefined {
    if (!hasRealNode(t, cluster)) return undefined;
    assert.ok(platform !== undefined && gateway !== undefined, "the platform was not deployed (the first test failed)");
    return platform;
  }

  const pods = async (namespace: string, selector?: string): Promise<Pod[]> =>
    (await cluster.kubectlJson<{ items: Pod[] }>(["-n", namespace, "get", "pods", ...(selector ? ["-l", selector] : [])])).items;

  const client = (p: DeployedPlatform, options: { maxRetries?: number } = {}): OpenAI =>
    new OpenAI({ baseURL: `${gateway?.url ?? ""}/v1`, apiKey: p.apiKey, maxRetries: options.maxRetries ?? 0, timeout: 120_000 });

  it(
    "diatonic apply --env local becomes Ready: engine, gateway, embeddings and Qdrant pods run on real-0, Ready by their own probes",
    { timeout: 900_000 },
    async (t) => {
      if (!hasRealNode(t, cluster) || mirror === undefined) return;
      const p = await preparePlatform(cluster, mirror, { [SIMULATION_OWNER_LABEL]: simulationOwner });
      platform = p;
      const applied = await p.apply();
      assert.equal(
        applied.code,
        0,
        `${applied.stdout}\n${applied.stderr}\n${await cluster.kubectl(["-n", p.namespace, "get", "pods", "-o", "wide"])}`,
      );
      assert.match(applied.stdout, /✓ engine/);
      const all = await pods(p.namespace);
      const byName = (name: string): Pod[] => all.filter((pod) => pod.metadata.labels?.["app.kubernetes.io/name"] === name);
      for (const name of ["engine", "gateway", "embeddings", "qdrant"]) {
        const [pod] = byName(name);
        assert.ok(pod, `a ${name} pod exists`);
        assert.equal(pod.spec.nodeName, realNode.name, `${name} runs on the real node`);
        assert.equal(pod.status.phase, "Running");
        assert.ok(ready(pod), `${name} is Ready`);
        // A real kubelet started every container and ran its probes (kwok would report none of this).
        for (const container of pod.status.containerStatuses ?? []) {
          assert.ok(
            container.ready && container.started === true && container.containerID?.startsWith("containerd://"),
            `${name}/${container.name} started in containerd and passed its probes`,
          );
        }
      }
      // The engine's model and the embeddings' GGUF came through the mirror, over TLS, by the rendered download.
      assert.ok(
        mirror.requests.some((r) => r.includes("/resolve/") && r.includes("Meta-Llama-3-8B-Instruct-Q4_K_M.gguf")),
        mirror.requests.join("\n"),
      );
      assert.ok(
        mirror.requests.some((r) => r.includes("/resolve/") && r.includes("bge-small-en-v1.5-q8_0.gguf")),
        mirror.requests.join("\n"),
      );
      const status = JSON.parse((await p.status()).stdout) as StatusJson;
      assert.equal(status.healthy, true, JSON.stringify(status.objects.filter((o) => o.state !== "ready")));
      gateway = await portForward(cluster, p.namespace, "service/gateway", 8080);
    },
  );

  it("the OpenAI SDK through a port-forward to the gateway's Service: models, chat and a stream", { timeout: 300_000 }, async (t) => {
    const p = deployed(t);
    if (p === undefined) return;
    const openai = client(p);
    const models = (await openai.models.list()).data.map((m) => m.id);
    for (const adapter of ["chatbot", "code", "rag", "architecture", "summarization"])
      assert.ok(models.includes(adapter), `${adapter} in ${models.join(", ")}`);
    const chat = await openai.chat.completions.create({
      model: "chatbot",
      messages: [{ role: "user", content: "Say hello." }],
      max_tokens: 8,
    });
    assert.equal(chat.object, "chat.completion");
    assert.ok((chat.choices[0]?.message.content ?? "").length > 0, "the engine generated text");
    assert.ok((chat.usage?.completion_tokens ?? 0) > 0);
    const stream = await openai.chat.completions.create({
      model: "code",
      messages: [{ role: "user", content: "Write a loop." }],
      max_tokens: 8,
      stream: true,
      stream_options: { include_usage: true },
    });
    let text = "";
    let chunks = 0;
    let usage = 0;
    for await (const chunk of stream) {
      chunks += 1;
      text += chunk.choices[0]?.delta.content ?? "";
      usage = chunk.usage?.completion_tokens ?? usage;
    }
    assert.ok(chunks > 1 && text.length > 0, `streamed ${chunks} chunks`);
    assert.ok(usage > 0, "the stream's last chunk counts the tokens");
  });

  it(
    "RAG: diatonic ingest through the gateway into Qdrant, then the rag adapter's answer cites the document",
    { timeout: 300_000 },
    async (t) => {
      const p = deployed(t);
      if (p === undefined) return;
      const dir = mkdtempSync(join(tmpdir(), "real-rag-"));
      t.after(() => rmSync(dir, { recursive: true, force: true }));
      writeFileSync(
        join(dir, "errors.txt"),
        "Error E4711 means the flux capacitor is misaligned. Realign it with the calibration wrench, then restart the unit.\n",
      );
      writeFileSync(
        join(dir, "holidays.txt"),
        "The lab closes on the first Monday of August for the summer outing. Book the bus by July.\n",
      );
      const ingest = await runCli([
        "ingest",
        "--adapter",
        "rag",
        join(dir, "errors.txt"),
        join(dir, "holidays.txt"),
        "--gateway",
        gateway?.url ?? "",
        "--api-key",
        p.apiKey,
      ]);
      assert.equal(ingest.code, 0, ingest.stdout + ingest.stderr);
      const answer = (await client(p).chat.completions.create({
        model: "rag",
        messages: [{ role: "user", content: "What does error E4711 mean?" }],
        max_tokens: 16,
      })) as OpenAI.ChatCompletion & {
        diatonic?: { citations: { source: string }[] };
      };
      assert.ok(
        answer.diatonic?.citations.some((c) => c.source.endsWith("errors.txt")),
        JSON.stringify(answer.diatonic),
      );
    },
  );

  it("NetworkPolicies: a pod outside the traffic graph cannot reach the engine, the gateway can", { timeout: 300_000 }, async (t) => {
    const p = deployed(t);
    if (p === undefined) return;
    const [engine] = await pods(p.namespace, "app.kubernetes.io/name=engine");
    const engineUrl = `http://${engine?.status.podIP ?? ""}:8000/health`;
    const [gatewayPod] = await pods(p.namespace, "app.kubernetes.io/name=gateway");
    // Node in the gateway's own container (its image has node): the flows the platform allows it.
    const inGateway = (script: string) =>
      cluster.kubectl(["-n", p.namespace, "exec", gatewayPod?.metadata.name ?? "", "-c", "gateway", "--", "node", "-e", script]);
    const fromGateway = await inGateway(`fetch(${JSON.stringify(engineUrl)}).then(r => console.log(r.status))`);
    assert.equal(fromGateway.trim(), "200");
    // The gateway places adapters through the engine pod's adapter agent (PUT /v1/placement): that flow
    // is allowed too, and the agent holds the gateway's word.
    const placement = await inGateway(
      `fetch(${JSON.stringify(`http://${engine?.status.podIP ?? ""}:8001/status`)}).then(r => r.json()).then(b => console.log(JSON.stringify(b.placement)))`,
    );
    const word = JSON.parse(placement) as { placed: string[] | null; gateways: { gateway: string }[] };
    assert.ok(word.gateways.length >= 1 && word.placed !== null, `the engine's agent has the gateway's placement: ${placement}`);
    // A pod in a namespace without policies: it reaches a server beside it, but the engine's ingress policy refuses it.
    const outside = await cluster.namespace(t);
    const onReal = { [realNode.label.key]: realNode.label.value };
    for (const name of ["intruder", "neighbour"])
      await cluster.kubectl(["create", "-f", "-"], JSON.stringify(probePod(outside, name, { labels: onReal })));
    await cluster.kubectl(["-n", outside, "wait", "--for=condition=Ready", "pod/intruder", "pod/neighbour", "--timeout=90s"]);
    const neighbour = (await cluster.kubectl(["-n", outside, "get", "pod", "neighbour", "-o", "jsonpath={.status.podIP}"])).trim();
    const get = (url: string) => cluster.kubectl(["-n", outside, "exec", "intruder", "--", "/probe", "get", "--timeout=3s", url]);
    assert.match(await get(`http://${neighbour}:8080/`), /probe neighbour/);
    const policy = await cluster.kubectl(["-n", p.namespace, "get", "networkpolicy", "engine-ingress", "-o", "jsonpath={.spec.ingress}"]);
    await assert.rejects(get(engineUrl), `the engine refuses a pod the traffic graph does not name (engine-ingress: ${policy})`);
  });

  it(
    "the engine container killed: the gateway answers 503 at once, the pod restarts, traffic recovers and status says what happened",
    { timeout: 600_000 },
    async (t) => {
      const p = deployed(t);
      if (p === undefined) return;
      const [before] = await pods(p.namespace, "app.kubernetes.io/name=engine");
      assert.ok(before);
      const container = before.status.containerStatuses?.find((c) => c.name === "engine");
      const id = container?.containerID?.replace("containerd://", "") ?? "";
      ctr(["tasks", "kill", "--signal", "SIGKILL", id]);
      // The gateway answers for the dead engine instead of hanging; the client's own timeout is the hang's limit.
      const failed = await client(p)
        .chat.completions.create(
          { model: "chatbot", messages: [{ role: "user", content: "Are you there?" }], max_tokens: 4 },
          { timeout: 30_000 },
        )
        .then(
          () => undefined,
          (error: unknown) => error,
        );
      assert.ok(failed instanceof APIError, `the gateway answered with an error, not ${String(failed)}`);
      assert.equal(failed.status, 503, failed.message);

      // The kubelet restarts the container in the same pod; the engine is Ready again by its probes.
      const deadline = Date.now() + 300_000;
      for (;;) {
        const [pod] = await pods(p.namespace, "app.kubernetes.io/name=engine");
        const engine = pod?.status.containerStatuses?.find((c) => c.name === "engine");
        if (pod?.metadata.uid === before.metadata.uid && (engine?.restartCount ?? 0) >= 1 && ready(pod)) break;
        if (Date.now() > deadline)
          assert.fail(`the engine did not come back in its pod: ${JSON.stringify(engine ?? pod?.status ?? "no pod")}`);
        await sleep(500);
      }
      const recovered = await client(p, { maxRetries: 5 }).chat.completions.create({
        model: "chatbot",
        messages: [{ role: "user", content: "Back?" }],
        max_tokens: 4,
      });
      assert.equal(recovered.object, "chat.completion");
      // Status is healthy once the engine's Deployment has counted its pod available again (a moment
      // after the pod's Ready) and its agent has loaded the adapters again; until then it says why not
      // (CI run 38 read it in that moment). A deadline, not a timing.
      let status = JSON.parse((await p.status()).stdout) as StatusJson;
      if (!status.healthy) t.diagnostic(`status right after the recovery: ${JSON.stringify(status.reasons)}`);
      const healthyBy = Date.now() + 120_000;
      while (!status.healthy) {
        if (Date.now() > healthyBy) assert.fail(`status did not become healthy after the restart: ${JSON.stringify(status.reasons)}`);
        await sleep(1000);
        status = JSON.parse((await p.status()).stdout) as StatusJson;
      }
      const restart = status.restarts.find((r) => r.pod === before.metadata.name && r.container === "engine");
      assert.deepEqual(restart, {
        pod: before.metadata.name,
        container: "engine",
        restarts: 1,
        lastTermination: restart?.lastTermination ?? null,
      });
      assert.equal(restart?.lastTermination?.exitCode, 137, "killed by SIGKILL");
      assert.equal(restart?.lastTermination?.reason, "Error");
      assert.equal(status.healthy, true);
    },
  );

  it(
    "the engine container frozen (the cgroup freezer, as a wedged process or a gone node looks): the gateway's health check takes it out and a waiting request gets 503, not its total timeout; thawed, traffic recovers",
    { timeout: 600_000 },
    async (t) => {
      const p = deployed(t);
      if (p === undefined) return;
      const [engine] = await pods(p.namespace, "app.kubernetes.io/name=engine");
      const id = engine?.status.containerStatuses?.find((c) => c.name === "engine")?.containerID?.replace("containerd://", "") ?? "";
      assert.ok(id, "the engine container's id");
      ctr(["tasks", "pause", id]);
      try {
        // Not streamed: an engine sends its headers only with the whole answer, so no first-byte timeout
        // helps. The gateway's total timeout for chatbot is minutes; the client's 90 s is the hang's limit.
        const failed = await client(p)
          .chat.completions.create(
            { model: "chatbot", messages: [{ role: "user", content: "Are you there?" }], max_tokens: 4 },
            { timeout: 90_000 },
          )
          .then(
            () => undefined,
            (error: unknown) => error,
          );
        assert.ok(failed instanceof APIError, `the gateway answered with an error, not ${String(failed)}`);
        assert.equal(failed.status, 503, failed.message);
        assert.match(failed.message, /stopped answering|no healthy replica/);
      } finally {
        ctr(["tasks", "resume", id]);
      }
      // The gateway writes its log in batches, at most a second old: read until the ejection is there.
      const ejected =
        /"reason":"health check failed".*"msg":"upstream replica ejected"|"msg":"upstream replica ejected".*"reason":"health check failed"/;
      let logs = "";
      for (const deadline = Date.now() + 30_000; !ejected.test(logs); await sleep(500)) {
        if (Date.now() > deadline) assert.fail(`no ejection by the health check in the gateways' logs:\n${logs}`);
        logs = await cluster.kubectl(["-n", p.namespace, "logs", "-l", "app.kubernetes.io/name=gateway", "--tail=-1", "--prefix"]);
      }
      const recovered = await client(p, { maxRetries: 8 }).chat.completions.create({
        model: "chatbot",
        messages: [{ role: "user", content: "Back?" }],
        max_tokens: 4,
      });
      assert.equal(recovered.object, "chat.completion");
    },
  );

  it(
    "adapters change at runtime (issue 18): LoRAs from the mirror added, changed and removed with apply; the engine pod keeps its UID and restarts",
    { timeout: 600_000 },
    async (t) => {
      const p = deployed(t);
      if (p === undefined || mirror === undefined) return;
      const lora = (repo: string, revision: string) => ({
        source: { huggingFace: { repo: `tests/${repo}`, revision, file: "lora.gguf" } },
        rank: 4,
      });
      // The local overlay's lora is merged onto the base adapter's, so both name the mirror's source
      // (null in the overlay alone takes an adapter's LoRA away).
      const setLoras = (loras: Record<string, ReturnType<typeof lora> | null>) =>
        p.edit((doc) => {
          for (const at of [
            ["spec", "adapters"],
            ["environments", "local", "adapters"],
          ]) {
            const count = (doc.getIn(at) as { items: unknown[] }).items.length;
            for (let index = 0; index < count; index++) {
              const name = String(doc.getIn([...at, index, "name"]));
              const value = loras[name];
              if (value === undefined || (value === null && at[0] === "spec")) continue;
              doc.setIn([...at, index, "lora"], doc.createNode(value));
            }
          }
        });
      mirror.publishLora("tests/chatbot-lora", "r1", 11);
      mirror.publishLora("tests/code-lora", "r1", 21);
      mirror.publishLora("tests/code-lora", "r2", 22);
      mirror.publishLora("tests/summary-lora", "r1", 31);

      const engineNow = async (): Promise<{ uid: string; restarts: number; name: string }> => {
        const [pod] = await pods(p.namespace, "app.kubernetes.io/name=engine");
        return {
          uid: pod?.metadata.uid ?? "",
          name: pod?.metadata.name ?? "",
          restarts: pod?.status.containerStatuses?.find((c) => c.name === "engine")?.restartCount ?? -1,
        };
      };
      const replicaStates = async (): Promise<Map<string, string>> => {
        const run = await p.status();
        // Another test file may be restarting the shared API server: a status that could not ask is "unknown yet".
        if (!run.stdout.trim().startsWith("{")) return new Map([["status failed", run.stderr.trim()]]);
        const status = JSON.parse(run.stdout) as StatusJson;
        return new Map(
          status.adapters.map((a) => [`${a.name}${a.route === "-" ? " (removed)" : ""}`, a.replicas.map((r) => r.state).join(",")]),
        );
      };
      const until = async (what: string, check: (states: Map<string, string>) => boolean): Promise<Map<string, string>> => {
        let states = new Map<string, string>();
        const deadline = Date.now() + 180_000;
        while (!check((states = await replicaStates()))) {
          if (Date.now() > deadline) assert.fail(`${what}: status still says ${JSON.stringify([...states])}`);
          await sleep(1000);
        }
        return states;
      };

      const start = await engineNow();
      setLoras({ chatbot: lora("chatbot-lora", "r1"), code: lora("code-lora", "r1") });
      const first = await p.apply("5m");
      assert.equal(first.code, 0, first.stdout + first.stderr);
      await until("chatbot and code loaded", (s) => s.get("chatbot") === "loaded" && s.get("code") === "loaded");
      const openai = client(p, { maxRetries: 5 });
      const answer = await openai.chat.completions.create({ model: "code", messages: [{ role: "user", content: "hi" }], max_tokens: 4 });
      assert.equal(answer.object, "chat.completion", "the gateway sends the adapter's requests to the replica that loaded its LoRA");

      // Add one, change one's revision, remove one.
      setLoras({ chatbot: null, code: lora("code-lora", "r2"), summarization: lora("summary-lora", "r1") });
      const second = await p.apply("5m");
      assert.equal(second.code, 0, second.stdout + second.stderr);
      // code's new revision counts once the agent has asked the mirror for it before the status was read
      // (the agent reports `loading` from before that request until the engine has the new file).
      const fetchedR2 = (): boolean => mirror?.requests.some((r) => r.includes("tests/code-lora/resolve/r2/lora.gguf")) ?? false;
      let sawR2 = fetchedR2();
      await until("summarization loaded, code reloaded at r2, chatbot unloaded", (s) => {
        const done =
          sawR2 &&
          s.get("summarization") === "loaded" &&
          s.get("code") === "loaded" &&
          s.get("chatbot") === "" &&
          s.get("chatbot (removed)") === "unloaded";
        sawR2 = fetchedR2();
        return done;
      });
      assert.deepEqual(await engineNow(), start, "the engine pod kept its UID and its restart count through both applies");
      const summary = await openai.chat.completions.create({
        model: "summarization",
        messages: [{ role: "user", content: "Summarise: a b c." }],
        max_tokens: 4,
      });
      assert.equal(summary.object, "chat.completion");

      // A revision the mirror does not have: the agent fails it, and the gateway tells callers so
      // (503 adapter_failed), where it said "loading, retry in 2 s" for as long as the failure lasted.
      setLoras({
        chatbot: lora("chatbot-lora", "no-such-revision"),
        code: lora("code-lora", "r2"),
        summarization: lora("summary-lora", "r1"),
      });
      const third = await p.apply("5m");
      assert.equal(third.code, 0, third.stdout + third.stderr);
      await until("chatbot failed on its replica", (s) => s.get("chatbot") === "failed");
      const answers: string[] = [];
      const deadline = Date.now() + 60_000;
      for (;;) {
        const error = await openai.chat.completions
          .create({ model: "chatbot", messages: [{ role: "user", content: "hi" }], max_tokens: 4 }, { maxRetries: 0 })
          .then(
            () => undefined,
            (caught: unknown) => caught,
          );
        answers.push(error instanceof APIError ? `${String(error.status)} ${String(error.code)}` : String(error));
        if (error instanceof APIError && error.code === "adapter_failed") {
          assert.equal(error.status, 503);
          assert.ok(Number(error.headers?.get("retry-after")) >= 2, "Retry-After at the agent's next try");
          break;
        }
        assert.ok(Date.now() < deadline, `the gateway never answered adapter_failed for chatbot: ${answers.join("; ")}`);
        await sleep(1000);
      }
    },
  );
});
