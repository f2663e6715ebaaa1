// Config and keys reload while serving: a good file is taken, a bad one is logged and ignored, and
// the Kubernetes way of updating a mounted ConfigMap (swapping the ..data symlink) is seen.
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { mkdirSync, mkdtempSync, readFileSync, renameSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, describe, it } from "node:test";
import { stringify } from "yaml";
import { GatewayConfig } from "../../src/gateway/config.ts";
import { FileWatcher, textHash } from "../../src/file-watch.ts";
import { startGateway } from "../../src/gateway/server.ts";
import { startFixedUpstream, type FixedUpstream } from "./support/fixed-upstream.ts";
import { apiError, eventually, KEYS, keysYaml, LogCapture, startTestGateway, testConfig, type TestGateway } from "./support/harness.ts";

const chat = (model: string) => ({ model, messages: [{ role: "user" as const, content: "hi" }] });

describe("config reload", () => {
  const cleanup: (() => Promise<void>)[] = [];
  afterEach(async () => {
    for (const close of cleanup.splice(0).reverse()) await close();
  });
  async function setup(): Promise<{ up: FixedUpstream; gw: TestGateway }> {
    const up = await startFixedUpstream();
    cleanup.push(() => up.close());
    const gw = await startTestGateway(up.url);
    cleanup.push(() => gw.close());
    return { up, gw };
  }

  it("a good new config is taken without a restart", async () => {
    const { up, gw } = await setup();
    const config = testConfig(up.url, {}, gw.dir);
    gw.writeConfig({
      ...config,
      adapters: [
        ...config.adapters,
        {
          name: "sql",
          route: "/sql",
          upstreamModel: "sql-lora",
          upstream: "engine",
          sampling: {},
          limits: { concurrency: 2, queue: 2, timeoutMs: 1000, firstByteTimeoutMs: 500 },
        },
      ],
    });
    await eventually(() => gw.gateway.config().adapters.some((a) => a.name === "sql"), 5000, "the new adapter");
    await gw.client().chat.completions.create(chat("sql"));
    assert.equal(up.requests.at(-1)?.body?.model, "sql-lora");
    const metrics = await (await fetch(`${gw.gateway.url}/metrics`)).text();
    assert.match(metrics, /diatonic_gateway_config_reloads_total\{result="ok"\} 1/);
  });

  it("a removed adapter is gone: 404 for it, and all its series leave /metrics", async () => {
    const { up, gw } = await setup();
    await gw.client().chat.completions.create(chat("code"));
    await gw
      .client()
      .chat.completions.create({ ...chat("code"), stream: true })
      .then(async (stream) => {
        for await (const chunk of stream) void chunk;
      });
    const refused = await fetch(`${gw.gateway.url}/code/v1/chat/completions`, {
      method: "POST",
      headers: { authorization: `Bearer ${KEYS.all}` },
      body: '{"messages": "not a list"}',
    });
    assert.equal(refused.status, 400);
    const before = await (await fetch(`${gw.gateway.url}/metrics`)).text();
    for (const series of [
      "in_flight_requests",
      "requests_total",
      "tokens_total",
      "request_duration_seconds_bucket",
      "time_to_first_token_seconds_bucket",
    ]) {
      assert.match(before, new RegExp(`diatonic_gateway_${series}\\{[^}]*adapter="code"`), series);
    }
    const config = testConfig(up.url, {}, gw.dir);
    gw.writeConfig({ ...config, adapters: config.adapters.filter((adapter) => adapter.name !== "code") });
    await eventually(() => !gw.gateway.config().adapters.some((a) => a.name === "code"), 5000, "the adapter removed");
    assert.equal((await apiError(gw.client().chat.completions.create(chat("code")))).status, 404);
    const after = await (await fetch(`${gw.gateway.url}/metrics`)).text();
    assert.doesNotMatch(after, /adapter="code"/);
    assert.match(after, /diatonic_gateway_in_flight_requests\{adapter="chatbot"\}/);
  });

  it("a tenant whose keys are removed leaves /metrics; the others stay", async () => {
    const { gw } = await setup();
    await gw.client(KEYS.code).chat.completions.create(chat("code"));
    await gw.client(KEYS.all).chat.completions.create(chat("code"));
    const before = await (await fetch(`${gw.gateway.url}/metrics`)).text();
    for (const series of ["tenant_requests_total", "tenant_tokens_total"]) {
      assert.match(before, new RegExp(`diatonic_gateway_${series}\\{[^}]*tenant="beta"`), series);
    }
    // The keys file without beta's key.
    writeFileSync(
      join(gw.dir, "keys.yaml"),
      keysYaml()
        .split("\n  - ")
        .filter((entry) => !entry.includes("tenant: beta"))
        .join("\n  - "),
    );
    const refused = async () =>
      (await fetch(`${gw.gateway.url}/v1/models`, { headers: { authorization: `Bearer ${KEYS.code}` } })).status === 401;
    await eventually(refused, 5000, "beta's key refused");
    const after = await (await fetch(`${gw.gateway.url}/metrics`)).text();
    assert.doesNotMatch(after, /tenant="beta"/);
    assert.match(after, /diatonic_gateway_tenant_requests_total\{tenant="acme",status="200"\} 1/);
    assert.match(after, /diatonic_gateway_requests_total\{adapter="code",status="200"\} 2/, "the adapter's counts stay");
  });

  it("a bad new config is rejected and logged; the old one keeps serving", async () => {
    const { gw } = await setup();
    gw.writeConfig("apiVersion: diatonic.ai/v1alpha1\nkind: GatewayConfig\nadapters: [oops\n");
    await eventually(() => gw.logs.find("new gateway config rejected; the old one keeps serving").length === 1, 5000, "the rejection log");
    const invalid = readFileSync(gw.configFile, "utf8").replace("adapters: [oops\n", "adapters: []\n");
    gw.writeConfig(invalid);
    await eventually(
      () => gw.logs.find("new gateway config rejected; the old one keeps serving").length === 2,
      5000,
      "the second rejection",
    );
    const rejection = gw.logs.find("new gateway config rejected; the old one keeps serving")[1] as { err: { message: string } };
    assert.match(rejection.err.message, /not a valid GatewayConfig/);
    const completion = await gw.client().chat.completions.create(chat("code"));
    assert.equal(completion.object, "chat.completion");
    assert.equal((await fetch(`${gw.gateway.url}/readyz`)).status, 200);
  });

  it("a keys file emptied while keys are required is served (every call 401) and warned about", async () => {
    const { gw } = await setup();
    const warning =
      "auth is required and the keys file holds no keys: every API call gets 401 until it has one (the keys Secret's keys.yaml)";
    assert.equal(gw.logs.find(warning).length, 0, "not at start: the test keys file has keys");
    writeFileSync(join(gw.dir, "keys.yaml"), "keys: []\n");
    await eventually(() => gw.logs.find(warning).length === 1, 5000, "the warning");
    assert.equal((gw.logs.find(warning)[0] as { level: number }).level, 40);
    assert.equal((await fetch(`${gw.gateway.url}/v1/models`, { headers: { authorization: `Bearer ${KEYS.all}` } })).status, 401);
  });

  it("a new key in the keys Secret works without a restart", async () => {
    const { gw } = await setup();
    const key = "sk-test-added-later";
    const hash = createHash("sha256").update(key).digest("hex");
    writeFileSync(
      join(gw.dir, "keys.yaml"),
      `${keysYaml()}  - sha256: ${hash}\n    tenant: late\n    adapters: [chatbot]\n    scopes: [inference]\n`,
    );
    await eventually(
      async () => (await fetch(`${gw.gateway.url}/v1/models`, { headers: { authorization: `Bearer ${key}` } })).status === 200,
      5000,
      "the new key",
    );
  });

  it("a reload that names another keys file starts watching that file", async () => {
    const { up, gw } = await setup();
    const line = (key: string, tenant: string) =>
      `  - sha256: ${createHash("sha256").update(key).digest("hex")}\n    tenant: ${tenant}\n    adapters: ["*"]\n    scopes: [inference]\n`;
    const otherKeys = join(gw.dir, "other-keys.yaml");
    writeFileSync(otherKeys, `keys:\n${line("sk-other-1", "other")}`);
    gw.writeConfig({ ...testConfig(up.url, {}, gw.dir), auth: { mode: "required", keysFile: otherKeys } });
    const works = (key: string) => async () =>
      (await fetch(`${gw.gateway.url}/v1/models`, { headers: { authorization: `Bearer ${key}` } })).status === 200;
    await eventually(works("sk-other-1"), 5000, "a key from the new keys file");
    writeFileSync(otherKeys, `keys:\n${line("sk-other-1", "other")}${line("sk-other-2", "other")}`);
    await eventually(works("sk-other-2"), 5000, "a key added to the new keys file");
  });

  it("sees a ConfigMap update done the Kubernetes way: a ..data symlink swapped to a new directory", async () => {
    const up = await startFixedUpstream();
    cleanup.push(() => up.close());
    const dir = mkdtempSync(join(tmpdir(), "diatonic-configmap-"));
    cleanup.push(async () => rmSync(dir, { recursive: true, force: true }));
    const version = (name: string, adapters: string[]) => {
      const config = testConfig(up.url, { auth: { mode: "disabled" } });
      mkdirSync(join(dir, name));
      writeFileSync(
        join(dir, name, "config.yaml"),
        stringify(GatewayConfig.parse({ ...config, adapters: config.adapters.filter((a) => adapters.includes(a.name)) })),
      );
    };
    version("..2026_01_01_00_00_00.1", ["code"]);
    symlinkSync("..2026_01_01_00_00_00.1", join(dir, "..data"));
    symlinkSync("..data/config.yaml", join(dir, "config.yaml"));
    const logs = new LogCapture();
    const gateway = await startGateway({
      configFile: join(dir, "config.yaml"),
      port: 0,
      logger: logs.logger,
      defaultMetrics: false,
      watch: { debounceMs: 20, pollMs: 60_000 },
    });
    cleanup.push(() => gateway.close());
    assert.deepEqual(
      gateway.config().adapters.map((a) => a.name),
      ["code"],
    );

    version("..2026_01_01_00_01_00.2", ["code", "chatbot"]);
    symlinkSync("..2026_01_01_00_01_00.2", join(dir, "..data_tmp"));
    renameSync(join(dir, "..data_tmp"), join(dir, "..data"));
    await eventually(() => gateway.config().adapters.length === 2, 5000, "the swapped config (by file events, polling is off)");
    const response = await fetch(`${gateway.url}/chatbot/v1/chat/completions`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify(chat("x")),
    });
    assert.equal(response.status, 200);
  });
});

describe("FileWatcher", () => {
  it("sees a change made between the caller's read and the watcher's start", async () => {
    const dir = mkdtempSync(join(tmpdir(), "diatonic-watch-"));
    const file = join(dir, "keys.yaml");
    writeFileSync(file, "keys: []\n");
    const readByCaller = textHash("keys: []\n");
    writeFileSync(file, "keys: [changed]\n"); // before the watcher exists: no event will come for it
    let changes = 0;
    const watcher = new FileWatcher([file], () => changes++, { pollMs: 60_000 });
    try {
      await watcher.prime(new Map([[file, readByCaller]]));
      await eventually(() => changes === 1, 2000, "the change seen at once");
    } finally {
      watcher.close();
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it("does not call back for the contents it was primed with", async () => {
    const dir = mkdtempSync(join(tmpdir(), "diatonic-watch-"));
    const file = join(dir, "config.yaml");
    writeFileSync(file, "a: 1\n");
    let changes = 0;
    const watcher = new FileWatcher([file], () => changes++, { pollMs: 60_000 });
    try {
      await watcher.prime(new Map([[file, textHash("a: 1\n")]]));
      await new Promise((resolve) => setTimeout(resolve, 200));
      assert.equal(changes, 0);
    } finally {
      watcher.close();
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
