// The RAG embedder's way to the embeddings server, through the gateway's upstream pool for it: a
// server that stops answering (refuses connections, or holds a request past its time) is ejected and
// probed back like any engine replica, counted in diatonic_gateway_upstream_healthy_replicas (and its
// alert), and named by /readyz; the embedder tries a failed call once more, on another replica if
// there is one.
import { EmbeddingError, type EmbeddingsTransport } from "../rag/embedder.ts";
import { RequestCancel } from "./cancel.ts";
import { GatewayError } from "./errors.ts";
import type { UpstreamPool } from "./upstream.ts";

/** `pool` is asked at each call: a config reload may replace the pool. */
export function poolTransport(pool: () => UpstreamPool | undefined): EmbeddingsTransport {
  return async (body, { timeoutMs, signal }) => {
    const upstream = pool();
    if (upstream === undefined) throw new EmbeddingError("the gateway's config names no embeddings upstream (set embeddings)");
    const cancel = new RequestCancel();
    // The pool holds the answer's headers to timeoutMs (an embeddings server sends them with the
    // vectors), and counts a replica that misses it as failing; this bounds a body that stalls after them.
    // (undici's headers timeout runs on coarse timers, up to a second late: the bound leaves it room.)
    const bodyBoundMs = timeoutMs + Math.max(5000, timeoutMs);
    const timer = setTimeout(
      () => cancel.abort(new EmbeddingError(`upstream ${upstream.name} did not finish its embeddings answer within ${bodyBoundMs} ms`)),
      bodyBoundMs,
    );
    const callOff = () =>
      cancel.abort(signal?.reason instanceof Error ? signal.reason : new Error("the embeddings request was called off"));
    if (signal?.aborted === true) callOff();
    signal?.addEventListener("abort", callOff, { once: true });
    try {
      const response = await upstream.send({
        method: "POST",
        path: "/v1/embeddings",
        headers: { host: upstream.hostHeader, "content-type": "application/json" },
        body,
        cancel,
        firstByteTimeoutMs: timeoutMs,
      });
      return { statusCode: response.statusCode, text: await response.text() };
    } catch (error) {
      if (cancel.aborted && cancel.reason instanceof EmbeddingError) throw cancel.reason;
      if (error instanceof GatewayError) {
        // No healthy replica: say so at once (the pool knows).
        if (error.code === "upstream_unavailable") throw new EmbeddingError(`the embeddings server cannot be reached: ${error.message}`);
        // Held past its time: the pool has counted it against the replica; the embedder may try again.
        if (error.code === "upstream_timeout")
          throw new Error(`the embeddings server (upstream ${upstream.name}) did not answer within ${timeoutMs} ms`);
      }
      throw error;
    } finally {
      clearTimeout(timer);
      signal?.removeEventListener("abort", callOff);
    }
  };
}
