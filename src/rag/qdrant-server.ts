// A Qdrant server process on loopback: one node, or one peer of a cluster (Qdrant's --uri and
// --bootstrap). Used by `diatonic dev --vector-store qdrant`, the RAG tests and bench:rag.
import { spawn, type ChildProcess } from "node:child_process";
import { closeSync, existsSync, mkdirSync, openSync, readFileSync } from "node:fs";
import { createServer } from "node:net";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { WorldError } from "../errors.ts";

export interface QdrantPeerOptions {
  /** This peer's internal (p2p, gRPC) port. */
  readonly p2pPort: number;
  /** Another peer's p2p URI to join; none: this peer starts the cluster. */
  readonly bootstrap?: string;
}

export interface QdrantServerOptions {
  /** The executable (see locateQdrant). */
  readonly binary: string;
  /** Holds storage/, snapshots/ and qdrant.log; created if missing. */
  readonly dataDir: string;
  /** @default a free port */
  readonly httpPort?: number;
  /** @default a free port */
  readonly grpcPort?: number;
  /** @default "127.0.0.1" */
  readonly host?: string;
  /** Required on every request but the health probes. Passed in the environment, never on the command line. */
  readonly apiKey?: string;
  /** Run as a cluster peer (QDRANT__CLUSTER__ENABLED=true). @default a single node */
  readonly peer?: QdrantPeerOptions;
  /** A full-storage snapshot to restore at start (`--storage-snapshot`); the node must be new. */
  readonly storageSnapshot?: string;
  /** @default 60000 */
  readonly readyTimeoutMs?: number;
  /** Qdrant's log level. @default "WARN" */
  readonly logLevel?: "ERROR" | "WARN" | "INFO" | "DEBUG";
}

export interface RunningQdrant {
  /** http://host:httpPort */
  readonly url: string;
  readonly httpPort: number;
  readonly grpcPort: number;
  /** The peer URI others bootstrap from (cluster peers only). */
  readonly peerUri: string | undefined;
  readonly pid: number;
  readonly logFile: string;
  /** SIGTERM, then SIGKILL after the grace period; resolves when the process is gone. */
  stop(graceMs?: number): Promise<void>;
  /** SIGKILL, as a crash would; resolves when the process is gone. */
  kill(): Promise<void>;
}

/** A free TCP port on loopback (the OS picks; a tiny race with other programs is accepted). */
export function freeLoopbackPort(): Promise<number> {
  return new Promise((resolvePort, reject) => {
    const server = createServer();
    server.once("error", reject);
    server.listen(0, "127.0.0.1", () => {
      const address = server.address();
      const port = typeof address === "object" && address !== null ? address.port : 0;
      server.close(() => resolvePort(port));
    });
  });
}

const live = new Set<ChildProcess>();
let exitHook = false;
/** A test or dev process that ends without closing its servers still takes them down with it. */
function reapOnExit(child: ChildProcess): void {
  live.add(child);
  child.once("exit", () => live.delete(child));
  if (exitHook) return;
  exitHook = true;
  process.once("exit", () => {
    for (const running of live) running.kill("SIGKILL");
  });
}

function logTail(file: string, lines = 20): string {
  if (!existsSync(file)) return "(no log)";
  // The API key is never logged by Qdrant, and we pass it only in the environment.
  return readFileSync(file, "utf8").trimEnd().split("\n").slice(-lines).join("\n");
}

/** The environment Qdrant reads its settings from, without any QDRANT__ settings of the caller's. */
function environment(options: QdrantServerOptions, httpPort: number, grpcPort: number): NodeJS.ProcessEnv {
  const inherited = Object.fromEntries(Object.entries(process.env).filter(([name]) => !name.startsWith("QDRANT")));
  return {
    ...inherited,
    QDRANT__STORAGE__STORAGE_PATH: join(options.dataDir, "storage"),
    QDRANT__STORAGE__SNAPSHOTS_PATH: join(options.dataDir, "snapshots"),
    QDRANT__SERVICE__HOST: options.host ?? "127.0.0.1",
    QDRANT__SERVICE__HTTP_PORT: String(httpPort),
    QDRANT__SERVICE__GRPC_PORT: String(grpcPort),
    QDRANT__TELEMETRY_DISABLED: "true",
    QDRANT__LOG_LEVEL: options.logLevel ?? "WARN",
    ...(options.apiKey !== undefined ? { QDRANT__SERVICE__API_KEY: options.apiKey } : {}),
    ...(options.peer !== undefined ? { QDRANT__CLUSTER__ENABLED: "true", QDRANT__CLUSTER__P2P__PORT: String(options.peer.p2pPort) } : {}),
  };
}

async function gone(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  await new Promise<void>((resolve) => child.once("exit", () => resolve()));
}

/**
 * Starts Qdrant and resolves once its /readyz answers 200 (for a cluster peer: joined and caught up
 * with consensus). Fails with the log's tail if it exits or is not ready in time.
 */
export async function startQdrant(options: QdrantServerOptions): Promise<RunningQdrant> {
  const host = options.host ?? "127.0.0.1";
  const httpPort = options.httpPort ?? (await freeLoopbackPort());
  const grpcPort = options.grpcPort ?? (await freeLoopbackPort());
  mkdirSync(options.dataDir, { recursive: true });
  const logFile = join(options.dataDir, "qdrant.log");
  const peerUri = options.peer !== undefined ? `http://${host}:${options.peer.p2pPort}` : undefined;
  const args = [
    ...(peerUri !== undefined ? ["--uri", peerUri] : []),
    ...(options.peer?.bootstrap !== undefined ? ["--bootstrap", options.peer.bootstrap] : []),
    ...(options.storageSnapshot !== undefined ? ["--storage-snapshot", options.storageSnapshot] : []),
  ];
  const log = openSync(logFile, "a");
  let child: ChildProcess;
  try {
    child = spawn(options.binary, args, {
      cwd: options.dataDir,
      env: environment(options, httpPort, grpcPort),
      stdio: ["ignore", log, log],
    });
  } finally {
    closeSync(log);
  }
  const spawned = await new Promise<Error | undefined>((resolve) => {
    child.once("spawn", () => resolve(undefined));
    child.once("error", resolve);
  });
  if (spawned !== undefined)
    throw new WorldError(
      `cannot start Qdrant (${options.binary}): ${spawned.message}`,
      "check QDRANT_BIN names an executable Qdrant server",
      { cause: spawned },
    );
  reapOnExit(child);
  const url = `http://${host}:${httpPort}`;
  const stop = async (graceMs = 10_000): Promise<void> => {
    if (child.exitCode !== null || child.signalCode !== null) return;
    child.kill("SIGTERM");
    const timer = setTimeout(() => child.kill("SIGKILL"), graceMs);
    await gone(child);
    clearTimeout(timer);
  };
  const deadline = Date.now() + (options.readyTimeoutMs ?? 60_000);
  for (;;) {
    if (child.exitCode !== null || child.signalCode !== null) {
      throw new WorldError(
        `Qdrant (${options.binary}) exited with ${child.exitCode ?? child.signalCode} before it was ready; its log (${logFile}) ends:\n${logTail(logFile)}`,
        "see the log; a port in use or a storage folder of another version are the usual causes",
      );
    }
    try {
      if ((await fetch(`${url}/readyz`, { signal: AbortSignal.timeout(2000) })).status === 200) break;
    } catch {
      // Not listening yet.
    }
    if (Date.now() > deadline) {
      await stop(2000);
      throw new WorldError(
        `Qdrant at ${url} was not ready in ${options.readyTimeoutMs ?? 60_000} ms; its log (${logFile}) ends:\n${logTail(logFile)}`,
        "see the log",
      );
    }
    await sleep(100);
  }
  return {
    url,
    httpPort,
    grpcPort,
    peerUri,
    pid: child.pid as number,
    logFile,
    stop,
    kill: async () => {
      if (child.exitCode !== null || child.signalCode !== null) return;
      child.kill("SIGKILL");
      await gone(child);
    },
  };
}
