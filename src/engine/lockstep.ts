// Makes the generations of one context ask for their next tokens together, so that each decode
// carries all of them.
//
// Why: node-llama-cpp 3.21.1 decodes a context's queued tokens in a loop that, once a batch's
// tokens are sampled, starts the next batch at once with whatever is queued at that moment. Each
// generation queues its next token a few promise hops after its own sample resolves, and the last
// one to resolve is always too late: with 4 streams, measured, 164 of 176 batches carried 3 tokens
// and the fourth sequence went alone in between, so 4 streams ran at the speed of about 3.
// Generations past their first token therefore wait here for each other and are let go together on
// the next event-loop turn, after the batch loop has seen an empty queue.
export class Lockstep {
  private members = 0;
  private waiting: (() => void)[] = [];
  private releaseScheduled = false;

  /**
   * Called by a generation each time it has a token and wants the next. The first call makes it a
   * member. Returns undefined when it may go on at once (it is alone), else a promise that resolves
   * once every member has arrived (or left).
   */
  arrive(first: boolean): Promise<void> | undefined {
    if (first) this.members++;
    if (this.members <= 1 && this.waiting.length === 0) return undefined;
    return new Promise<void>((resolve) => {
      this.waiting.push(resolve);
      this.releaseIfAllArrived();
    });
  }

  /** Called once by a generation that has stopped asking for tokens; `joined` if it ever arrived. */
  leave(joined: boolean): void {
    if (!joined) return;
    this.members--;
    this.releaseIfAllArrived();
  }

  private releaseIfAllArrived(): void {
    if (this.releaseScheduled || this.waiting.length === 0 || this.waiting.length < this.members) return;
    this.releaseScheduled = true;
    // On the next turn: released at once, a generation would queue its token while the batch loop
    // still holds the context and be decoded alone.
    setImmediate(this.release);
  }

  private readonly release = (): void => {
    this.releaseScheduled = false;
    const waiting = this.waiting;
    this.waiting = [];
    for (const resolve of waiting) resolve();
  };
}
