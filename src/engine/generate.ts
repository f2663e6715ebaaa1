// One generation on one context sequence: evaluate the prompt, sample until max_tokens, an
// end-of-generation token or a stop string, and hand out text as it becomes final.
import type { LlamaContextSequence, LlamaModel, Token } from "node-llama-cpp";
import type { Lockstep } from "./lockstep.ts";
import type { Sampling } from "./requests.ts";

export type FinishReason = "stop" | "length";

export interface GenerationResult {
  readonly text: string;
  readonly finishReason: FinishReason;
  readonly promptTokens: number;
  /** Of the prompt, the tokens whose KV cells the sequence already held from an earlier request. */
  readonly cachedPromptTokens: number;
  readonly completionTokens: number;
}

export interface GenerateOptions {
  readonly sampling: Sampling;
  /** Called with each piece of final text (never a partial UTF-8 character, never part of a stop string). */
  readonly onText?: (delta: string) => void;
  /** Called once, when the first token has been sampled. */
  readonly onFirstToken?: () => void;
  readonly signal?: AbortSignal;
  /** Runs a task once the next token's decode is under way; see `generate`. Without it, work is done inline. */
  readonly defer?: (task: () => void) => void;
  /**
   * With `defer` and no stop strings: the text of the tokens sampled since the last time is worked
   * out (one detokenize for all of them, one `onText`) at most once per this many ms; Infinity
   * leaves it all to the end. Stop strings need every token checked, so they ignore it. @default 0
   */
  readonly textIntervalMs?: number;
  /** Holds each next token until the context's other generations want theirs too (see Lockstep). */
  readonly lockstep?: Pick<Lockstep, "arrive" | "leave">;
}

/** How many of the completion's latest tokens presence and frequency penalties look at (llama.cpp keeps a window). */
const PUNISH_WINDOW = 256;

/** Holds back text that might be the start of a stop string, and cuts at the first full one. */
class StopMatcher {
  private held = "";
  constructor(private readonly stops: readonly string[]) {}

  /** Returns the text safe to emit now and whether a stop string was reached. */
  push(text: string): { emit: string; stopped: boolean } {
    const combined = this.held + text;
    if (this.stops.length === 0) return { emit: combined, stopped: false };
    let cut = -1;
    for (const stop of this.stops) {
      const at = combined.indexOf(stop);
      if (at !== -1 && (cut === -1 || at < cut)) cut = at;
    }
    if (cut !== -1) {
      this.held = "";
      return { emit: combined.slice(0, cut), stopped: true };
    }
    let keep = 0;
    for (const stop of this.stops) {
      for (let len = Math.min(stop.length - 1, combined.length); len > keep; len--) {
        if (combined.endsWith(stop.slice(0, len))) {
          keep = len;
          break;
        }
      }
    }
    this.held = combined.slice(combined.length - keep);
    return { emit: combined.slice(0, combined.length - keep), stopped: false };
  }

  flush(): string {
    const rest = this.held;
    this.held = "";
    return rest;
  }
}

/**
 * Runs one generation; the caller owns the sequence. What the sequence holds from an earlier request
 * is kept as far as it is a prefix of this prompt (prefix caching) and erased after that; at least
 * the prompt's last token is evaluated, for the logits of the first sampled one.
 * Detokenizes incrementally with a few tokens of left context (SPM needs it for spaces) and holds
 * tokens back while they end in an incomplete UTF-8 character (byte-fallback tokens).
 *
 * With `defer`, the work on sampled tokens (detokenizing, stop strings, `onText`) runs while the
 * next token decodes rather than before its decode starts: the loop only counts tokens and checks
 * for the end. A stop string found that way ends the generation at the next token, which was
 * decoded in vain and is not counted. Without stop strings the tokens are taken in batches (see
 * `textIntervalMs`), like vLLM's --stream-interval.
 */
export async function generate(
  model: LlamaModel,
  sequence: LlamaContextSequence,
  promptTokens: readonly Token[],
  options: GenerateOptions,
): Promise<GenerationResult> {
  const { sampling, defer } = options;
  const cachedPromptTokens = Math.max(
    0,
    Math.min(sequence.compareContextTokens([...promptTokens]).firstDifferentIndex, promptTokens.length - 1),
  );
  if (sequence.nextTokenIndex > cachedPromptTokens)
    await sequence.eraseContextTokenRanges([{ start: cachedPromptTokens, end: sequence.nextTokenIndex }]);
  const room = sequence.contextSize - promptTokens.length;
  const maxTokens = Math.min(sampling.maxTokens ?? room, room);
  const matcher = new StopMatcher(sampling.stop);
  const checkEachToken = sampling.stop.length > 0;
  const textIntervalMs = checkEachToken ? 0 : (options.textIntervalMs ?? 0);
  /** The last few detokenized tokens: the left context for the next piece. */
  let context: Token[] = [];
  /** Tokens whose text ends in an incomplete UTF-8 character so far. */
  let pending: Token[] = [];
  /** Sampled tokens not yet detokenized. */
  const sampled: Token[] = [];
  let text = "";
  let completionTokens = 0;
  let processedTokens = 0;
  /** Completion tokens up to the one that completed a stop string; -1 while none has. */
  let stoppedAt = -1;
  let scheduled = false;
  let processedAt = Number.NEGATIVE_INFINITY;

  const emit = (piece: string): void => {
    if (piece.length === 0) return;
    text += piece;
    options.onText?.(piece);
  };

  const commit = (tokens: readonly Token[], piece: string): void => {
    context = [...context, ...tokens.slice(-4)].slice(-4);
    const { emit: ready, stopped } = matcher.push(piece);
    emit(ready);
    if (stopped) stoppedAt = processedTokens;
  };

  /** Token by token, so a stop string is found at the token that completes it. */
  const processEach = (): void => {
    for (const token of sampled) {
      if (stoppedAt >= 0) break;
      processedTokens++;
      pending.push(token);
      const piece = model.detokenize(pending, false, context);
      if (!piece.endsWith("\uFFFD") || pending.length >= 4) {
        const done = pending;
        pending = [];
        commit(done, piece);
      }
    }
  };

  /**
   * All at once: one detokenize, holding back the last tokens (at most 3) while they end in an
   * incomplete character; past that the replacement character goes through, as token by token.
   */
  const processBatch = (): void => {
    processedTokens += sampled.length;
    const tokens = pending.length === 0 ? [...sampled] : [...pending, ...sampled];
    const whole = model.detokenize(tokens, false, context);
    let cut = tokens.length;
    let piece = whole;
    while (piece.endsWith("\uFFFD") && cut > 0 && tokens.length - cut < 3) {
      cut--;
      piece = cut === 0 ? "" : model.detokenize(tokens.slice(0, cut), false, context);
    }
    if (piece.endsWith("\uFFFD")) {
      cut = tokens.length;
      piece = whole;
    }
    pending = tokens.slice(cut);
    if (cut > 0) commit(tokens.slice(0, cut), piece);
  };

  /** An error in deferred work (which runs outside this function's stack) ends the generation with it. */
  let deferredError: unknown;
  const processDeferred = (): void => {
    try {
      processSampled();
    } catch (error) {
      deferredError ??= error;
    }
  };

  const processSampled = (): void => {
    scheduled = false;
    processedAt = performance.now();
    if (sampled.length === 0) return;
    if (checkEachToken) processEach();
    else processBatch();
    sampled.length = 0;
  };

  let finishReason: FinishReason = "length";
  if (maxTokens > 0) {
    // OpenAI's penalties count the completion's own tokens (not the prompt's), as vLLM does.
    const generated: Token[] = [];
    const penalised = sampling.presencePenalty !== 0 || sampling.frequencyPenalty !== 0;
    const evaluation = sequence.evaluate(promptTokens.slice(cachedPromptTokens), {
      temperature: sampling.temperature,
      topP: sampling.topP < 1 ? sampling.topP : undefined,
      topK: sampling.topK > 0 ? sampling.topK : undefined,
      minP: sampling.minP > 0 ? sampling.minP : undefined,
      seed: sampling.seed,
      // Without it node-llama-cpp ends the iteration on an end-of-generation token, silently: the
      // check below would never see it and the finish reason would stay "length".
      yieldEogToken: true,
      ...(penalised
        ? {
            repeatPenalty: {
              punishTokens: () => generated.slice(-PUNISH_WINDOW),
              maxPunishTokens: PUNISH_WINDOW,
              penalty: 1,
              presencePenalty: sampling.presencePenalty,
              frequencyPenalty: sampling.frequencyPenalty,
            },
          }
        : {}),
    });
    const { lockstep } = options;
    let joined = false;
    // Called before each `break`: closing the iterator takes a few hops the others must not wait for.
    const leave = (): void => {
      lockstep?.leave(joined);
      joined = false;
    };
    try {
      for await (const token of evaluation) {
        if (completionTokens === 0) options.onFirstToken?.();
        if (stoppedAt >= 0 || deferredError !== undefined) {
          leave();
          break;
        }
        completionTokens++;
        if (penalised) generated.push(token);
        if (model.isEogToken(token)) {
          finishReason = "stop";
          leave();
          break;
        }
        sampled.push(token);
        if (defer === undefined) processSampled();
        else if (!scheduled && performance.now() - processedAt >= textIntervalMs) {
          scheduled = true;
          defer(processDeferred);
        }
        if (stoppedAt >= 0 || completionTokens >= maxTokens || options.signal?.aborted === true) {
          leave();
          break;
        }
        if (lockstep !== undefined) {
          const together = lockstep.arrive(!joined);
          joined = true;
          if (together !== undefined) await together;
        }
      }
    } finally {
      leave();
    }
  }
  if (deferredError !== undefined) throw deferredError;
  processSampled();
  let stoppedByString = stoppedAt >= 0;
  if (!stoppedByString && pending.length > 0) {
    const { emit: ready, stopped } = matcher.push(model.detokenize(pending, false, context));
    emit(ready);
    stoppedByString = stopped;
  }
  if (stoppedByString) finishReason = "stop";
  else emit(matcher.flush());
  if (stoppedAt >= 0) completionTokens = stoppedAt;
  return { text, finishReason, promptTokens: promptTokens.length, cachedPromptTokens, completionTokens };
}
