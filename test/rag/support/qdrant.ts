// A real Qdrant server for the RAG tests: found by src/rag/qdrant-binary.ts (QDRANT_BIN, then
// ../shared/tools/qdrant beside the checkout, then the official release), started on loopback ports
// with a temporary storage folder and an API key, stopped and removed afterwards. Without a binary a
// test file skips with the reason locally, and fails in CI (CI=true).
import { randomBytes } from "node:crypto";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { WorldError } from "../../../src/errors.ts";
import { locateQdrant, type QdrantExecutable } from "../../../src/rag/qdrant-binary.ts";
import { freeLoopbackPort, startQdrant, type RunningQdrant } from "../../../src/rag/qdrant-server.ts";

export interface FoundQdrant {
  readonly binary: QdrantExecutable | undefined;
  /** Why there is none: the `skip` option of the tests that need it. */
  readonly skip: string | undefined;
}

/** The binary, or the reason to skip; in CI a missing binary throws, so the test file fails. */
export async function findTestQdrant(): Promise<FoundQdrant> {
  try {
    return { binary: await locateQdrant(), skip: undefined };
  } catch (error) {
    const fix = error instanceof WorldError && error.fix !== undefined ? `: ${error.fix}` : "";
    const reason = `no Qdrant server binary: ${(error as Error).message}${fix} (README, "RAG tests")`;
    if (process.env["CI"] === "true") throw new Error(`${reason}; the RAG tier needs it in CI`, { cause: error });
    return { binary: undefined, skip: reason };
  }
}

export interface TestQdrant {
  readonly url: string;
  readonly apiKey: string;
  readonly dir: string;
  readonly server: RunningQdrant;
  close(): Promise<void>;
}

/** A fresh random key per server: tests never share one, and none is written anywhere. */
export const testApiKey = (): string => `test-${randomBytes(12).toString("hex")}`;

export async function startTestQdrant(
  binary: QdrantExecutable,
  options: { readonly apiKey?: string; readonly storageSnapshot?: string } = {},
): Promise<TestQdrant> {
  const dir = mkdtempSync(join(tmpdir(), "diatonic-qdrant-"));
  const apiKey = options.apiKey ?? testApiKey();
  try {
    const server = await startQdrant({
      binary: binary.path,
      dataDir: dir,
      apiKey,
      ...(options.storageSnapshot !== undefined ? { storageSnapshot: options.storageSnapshot } : {}),
    });
    return {
      url: server.url,
      apiKey,
      dir,
      server,
      close: async () => {
        await server.stop();
        rmSync(dir, { recursive: true, force: true });
      },
    };
  } catch (error) {
    rmSync(dir, { recursive: true, force: true });
    throw error;
  }
}

export interface TestCluster {
  readonly apiKey: string;
  readonly nodes: RunningQdrant[];
  /** Starts node `index` again on its ports and storage (after a kill), ready once it has caught up with consensus. */
  restart(index: number): Promise<RunningQdrant>;
  close(): Promise<void>;
}

/**
 * `size` Qdrant processes forming one cluster on loopback, as Qdrant documents it: the first peer
 * with `--uri`, the others with `--bootstrap` its URI, each with QDRANT__CLUSTER__ENABLED=true and
 * its own HTTP, gRPC and p2p ports. Started one after another, as Qdrant asks.
 */
export async function startTestCluster(binary: QdrantExecutable, size: number): Promise<TestCluster> {
  const dir = mkdtempSync(join(tmpdir(), "diatonic-qdrant-cluster-"));
  const apiKey = testApiKey();
  const nodes: RunningQdrant[] = [];
  const plans: Array<{ dataDir: string; httpPort: number; grpcPort: number; p2pPort: number }> = [];
  const start = (index: number): Promise<RunningQdrant> => {
    const plan = plans[index] as (typeof plans)[number];
    const bootstrap = index === 0 ? undefined : nodes[0]?.peerUri;
    return startQdrant({
      binary: binary.path,
      dataDir: plan.dataDir,
      httpPort: plan.httpPort,
      grpcPort: plan.grpcPort,
      apiKey,
      peer: { p2pPort: plan.p2pPort, ...(bootstrap !== undefined ? { bootstrap } : {}) },
      readyTimeoutMs: 120_000,
    });
  };
  const close = async (): Promise<void> => {
    await Promise.all(nodes.map((node) => node.stop()));
    rmSync(dir, { recursive: true, force: true });
  };
  try {
    for (let index = 0; index < size; index++) {
      plans.push({
        dataDir: join(dir, `node-${index}`),
        httpPort: await freeLoopbackPort(),
        grpcPort: await freeLoopbackPort(),
        p2pPort: await freeLoopbackPort(),
      });
      nodes.push(await start(index));
    }
  } catch (error) {
    await close();
    throw error;
  }
  return {
    apiKey,
    nodes,
    restart: async (index) => {
      const node = await start(index);
      nodes[index] = node;
      return node;
    },
    close,
  };
}
