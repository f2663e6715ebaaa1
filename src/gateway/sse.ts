/** Token counts as OpenAI and vLLM report them. */
export interface Usage {
  readonly promptTokens: number;
  readonly completionTokens: number;
  /** Counted by the gateway from the chunks it relayed, not reported by the engine (a stream without a usage chunk). */
  readonly estimated?: boolean;
}

export function usageOf(value: unknown): Usage | undefined {
  if (typeof value !== "object" || value === null) return undefined;
  const { prompt_tokens: prompt, completion_tokens: completion, total_tokens: total } = value as Record<string, unknown>;
  if (typeof prompt !== "number" && typeof total !== "number") return undefined;
  const promptTokens = typeof prompt === "number" ? prompt : 0;
  const completionTokens = typeof completion === "number" ? completion : typeof total === "number" ? total - promptTokens : 0;
  return { promptTokens, completionTokens };
}

const EVENT_END = /\r?\n\r?\n/g;
/** A usage object (not `"usage":null`), as compact or spaced JSON. */
const USAGE_OBJECT = /"usage"\s*:\s*\{/;
const USAGE_NULL = ',"usage":null';
/** `"usage": null` with any spacing, for engines that do not write compact JSON. */
const USAGE_NULL_SPACED = /,\s*"usage"\s*:\s*null/g;

/**
 * The `model` member as engines serialize it: compact JSON (vLLM, our engine) on the fast path, any
 * spacing on the slow one. A string inside generated text cannot match: its quotes are escaped there.
 */
export interface ModelRename {
  readonly from: string;
  readonly to: string;
  /** `from` and `to` as UTF-8, for bodies handled as bytes. */
  readonly fromBytes: Buffer;
  readonly toBytes: Buffer;
  /** The upstream name as a JSON string: still present after the fast path means another spacing. */
  readonly quoted: string;
  /** `"model" : "<upstream>"` with any spacing. */
  readonly spaced: RegExp;
  readonly upstream: string;
  readonly adapter: string;
}

export function modelRename(upstreamModel: string, adapter: string): ModelRename | undefined {
  if (upstreamModel === adapter) return undefined;
  const quoted = JSON.stringify(upstreamModel);
  const from = `"model":${quoted}`;
  const to = `"model":${JSON.stringify(adapter)}`;
  const spaced = new RegExp(`"model"\\s*:\\s*${quoted.replace(/[.*+?^${}()|[\]\\]/g, "\\$&")}`, "g");
  return { from, to, fromBytes: Buffer.from(from), toBytes: Buffer.from(to), quoted, spaced, upstream: upstreamModel, adapter };
}

/**
 * The body with its first `model` member renamed (a response's own `model` comes before its choices).
 * Compact JSON is renamed in place; otherwise the body is parsed, renamed and written again.
 */
export function renameModelIn(body: Buffer, rename: ModelRename): Buffer {
  const at = body.indexOf(rename.fromBytes);
  if (at >= 0) return Buffer.concat([body.subarray(0, at), rename.toBytes, body.subarray(at + rename.fromBytes.length)]);
  if (body.indexOf(rename.quoted) < 0) return body;
  try {
    const parsed: unknown = JSON.parse(body.toString("utf8"));
    if (typeof parsed !== "object" || parsed === null || (parsed as { model?: unknown }).model !== rename.upstream) return body;
    return Buffer.from(JSON.stringify({ ...parsed, model: rename.adapter }));
  } catch {
    return body;
  }
}

const USAGE_KEY = Buffer.from('"usage"');
const COUNT_KEYS = {
  prompt: Buffer.from("prompt_tokens"),
  completion: Buffer.from("completion_tokens"),
  total: Buffer.from("total_tokens"),
};

/** Whether body[start, end) holds exactly `name`'s bytes. */
function bytesAre(body: Buffer, start: number, end: number, name: Buffer): boolean {
  if (end - start !== name.length) return false;
  for (let i = 0; i < name.length; i++) if (body[start + i] !== name[i]) return false;
  return true;
}

function skipSpace(body: Buffer, at: number): number {
  let next = at;
  for (let byte = body[next]; byte === 0x20 || byte === 0x0a || byte === 0x0d || byte === 0x09; byte = body[++next]);
  return next;
}

/**
 * The usage of a whole JSON response, read without parsing the rest of it (a full parse cost ~1.6 µs
 * a request, this ~0.3): the last `"usage"` key (a string inside generated text cannot match, its
 * quotes are escaped there), then the integer counts among that object's own members.
 */
export function usageInJson(body: Buffer): Usage | undefined {
  const key = body.lastIndexOf(USAGE_KEY);
  if (key < 0) return undefined;
  let at = skipSpace(body, key + USAGE_KEY.length);
  if (body[at] !== 0x3a) return undefined;
  at = skipSpace(body, at + 1);
  if (body[at] !== 0x7b) return undefined;
  const counts: { prompt_tokens?: number; completion_tokens?: number; total_tokens?: number } = {};
  let depth = 0;
  for (; at < body.length; at++) {
    const byte = body[at];
    if (byte === 0x22) {
      const start = at + 1;
      for (at = start; at < body.length && body[at] !== 0x22; at++) if (body[at] === 0x5c) at++;
      if (at >= body.length) return undefined;
      if (depth !== 1) continue;
      let value = skipSpace(body, at + 1);
      if (body[value] !== 0x3a) continue; // a string value, not a member name
      value = skipSpace(body, value + 1);
      let count = 0;
      let digits = 0;
      for (let digit = body[value]; digit !== undefined && digit >= 0x30 && digit <= 0x39; digit = body[++value], digits++)
        count = count * 10 + digit - 0x30;
      if (digits === 0) continue;
      if (bytesAre(body, start, at, COUNT_KEYS.prompt)) counts.prompt_tokens = count;
      else if (bytesAre(body, start, at, COUNT_KEYS.completion)) counts.completion_tokens = count;
      else if (bytesAre(body, start, at, COUNT_KEYS.total)) counts.total_tokens = count;
    } else if (byte === 0x7b || byte === 0x5b) depth++;
    else if ((byte === 0x7d || byte === 0x5d) && --depth === 0) return usageOf(counts);
  }
  return undefined;
}

/** The id and creation time the upstream's chunks carry, which every chunk of the stream shares. */
export interface StreamIdentity {
  readonly id: string;
  readonly created: number;
}

/**
 * A generated piece in a chunk: non-empty text (`content`, `reasoning_content`, `reasoning`, a
 * completion's `text`) or tool-call deltas. Member names inside generated text cannot match: their
 * quotes are escaped there.
 */
const GENERATED_DELTA = /"(?:content|reasoning_content|reasoning|text)"\s*:\s*"[^"]|"tool_calls"\s*:\s*\[/g;

/**
 * Relays a server-sent event stream event by event: each complete event goes out as soon as it has
 * arrived (only a partial event is held back). It reads usage from the stream, can drop the
 * usage-only chunk the client did not ask for, and can add one event at the end of the stream.
 */
export class SseRelay {
  private pending = "";
  usage: Usage | undefined;
  /** Generated pieces relayed so far: the completion's length when no usage chunk comes. */
  private generatedDeltas = 0;
  private identity: StreamIdentity | undefined;
  private extraSent = false;

  constructor(
    /** False when the gateway asked for usage on the client's behalf: the usage-only chunk is then dropped. */
    private readonly clientWantsUsage: boolean,
    /**
     * JSON for one extra chunk, given the stream's identity (undefined when no chunk came before it).
     * It goes just before the chunk that carries usage, else just before `data: [DONE]`: clients take
     * usage from the last chunk (the Python SDK sets it from every chunk, so a later chunk erases it).
     */
    private readonly extraEvent?: (stream: StreamIdentity | undefined) => string,
    /** `"model":"<upstream name>"` → `"model":"<adapter>"`, so clients see the model they asked for. */
    private readonly rename?: ModelRename,
  ) {}

  /**
   * The usage of a stream that sent no usage chunk (a client that went away, an engine that ignores
   * `stream_options`): no prompt count, and one completion token per generated piece relayed, as
   * vLLM (its default --stream-interval 1) and llama.cpp's server send one token a chunk. Our own
   * engine may put a few tokens in one chunk when it decodes fast, so there it is a lower bound.
   */
  estimatedUsage(): Usage | undefined {
    return this.generatedDeltas > 0 ? { promptTokens: 0, completionTokens: this.generatedDeltas, estimated: true } : undefined;
  }

  /** Takes a chunk from upstream; returns what to send to the client now ("" when nothing is complete yet). */
  push(chunk: string): string {
    const text = this.pending + chunk;
    let last = -1;
    let end = 0;
    EVENT_END.lastIndex = 0;
    for (let match = EVENT_END.exec(text); match !== null; match = EVENT_END.exec(text)) {
      last = match.index;
      end = match.index + match[0].length;
    }
    if (last < 0) {
      this.pending = text;
      return "";
    }
    this.pending = text.slice(end);
    return this.counted(this.process(text.slice(0, end)));
  }

  /** Whatever is left when the upstream stream ends. */
  flush(): string {
    const rest = this.pending;
    this.pending = "";
    return rest === "" ? "" : this.counted(this.process(rest));
  }

  /** Counts the generated pieces in what goes out (one scan, ~1.5 µs for a six-chunk stream, measured). */
  private counted(out: string): string {
    GENERATED_DELTA.lastIndex = 0;
    while (GENERATED_DELTA.exec(out) !== null) this.generatedDeltas++;
    return out;
  }

  private process(batch: string): string {
    let events = batch;
    if (this.rename) {
      events = events.replaceAll(this.rename.from, this.rename.to);
      // The upstream name still there after the compact rename: a spaced `"model": "…"` (slow path).
      if (events.includes(this.rename.quoted)) events = events.replace(this.rename.spaced, this.rename.to);
    }
    // Engines that send usage (OpenAI, our engine) put `"usage":null` in every chunk before the
    // usage-only one; a client that did not ask for usage gets chunks without it, as it would from them.
    if (!this.clientWantsUsage) {
      events = events.replaceAll(USAGE_NULL, "");
      if (events.includes('"usage"')) events = events.replace(USAGE_NULL_SPACED, "");
    }
    if (this.extraEvent && this.identity === undefined) this.identity = identityIn(events);
    // The fast path: no usage object and no end in this batch, so nothing needs parsing.
    if (!USAGE_OBJECT.test(events) && !(this.extraEvent && events.includes("[DONE]"))) return events;
    let out = "";
    for (const event of splitEvents(events)) out += this.processEvent(event);
    return out;
  }

  private processEvent(event: string): string {
    const data = dataOf(event);
    if (data === "[DONE]") return this.extra() + event;
    if (data === undefined || !USAGE_OBJECT.test(data)) return event;
    let parsed: unknown;
    try {
      parsed = JSON.parse(data);
    } catch {
      return event;
    }
    const { usage, choices } = parsed as { usage?: unknown; choices?: unknown };
    const counted = usageOf(usage);
    if (counted === undefined) return event;
    this.usage = counted;
    const usageOnly = Array.isArray(choices) && choices.length === 0;
    return this.extra() + (usageOnly && !this.clientWantsUsage ? "" : event);
  }

  /** The extra event, the first time it is asked for. */
  private extra(): string {
    if (this.extraEvent === undefined || this.extraSent) return "";
    this.extraSent = true;
    return `data: ${this.extraEvent(this.identity)}\n\n`;
  }
}

/** The id and `created` of the first JSON chunk among `events` (parsed once a stream, for streams that get an extra event). */
function identityIn(events: string): StreamIdentity | undefined {
  for (const event of splitEvents(events)) {
    const data = dataOf(event);
    if (data === undefined || !data.startsWith("{")) continue;
    try {
      const { id, created } = JSON.parse(data) as { id?: unknown; created?: unknown };
      if (typeof id === "string") return { id, created: typeof created === "number" ? created : Math.floor(Date.now() / 1000) };
    } catch {
      // Not JSON: look at the next event.
    }
  }
  return undefined;
}

function splitEvents(text: string): string[] {
  const events: string[] = [];
  let start = 0;
  EVENT_END.lastIndex = 0;
  for (let match = EVENT_END.exec(text); match !== null; match = EVENT_END.exec(text)) {
    const end = match.index + match[0].length;
    events.push(text.slice(start, end));
    start = end;
  }
  if (start < text.length) events.push(text.slice(start));
  return events;
}

/** The joined `data:` lines of one event. */
function dataOf(event: string): string | undefined {
  let data: string | undefined;
  for (const line of event.split(/\r?\n/)) {
    if (!line.startsWith("data:")) continue;
    const value = line.slice(line.startsWith("data: ") ? 6 : 5);
    data = data === undefined ? value : `${data}\n${value}`;
  }
  return data?.trim();
}
