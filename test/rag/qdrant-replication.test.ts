// Replication for real: three Qdrant processes form one cluster (Qdrant's --uri/--bootstrap), the
// collection has a copy of every shard on each (replicationFactor 3) and acknowledges a write once two
// copies have it (writeConsistencyFactor 2, a majority). While documents are written and queried
// through one node, another — the consensus leader — is killed with SIGKILL, then started again:
// nothing acknowledged is lost, queries keep answering, and the restarted node catches up.
// Bounded by counts and deadlines; the numbers are printed as test diagnostics, never asserted.
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { setTimeout as sleep } from "node:timers/promises";
import type { RunningQdrant } from "../../src/rag/qdrant-server.ts";
import { QdrantStore } from "../../src/rag/qdrant-store.ts";
import type { StoredChunk } from "../../src/rag/store.ts";
import { findTestQdrant, startTestCluster, type TestCluster } from "./support/qdrant.ts";

const found = await findTestQdrant();
const COLLECTION = "replicated";
const BATCH = 25;
const BATCHES = { beforeKill: 8, whileDown: 16, afterRestart: 8 };

const uuid = (n: number) => `00000000-0000-4000-8000-${String(n).padStart(12, "0")}`;
const words = ["alder", "birch", "cedar", "damson", "elder", "fir", "ginkgo", "hazel"];
const chunkOf = (n: number): StoredChunk => ({
  id: uuid(n),
  source: `doc-${Math.floor(n / 10)}.md`,
  chunk: n % 10,
  hash: `h${n}`,
  text: `${words[n % 8]} ${words[(n * 3) % 8]} note ${n}`,
  vector: [1 + (n % 7), 1 + (n % 5), 1 + (n % 3), 1],
});

interface ClusterInfo {
  result: { local_shards: Array<{ shard_id: number; points_count: number; state: string }>; shard_transfers: unknown[] };
}

describe(
  "Qdrant replication: a 3-node cluster loses no acknowledged write when a node is killed",
  { skip: found.skip, timeout: 600_000 },
  () => {
    let cluster: TestCluster;
    const headers = () => ({ "api-key": cluster.apiKey, "content-type": "application/json" });
    const localShards = async (node: RunningQdrant) =>
      ((await (await fetch(`${node.url}/collections/${COLLECTION}/cluster`, { headers: headers() })).json()) as ClusterInfo).result;
    const leaderIndex = async (): Promise<number> => {
      const info = (await (await fetch(`${cluster.nodes[0]?.url}/cluster`, { headers: headers() })).json()) as {
        result: { raft_info: { leader: number }; peer_id: number; peers: Record<string, { uri: string }> };
      };
      const uri = info.result.peers[String(info.result.raft_info.leader)]?.uri ?? "";
      return cluster.nodes.findIndex((node) => node.peerUri !== undefined && uri.startsWith(node.peerUri));
    };

    before(async () => {
      cluster = await startTestCluster(found.binary as NonNullable<typeof found.binary>, 3);
    });
    after(async () => {
      await cluster?.close();
    });

    it("keeps every acknowledged write and answers queries through a SIGKILL and restart of the leader; the node catches up", async (t) => {
      const victim = await leaderIndex();
      assert.ok(victim >= 0, "the consensus leader is one of our nodes");
      const entry = cluster.nodes[(victim + 1) % 3] as RunningQdrant;
      const store = new QdrantStore({
        url: entry.url,
        apiKey: cluster.apiKey,
        replicationFactor: 3,
        writeConsistencyFactor: 2,
        timeoutMs: 10_000,
      });
      await store.ensureCollection(COLLECTION, 4);
      const info = (await (await fetch(`${entry.url}/collections/${COLLECTION}`, { headers: headers() })).json()) as {
        result: { config: { params: { replication_factor: number; write_consistency_factor: number } } };
      };
      assert.deepEqual([info.result.config.params.replication_factor, info.result.config.params.write_consistency_factor], [3, 2]);

      const acknowledged: string[] = [];
      const failedWrites: string[] = [];
      let next = 0;
      const writeBatches = async (count: number) => {
        for (let b = 0; b < count; b++) {
          const batch = Array.from({ length: BATCH }, () => chunkOf(next++));
          try {
            await store.upsert(COLLECTION, batch);
            acknowledged.push(...batch.map((c) => c.id));
          } catch (error) {
            failedWrites.push((error as Error).message);
          }
        }
      };
      // Queries run beside the writes until told to stop, each phase counted apart.
      const queries = { beforeKill: { ok: 0, failed: 0 }, down: { ok: 0, failed: 0 }, after: { ok: 0, failed: 0 } };
      let phase: keyof typeof queries = "beforeKill";
      let querying = true;
      const queryErrors: string[] = [];
      const queryLoop = (async () => {
        for (let q = 0; querying && q < 100_000; q++) {
          try {
            await store.search(COLLECTION, {
              mode: q % 2 ? "hybrid" : "keyword",
              text: `${words[q % 8]} note`,
              vector: [1, 2, 3, 1],
              limit: 5,
            });
            queries[phase].ok++;
          } catch (error) {
            queries[phase].failed++;
            if (queryErrors.length < 5) queryErrors.push((error as Error).message);
          }
          await sleep(5);
        }
      })();

      await writeBatches(BATCHES.beforeKill);
      await (cluster.nodes[victim] as RunningQdrant).kill();
      phase = "down";
      await writeBatches(BATCHES.whileDown);
      const restartStart = performance.now();
      const restarted = await cluster.restart(victim);
      const restartReadyMs = performance.now() - restartStart;
      phase = "after";
      await writeBatches(BATCHES.afterRestart);
      querying = false;
      await queryLoop;

      // Caught up: every shard of the restarted node Active, holding every acknowledged point.
      const catchUpDeadline = Date.now() + 120_000;
      let shards = await localShards(restarted);
      while (!(
        shards.local_shards.every((s) => s.state === "Active") &&
        shards.local_shards.reduce((sum, s) => sum + s.points_count, 0) === acknowledged.length
      )) {
        assert.ok(Date.now() < catchUpDeadline, `the restarted node did not catch up in 120 s: ${JSON.stringify(shards)}`);
        await sleep(100);
        shards = await localShards(restarted);
      }
      const catchUpMs = performance.now() - restartStart;

      for (const [index, node] of cluster.nodes.entries()) {
        const local = await localShards(node);
        assert.equal(
          local.local_shards.reduce((sum, s) => sum + s.points_count, 0),
          acknowledged.length,
          `node ${index} holds every acknowledged point`,
        );
        const got = (await (
          await fetch(`${node.url}/collections/${COLLECTION}/points`, {
            method: "POST",
            headers: headers(),
            body: JSON.stringify({ ids: acknowledged, with_payload: false }),
          })
        ).json()) as { result: Array<{ id: string }> };
        assert.equal(got.result.length, acknowledged.length, `node ${index} returns every acknowledged point by id`);
      }
      assert.deepEqual(failedWrites, [], "with 2 of 3 copies up, every write was acknowledged");
      assert.equal(acknowledged.length, BATCH * (BATCHES.beforeKill + BATCHES.whileDown + BATCHES.afterRestart));
      assert.ok(
        queries.down.ok > 0 && queries.after.ok > 0,
        `queries answered while the node was down and after: ${JSON.stringify(queries)}`,
      );
      assert.equal(
        queries.down.failed + queries.after.failed + queries.beforeKill.failed,
        0,
        `no query failed: ${queryErrors.join(" | ")}`,
      );

      const rate = (p: { ok: number; failed: number }) => `${p.ok}/${p.ok + p.failed}`;
      t.diagnostic(
        `acknowledged ${acknowledged.length} points (${BATCH} a write), found after on every node: ${acknowledged.length}; writes refused: ${failedWrites.length}`,
      );
      t.diagnostic(
        `queries answered: before the kill ${rate(queries.beforeKill)}, while the leader was down and restarting ${rate(queries.down)}, after its restart ${rate(queries.after)}`,
      );
      t.diagnostic(
        `restarted node ready (consensus caught up) in ${Math.round(restartReadyMs)} ms; all its shards Active with every point in ${Math.round(catchUpMs)} ms`,
      );
    });
  },
);
