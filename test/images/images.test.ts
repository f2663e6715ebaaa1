// The two images, built from docker/*.Dockerfile by the dry build (this machine has no container
// engine: scripts/image/dry-build.ts stands the machine's own Node in for the base image), run as the
// rendered `local` Deployments run them: their args, volumes, user and read-only root. The engine
// pod's init container downloads the model (a tiny generated one, from a local Hub mirror), its
// adapter agent fetches a LoRA and loads it into the engine container, the gateway container
// forwards to the engine, ingests documents into the embedded store and answers with citations:
// every part of both images is used.
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { chmodSync, copyFileSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { fileURLToPath } from "node:url";
import type { ChildProcess } from "node:child_process";
import OpenAI from "openai";
import { parse, stringify } from "yaml";
import { freePort } from "../../scripts/cluster/processes.ts";
import { dryBuild, dryBuildUnavailable, runImage, type DryImage, type RunVolume } from "../../scripts/image/dry-build.ts";
import { writeTestModels } from "../../src/engine/index.ts";
import { parseItem } from "../../src/model/download.ts";
import { startHubServer, type RunningHub } from "../../src/model/hub-server.ts";
import { ingestPaths } from "../../src/rag/client.ts";
import { buildEnvironment } from "../../src/render/build.ts";
import { writeHandbook } from "../rag/fixtures.ts";

const repo = fileURLToPath(new URL("../..", import.meta.url));
const EXAMPLE = join(repo, "examples", "lab", "platform.yaml");
const KEY = "sk-image-test";
/** What each image may add to its base; measured 197 and 71 MiB (see the README). */
const BUDGET_MIB = { gateway: 240, engine: 100 } as const;

interface Container {
  readonly name: string;
  readonly args: string[];
  readonly volumeMounts: { name: string; mountPath: string; readOnly?: boolean }[];
  readonly env?: { name: string; value?: string }[];
  readonly securityContext: { readOnlyRootFilesystem?: boolean };
}

interface Volume {
  readonly name: string;
  readonly emptyDir?: unknown;
  readonly configMap?: { readonly name: string; readonly optional?: boolean };
}

interface Workload {
  readonly container: Container;
  readonly initContainers: readonly Container[];
  readonly user: string;
  readonly volumes: ReadonlyMap<string, Volume>;
}

function renderedLocal(): { workload(name: string): Workload; configMap(name: string): Record<string, string> } {
  const objects = buildEnvironment({ file: EXAMPLE, environment: "local" }).result.placed.map(
    (placed) => placed.object as unknown as Record<string, unknown>,
  );
  const find = (kind: string, name: string) => {
    const found = objects.find((object) => object.kind === kind && (object.metadata as { name: string }).name === name);
    assert.ok(found, `the local render has no ${kind} ${name}`);
    return found as Record<string, unknown>;
  };
  return {
    workload(name) {
      const pod = ((find("Deployment", name).spec as Record<string, unknown>).template as { spec: Record<string, unknown> }).spec;
      const security = pod.securityContext as { runAsUser: number; runAsGroup: number };
      const volumes = new Map((pod.volumes as Volume[]).map((volume) => [volume.name, volume]));
      return {
        container: (pod.containers as Container[])[0] as Container,
        initContainers: (pod.initContainers as Container[] | undefined) ?? [],
        user: `${security.runAsUser}:${security.runAsGroup}`,
        volumes,
      };
    },
    configMap: (name) => find("ConfigMap", name).data as Record<string, string>,
  };
}

/** The args with a flag's value replaced, or the flag added (the rest is as rendered). */
function withFlag(args: readonly string[], flag: string, value: string): string[] {
  const at = args.indexOf(flag);
  if (at < 0) return [...args, flag, value];
  assert.ok(at + 1 < args.length, `the rendered args end in ${flag}`);
  return [...args.slice(0, at + 1), value, ...args.slice(at + 2)];
}

/**
 * A container's volume mounts: from `sources` (by volume name), or else, for an emptyDir, an empty
 * folder of its own (an emptyDir two containers share is given as a source, one folder for both);
 * an optional ConfigMap the test does not give is an empty folder too, as the kubelet mounts one
 * whose ConfigMap does not exist.
 */
function mountsOf(workload: Workload, container: Container, sources: Record<string, string>): RunVolume[] {
  return container.volumeMounts.map((mount) => {
    const volume = workload.volumes.get(mount.name);
    assert.ok(volume, `volume ${mount.name} is mounted but not declared`);
    const empty = volume.emptyDir !== undefined || volume.configMap?.optional === true;
    if (empty && sources[mount.name] === undefined) return { path: mount.mountPath, readOnly: mount.readOnly ?? false };
    const source = sources[mount.name];
    assert.ok(source !== undefined, `the test has no content for volume ${mount.name}`);
    return { path: mount.mountPath, source, readOnly: mount.readOnly ?? false };
  });
}

function envOf(container: Container): Record<string, string> {
  return Object.fromEntries(
    (container.env ?? []).filter((entry) => entry.value !== undefined).map((entry) => [entry.name, entry.value as string]),
  );
}

interface Running {
  readonly process: ChildProcess;
  readonly url: string;
  /** The rendered args as run: on a free port of 127.0.0.1 instead of the pod's own network. */
  readonly args: readonly string[];
}

async function start(
  image: DryImage,
  workload: Workload,
  container: Container,
  args: string[],
  sources: Record<string, string>,
  readyPath: string,
  env: Record<string, string> = {},
): Promise<Running> {
  const port = await freePort();
  const runArgs = withFlag(withFlag(args, "--port", String(port)), "--host", "127.0.0.1");
  const child = runImage(image, {
    args: runArgs,
    user: workload.user,
    env: { ...envOf(container), ...env },
    volumes: mountsOf(workload, container, sources),
    readOnlyRoot: container.securityContext.readOnlyRootFilesystem ?? false,
  });
  let output = "";
  child.stdout?.on("data", (chunk: Buffer) => (output = (output + chunk.toString()).slice(-20_000)));
  child.stderr?.on("data", (chunk: Buffer) => (output = (output + chunk.toString()).slice(-20_000)));
  const url = `http://127.0.0.1:${port}`;
  const deadline = Date.now() + 120_000;
  for (;;) {
    if (child.exitCode !== null) throw new Error(`${container.name} exited ${child.exitCode}:\n${output}`);
    const ok = await fetch(`${url}${readyPath}`).then(
      (response) => response.ok,
      () => false,
    );
    if (ok) return { process: child, url, args: runArgs };
    if (Date.now() > deadline) throw new Error(`${container.name} not ready at ${readyPath} in 120 s:\n${output}`);
    await new Promise((resolve) => setTimeout(resolve, 250));
  }
}

/** Runs a container to its end, as an init container runs; fails the test on a non-zero exit. */
async function runToEnd(
  image: DryImage,
  workload: Workload,
  container: Container,
  args: string[],
  sources: Record<string, string>,
  env: Record<string, string>,
): Promise<void> {
  const child = runImage(image, {
    args,
    user: workload.user,
    env: { ...envOf(container), ...env },
    volumes: mountsOf(workload, container, sources),
    readOnlyRoot: container.securityContext.readOnlyRootFilesystem ?? false,
  });
  let output = "";
  child.stdout?.on("data", (chunk: Buffer) => (output += chunk.toString()));
  child.stderr?.on("data", (chunk: Buffer) => (output += chunk.toString()));
  const code = await new Promise<number | null>((resolve) => child.once("exit", resolve));
  assert.equal(code, 0, `${container.name} exited ${String(code)}:\n${output}`);
}

function stop(running: Running | undefined): Promise<void> {
  if (running === undefined || running.process.exitCode !== null) return Promise.resolve();
  return new Promise((resolve) => {
    running.process.once("exit", () => resolve());
    running.process.kill("SIGTERM");
  });
}

/** The process's uid, and whether its root is mounted read-only, as the kernel reports them. */
function processFacts(pid: number): { uid: string; rootReadOnly: boolean; command: string } {
  const uid = /^Uid:\s+(\d+)/m.exec(readFileSync(`/proc/${pid}/status`, "utf8"))?.[1] ?? "";
  const root = readFileSync(`/proc/${pid}/mountinfo`, "utf8")
    .split("\n")
    .find((line) => line.split(" ")[4] === "/");
  const command = readFileSync(`/proc/${pid}/cmdline`, "utf8").split("\0").join(" ").trim();
  return { uid, rootReadOnly: (root?.split(" ")[5] ?? "").split(",").includes("ro"), command };
}

const unavailable = process.env.DIATONIC_IMAGE_TESTS === "0" ? "DIATONIC_IMAGE_TESTS=0" : dryBuildUnavailable();

describe(
  "the container images, dry-built from docker/*.Dockerfile and run as the local Deployments run them",
  { skip: unavailable ?? false },
  () => {
    const rendered = renderedLocal();
    let dir: string;
    const images: Partial<Record<"gateway" | "engine", DryImage>> = {};
    let engine: Running | undefined;
    let agent: Running | undefined;
    let gateway: Running | undefined;
    let hub: RunningHub | undefined;
    let client: OpenAI;

    before(async () => {
      dir = mkdtempSync(join(tmpdir(), "diatonic-images-"));
      for (const name of ["engine", "gateway"] as const) {
        images[name] = dryBuild({ dockerfile: join(repo, "docker", `${name}.Dockerfile`), context: repo, dir: join(dir, "images", name) });
      }

      // The engine pod: its init container downloads the model, the rendered item, from a local Hub
      // mirror (HF_ENDPOINT, as the download-env ConfigMap sets it), then the engine loads it.
      const engineWorkload = rendered.workload("engine");
      const download = engineWorkload.initContainers.find((c) => c.name === "model-download");
      assert.ok(download, "the engine pod downloads its model first");
      const item = parseItem(download.args[1] ?? "");
      const modelPath = engineWorkload.container.args[engineWorkload.container.args.indexOf("--model") + 1] ?? "";
      assert.equal(modelPath, `${item.dir}/${item.file ?? ""}`, "the engine loads what the init container downloads");
      const tiny = writeTestModels(join(dir, "tiny"));
      const hubRoot = join(dir, "hub");
      mkdirSync(join(hubRoot, item.repo, item.revision), { recursive: true });
      copyFileSync(tiny.model, join(hubRoot, item.repo, item.revision, item.file ?? "model.gguf"));
      mkdirSync(join(hubRoot, "org/lab-lora/v1"), { recursive: true });
      copyFileSync(tiny.loras[0]?.path ?? "", join(hubRoot, "org/lab-lora/v1/lora.gguf"));
      hub = await startHubServer({ root: hubRoot, host: "127.0.0.1" });
      const models = join(dir, "models");
      mkdirSync(models);
      // The volumes belong to the pod's user, as fsGroup makes them on a node.
      chmodSync(models, 0o777);
      await runToEnd(images.engine as DryImage, engineWorkload, download, download.args, { models }, { HF_ENDPOINT: hub.url });
      const adapters = join(dir, "adapters");
      mkdirSync(adapters);
      chmodSync(adapters, 0o777);
      engine = await start(
        images.engine as DryImage,
        engineWorkload,
        engineWorkload.container,
        engineWorkload.container.args,
        { models, adapters },
        "/health",
      );

      // Its adapter agent, as rendered, with a set of one LoRA from the mirror, beside that engine.
      const agentContainer = engineWorkload.initContainers.find((c) => c.name === "adapter-agent");
      assert.ok(agentContainer);
      const adapterSet = join(dir, "adapter-set");
      mkdirSync(adapterSet);
      const renderedSet = parse(rendered.configMap("engine-adapters")["adapters.yaml"] ?? "") as Record<string, unknown>;
      writeFileSync(
        join(adapterSet, "adapters.yaml"),
        stringify({
          ...renderedSet,
          adapters: [{ name: "chatbot", source: { huggingFace: { repo: "org/lab-lora", revision: "v1", file: "lora.gguf" } }, rank: 4 }],
        }),
      );
      agent = await start(
        images.engine as DryImage,
        engineWorkload,
        agentContainer,
        withFlag(agentContainer.args, "--engine", engine.url),
        { "adapter-set": adapterSet, adapters },
        "/healthz",
        { HF_ENDPOINT: hub.url },
      );

      // The gateway: the rendered config, with the in-cluster addresses pointed at the engine container
      // and the embedded store on the pod's /tmp volume (no Qdrant here), and a key file on the Secret's volume.
      const gatewayWorkload = rendered.workload("gateway");
      const config = parse(rendered.configMap("gateway")["config.yaml"] ?? "") as Record<string, unknown> & {
        upstreams: Record<string, { url: string; discovery?: string }>;
        baseModel: { name: string };
        auth: { keysFile: string };
      };
      config.upstreams = { engine: { ...config.upstreams.engine, url: engine.url, discovery: "static" } };
      config.embeddings = { upstream: "engine", model: config.baseModel.name };
      config.vectorStore = { kind: "embedded", path: "/tmp/vectors" };
      const configDir = join(dir, "gateway-config");
      mkdirSync(configDir);
      writeFileSync(join(configDir, "config.yaml"), stringify(config));
      const keysDir = join(dir, "gateway-keys");
      mkdirSync(keysDir);
      writeFileSync(
        join(keysDir, config.auth.keysFile.split("/").at(-1) ?? "keys.yaml"),
        stringify({
          keys: [
            { sha256: createHash("sha256").update(KEY).digest("hex"), tenant: "lab", adapters: ["*"], scopes: ["inference", "admin"] },
          ],
        }),
      );
      const qdrantKeyDir = join(dir, "qdrant-key");
      mkdirSync(qdrantKeyDir);
      writeFileSync(join(qdrantKeyDir, "api-key"), "unused: the embedded store is used here");
      gateway = await start(
        images.gateway as DryImage,
        gatewayWorkload,
        gatewayWorkload.container,
        gatewayWorkload.container.args,
        { config: configDir, "api-keys": keysDir, "qdrant-api-key": qdrantKeyDir },
        "/readyz",
      );
      client = new OpenAI({ baseURL: `${gateway.url}/v1`, apiKey: KEY, maxRetries: 0 });
    });

    after(async () => {
      await stop(gateway);
      await stop(agent);
      await stop(engine);
      await hub?.close();
      if (dir !== undefined) rmSync(dir, { recursive: true, force: true });
    });

    it("each runs as the pod's non-root user, on a read-only root, as the image's entrypoint", () => {
      for (const [name, running] of [
        ["engine", engine],
        ["gateway", gateway],
      ] as const) {
        const image = images[name] as DryImage;
        const workload = rendered.workload(name);
        assert.equal(image.user, workload.user, `${name}: the image's USER is the pod's runAsUser:runAsGroup`);
        const facts = processFacts(running?.process.pid ?? 0);
        assert.equal(facts.uid, workload.user.split(":")[0], `${name} runs as uid ${facts.uid}`);
        assert.ok(facts.rootReadOnly, `${name}: the root filesystem is read-only`);
        assert.equal(facts.command, [...image.entrypoint, ...(running?.args ?? [])].join(" "));
      }
    });

    it("the engine image's init container fetched the model and its agent loads a LoRA into the engine container", async () => {
      const deadline = Date.now() + 60_000;
      let status: { adapters: { name: string; state: string; reason?: string }[] } = { adapters: [] };
      while (status.adapters[0]?.state !== "loaded") {
        assert.ok(Date.now() < deadline, `the agent never loaded chatbot: ${JSON.stringify(status)}`);
        await new Promise((resolve) => setTimeout(resolve, 250));
        status = (await (await fetch(`${agent?.url ?? ""}/status`)).json()) as typeof status;
      }
      const listed = ((await (await fetch(`${engine?.url ?? ""}/v1/models`)).json()) as { data: { id: string }[] }).data.map((m) => m.id);
      assert.ok(listed.includes("chatbot"), listed.join(", "));
      const facts = processFacts(agent?.process.pid ?? 0);
      assert.equal(facts.uid, rendered.workload("engine").user.split(":")[0]);
      assert.ok(facts.rootReadOnly, "the agent runs on a read-only root too");
    });

    it("each adds no more than its budget to the base image", (t) => {
      for (const name of ["gateway", "engine"] as const) {
        const mib = (images[name] as DryImage).addedBytes / 2 ** 20;
        t.diagnostic(`${name} image adds ${mib.toFixed(0)} MiB to ${images[name]?.base}`);
        assert.ok(mib <= BUDGET_MIB[name], `${name} adds ${mib.toFixed(0)} MiB, over its ${BUDGET_MIB[name]} MiB budget`);
      }
    });

    it("the gateway image serves the web console it was built with, as the pod's user on a read-only root", async () => {
      const page = await fetch(`${gateway?.url ?? ""}/console/`);
      assert.equal(page.status, 200, await page.clone().text());
      assert.match(page.headers.get("content-security-policy") ?? "", /default-src 'self'/);
      const script = /<script type="module" src="(assets\/app-[A-Z0-9]{8}\.js)">/.exec(await page.text())?.[1];
      assert.ok(script !== undefined, "index.html names the bundled script");
      const asset = await fetch(`${gateway?.url ?? ""}/console/${script}`);
      assert.equal(asset.status, 200);
      assert.equal(asset.headers.get("cache-control"), "public, max-age=31536000, immutable");
      const overview = await fetch(`${gateway?.url ?? ""}/v1/admin/overview`, { headers: { authorization: `Bearer ${KEY}` } });
      assert.equal(overview.status, 200);
      assert.equal(((await overview.json()) as { platform: string }).platform, "lab");
    });

    it("the gateway image lists the spec's adapters and answers chat and streams from the engine image", async () => {
      const listed = (await client.models.list()).data.map((model) => model.id);
      for (const adapter of ["chatbot", "code", "rag", "architecture", "summarization"])
        assert.ok(listed.includes(adapter), `${adapter} in ${listed.join(", ")}`);
      const answer = await client.chat.completions.create({
        model: "code",
        messages: [{ role: "user", content: "Say hi" }],
        max_tokens: 4,
      });
      assert.equal(answer.model, "code");
      assert.equal(typeof answer.choices[0]?.message.content, "string");
      assert.ok((answer.usage?.completion_tokens ?? 0) > 0);
      const stream = await client.chat.completions.create({
        model: "chatbot",
        messages: [{ role: "user", content: "Say hi" }],
        max_tokens: 4,
        stream: true,
        stream_options: { include_usage: true },
      });
      let chunks = 0;
      let usage = 0;
      for await (const chunk of stream) {
        chunks++;
        usage = chunk.usage?.completion_tokens ?? usage;
      }
      assert.ok(chunks >= 2 && usage > 0, `${chunks} chunks, ${usage} tokens`);
    });

    it("the gateway image ingests into its embedded store (LanceDB's binary) and answers the RAG adapter with citations", async () => {
      writeHandbook(dir);
      const summary = await ingestPaths({ adapter: "rag", paths: ["handbook"], cwd: dir, gateway: gateway?.url ?? "", apiKey: KEY });
      assert.equal(summary.files, 3);
      assert.ok(summary.added >= 3, `added ${summary.added}`);
      const answer = (await client.chat.completions.create({
        model: "rag",
        messages: [{ role: "user", content: "What does error E-4711 mean?" }],
        max_tokens: 4,
      })) as OpenAI.ChatCompletion & {
        diatonic?: { citations: { source: string }[] };
      };
      assert.ok(
        answer.diatonic?.citations.some((citation) => citation.source === "handbook/errors.txt"),
        JSON.stringify(answer.diatonic),
      );
    });
  },
);
