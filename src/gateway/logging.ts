import { pino, type Logger } from "pino";

export interface GatewayLoggerOptions {
  /** File descriptor or path the JSON lines go to. @default 1 (stdout) */
  readonly destination?: number | string;
  /** Lines are written in batches of about this many bytes (one write call per batch, not per request). @default 4096 */
  readonly bufferBytes?: number;
  /** A partial batch is written after this long, so a quiet gateway's lines are never older than that. @default 1000 */
  readonly flushMs?: number;
  /** @default "info" */
  readonly level?: string;
}

/**
 * JSON lines on stdout, batched: a write per request line costs more than the rest of the request's
 * logging. pino flushes what is buffered when the process exits.
 */
export function createGatewayLogger(options: GatewayLoggerOptions = {}): Logger {
  const destination = pino.destination({
    dest: options.destination ?? 1,
    sync: false,
    minLength: options.bufferBytes ?? 4096,
    periodicFlush: options.flushMs ?? 1000,
  });
  return pino({ level: options.level ?? "info", base: { component: "gateway" } }, destination);
}
