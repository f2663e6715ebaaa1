// Placement through the adapter agents, with real parts: three local engines (llama.cpp, tiny
// generated model), each with its adapter agent at the same port on its own address (as in a pod),
// and a gateway that places the adapters (policy diatonic) and tells the agents. Each adapter is then
// loaded only where it is placed; when a replica leaves, its adapters are loaded on the others; when
// the gateway falls silent, an agent loads every adapter again.
import assert from "node:assert/strict";
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { createServer, type Server } from "node:http";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { freePort } from "../../scripts/cluster/processes.ts";
import { PLACED_ELSEWHERE, type AgentStatusBody, type RunningAdapterAgent } from "../../src/adapters/index.ts";
import { writeGgufFile } from "../../src/engine/gguf/writer.ts";
import type { RunningEngine } from "../../src/engine/index.ts";
import { tinyLoraAdapter, writeTestModels } from "../../src/engine/tiny/model.ts";
import { GatewayConfig, type GatewayConfigInput } from "../../src/gateway/config.ts";
import { PlacementPublisher } from "../../src/gateway/placement.ts";
import { lorasOf } from "../../src/gateway/residency.ts";
import { UpstreamPool } from "../../src/gateway/upstream.ts";
import { eventually, placementConfig, startTestGateway, testConfig, type TestGateway } from "./support/harness.ts";
import { startAgentReplica, tinyAdapterSetYaml } from "../support/agent-replica.ts";

const ADAPTERS = ["a1", "a2", "a3", "a4", "a5", "a6"];
const HOSTS = ["127.0.0.11", "127.0.0.12", "127.0.0.13"];
const limits = { concurrency: 4, queue: 8, timeoutMs: 20_000, firstByteTimeoutMs: 10_000 };

async function engineModels(engine: RunningEngine): Promise<string[]> {
  return [...lorasOf(await (await fetch(`${engine.url}/v1/models`)).json())].sort();
}

async function agentStatus(agent: RunningAdapterAgent): Promise<AgentStatusBody> {
  return (await (await fetch(`${agent.url}/status`)).json()) as AgentStatusBody;
}

describe("placement: the gateway decides where each adapter is loaded, the adapter agents load it there", () => {
  let dir: string;
  const engines: RunningEngine[] = [];
  const agents: RunningAdapterAgent[] = [];
  let gw: TestGateway;
  let config: (hosts: readonly RunningEngine[]) => Partial<GatewayConfigInput>;

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), "diatonic-placement-"));
    const models = writeTestModels(join(dir, "model"));
    mkdirSync(join(dir, "loras"));
    const adapters = ADAPTERS.map((name, i) => {
      const path = join(dir, "loras", `${name}.gguf`);
      writeGgufFile(path, tinyLoraAdapter({ seed: 100 + i, rank: 4 }));
      return { name, source: { path }, rank: 4 };
    });
    const setFile = join(dir, "adapters.yaml");
    writeFileSync(setFile, tinyAdapterSetYaml(adapters));
    const agentPort = await freePort();
    for (const [i, host] of HOSTS.entries()) {
      const replica = await startAgentReplica({
        modelPath: models.model,
        host,
        setFile,
        cacheDir: join(dir, `cache-${i}`),
        agentPort,
        agent: { placementGraceMs: 300 },
      });
      engines.push(replica.engine);
      agents.push(replica.agent);
    }
    config = (hosts) =>
      placementConfig(
        hosts.map((engine) => engine.url),
        agentPort,
        ADAPTERS,
        limits,
      );
    // Before any gateway speaks, every agent loads every adapter (no placement: as before it).
    await eventually(
      async () => (await Promise.all(engines.map(engineModels))).every((loaded) => loaded.length === ADAPTERS.length),
      30_000,
      "every adapter loaded everywhere before placement",
    );
    gw = await startTestGateway(engines[0]?.url ?? "", config(engines));
  });
  after(async () => {
    await gw?.close();
    for (const agent of agents) await agent.close();
    for (const engine of engines) await engine.close();
    rmSync(dir, { recursive: true, force: true });
  });

  const ask = (model: string) => gw.client().chat.completions.create({ model, messages: [{ role: "user", content: "hello" }] });

  const count = (placed: readonly string[][]) => ADAPTERS.map((name) => placed.filter((names) => names.includes(name)).length);
  /** What each agent says now (its placement, and the gateways whose word it has) and the adapters each engine holds. */
  async function current(among: readonly number[] = [0, 1, 2]) {
    const statuses = await Promise.all(among.map((i) => agentStatus(agents[i] as RunningAdapterAgent)));
    const loaded = await Promise.all(among.map((i) => engineModels(engines[i] as RunningEngine)));
    return { statuses, placed: statuses.map((status) => [...(status.placement.placed ?? [])]), loaded };
  }
  /** What each agent was placed, once each adapter is placed as expected and every engine holds exactly that (the grace period past). */
  async function settled(what: string, expected: readonly number[], among: readonly number[] = [0, 1, 2]): Promise<string[][]> {
    let placed: string[][] = [];
    await eventually(
      async () => {
        const now = await current(among);
        const { statuses, loaded } = now;
        placed = now.placed;
        const words = statuses.map((status) => status.placement.gateways.length);
        // And the gateway has seen it (its residency poll): until then an adapter between replicas gets 503 adapter_loading.
        const ready = (await (await fetch(`${gw.gateway.url}/readyz`)).json()) as {
          upstreams: { name: string; replicas: { origin: string; loras?: string[] }[] }[];
        };
        const seen = new Map((ready.upstreams.find((u) => u.name === "engine")?.replicas ?? []).map((r) => [r.origin, r.loras ?? []]));
        return (
          words.every((n) => n === 1) &&
          JSON.stringify(count(placed)) === JSON.stringify(expected) &&
          placed.every((names, i) => JSON.stringify(names) === JSON.stringify(loaded[i])) &&
          among.every((i, k) => JSON.stringify(seen.get(new URL(engines[i]?.url ?? "").origin)) === JSON.stringify(placed[k]))
        );
      },
      30_000,
      what,
    );
    return placed;
  }
  let holder = -1;

  it("loads each adapter only on the replicas placed for it, and routes its requests there", async (t) => {
    // Idle adapters are cold: each on one replica (the tail, where rare adapters churn), every adapter somewhere.
    const placed = await settled("each adapter placed once, and each engine holding exactly what its agent was placed", [1, 1, 1, 1, 1, 1]);
    assert.deepEqual(count(placed), [1, 1, 1, 1, 1, 1], `every adapter placed exactly once: ${JSON.stringify(placed)}`);
    holder = placed.findIndex((names) => names.length > 0);
    const other = agents.findIndex((_, i) => !(placed[i] ?? []).includes("a1"));
    const status = await agentStatus(agents[other] as RunningAdapterAgent);
    const a1 = status.adapters.find((a) => a.name === "a1");
    assert.equal(a1?.state, "unloaded");
    assert.equal(a1?.reason, PLACED_ELSEWHERE);
    assert.equal(status.placement.gateways.length, 1, "one gateway's word");

    // Requests are demand, and demand places adapters: the hottest get a slot of their own on a pinned
    // replica. So demand first, then what it placed, then requests routed under that placement. Each
    // round asks every adapter once, so that no adapter gets 1.5 times hotter than a pinned one (the
    // margin before a pinned slot changes hands) and the placement holds while the requests run.
    const rounds = async () => {
      for (let i = 0; i < 3; i++) for (const name of ADAPTERS) assert.equal((await ask(name)).object, "chat.completion");
    };
    await rounds();
    // The placement must hold while the check runs, and it may not: placements are worked out every
    // 500 ms, so the one the agents and engines settle on can predate the last requests' demand, and
    // the next one moves an adapter during the check (CI once saw a6 served on a replica it had just
    // been placed on, 1.2 s into the test); a home or tail count also narrows 15 s after its demand
    // fell. So the check ends by asking whether the agents' placement and the engines' adapters are
    // still what it began with; if not, it runs again under the new placement, three times at most.
    let home = new Map<string, string>();
    let served: ReturnType<typeof gw.logs.find> = [];
    for (let attempt = 1; ; attempt++) {
      const byDemand = await settled("each adapter placed once by its demand, and each engine holding exactly that", [1, 1, 1, 1, 1, 1]);
      home = new Map(byDemand.flatMap((names, i) => names.map((name) => [name, new URL(engines[i]?.url ?? "").origin] as const)));
      const before = gw.logs.find("request").length;
      await rounds();
      served = gw.logs
        .find("request")
        .slice(before)
        .filter((l) => l.status === 200);
      const { placed: placedAfter, loaded: loadedAfter } = await current();
      const held = JSON.stringify(placedAfter) === JSON.stringify(byDemand) && JSON.stringify(loadedAfter) === JSON.stringify(byDemand);
      if (held) break;
      const moved = `placed ${JSON.stringify(byDemand)}, then placed ${JSON.stringify(placedAfter)} and loaded ${JSON.stringify(loadedAfter)}`;
      assert.ok(attempt < 3, `the placement moved during each of 3 checks: ${moved}`);
      t.diagnostic(`check ${attempt}: the placement moved while it ran (${moved}); checking again`);
    }
    assert.equal(served.length, ADAPTERS.length * 3);
    for (const line of served)
      assert.equal(line.replica, home.get(String(line.adapter)), `${String(line.adapter)} served where it is placed`);
    // At the first try: not sent elsewhere, answered 404 there and retried on the placed replica.
    for (const line of served) assert.equal(line.attempts, 1, `${String(line.adapter)} routed to its replica at the first try`);
    const metrics = await (await fetch(`${gw.gateway.url}/metrics`)).text();
    assert.match(metrics, /diatonic_gateway_placement_publishes_total\{upstream="engine",result="ok"\} [1-9]/);
    // The routing metrics: a decision per request routed, by reason; each one a residency hit or miss;
    // each miss a swap of its adapter. 36 requests (the warm-up's may have retried once placement moved).
    const series = (name: string) =>
      [...metrics.matchAll(new RegExp(`^${name}\\{([^}]*)\\} (\\d+)$`, "gm"))].map((m) => ({ labels: m[1] ?? "", value: Number(m[2]) }));
    const sum = (rows: { value: number }[]) => rows.reduce((total, row) => total + row.value, 0);
    const decisions = series("diatonic_gateway_routing_decisions_total");
    assert.ok(
      decisions.length > 0 && decisions.every((d) => /policy="diatonic",reason="(resident|resident-away|home|spill)"/.test(d.labels)),
      JSON.stringify(decisions),
    );
    assert.ok(sum(decisions) >= ADAPTERS.length * 6, `${sum(decisions)} decisions`);
    const residency = series("diatonic_gateway_residency_total");
    const hits = sum(residency.filter((r) => r.labels === 'result="hit"'));
    const misses = sum(residency.filter((r) => r.labels === 'result="miss"'));
    assert.equal(hits + misses, sum(decisions));
    assert.ok(hits > 0, "a request where its adapter was resident");
    const swaps = series("diatonic_gateway_adapter_swaps_total");
    assert.equal(sum(swaps), misses, "a swap per miss");
    // Each adapter came into a slot at least once: one series per adapter.
    assert.deepEqual(
      swaps.map((s) => s.labels).sort(),
      ADAPTERS.map((name) => `adapter="${name}"`),
    );
  });

  it("when a replica leaves, its adapters are placed and loaded on the others, and they serve", async () => {
    assert.ok(holder >= 0);
    const leaving = engines[holder] as RunningEngine;
    const staying = [0, 1, 2].filter((i) => i !== holder);
    gw.writeConfig(testConfig("", config(staying.map((i) => engines[i] as RunningEngine)), gw.dir));
    const placed = await settled("the leaving replica's adapters placed and loaded on the other two", [1, 1, 1, 1, 1, 1], staying);
    assert.deepEqual(count(placed), [1, 1, 1, 1, 1, 1], JSON.stringify(placed));
    const before = gw.logs.find("request").length;
    for (const name of ADAPTERS) assert.equal((await ask(name)).object, "chat.completion");
    const served = gw.logs.find("request").slice(before);
    assert.ok(
      served.every((l) => l.status === 200 && l.replica !== new URL(leaving.url).origin),
      JSON.stringify(served),
    );
  });

  it("an agent that no gateway speaks to any more loads every adapter again, once the last word lapses", async () => {
    const left = agents[holder] as RunningAdapterAgent;
    await eventually(async () => (await agentStatus(left)).placement.placed === null, 10_000, "the left agent's placement lapsed");
    await eventually(async () => (await engineModels(engines[holder] as RunningEngine)).length === ADAPTERS.length, 30_000, "all loaded");
  });

  it("keeps every adapter on two replicas with minReplicas 2, so that losing one replica loses no adapter", async () => {
    const all = config(engines);
    const upstream = all.upstreams?.engine;
    assert.ok(upstream?.placement);
    gw.writeConfig(
      testConfig("", { ...all, upstreams: { engine: { ...upstream, placement: { ...upstream.placement, minReplicas: 2 } } } }, gw.dir),
    );
    // The old word (minReplicas 1) lapses within its TTL; then each engine holds what the new one places.
    await eventually(
      async () => (await Promise.all(agents.map(agentStatus))).every((s) => s.placement.gateways.length === 1),
      10_000,
      "one gateway word per agent",
    );
    const placed = await settled("each adapter placed and loaded on two replicas", [2, 2, 2, 2, 2, 2]);
    assert.deepEqual(count(placed), [2, 2, 2, 2, 2, 2], JSON.stringify(placed));
  });

  it("refuses a placement that is not one, naming what is wrong", async () => {
    const agent = agents[0] as RunningAdapterAgent;
    const bad = await fetch(`${agent.url}/v1/placement`, {
      method: "PUT",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ gateway: "g", adapters: "a1", ttlMs: 10 }),
    });
    assert.equal(bad.status, 400);
    const body = (await bad.json()) as { error: string; fix: string };
    assert.match(body.error, /adapters: .*expected array/i);
    assert.match(body.error, /ttlMs/);
    assert.match(body.fix, /"gateway"/);
    assert.equal((await fetch(`${agent.url}/v1/placement`)).status, 405);
    const notJson = await fetch(`${agent.url}/v1/placement`, { method: "PUT", body: "{" });
    assert.equal(notJson.status, 400);
    assert.match(((await notJson.json()) as { error: string }).error, /not JSON/);
  });
});

describe("placement config", () => {
  const upstream = (placement: Record<string, number>, residency = true) =>
    GatewayConfig.safeParse({
      ...testConfig("http://127.0.0.1:1"),
      upstreams: {
        engine: { url: "http://127.0.0.1:1", discovery: "static", ...(residency ? { residency: { pollMs: 1000 } } : {}), placement },
      },
    });
  it("needs residency, and a TTL of at least two publishes, and says so", () => {
    const noResidency = upstream({ agentPort: 8001 }, false);
    assert.equal(noResidency.success, false);
    assert.match(noResidency.error?.message ?? "", /placement needs residency/);
    const shortTtl = upstream({ agentPort: 8001, publishMs: 2000, ttlMs: 3000 });
    assert.equal(shortTtl.success, false);
    assert.match(shortTtl.error?.message ?? "", /ttlMs must be at least twice publishMs/);
    const ok = upstream({ agentPort: 8001 });
    assert.equal(ok.success, true);
    assert.deepEqual(ok.data?.upstreams.engine?.placement, { agentPort: 8001, publishMs: 2000, ttlMs: 30_000, minReplicas: 1 });
  });

  it("routing.cpuLoras reaches the placement: three adapters with no demand, over three replicas that keep one each in host memory, one a replica", async () => {
    const config = GatewayConfig.parse({
      ...testConfig("http://127.0.0.1:1"),
      upstreams: {
        engine: {
          url: "http://127.0.0.21:8000",
          replicas: ["http://127.0.0.22:8000", "http://127.0.0.23:8000"],
          discovery: "static",
          residency: { pollMs: 1000 },
          placement: { agentPort: 8001 },
        },
      },
    });
    const upstream = config.upstreams.engine;
    assert.ok(upstream);
    const spread = async (cpuLoras: number | undefined) => {
      const pool = new UpstreamPool("engine", upstream, {}, { ...config.routing, policy: "diatonic", cpuLoras });
      // Its replicas (nothing listens there: their residency and load polls fail, which ejects none).
      await pool.start();
      try {
        const plan = pool.placementPlan(["x", "y", "z"]);
        assert.ok(plan);
        return [...plan.values()].map((held) => held.length).sort();
      } finally {
        await pool.close();
      }
    };
    assert.deepEqual(await spread(1), [1, 1, 1]);
    // Unbounded, an adapter with no demand goes to the one tail replica.
    assert.deepEqual(await spread(undefined), [0, 0, 3]);
  });
});

describe("placement answers: an adapter is failed only when every healthy replica it is placed on says so (fake agents)", () => {
  it("waits for each placed replica's word, and leaves out a replica that is not healthy", async () => {
    const port = await freePort();
    const hosts = ["127.0.0.21", "127.0.0.22"];
    // Each fake agent answers the placement with the adapters it is told to call failed.
    const failing = new Map<string, string[]>(hosts.map((host) => [host, []]));
    const servers = await Promise.all(
      hosts.map(
        (host) =>
          new Promise<Server>((resolve) => {
            const server = createServer((req, res) => {
              req.resume();
              req.on("end", () => {
                const failed = (failing.get(host) ?? []).map((name) => ({
                  name,
                  reason: `fetching ${name} failed on ${host}`,
                  attempts: 1,
                  retryAt: new Date(Date.parse("2030-01-01T00:00:00Z") + (host.endsWith("21") ? 5000 : 1000)).toISOString(),
                }));
                res.writeHead(200, { "content-type": "application/json" }).end(JSON.stringify({ placed: ["x"], unknown: [], failed }));
              });
            });
            server.listen(port, host, () => resolve(server));
          }),
      ),
    );
    const origins = hosts.map((host) => `http://${host}:8000`);
    const publisher = new PlacementPublisher({
      upstream: "engine",
      agentPort: port,
      publishMs: 60_000,
      ttlMs: 120_000,
      plan: () => new Map(origins.map((origin) => [origin, ["x"]])),
    });
    try {
      failing.set("127.0.0.21", ["x"]);
      await publisher.publish(true);
      assert.equal(publisher.failure("x", origins), undefined, "the other replica may still load it");
      assert.equal(publisher.failure("y", origins), undefined, "not placed anywhere: not failed");
      assert.deepEqual(publisher.failure("x", [origins[0] as string]), {
        reason: "fetching x failed on 127.0.0.21",
        replicas: [origins[0]],
        retryAt: Date.parse("2030-01-01T00:00:05Z"),
      });
      failing.set("127.0.0.22", ["x"]);
      await publisher.publish(true);
      assert.deepEqual(publisher.failure("x", origins), {
        reason: "fetching x failed on 127.0.0.21",
        replicas: origins,
        retryAt: Date.parse("2030-01-01T00:00:01Z"),
      });
    } finally {
      await publisher.close();
      for (const server of servers) server.close();
    }
  });
});
