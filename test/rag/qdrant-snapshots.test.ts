// The rendered snapshot CronJob's own script (src/render/qdrant-snapshots.ts), run with /bin/sh and
// curl against a real Qdrant server as the Job's container runs it: snapshots are taken and listed,
// only the newest KEEP stay, a wrong key fails the Job, and a taken snapshot restores into a new node.
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { readdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { setTimeout as sleep } from "node:timers/promises";
import { snapshotScript } from "../../src/render/qdrant-snapshots.ts";
import { QdrantStore } from "../../src/rag/qdrant-store.ts";
import type { StoredChunk } from "../../src/rag/store.ts";
import { findTestQdrant, startTestCluster, startTestQdrant, type TestCluster, type TestQdrant } from "./support/qdrant.ts";
import { tool, unmet } from "../support/needs.ts";

const found = await findTestQdrant();
// The CronJob's script runs under sh and calls curl.
const skip = found.skip ?? unmet("the Qdrant snapshot tier", [tool("sh", "dash"), tool("curl", "curl")]);

const uuid = (n: number) => `00000000-0000-4000-8000-${String(n).padStart(12, "0")}`;
const chunk = (n: number, source: string, text: string): StoredChunk => ({
  id: uuid(n),
  source,
  chunk: 0,
  hash: `h${n}`,
  text,
  vector: [n % 2, 1, 0, 0],
});

interface Snapshot {
  name: string;
  checksum: string;
}

/** The collection every case snapshots: two documents, one of which a case deletes after its snapshot. */
async function seedHandbook(store: QdrantStore): Promise<void> {
  await store.ensureCollection("handbook", 4);
  await store.upsert("handbook", [
    chunk(1, "errors.txt", "E-4711 means the scratch volume is full"),
    chunk(2, "onboarding.md", "Laptops are handed out on day one"),
  ]);
}

/** Qdrant names a snapshot after the second it was taken: one a second. */
const nextSecond = () => sleep(1100 - (Date.now() % 1000));

/** The Job's container: the script as rendered, its environment as the CronJob sets it. */
const runScript = (env: { QDRANT_HOSTS: string; SNAPSHOT_SCOPE: string; QDRANT_API_KEY: string; KEEP: string }) =>
  spawnSync("/bin/sh", ["-c", snapshotScript()], { encoding: "utf8", env: { PATH: process.env.PATH, ...env } });

describe("Qdrant snapshots as the rendered CronJob takes them", { skip, timeout: 300_000 }, () => {
  let qdrant: TestQdrant;
  let store: QdrantStore;
  const snapshots = async (): Promise<Snapshot[]> =>
    ((await (await fetch(`${qdrant.url}/snapshots`, { headers: { "api-key": qdrant.apiKey } })).json()) as { result: Snapshot[] }).result;
  const runJob = (env: { QDRANT_API_KEY: string; KEEP: string }) => runScript({ QDRANT_HOSTS: host(), SNAPSHOT_SCOPE: "storage", ...env });
  const host = () => `127.0.0.1:${qdrant.server.httpPort}`;

  before(async () => {
    qdrant = await startTestQdrant(found.binary as NonNullable<typeof found.binary>);
    store = new QdrantStore({ url: qdrant.url, apiKey: qdrant.apiKey });
    await seedHandbook(store);
  });
  after(async () => {
    await qdrant?.close();
  });

  it("takes a snapshot per run, lists them, and keeps only the newest KEEP", async () => {
    const outputs: string[] = [];
    for (let run = 0; run < 3; run++) {
      if (run > 0) await nextSecond();
      const job = runJob({ QDRANT_API_KEY: qdrant.apiKey, KEEP: "2" });
      assert.equal(job.status, 0, job.stderr);
      outputs.push(job.stdout.trim());
    }
    assert.deepEqual(
      outputs.map((line) => line.replace(/full-snapshot-[\d-]+\.snapshot/, "NAME").replaceAll(host(), "HOST")),
      ["HOST: snapshot taken; 1 kept", "HOST: snapshot taken; 2 kept", "HOST: deleted NAME\nHOST: snapshot taken; 2 kept"],
    );
    const kept = await snapshots();
    assert.equal(kept.length, 2);
    assert.ok(
      kept.every((s) => /^full-snapshot-\d{4}-\d\d-\d\d-\d\d-\d\d-\d\d\.snapshot$/.test(s.name)),
      JSON.stringify(kept),
    );
    const files = readdirSync(join(qdrant.dir, "snapshots")).filter((name) => name.endsWith(".snapshot"));
    assert.deepEqual(files.sort(), kept.map((s) => s.name).sort(), "the deleted snapshot's file is gone from the snapshots volume");
    const deleted = /deleted (\S+)/.exec(outputs[2] ?? "")?.[1] ?? "";
    assert.ok(
      kept.every((s) => s.name > deleted),
      `the oldest (${deleted}) was deleted, the newest kept: ${kept.map((s) => s.name).join(", ")}`,
    );
  });

  it("fails the Job (non-zero, nothing taken) when the API key is wrong", async () => {
    await nextSecond();
    const before = (await snapshots()).map((s) => s.name);
    const job = runJob({ QDRANT_API_KEY: "wrong-key", KEEP: "2" });
    assert.notEqual(job.status, 0);
    assert.match(job.stderr, /401/);
    assert.deepEqual(
      (await snapshots()).map((s) => s.name),
      before,
    );
  });

  it("restores: a node started from a downloaded snapshot has the data as it was when the snapshot was taken", async () => {
    const newest = (await snapshots())
      .map((s) => s.name)
      .sort()
      .at(-1) as string;
    const response = await fetch(`${qdrant.url}/snapshots/${newest}`, { headers: { "api-key": qdrant.apiKey } });
    assert.equal(response.status, 200);
    const file = join(qdrant.dir, "restore.snapshot");
    writeFileSync(file, Buffer.from(await response.arrayBuffer()));
    await store.deleteBySource("handbook", ["errors.txt"]);
    assert.deepEqual(
      (await store.chunkRefs("handbook")).map((r) => r.source),
      ["onboarding.md"],
      "changed after the snapshot",
    );

    const restored = await startTestQdrant(found.binary as NonNullable<typeof found.binary>, { storageSnapshot: file });
    try {
      const from = new QdrantStore({ url: restored.url, apiKey: restored.apiKey });
      assert.equal(await from.dimension("handbook"), 4);
      assert.deepEqual((await from.chunkRefs("handbook")).map((r) => r.source).sort(), ["errors.txt", "onboarding.md"]);
      const hits = await from.search("handbook", { mode: "hybrid", text: "E-4711", vector: [1, 1, 0, 0], limit: 1 });
      assert.equal(hits[0]?.source, "errors.txt", "the sparse (IDF) and dense vectors came back too");
    } finally {
      await restored.close();
    }
  });
});

describe("Qdrant snapshots in a cluster (several replicas), as the rendered CronJob takes them", { skip, timeout: 600_000 }, () => {
  let cluster: TestCluster;
  let store: QdrantStore;
  const headers = () => ({ "api-key": cluster.apiKey });
  const hostOf = (index: number) => `127.0.0.1:${cluster.nodes[index]?.httpPort}`;
  const collectionSnapshots = async (index: number): Promise<string[]> =>
    (
      (await (await fetch(`${cluster.nodes[index]?.url}/collections/handbook/snapshots`, { headers: headers() })).json()) as {
        result: Snapshot[];
      }
    ).result
      .map((s) => s.name)
      .sort();

  before(async () => {
    cluster = await startTestCluster(found.binary as NonNullable<typeof found.binary>, 2);
    store = new QdrantStore({ url: cluster.nodes[0]?.url ?? "", apiKey: cluster.apiKey, replicationFactor: 2, writeConsistencyFactor: 2 });
    await seedHandbook(store);
  });
  after(async () => {
    await cluster?.close();
  });

  it("takes each collection on every node, keeps its newest KEEP, and each node recovers the collection from its own snapshot", async () => {
    const hosts = `${hostOf(0)} ${hostOf(1)}`;
    const outputs: string[] = [];
    for (let run = 0; run < 2; run++) {
      if (run > 0) await nextSecond();
      const job = runScript({ QDRANT_HOSTS: hosts, SNAPSHOT_SCOPE: "collections", QDRANT_API_KEY: cluster.apiKey, KEEP: "1" });
      assert.equal(job.status, 0, job.stderr);
      outputs.push(job.stdout.trim());
    }
    assert.deepEqual(
      outputs.map((out) =>
        out
          .replace(/handbook-[\w-]+\.snapshot/g, "NAME")
          .replaceAll(hostOf(0), "A")
          .replaceAll(hostOf(1), "B"),
      ),
      [
        "A handbook: snapshot taken; 1 kept\nB handbook: snapshot taken; 1 kept",
        "A handbook: deleted NAME\nA handbook: snapshot taken; 1 kept\nB handbook: deleted NAME\nB handbook: snapshot taken; 1 kept",
      ],
    );
    const kept = [await collectionSnapshots(0), await collectionSnapshots(1)];
    assert.deepEqual(
      kept.map((names) => names.length),
      [1, 1],
    );

    // Changed after the snapshot; then every node recovers the collection from the snapshot it took.
    await store.deleteBySource("handbook", ["errors.txt"]);
    assert.deepEqual(
      (await store.chunkRefs("handbook")).map((r) => r.source),
      ["onboarding.md"],
    );
    for (const index of [0, 1]) {
      const node = cluster.nodes[index] as NonNullable<(typeof cluster.nodes)[number]>;
      const name = kept[index]?.[0] as string;
      const file = await (await fetch(`${node.url}/collections/handbook/snapshots/${name}`, { headers: headers() })).arrayBuffer();
      const form = new FormData();
      form.append("snapshot", new Blob([file]), name);
      const recovered = await fetch(`${node.url}/collections/handbook/snapshots/upload?priority=snapshot&wait=true`, {
        method: "POST",
        headers: headers(),
        body: form,
      });
      assert.equal(recovered.status, 200, await recovered.text());
    }
    for (const index of [0, 1]) {
      const from = new QdrantStore({ url: cluster.nodes[index]?.url ?? "", apiKey: cluster.apiKey });
      assert.deepEqual((await from.chunkRefs("handbook")).map((r) => r.source).sort(), ["errors.txt", "onboarding.md"], `node ${index}`);
    }
  });

  it("takes no full-storage snapshot there (Qdrant restores none into a cluster)", async () => {
    const full = (await (await fetch(`${cluster.nodes[0]?.url}/snapshots`, { headers: headers() })).json()) as { result: Snapshot[] };
    assert.deepEqual(full.result, []);
  });
});
