/** Token counts as OpenAI and vLLM report them. */
export interface Usage {
  readonly promptTokens: number;
  readonly completionTokens: number;
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

/**
 * Relays a server-sent event stream event by event: each complete event goes out as soon as it has
 * arrived (only a partial event is held back). It reads usage from the stream, can drop the
 * usage-only chunk the client did not ask for, and can add one event before `[DONE]`.
 */
export class SseRelay {
  private pending = "";
  usage: Usage | undefined;

  constructor(
    /** False when the gateway asked for usage on the client's behalf: the usage-only chunk is then dropped. */
    private readonly clientWantsUsage: boolean,
    /** JSON for one extra event sent just before `data: [DONE]`. */
    private readonly beforeDone?: () => string | undefined,
    /** `"model":"<upstream name>"` → `"model":"<adapter>"`, so clients see the model they asked for. */
    private readonly rename?: ModelRename,
  ) {}

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
    return this.process(text.slice(0, end));
  }

  /** Whatever is left when the upstream stream ends. */
  flush(): string {
    const rest = this.pending;
    this.pending = "";
    return rest === "" ? "" : this.process(rest);
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
    // The fast path: no usage object and no end in this batch, so nothing needs parsing.
    if (!USAGE_OBJECT.test(events) && !(this.beforeDone && events.includes("[DONE]"))) return events;
    let out = "";
    for (const event of splitEvents(events)) out += this.processEvent(event);
    return out;
  }

  private processEvent(event: string): string {
    const data = dataOf(event);
    if (data === "[DONE]") {
      const extra = this.beforeDone?.();
      return extra === undefined ? event : `data: ${extra}\n\n${event}`;
    }
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
    return usageOnly && !this.clientWantsUsage ? "" : event;
  }
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
