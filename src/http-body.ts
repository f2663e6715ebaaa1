// Reading a request body on node:http, shared by the gateway and the engine.
import type { IncomingMessage } from "node:http";

/**
 * Reads the whole request body with plain 'data'/'end' listeners (no stream iterator: this is on
 * every request's path), refusing more than `maxBytes` before or while reading it. On refusal the
 * rest of the upload is read and dropped, so the client sees the error rather than a reset.
 */
export function readBody(req: IncomingMessage, maxBytes: number, tooLarge: () => Error): Promise<Buffer> {
  const declared = Number(req.headers["content-length"]);
  if (Number.isFinite(declared) && declared > maxBytes) {
    req.resume();
    return Promise.reject(tooLarge());
  }
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    const onData = (chunk: Buffer) => {
      size += chunk.length;
      if (size > maxBytes) {
        req.off("data", onData);
        req.resume();
        reject(tooLarge());
        return;
      }
      chunks.push(chunk);
    };
    req.on("data", onData);
    req.on("end", () => resolve(joinChunks(chunks, size)));
    req.on("error", reject);
  });
}

/** A body's chunks as one Buffer: the chunk itself when there is one (most bodies), without a copy. */
export function joinChunks(chunks: readonly Buffer[], size?: number): Buffer {
  return chunks.length === 1 ? (chunks[0] as Buffer) : Buffer.concat(chunks, size);
}
