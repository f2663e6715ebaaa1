// The RAG embedder's way to the embeddings server, through the gateway's upstream pool for it: a
// server that stops answering is ejected and probed back like any engine replica, counted in
// diatonic_gateway_upstream_healthy_replicas (and its alert), and named by /readyz; with several
// replicas, a failed call is retried on another.
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
    const timer = setTimeout(
      () => cancel.abort(new EmbeddingError(`upstream ${upstream.name} did not answer the embeddings request within ${timeoutMs} ms`)),
      timeoutMs,
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
        wholeBody: true,
      });
      return { statusCode: response.statusCode, text: await response.text() };
    } catch (error) {
      if (cancel.aborted && cancel.reason instanceof EmbeddingError) throw cancel.reason;
      // No healthy replica: say so at once (the pool knows); other failures the embedder may try again.
      if (error instanceof GatewayError && error.code === "upstream_unavailable")
        throw new EmbeddingError(`the embeddings server cannot be reached: ${error.message}`);
      throw error;
    } finally {
      clearTimeout(timer);
      signal?.removeEventListener("abort", callOff);
    }
  };
}
