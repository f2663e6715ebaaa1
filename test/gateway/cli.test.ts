// `diatonic gateway` as a process, and the config the renderer writes loaded by the gateway itself.
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createInterface } from "node:readline";
import { Writable } from "node:stream";
import { after, describe, it } from "node:test";
import { pino } from "pino";
import { main } from "../../src/cli/main.ts";
import { parseGatewayConfig } from "../../src/gateway/config-watch.ts";
import { startGateway } from "../../src/gateway/server.ts";
import { buildEnvironment } from "../../src/render/build.ts";
import { startFixedUpstream } from "./support/fixed-upstream.ts";
import { testConfig } from "./support/harness.ts";
import { stringify } from "yaml";
import { GatewayConfig } from "../../src/gateway/config.ts";

function renderedGatewayConfig(environment: string): string {
  const build = buildEnvironment({ file: "examples/lab/platform.yaml", environment });
  const configMap = build.result.placed.find((placed) => placed.object.kind === "ConfigMap" && placed.object.metadata?.name === "gateway");
  const text = (configMap?.object as { data?: Record<string, string> } | undefined)?.data?.["config.yaml"];
  assert.ok(text, "the gateway ConfigMap has config.yaml");
  return text;
}

describe("diatonic gateway", () => {
  const dir = mkdtempSync(join(tmpdir(), "diatonic-gateway-cli-"));
  after(() => rmSync(dir, { recursive: true, force: true }));

  it("loads the config the renderer writes, for every environment", () => {
    for (const environment of ["local", "staging", "production"]) {
      const config = parseGatewayConfig(renderedGatewayConfig(environment), `${environment}/config.yaml`);
      assert.ok(config.adapters.length > 0);
    }
  });

  it("starts on the rendered local config with no engine reachable: alive, ready but degraded (it takes traffic), 503 for requests", async () => {
    const file = join(dir, "rendered.yaml");
    writeFileSync(file, renderedGatewayConfig("local"));
    const gateway = await startGateway({
      configFile: file,
      port: 0,
      logger: pino({ level: "silent" }),
      defaultMetrics: false,
      watch: false,
    });
    try {
      assert.equal((await fetch(`${gateway.url}/healthz`)).status, 200);
      const ready = await fetch(`${gateway.url}/readyz`);
      assert.equal(ready.status, 200);
      const readiness = (await ready.json()) as { status: string; degraded: string[] };
      assert.equal(readiness.status, "degraded");
      assert.ok(
        readiness.degraded.some((line) => line.startsWith("code: no healthy replica of upstream engine")),
        readiness.degraded.join("; "),
      );
      const response = await fetch(`${gateway.url}/code/v1/chat/completions`, {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify({ messages: [{ role: "user", content: "hi" }] }),
      });
      assert.equal(response.status, 503);
      const body = (await response.json()) as { error: { code: string; message: string } };
      assert.equal(body.error.code, "upstream_unavailable");
      assert.match(body.error.message, /no replica of upstream engine is known/);
    } finally {
      await gateway.close();
    }
  });

  it("runs as a process: JSON logs on stdout, serves, and exits 0 on SIGTERM", async () => {
    const upstream = await startFixedUpstream();
    const file = join(dir, "config.yaml");
    writeFileSync(file, stringify(GatewayConfig.parse(testConfig(upstream.url, { auth: { mode: "disabled" } }))));
    const child = spawn(process.execPath, ["bin/diatonic.js", "gateway", "--config", file, "--host", "127.0.0.1", "--port", "0"], {
      stdio: ["ignore", "pipe", "pipe"],
    });
    try {
      const url = await new Promise<string>((resolve, reject) => {
        child.once("exit", (code) => reject(new Error(`exited with ${code}`)));
        createInterface({ input: child.stdout }).on("line", (line) => {
          const entry = JSON.parse(line) as { msg?: string; url?: string };
          if (entry.msg === "gateway listening" && entry.url) resolve(entry.url);
        });
      });
      const response = await fetch(`${url}/v1/chat/completions`, {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify({ model: "code", messages: [{ role: "user", content: "hi" }] }),
      });
      assert.equal(response.status, 200);
      child.removeAllListeners("exit");
      const exited = new Promise<number | null>((resolve) => child.once("exit", resolve));
      child.kill("SIGTERM");
      assert.equal(await exited, 0);
    } finally {
      if (child.exitCode === null) child.kill("SIGKILL");
      await upstream.close();
    }
  });

  it("exits 2 with a message naming the problem for a bad config", async () => {
    const file = join(dir, "bad.yaml");
    writeFileSync(file, "apiVersion: diatonic.ai/v1alpha1\nkind: GatewayConfig\nplatform: x\n");
    let stderr = "";
    const sink = new Writable({
      write: (chunk: Buffer, _encoding, done) => {
        stderr += chunk.toString();
        done();
      },
    });
    const code = await main(["gateway", "--config", file, "--port", "0"], { stdout: sink, stderr: sink, cwd: process.cwd(), env: {} });
    assert.equal(code, 2);
    assert.match(stderr, /bad\.yaml: not a valid GatewayConfig/);
    assert.match(stderr, /server: /);
  });

  it("says so when --config names a platform spec, and how to run one", () => {
    assert.throws(
      () => parseGatewayConfig(readFileSync("examples/lab/platform.yaml", "utf8"), "platform.yaml"),
      (error: Error) =>
        /platform\.yaml is a platform spec \(kind: Platform\), not a gateway config/.test(error.message) &&
        /diatonic dev --spec platform\.yaml/.test((error as { fix?: string }).fix ?? ""),
    );
  });

  it("refuses a timeout longer than a Node timer can wait (it would fire after 1 ms), naming the field", () => {
    const config = testConfig("http://127.0.0.1:9");
    const adapters = config.adapters.map((adapter, index) =>
      index === 0 ? { ...adapter, limits: { ...adapter.limits, timeoutMs: 3_000_000_000 } } : adapter,
    );
    assert.throws(
      () => parseGatewayConfig(stringify({ ...config, adapters }), "long.yaml"),
      (error: Error) =>
        /long\.yaml: not a valid GatewayConfig/.test(error.message) &&
        /adapters\.0\.limits\.timeoutMs: must be at most 2147483647 ms/.test(error.message),
    );
    assert.doesNotThrow(() =>
      parseGatewayConfig(
        stringify({
          ...config,
          adapters: adapters.map((adapter) => ({ ...adapter, limits: { ...adapter.limits, timeoutMs: 2 ** 31 - 1 } })),
        }),
        "longest.yaml",
      ),
    );
  });
});
