import type { AdapterList, AdapterView } from "../../../src/gateway/admin-api.ts";
import type { Api } from "../api.ts";
import { href } from "../routes.ts";
import { count } from "../format.ts";
import { usePolling } from "../hooks.ts";
import { FailureText, StateBadge } from "./overview.tsx";

const SAMPLING_NAMES: Readonly<Record<string, string>> = {
  temperature: "temperature",
  topP: "top_p",
  maxTokens: "max_tokens",
  presencePenalty: "presence_penalty",
  frequencyPenalty: "frequency_penalty",
};

function seconds(ms: number): string {
  return `${count(ms / 1000)} s`;
}

function AdapterCard({ adapter }: { readonly adapter: AdapterView }) {
  const sampling = Object.entries(adapter.sampling).filter(([, value]) => value !== undefined);
  return (
    <article class="card adapter" aria-labelledby={`adapter-${adapter.name}`}>
      <header class="card-head">
        <h2 id={`adapter-${adapter.name}`}>{adapter.name}</h2>
        <StateBadge state={adapter.state} />
      </header>
      {adapter.failure !== undefined && (
        <p class="error">
          Cannot load on {adapter.failure.replicas.join(", ")}: <FailureText failure={adapter.failure} />
        </p>
      )}
      {adapter.description !== "" && <p>{adapter.description}</p>}
      <dl class="facts">
        <dt>Route</dt>
        <dd class="mono">
          {adapter.route}/v1/… or model "{adapter.name}"
        </dd>
        <dt>LoRA</dt>
        <dd>
          {adapter.loraSource !== null ? (
            <>
              <span class="mono">{adapter.loraSource.source}</span> (rank {adapter.loraSource.rank}), served as{" "}
              <span class="mono">{adapter.upstreamModel}</span>
            </>
          ) : adapter.lora !== null ? (
            <span class="mono">{adapter.lora}</span>
          ) : (
            <span class="muted">none: runs on the base model ({adapter.upstreamModel})</span>
          )}
        </dd>
        <dt>Replicas</dt>
        <dd class="mono">{adapter.replicas.length > 0 ? adapter.replicas.join(", ") : <span class="muted">none yet</span>}</dd>
        <dt>System prompt</dt>
        <dd>{adapter.systemPrompt !== null ? <pre class="prompt">{adapter.systemPrompt}</pre> : <span class="muted">none</span>}</dd>
        <dt>Sampling</dt>
        <dd>
          {sampling.length === 0 ? (
            <span class="muted">the engine's defaults</span>
          ) : (
            <span class="mono">{sampling.map(([key, value]) => `${SAMPLING_NAMES[key] ?? key} ${String(value)}`).join(", ")}</span>
          )}
        </dd>
        <dt>RAG</dt>
        <dd>
          {adapter.rag === null ? (
            <span class="muted">no</span>
          ) : (
            <>
              collection <span class="mono">{adapter.rag.collection}</span>, top {adapter.rag.topK}, {adapter.rag.mode} search, score ≥{" "}
              {adapter.rag.scoreThreshold}; on a retrieval failure{" "}
              {adapter.rag.onFailure === "fail" ? "the request fails" : "it answers without context"}
            </>
          )}
        </dd>
        <dt>Limits</dt>
        <dd>
          {adapter.limits.concurrency} at once, {adapter.limits.queue} queued; {seconds(adapter.limits.timeoutMs)} in all, first byte within{" "}
          {seconds(adapter.limits.firstByteTimeoutMs)}
        </dd>
      </dl>
      <p class="actions">
        <a class="button" href={href("playground", adapter.name)}>
          Try {adapter.name} in the playground
        </a>
        {adapter.rag !== null && (
          <a class="button secondary" href={href("documents", adapter.name)}>
            Documents of {adapter.name}
          </a>
        )}
      </p>
    </article>
  );
}

export function AdaptersView({ api }: { readonly api: Api }) {
  const adapters = usePolling((signal) => api.get<AdapterList>("/v1/admin/adapters", signal), 10_000, [api]);
  return (
    <>
      <h1>Adapters</h1>
      {adapters.error !== undefined && (
        <p role="alert" class="error">
          {adapters.error.message}
        </p>
      )}
      {adapters.data === undefined ? (
        <p class="muted">Loading…</p>
      ) : adapters.data.data.length === 0 ? (
        <p class="muted">This platform has no adapters (or this key may use none).</p>
      ) : (
        <div class="cards" data-testid="adapter-list">
          {adapters.data.data.map((adapter) => (
            <AdapterCard key={adapter.name} adapter={adapter} />
          ))}
        </div>
      )}
    </>
  );
}
