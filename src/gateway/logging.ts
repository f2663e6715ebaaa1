import { writeSync } from "node:fs";
import { pino, type DestinationStream, type Logger } from "pino";

export interface GatewayLoggerOptions {
  /** File descriptor the JSON lines go to. @default 1 (stdout) */
  readonly fd?: number;
  /** Lines are written in batches of about this many characters (one write call per batch). @default 16384 */
  readonly batchChars?: number;
  /** A partial batch is written after this long, so a quiet gateway's lines are never older than that. @default 1000 */
  readonly flushMs?: number;
  /** Lines waiting beyond this many characters (the reader of the logs is stuck) are dropped and counted. @default 16 MiB */
  readonly maxPendingChars?: number;
  /** @default "info" */
  readonly level?: string;
}

/** The `component` binding of the gateway's log lines. */
const COMPONENT = "gateway";

/** Writers with lines not yet written, flushed if the process exits. */
const unwritten = new Set<BatchedLines>();
let exitHookInstalled = false;

/**
 * pino's destination for the access log: lines are kept in an array and written in batches, one
 * write call each. Writes are synchronous, as pino's default destination and Node's own stdout on a
 * pipe are; when a descriptor would block (EAGAIN), the rest of the batch is tried again every few
 * milliseconds while serving goes on, and written first if the process exits. pino's buffered
 * destination (sonic-boom) re-measures its whole buffer on every line and hands each write to the
 * thread pool: ~5 µs of CPU a request in bench:gateway, against well under one here.
 */
export class BatchedLines implements DestinationStream {
  private lines: string[] = [];
  private chars = 0;
  /** A batch the descriptor took only part of (EAGAIN): retried on a timer; new lines wait behind it. */
  private stalled: { readonly data: Buffer; offset: number } | undefined;
  private timer: NodeJS.Timeout | undefined;
  private dropped = 0;
  private readonly waiting: ((error?: Error) => void)[] = [];

  constructor(
    private readonly fd: number,
    private readonly options: { readonly batchChars: number; readonly flushMs: number; readonly maxPendingChars: number },
  ) {}

  write(line: string): void {
    if (this.chars > this.options.maxPendingChars) {
      this.dropped++;
      return;
    }
    if (this.lines.length === 0) {
      unwritten.add(this);
      installExitHook();
    }
    this.lines.push(line);
    this.chars += line.length;
    if (this.stalled !== undefined) return;
    if (this.chars >= this.options.batchChars) this.writeOut();
    else if (this.timer === undefined) {
      // A partial batch goes out after flushMs, so a quiet gateway's lines are never older than that.
      this.timer = setTimeout(() => {
        this.timer = undefined;
        if (this.stalled === undefined) this.writeOut();
      }, this.options.flushMs);
      this.timer.unref();
    }
  }

  /** Writes what is pending; `done` runs once it is out. */
  flush(done?: (error?: Error) => void): void {
    if (done !== undefined) this.waiting.push(done);
    if (this.stalled === undefined) this.writeOut();
  }

  /** Writes everything pending before returning, waiting out EAGAIN (process exit): a stalled batch first. */
  flushSync(): void {
    const stalled = this.stalled;
    this.stalled = undefined;
    const rest = Buffer.from(this.take(), "utf8");
    const data = stalled === undefined ? rest : Buffer.concat([stalled.data.subarray(stalled.offset), rest]);
    let offset = 0;
    try {
      for (let tries = 0; tries < 1000; tries++) {
        offset = this.writeSyncFrom(data, offset);
        if (offset >= data.length) return;
        Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 5); // EAGAIN: the reader gets 5 ms
      }
    } catch {
      // The log pipe is gone: nothing more can be written.
    }
  }

  /** Writes data from offset on; returns where it stopped: the end, or where the descriptor said EAGAIN. Other failures throw. */
  private writeSyncFrom(data: Buffer, offset: number): number {
    let at = offset;
    try {
      while (at < data.length) at += writeSync(this.fd, data, at, data.length - at);
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== "EAGAIN") throw error;
    }
    return at;
  }

  private take(): string {
    clearTimeout(this.timer);
    this.timer = undefined;
    if (this.dropped > 0) {
      this.lines.push(
        `${JSON.stringify({ level: 40, time: Date.now(), component: COMPONENT, dropped: this.dropped, msg: "log lines dropped: the log reader did not keep up" })}\n`,
      );
      this.dropped = 0;
    }
    const data = this.lines.join("");
    this.lines = [];
    this.chars = 0;
    unwritten.delete(this);
    return data;
  }

  private writeOut(): void {
    const text = this.take();
    try {
      // Written as a string first (Node encodes it on the way out, cheaper than a Buffer made here);
      // a short write or EAGAIN goes on from a Buffer.
      let offset = 0;
      try {
        if (text !== "") offset = writeSync(this.fd, text);
      } catch (error) {
        if ((error as NodeJS.ErrnoException).code !== "EAGAIN") throw error;
      }
      if (offset < Buffer.byteLength(text)) {
        const data = Buffer.from(text, "utf8");
        offset = this.writeSyncFrom(data, offset);
        if (offset < data.length) {
          this.stalled = { data, offset };
          this.retryLater();
          return;
        }
      }
    } catch {
      // Any other failure (the log pipe is gone): these lines are lost; serving goes on.
    }
    for (const done of this.waiting.splice(0)) done();
  }

  /**
   * Tries the stalled batch again in a few milliseconds, synchronously like every write here (the
   * descriptor is non-blocking, or it would not have said EAGAIN), so its progress is always known.
   */
  private retryLater(): void {
    setTimeout(() => {
      const stalled = this.stalled;
      if (stalled === undefined) return; // written at exit meanwhile
      try {
        stalled.offset = this.writeSyncFrom(stalled.data, stalled.offset);
      } catch {
        stalled.offset = stalled.data.length; // the log pipe is gone: this batch is lost; serving goes on
      }
      if (stalled.offset < stalled.data.length) {
        this.retryLater();
        return;
      }
      this.stalled = undefined;
      if (this.lines.length > 0 || this.waiting.length > 0 || this.dropped > 0) this.writeOut();
    }, 5).unref();
  }
}

function installExitHook(): void {
  if (exitHookInstalled) return;
  exitHookInstalled = true;
  process.on("exit", () => {
    for (const writer of [...unwritten]) writer.flushSync();
  });
}

/** The destinations of loggers made by createGatewayLogger, for the access log's direct lines. */
const destinations = new WeakMap<Logger, BatchedLines>();

/** JSON lines on stdout (pino), written in batches by `BatchedLines`. */
export function createGatewayLogger(options: GatewayLoggerOptions = {}): Logger {
  const destination = new BatchedLines(options.fd ?? 1, {
    batchChars: options.batchChars ?? 16_384,
    flushMs: options.flushMs ?? 1000,
    maxPendingChars: options.maxPendingChars ?? 16 * 2 ** 20,
  });
  const logger = pino({ level: options.level ?? "info", base: { component: COMPONENT } }, destination);
  destinations.set(logger, destination);
  return logger;
}

/** Logs one request: a flat record of the gateway's own fields (strings, numbers, booleans, JSON data). */
export type AccessLog = (entry: Readonly<Record<string, unknown>>) => void;

/**
 * The access log at `info`. On a logger from createGatewayLogger the line is serialized here and
 * handed to its destination: the same JSON pino writes (its levels, `time`, the `component`
 * binding, then the fields and `msg`) for half the cost, since this runs once per request. Any
 * other logger (tests, embedding code) gets the record through pino itself.
 */
export function accessLogFor(logger: Logger, message = "request"): AccessLog {
  const destination = destinations.get(logger);
  if (destination === undefined) return (entry) => logger.info(entry, message);
  const head = `{"level":${logger.levels.values.info},"time":`;
  // The logger's bindings (its `component`), as pino writes them after `time`.
  const bindings = Object.entries(logger.bindings())
    .map(([key, value]) => `,${JSON.stringify(key)}:${JSON.stringify(value)}`)
    .join("");
  const tail = `,"msg":${JSON.stringify(message)}}\n`;
  return (entry) => {
    if (!logger.isLevelEnabled("info")) return;
    let line = `${head}${Date.now()}${bindings}`;
    for (const key in entry) {
      const value = entry[key];
      if (value === undefined) continue;
      // Keys are the gateway's own field names: plain identifiers, nothing to escape.
      line += `,"${key}":${typeof value === "number" ? (Number.isFinite(value) ? String(value) : "null") : JSON.stringify(value)}`;
    }
    destination.write(line + tail);
  };
}
