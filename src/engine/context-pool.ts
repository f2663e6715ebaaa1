// Hands out context sequences to requests, base model or LoRA adapter, with vLLM's limits.
//
// Why a pool of contexts keyed by adapter: in node-llama-cpp 3.21.1 a LoRA adapter is applied to
// a whole LlamaContext (`createContext({ lora })` → llama_set_adapter_lora on the context), so all
// sequences of one context share the same adapters. Requests for different adapters therefore need
// different contexts. Each context gets `parallel` sequences (so one hot adapter can use every
// slot), at most `maxLoras` adapter contexts exist at once (vLLM's --max-loras: how many adapters
// are active together), and an idle adapter context is disposed to make room for another.
// The adapter weights themselves are loaded once per model by node-llama-cpp and cached by path.
import type { CustomBatchingPrioritizationStrategy, LlamaContext, LlamaContextSequence, LlamaModel, Token } from "node-llama-cpp";
import { QueueFullError } from "./api-error.ts";
import { Lockstep } from "./lockstep.ts";

/** What a request runs on: the base model (`adapter` undefined) or one LoRA adapter. */
export interface Target {
  readonly name: string;
  readonly adapter?: { readonly path: string; readonly scale?: number };
}

export interface ContextPoolOptions {
  readonly model: LlamaModel;
  /** Sequences evaluated together, across all contexts. */
  readonly parallel: number;
  /** Requests allowed to wait for a sequence; past this, acquire() throws QueueFullError. */
  readonly maxQueue: number;
  /** Adapter contexts alive at once. */
  readonly maxLoras: number;
  /** Tokens per sequence. */
  readonly contextSize: number;
  readonly threads: number;
  /** Told each time an adapter's context is made: a LoRA swapped into one of the maxLoras slots. */
  readonly onSwap?: (evicted: boolean) => void;
  /** Added to each adapter context's making, in ms: see EngineOptions.emulatedLoraLoadMs. @default 0 */
  readonly emulatedLoadMs?: number;
  /** Told of each decode step of a context: how many sequences it carries and how many tokens. */
  readonly onBatch?: (sequences: number, tokens: number) => void;
}

export interface Lease {
  readonly sequence: LlamaContextSequence;
  /** Shared by the generations of the sequence's context (see Lockstep). */
  readonly lockstep: Lockstep;
  release(): Promise<void>;
}

interface Slot {
  readonly key: string;
  /** The adapter's name (undefined for the base model): one name may have an old and a new slot while it is replaced in place. */
  readonly name: string | undefined;
  readonly ready: Promise<LlamaContext>;
  readonly lockstep: Lockstep;
  running: number;
  retired: boolean;
  /**
   * Sequences whose request ended, with their KV cells kept: the next request on this context takes
   * the one holding the longest prefix of its prompt (see generate), as vLLM's prefix caching and
   * llama.cpp's own server reuse what was evaluated before.
   */
  readonly idle: LlamaContextSequence[];
  /** When a request last ended on it: the least recently used idle slot is evicted first, as vLLM does. */
  lastUsed: number;
}

interface Waiter {
  readonly target: Target;
  /** The request's prompt, to find the idle sequence that holds most of it. */
  readonly prompt: readonly Token[];
  readonly resolve: (lease: Lease) => void;
  readonly reject: (error: unknown) => void;
  /** Times a later request was admitted ahead of it (its LoRA had no slot); see pump. */
  passed: number;
}

const BASE_KEY = "\u0000base";

export class ContextPool {
  private readonly slots = new Map<string, Slot>();
  private readonly queue: Waiter[] = [];
  private running = 0;
  private closed = false;
  private whileDecodingTasks: (() => void)[] = [];
  private whileDecodingFallback: NodeJS.Timeout | undefined;

  constructor(private readonly options: ContextPoolOptions) {}

  /**
   * Runs `task` just after the next batch has been handed to llama.cpp's threads, so that work the
   * request does between tokens (detokenizing, writing a stream to its socket) overlaps the model's
   * compute instead of delaying the next token. node-llama-cpp dispatches a batch on the next event-loop
   * cycle (setImmediate); anything run synchronously in a token callback runs before that dispatch.
   * If no batch is dispatched soon (the generation ended), the task runs after at most 1 ms.
   */
  readonly whileDecoding = (task: () => void): void => {
    this.whileDecodingTasks.push(task);
    if (this.whileDecodingTasks.length > 1) return;
    if (this.whileDecodingFallback === undefined) {
      this.whileDecodingFallback = setTimeout(this.drainWhileDecoding, 1);
      this.whileDecodingFallback.unref();
    } else {
      this.whileDecodingFallback.refresh();
    }
  };

  /** Tasks that add tasks (a token's text going to its stream) have those run in the same drain. */
  private readonly drainWhileDecoding = (): void => {
    while (this.whileDecodingTasks.length > 0) {
      const tasks = this.whileDecodingTasks;
      this.whileDecodingTasks = [];
      for (const task of tasks) {
        try {
          task();
        } catch (error) {
          // Tasks handle their own errors; one that escapes must not cost the others their turn.
          process.emitWarning(`a task run while decoding failed: ${error instanceof Error ? error.message : String(error)}`);
        }
      }
    }
  };

  /** node-llama-cpp's own schedule (dispatch on the next cycle), then the tasks that wait for it. */
  private readonly dispatchSchedule = (dispatch: () => void): void => {
    setImmediate(() => {
      dispatch();
      this.drainWhileDecoding();
    });
  };

  /**
   * Which queued tokens go into the next decode step: node-llama-cpp's default ("maximum
   * parallelism": every queued sequence gets an even share of the batch, a long prompt takes what the
   * others leave), with each step counted for the batching metrics.
   */
  private readonly batchStrategy: CustomBatchingPrioritizationStrategy = ({ items, size }) => {
    const chosen = items.map((item) => ({ item, processAmount: Math.min(item.tokens.length, Math.floor(size / items.length)) }));
    let left = size - chosen.reduce((sum, c) => sum + c.processAmount, 0);
    for (const c of chosen) {
      const more = Math.min(c.item.tokens.length - c.processAmount, left);
      c.processAmount += more;
      left -= more;
    }
    const taken = chosen.filter((c) => c.processAmount > 0);
    this.options.onBatch?.(taken.length, size - left);
    return taken;
  };

  get runningCount(): number {
    return this.running;
  }

  get waitingCount(): number {
    return this.queue.length;
  }

  /** Adapter names with running requests, and with waiting ones (for vllm:lora_requests_info). */
  adapterActivity(): { running: string[]; waiting: string[] } {
    const running = [...new Set([...this.slots.values()].flatMap((s) => (s.running > 0 && s.name !== undefined ? [s.name] : [])))];
    const waiting = [...new Set(this.queue.filter((w) => w.target.adapter !== undefined).map((w) => w.target.name))];
    return { running: running.sort(), waiting: waiting.sort() };
  }

  /**
   * Waits for a free sequence on the target's context (the one holding the longest prefix of
   * `prompt` when several are free). Rejects at once when the queue is full.
   */
  acquire(target: Target, signal?: AbortSignal, prompt: readonly Token[] = []): Promise<Lease> {
    if (this.closed) return Promise.reject(new Error("the engine is shutting down"));
    if (this.queue.length >= this.options.maxQueue && !this.canAdmitNow(target)) {
      return Promise.reject(new QueueFullError(this.options.maxQueue));
    }
    return new Promise<Lease>((resolve, reject) => {
      const waiter: Waiter = { target, prompt, resolve, reject, passed: 0 };
      this.queue.push(waiter);
      signal?.addEventListener(
        "abort",
        () => {
          const at = this.queue.indexOf(waiter);
          if (at !== -1) {
            this.queue.splice(at, 1);
            reject(signal.reason);
          }
        },
        { once: true },
      );
      this.pump();
    });
  }

  /**
   * Disposes the adapter's contexts once no request runs on them (after unload_lora_adapter), but
   * the one for `keepPath` (after a load in place: running requests finish on the old weights,
   * new ones start on the new).
   */
  retire(name: string, keepPath?: string): void {
    for (const slot of [...this.slots.values()]) {
      if (slot.name !== name || slot.key === this.keyOf({ name, adapter: keepPath === undefined ? undefined : { path: keepPath } }))
        continue;
      slot.retired = true;
      if (slot.running === 0) this.dispose(slot);
    }
  }

  async close(): Promise<void> {
    this.closed = true;
    for (const waiter of this.queue.splice(0)) waiter.reject(new Error("the engine is shutting down"));
    await Promise.allSettled([...this.slots.values()].map(async (slot) => (await slot.ready).dispose()));
    this.slots.clear();
  }

  private keyOf(target: Target): string {
    return target.adapter === undefined ? BASE_KEY : `${target.name}\u0000${target.adapter.path}`;
  }

  private canAdmitNow(target: Target): boolean {
    if (this.queue.length > 0 || this.running >= this.options.parallel) return false;
    const slot = this.slots.get(this.keyOf(target));
    return slot !== undefined && !slot.retired;
  }

  /**
   * Admits waiters in arrival order. One whose LoRA can get no slot yet (every slot busy) is passed
   * over, as vLLM's scheduler passes it, so that requests for resident adapters are not held up
   * behind it; once passed over `parallel × maxLoras` times it blocks the rest until it runs (no
   * starvation).
   */
  private pump(): void {
    let index = 0;
    while (index < this.queue.length && this.running < this.options.parallel) {
      const waiter = this.queue[index];
      if (waiter === undefined) return;
      const slot = this.slotFor(waiter.target);
      if (slot === undefined) {
        if (waiter.passed >= this.options.parallel * this.options.maxLoras) return;
        index++;
        continue;
      }
      this.queue.splice(index, 1);
      for (let i = 0; i < index; i++) (this.queue[i] as Waiter).passed++;
      slot.running++;
      this.running++;
      slot.ready
        .then(
          (context) => waiter.resolve(this.lease(slot, this.sequenceFor(slot, context, waiter.prompt))),
          (error: unknown) => {
            this.finish(slot);
            waiter.reject(error);
          },
        )
        .catch((error: unknown) => {
          // getSequence() failed although the count said a sequence was free: give the slot back.
          this.finish(slot);
          waiter.reject(error);
        });
    }
  }

  /**
   * An idle sequence of the slot that holds a prefix of the prompt (the longest), else a new one
   * while the context has some left, else the idle one whose cells were used least recently.
   */
  private sequenceFor(slot: Slot, context: LlamaContext, prompt: readonly Token[]): LlamaContextSequence {
    let best = -1;
    let bestPrefix = 0;
    const tokens = [...prompt];
    slot.idle.forEach((sequence, index) => {
      const prefix = sequence.compareContextTokens(tokens).firstDifferentIndex;
      if (prefix > bestPrefix) [best, bestPrefix] = [index, prefix];
    });
    if (best === -1 && context.sequencesLeft > 0) return context.getSequence();
    const [sequence] = slot.idle.splice(best === -1 ? 0 : best, 1);
    return sequence ?? context.getSequence();
  }

  private lease(slot: Slot, sequence: LlamaContextSequence): Lease {
    let released = false;
    return {
      sequence,
      lockstep: slot.lockstep,
      release: async () => {
        if (released) return;
        released = true;
        try {
          // Kept with its KV cells for the next request's prefix, unless its context is going away.
          if (slot.retired || this.closed) await sequence.dispose();
          else slot.idle.push(sequence);
        } finally {
          this.finish(slot);
        }
      },
    };
  }

  private finish(slot: Slot): void {
    slot.running--;
    slot.lastUsed = performance.now();
    this.running--;
    if (slot.retired && slot.running === 0) this.dispose(slot);
    this.pump();
  }

  /** The target's context, created if there is room (evicting an idle adapter context if need be). */
  private slotFor(target: Target): Slot | undefined {
    const key = this.keyOf(target);
    const existing = this.slots.get(key);
    if (existing !== undefined && !existing.retired) return existing;
    if (existing !== undefined) return undefined; // retired but busy: wait until it is gone
    if (target.adapter !== undefined) {
      const adapterSlots = [...this.slots.values()].filter((s) => s.name !== undefined);
      const full = adapterSlots.length >= this.options.maxLoras;
      if (full) {
        let idle: Slot | undefined;
        for (const candidate of adapterSlots)
          if (candidate.running === 0 && (idle === undefined || candidate.lastUsed < idle.lastUsed)) idle = candidate;
        if (idle === undefined) return undefined;
        this.dispose(idle);
      }
      this.options.onSwap?.(full);
    }
    const { model, parallel, contextSize, threads } = this.options;
    const context = model.createContext({
      contextSize,
      sequences: parallel,
      threads,
      failedCreationRemedy: false,
      batching: { dispatchSchedule: this.dispatchSchedule, itemPrioritizationStrategy: this.batchStrategy },
      lora: target.adapter === undefined ? undefined : { adapters: [{ filePath: target.adapter.path, scale: target.adapter.scale ?? 1 }] },
    });
    const emulated = target.adapter === undefined ? 0 : (this.options.emulatedLoadMs ?? 0);
    const slot: Slot = {
      key,
      name: target.adapter === undefined ? undefined : target.name,
      running: 0,
      retired: false,
      idle: [],
      lastUsed: performance.now(),
      lockstep: new Lockstep(),
      // The emulated load holds the request's sequence, as a load does; the engine's other sequences go on.
      ready:
        emulated > 0 ? context.then((made) => new Promise<LlamaContext>((resolve) => setTimeout(() => resolve(made), emulated))) : context,
    };
    slot.ready.catch(() => {
      if (this.slots.get(key) === slot) this.slots.delete(key);
    });
    this.slots.set(key, slot);
    return slot;
  }

  private dispose(slot: Slot): void {
    if (this.slots.get(slot.key) === slot) this.slots.delete(slot.key);
    void slot.ready.then(
      (context) => context.dispose(),
      () => undefined,
    );
  }
}
