// An engine that stops answering while it holds requests: the gateway's active health check ejects it
// and retries what waited on it. The frozen engine is real: a `diatonic engine` process (llama.cpp,
// the tiny generated model) stopped with SIGSTOP, as a wedged process or a node gone with its
// connections open looks from the gateway: connections open, nothing answers, /health included.
import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, afterEach, before, describe, it } from "node:test";
import { writeTestModels } from "../../src/engine/index.ts";
import type { GatewayConfigInput } from "../../src/gateway/config.ts";
import { startEngineProcess, type EngineProcess } from "../support/engine-process.ts";
import { FIXED_TEXT, startFixedUpstream, type FixedUpstream } from "./support/fixed-upstream.ts";
import { adaptersWith, apiError, eventually, startTestGateway, type TestGateway } from "./support/harness.ts";

const chat = { model: "chatbot", messages: [{ role: "user" as const, content: "hi" }] };

describe("a replica that stops answering: the active health check", () => {
  const cleanup: (() => Promise<void> | void)[] = [];
  afterEach(async () => {
    for (const close of cleanup.splice(0).reverse()) await close();
  });
  /** A fake upstream and a gateway in front of it with these health settings (a minute's total timeout), both closed after the test. */
  async function checkedGateway(
    health: NonNullable<GatewayConfigInput["upstreams"][string]["health"]>,
    firstByteTimeoutMs = 10_000,
  ): Promise<{ up: FixedUpstream; gw: TestGateway }> {
    const up = await startFixedUpstream();
    cleanup.push(() => up.close());
    const gw = await startTestGateway(up.url, {
      adapters: adaptersWith(up.url, { timeoutMs: 60_000, firstByteTimeoutMs }),
      upstreams: { engine: { url: up.url, connectTimeoutMs: 300, health } },
    });
    cleanup.push(() => gw.close());
    return { up, gw };
  }

  describe("with two real engine processes, one frozen by SIGSTOP", () => {
    let dir: string;
    let engines: EngineProcess[];
    before(async () => {
      dir = mkdtempSync(join(tmpdir(), "diatonic-hung-engine-"));
      const files = writeTestModels(dir);
      const start = () =>
        startEngineProcess({ modelPath: files.model, args: ["--threads", "1", "--parallel", "2", "--max-model-len", "512"] });
      engines = await Promise.all([start(), start()]);
    });
    after(() => {
      for (const engine of engines ?? []) {
        engine.child.kill("SIGCONT");
        engine.child.kill("SIGTERM");
      }
      rmSync(dir, { recursive: true, force: true });
    });

    it("ejects the frozen engine and retries the non-streamed requests that waited on it on the other, long before their total timeout; SIGCONT brings it back", async () => {
      const [live, frozen] = engines as [EngineProcess, EngineProcess];
      // The total timeout is what those requests would wait out without the check: it fails them with 504.
      const limits = { concurrency: 8, queue: 8, timeoutMs: 60_000, firstByteTimeoutMs: 10_000 };
      const gw: TestGateway = await startTestGateway(live.url, {
        upstreams: {
          engine: {
            url: live.url,
            replicas: [frozen.url],
            discovery: "static",
            connectTimeoutMs: 300,
            health: { ejectAfterFailures: 2, ejectionMs: 300, maxEjectionMs: 1000, checkIntervalMs: 200, checkTimeoutMs: 500 },
          },
        },
        baseModel: { name: "tiny", upstream: "engine" },
        embeddings: { upstream: "engine", model: "tiny" },
        adapters: [
          {
            name: "chatbot",
            route: "/chatbot",
            upstreamModel: "tiny",
            upstream: "engine",
            sampling: { temperature: 0, maxTokens: 4 },
            limits,
          },
        ],
      });
      cleanup.push(() => gw.close());
      const client = () => {
        const base = gw.client();
        return base.withOptions({ timeout: 120_000 });
      };
      // Both engines answer before the freeze.
      for (let i = 0; i < 4; i++) await client().chat.completions.create(chat);

      frozen.child.kill("SIGSTOP");
      // Least-outstanding sends about half of these to the frozen engine.
      const answers = await Promise.all(Array.from({ length: 6 }, () => client().chat.completions.create(chat)));
      for (const answer of answers) assert.ok((answer.choices[0]?.message.content ?? "").length > 0);

      const ejected = gw.logs.find("upstream replica ejected");
      assert.ok(ejected.length >= 1, "the frozen engine was not ejected");
      assert.equal(ejected[0]?.reason, "health check failed");
      assert.equal(ejected[0]?.replica, new URL(frozen.url).origin);
      const metrics = await (await fetch(`${gw.gateway.url}/metrics`)).text();
      assert.match(metrics, /^diatonic_gateway_upstream_healthy_replicas\{upstream="engine"\} 1$/m);
      assert.match(metrics, /^diatonic_gateway_upstream_retries_total\{upstream="engine",reason="upstream_unreachable"\} [1-9]/m);

      frozen.child.kill("SIGCONT");
      await eventually(() => gw.logs.find("upstream replica restored").length > 0, 20_000, "the probe to restore the engine after SIGCONT");
    });
  });

  it("a busy fake upstream whose health path never answers, but which answers requests, is not ejected by the check", async () => {
    const { up, gw } = await checkedGateway({ ejectAfterFailedChecks: 2, ejectionMs: 30_000, checkIntervalMs: 100, checkTimeoutMs: 300 });
    up.health = "hang";
    // Requests keep coming and being answered while several checks time out.
    const checks = () => up.requests.filter((r) => r.path === "/health").length;
    for (let i = 0; checks() < 5; i++) {
      assert.ok(i < 5000, `only ${checks()} health checks in 5,000 requests`);
      const completion = await gw.client().chat.completions.create(chat);
      assert.equal(completion.choices[0]?.message.content, FIXED_TEXT);
    }
    assert.deepEqual(gw.logs.find("upstream replica ejected"), []);
    const metrics = await (await fetch(`${gw.gateway.url}/metrics`)).text();
    assert.match(metrics, /^diatonic_gateway_upstream_healthy_replicas\{upstream="engine"\} 1$/m);
  });

  it("a fake upstream busy with one long stream, whose health path never answers, is not ejected: the stream's tokens are signs of life", async () => {
    const { up, gw } = await checkedGateway({ ejectAfterFailedChecks: 2, ejectionMs: 30_000, checkIntervalMs: 100, checkTimeoutMs: 300 });
    up.health = "hang";
    // 20 events 100 ms apart: about six checks time out while it runs, no new answer starts.
    up.behaviour = { kind: "slow-stream", delayMs: 100, chunks: 20 };
    const stream = await gw
      .client()
      .withOptions({ timeout: 60_000 })
      .chat.completions.create({ ...chat, stream: true });
    let text = "";
    for await (const chunk of stream) text += chunk.choices[0]?.delta.content ?? "";
    assert.match(text, /tick19 $/);
    assert.ok(up.requests.filter((r) => r.path === "/health").length >= 3, "the checks ran while it streamed");
    assert.deepEqual(gw.logs.find("upstream replica ejected"), []);
  });

  it("an idle fake upstream whose health path stops answering is ejected, and /readyz says so; checkIntervalMs 0 turns the check off", async () => {
    const checked = await startFixedUpstream();
    const unchecked = await startFixedUpstream();
    cleanup.push(
      () => checked.close(),
      () => unchecked.close(),
    );
    const gw = await startTestGateway(checked.url, {
      upstreams: {
        engine: {
          url: checked.url,
          connectTimeoutMs: 300,
          health: { ejectAfterFailures: 2, ejectionMs: 30_000, checkIntervalMs: 100, checkTimeoutMs: 200 },
        },
        other: { url: unchecked.url, connectTimeoutMs: 300, health: { ejectAfterFailures: 1, checkIntervalMs: 0 } },
      },
    });
    cleanup.push(() => gw.close());
    checked.health = "hang";
    unchecked.health = "hang";
    await eventually(() => gw.logs.find("upstream replica ejected").length > 0, 10_000, "the check to eject the replica");
    const ready = (await (await fetch(`${gw.gateway.url}/readyz`)).json()) as { status: string; degraded: string[] };
    assert.equal(ready.status, "degraded");
    assert.ok(
      ready.degraded.some((line) => line.includes("no healthy replica of upstream engine")),
      ready.degraded.join("; "),
    );
    assert.equal(unchecked.requests.filter((r) => r.path === "/health").length, 0, "checkIntervalMs 0 still checked");
    assert.deepEqual(
      gw.logs.find("upstream replica ejected").map((line) => line.upstream),
      ["engine"],
    );
  });

  it("a stream under way on a fake upstream that then stops answering, /health included, ends with an error event at the ejection, not at its total timeout", async () => {
    const { up, gw } = await checkedGateway({ ejectAfterFailedChecks: 2, ejectionMs: 30_000, checkIntervalMs: 100, checkTimeoutMs: 200 });
    // One event, then nothing: a frozen engine mid-answer.
    up.behaviour = { kind: "stall-stream" };
    up.health = "hang";
    const stream = await gw
      .client()
      .withOptions({ timeout: 120_000 })
      .chat.completions.create({ ...chat, stream: true });
    const failure = await (async () => {
      try {
        for await (const _chunk of stream);
      } catch (error) {
        return error as Error;
      }
      return undefined;
    })();
    assert.ok(failure, "the stream ended without an error");
    assert.match(failure.message, /the engine stopped answering \(its health checks failed/);
    assert.equal(gw.logs.find("upstream replica ejected")[0]?.reason, "health check failed");
  });

  it("a lone fake replica that stops answering, /health included: a non-streamed request waiting on it gets 503 naming the failed checks, not its total timeout", async () => {
    const { up, gw } = await checkedGateway({ ejectAfterFailedChecks: 2, ejectionMs: 30_000, checkIntervalMs: 100, checkTimeoutMs: 200 });
    up.behaviour = { kind: "hang" };
    up.health = "hang";
    const failed = await apiError(gw.client().withOptions({ timeout: 120_000 }).chat.completions.create(chat));
    assert.equal(failed.status, 503);
    assert.equal(failed.code, "upstream_unreachable");
    assert.match(failed.message, /stopped answering: 2 health checks of \/health in a row failed \(last: no answer within 200 ms\)/);
  });

  it("a fake replica ejected by a failed request first (a stream's first-byte timeout), with the check off: the probe that finds it still silent takes back the request waiting on it", async () => {
    const { up, gw } = await checkedGateway(
      { ejectAfterFailures: 1, ejectionMs: 100, maxEjectionMs: 200, checkIntervalMs: 0, checkTimeoutMs: 200, ejectAfterFailedChecks: 2 },
      300,
    );
    up.behaviour = { kind: "hang" };
    up.health = "hang";
    const client = gw.client().withOptions({ timeout: 120_000 });
    const waiting = apiError(client.chat.completions.create(chat));
    await eventually(() => up.requests.some((r) => r.path === "/v1/chat/completions"), 5000, "the request to reach the upstream");
    const stream = await apiError(client.chat.completions.create({ ...chat, stream: true }));
    assert.equal(stream.code, "upstream_timeout");
    const failed = await waiting;
    assert.equal(failed.status, 503);
    assert.match(
      failed.message,
      /stopped answering: ejected \(requests failed\), it answered nothing since, and 2 probes of its health path failed/,
    );
    assert.equal(gw.logs.find("upstream replica ejected")[0]?.reason, "requests failed");
  });
});
