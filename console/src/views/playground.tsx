import { useEffect, useRef, useState } from "preact/hooks";
import type { AdapterList } from "../../../src/gateway/admin-api.ts";
import { ApiError, type Api } from "../api.ts";
import { streamChat, type ChatMessage, type ChatRequest, type Citation, type Usage } from "../chat-stream.ts";
import { count, milliseconds, rate } from "../format.ts";
import { usePolling } from "../hooks.ts";
import { href } from "../routes.ts";
import { snippet, SNIPPET_LABELS, type SnippetKind } from "../snippets.ts";

interface Turn {
  readonly role: "user" | "assistant";
  readonly content: string;
  readonly status?: "streaming" | "done" | "stopped" | "failed";
  readonly error?: string;
  readonly usage?: Usage;
  readonly citations?: readonly Citation[];
  readonly firstTokenMs?: number;
  readonly totalMs?: number;
  readonly model?: string;
}

export interface PlaygroundProps {
  readonly api: Api;
  /** From the route: the adapter to start with. */
  readonly adapter: string | undefined;
  readonly authRequired: boolean;
}

function numberOrUndefined(text: string): number | undefined {
  if (text.trim() === "") return undefined;
  const value = Number(text);
  return Number.isFinite(value) ? value : undefined;
}

function TurnMeta({ turn }: { readonly turn: Turn }) {
  if (turn.status === "streaming") return <p class="meta">streaming…</p>;
  const parts: string[] = [];
  if (turn.usage !== undefined)
    parts.push(`${count(turn.usage.prompt_tokens)} prompt + ${count(turn.usage.completion_tokens)} completion tokens`);
  if (turn.firstTokenMs !== undefined) parts.push(`first token ${milliseconds(turn.firstTokenMs / 1000)}`);
  if (turn.totalMs !== undefined) parts.push(`total ${milliseconds(turn.totalMs / 1000)}`);
  if (turn.usage !== undefined && turn.totalMs !== undefined && turn.firstTokenMs !== undefined && turn.totalMs > turn.firstTokenMs) {
    parts.push(`${rate(turn.usage.completion_tokens / ((turn.totalMs - turn.firstTokenMs) / 1000))} tokens/s`);
  }
  if (turn.status === "stopped") parts.push("stopped");
  return (
    <p class="meta" data-testid="turn-meta">
      {parts.join(" · ")}
    </p>
  );
}

export function PlaygroundView({ api, adapter, authRequired }: PlaygroundProps) {
  const adapters = usePolling((signal) => api.get<AdapterList>("/v1/admin/adapters", signal), 0, [api]);
  const names = adapters.data?.data.map((entry) => entry.name) ?? [];
  const [model, setModel] = useState(adapter ?? "");
  const [input, setInput] = useState("");
  const [maxTokens, setMaxTokens] = useState("64");
  const [temperature, setTemperature] = useState("");
  const [turns, setTurns] = useState<readonly Turn[]>([]);
  const [sent, setSent] = useState<ChatRequest | undefined>(undefined);
  const [codeKind, setCodeKind] = useState<SnippetKind>("curl");
  const [copied, setCopied] = useState(false);
  const running = useRef<AbortController | undefined>(undefined);
  const [busy, setBusy] = useState(false);

  useEffect(() => {
    if (adapter !== undefined) setModel(adapter);
  }, [adapter]);
  useEffect(() => {
    if (model === "" && names[0] !== undefined) setModel(names[0]);
  }, [model, names.join(",")]);
  useEffect(() => () => running.current?.abort(), []);

  const history: ChatMessage[] = turns
    .filter((turn) => turn.status !== "failed")
    .map((turn) => ({ role: turn.role, content: turn.content }));
  const requestFor = (text: string): ChatRequest => {
    const max = numberOrUndefined(maxTokens);
    const temp = numberOrUndefined(temperature);
    return {
      model,
      messages: [...history, { role: "user", content: text }],
      stream: true,
      stream_options: { include_usage: true },
      ...(max !== undefined ? { max_tokens: max } : {}),
      ...(temp !== undefined ? { temperature: temp } : {}),
    };
  };
  const shown = sent ?? requestFor(input.trim() === "" ? "Hello" : input.trim());

  const updateLast = (change: (turn: Turn) => Turn) =>
    setTurns((current) => {
      const last = current[current.length - 1];
      return last === undefined ? current : [...current.slice(0, -1), change(last)];
    });

  const send = async (event: Event) => {
    event.preventDefault();
    const text = input.trim();
    if (text === "" || model === "" || busy) return;
    const request = requestFor(text);
    const controller = new AbortController();
    running.current = controller;
    setSent(request);
    setInput("");
    setBusy(true);
    setTurns((current) => [...current, { role: "user", content: text }, { role: "assistant", content: "", status: "streaming", model }]);
    const started = performance.now();
    try {
      await streamChat(
        api,
        request,
        {
          onFirstToken: () => updateLast((turn) => ({ ...turn, firstTokenMs: performance.now() - started })),
          onText: (delta) => updateLast((turn) => ({ ...turn, content: turn.content + delta })),
          onUsage: (usage) => updateLast((turn) => ({ ...turn, usage })),
          onCitations: (citations) => updateLast((turn) => ({ ...turn, citations })),
        },
        controller.signal,
      );
      updateLast((turn) => ({ ...turn, status: "done", totalMs: performance.now() - started }));
    } catch (error) {
      if (controller.signal.aborted) updateLast((turn) => ({ ...turn, status: "stopped", totalMs: performance.now() - started }));
      else
        updateLast((turn) => ({
          ...turn,
          status: "failed",
          error: error instanceof ApiError ? `${error.status} ${error.code ?? ""}: ${error.message}` : String(error),
        }));
    } finally {
      running.current = undefined;
      setBusy(false);
    }
  };

  const code = snippet(codeKind, location.origin, shown, authRequired);
  const copy = () => {
    void navigator.clipboard.writeText(code).then(() => {
      setCopied(true);
      setTimeout(() => setCopied(false), 1500);
    });
  };

  return (
    <>
      <h1>Playground</h1>
      {adapters.error !== undefined && (
        <p role="alert" class="error">
          {adapters.error.message}
        </p>
      )}
      <div class="playground">
        <section class="card chat" aria-labelledby="chat-heading">
          <h2 id="chat-heading" class="visually-hidden">
            Conversation
          </h2>
          {turns.length === 0 ? (
            <p class="muted">
              Pick an adapter and send a message: the answer streams in as the engine writes it. Stop calls the request off.
            </p>
          ) : (
            <ol class="transcript" data-testid="transcript">
              {turns.map((turn, index) => (
                <li key={index} class={`turn turn-${turn.role}`} data-status={turn.status}>
                  <span class="turn-role">{turn.role === "user" ? "You" : turn.model}</span>
                  <div class="turn-text" data-testid={turn.role === "assistant" ? "answer" : undefined}>
                    {turn.content}
                    {turn.status === "streaming" && <span class="cursor" aria-hidden="true" />}
                  </div>
                  {turn.error !== undefined && (
                    <p role="alert" class="error">
                      {turn.error}
                    </p>
                  )}
                  {turn.role === "assistant" && turn.status !== "failed" && <TurnMeta turn={turn} />}
                  {turn.citations !== undefined && turn.citations.length > 0 && (
                    <div class="citations" data-testid="citations">
                      <h3>Sources</h3>
                      <ol>
                        {turn.citations.map((citation) => (
                          <li key={citation.index}>
                            [{citation.index}] <span class="mono">{citation.source}</span> · chunk {citation.chunk} · score{" "}
                            {rate(citation.score)}
                          </li>
                        ))}
                      </ol>
                    </div>
                  )}
                </li>
              ))}
            </ol>
          )}
          <form class="composer" onSubmit={(event) => void send(event)}>
            <label for="message">Message</label>
            <textarea
              id="message"
              rows={3}
              value={input}
              onInput={(event) => setInput(event.currentTarget.value)}
              onKeyDown={(event) => {
                if (event.key === "Enter" && (event.ctrlKey || event.metaKey)) void send(event);
              }}
            />
            <div class="row">
              <button type="submit" disabled={busy || input.trim() === "" || model === ""}>
                Send
              </button>
              <button type="button" class="danger" disabled={!busy} onClick={() => running.current?.abort()}>
                Stop
              </button>
              <button
                type="button"
                class="secondary"
                disabled={busy || turns.length === 0}
                onClick={() => (setTurns([]), setSent(undefined))}
              >
                Clear
              </button>
              <span class="muted small">Ctrl+Enter sends</span>
            </div>
          </form>
        </section>

        <aside class="side">
          <section class="card" aria-labelledby="settings-heading">
            <h2 id="settings-heading">Request</h2>
            <label for="model">Adapter</label>
            <select id="model" value={model} onChange={(event) => setModel(event.currentTarget.value)} disabled={busy}>
              {names.map((name) => (
                <option key={name} value={name}>
                  {name}
                </option>
              ))}
            </select>
            {(adapters.data?.data.find((entry) => entry.name === model)?.rag ?? null) !== null && (
              <p class="muted small">
                A RAG adapter: answers cite the passages of its <a href={href("documents", model)}>documents</a>.
              </p>
            )}
            <div class="row">
              <div class="field">
                <label for="max-tokens">Max tokens</label>
                <input
                  id="max-tokens"
                  type="number"
                  min={1}
                  value={maxTokens}
                  onInput={(event) => setMaxTokens(event.currentTarget.value)}
                />
              </div>
              <div class="field">
                <label for="temperature">Temperature</label>
                <input
                  id="temperature"
                  type="number"
                  min={0}
                  max={2}
                  step={0.1}
                  placeholder="adapter's"
                  value={temperature}
                  onInput={(event) => setTemperature(event.currentTarget.value)}
                />
              </div>
            </div>
          </section>
          <section class="card" aria-labelledby="code-heading">
            <h2 id="code-heading">{sent !== undefined ? "The last request as code" : "This request as code"}</h2>
            <div class="segmented" role="group" aria-label="Language">
              {(Object.keys(SNIPPET_LABELS) as SnippetKind[]).map((kind) => (
                <button
                  key={kind}
                  type="button"
                  class={codeKind === kind ? "active" : "secondary"}
                  aria-pressed={codeKind === kind}
                  onClick={() => setCodeKind(kind)}
                >
                  {SNIPPET_LABELS[kind]}
                </button>
              ))}
            </div>
            <pre class="code" data-testid="snippet" tabIndex={0} aria-label={`${SNIPPET_LABELS[codeKind]} code`}>
              {code}
            </pre>
            <div class="row">
              <button type="button" class="secondary" onClick={copy}>
                {copied ? "Copied" : "Copy"}
              </button>
              {authRequired && (
                <span class="muted small">Set DIATONIC_API_KEY to a key with the inference scope: the key is never shown here.</span>
              )}
            </div>
          </section>
        </aside>
      </div>
    </>
  );
}
