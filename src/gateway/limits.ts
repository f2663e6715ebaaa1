import { ErrorType, GatewayError } from "./errors.ts";

/** A token bucket that refills continuously; it may go into debt when charged after the fact. */
export class TokenBucket {
  private tokens: number;
  private last: number;

  constructor(
    private capacity: number,
    /** Tokens added per millisecond. */
    private refillPerMs: number,
    now = performance.now(),
  ) {
    this.tokens = capacity;
    this.last = now;
  }

  resize(capacity: number, refillPerMs: number): void {
    this.capacity = capacity;
    this.refillPerMs = refillPerMs;
    this.tokens = Math.min(this.tokens, capacity);
  }

  private refill(now: number): void {
    this.tokens = Math.min(this.capacity, this.tokens + (now - this.last) * this.refillPerMs);
    this.last = now;
  }

  /** Takes `n` tokens if there are that many; otherwise returns how many ms until there will be. */
  take(n: number, now = performance.now()): number {
    this.refill(now);
    if (this.tokens >= n) {
      this.tokens -= n;
      return 0;
    }
    return Math.ceil((n - this.tokens) / this.refillPerMs);
  }

  /** Ms until the balance is positive again (0 when it is), without taking anything. */
  waitForPositive(now = performance.now()): number {
    this.refill(now);
    return this.tokens > 0 ? 0 : Math.ceil((1 - this.tokens) / this.refillPerMs);
  }

  /** Charges tokens already spent (counted from usage); the balance may go negative, down to -capacity. */
  charge(n: number, now = performance.now()): void {
    this.refill(now);
    this.tokens = Math.max(-this.capacity, this.tokens - n);
  }

  isFull(now = performance.now()): boolean {
    this.refill(now);
    return this.tokens >= this.capacity;
  }
}

export interface RateLimits {
  readonly requestsPerMinute: number;
  readonly tokensPerMinute: number;
}

interface KeyBuckets {
  readonly requests: TokenBucket;
  readonly tokens: TokenBucket;
}

const MINUTE_MS = 60_000;

/**
 * Per-key requests/min and tokens/min. A request is admitted while the key's token balance is
 * positive. The limits are the platform's: with `replicas` gateways sharing them, each enforces its
 * share (the ingress spreads a key's requests over the replicas), so the sum holds however many run.
 */
export class RateLimiter {
  private readonly buckets = new Map<string, KeyBuckets>();
  private platform: RateLimits;
  private replicas = 1;

  constructor(limits: RateLimits) {
    this.platform = limits;
    this.limits = limits;
  }

  /** This replica's share of the platform's limits. */
  private limits: RateLimits;

  update(limits: RateLimits): void {
    this.platform = limits;
    this.reshare();
  }

  /** The gateway replicas that share the limits now (at least 1). */
  shareWith(replicas: number): void {
    const count = Math.max(1, Math.floor(replicas));
    if (count === this.replicas) return;
    this.replicas = count;
    this.reshare();
  }

  get sharedBy(): number {
    return this.replicas;
  }

  private reshare(): void {
    const share = (limit: number) => Math.max(1, Math.ceil(limit / this.replicas));
    this.limits = { requestsPerMinute: share(this.platform.requestsPerMinute), tokensPerMinute: share(this.platform.tokensPerMinute) };
    for (const bucket of this.buckets.values()) this.resize(bucket);
  }

  private resize(bucket: KeyBuckets): void {
    bucket.requests.resize(this.limits.requestsPerMinute, this.limits.requestsPerMinute / MINUTE_MS);
    bucket.tokens.resize(this.limits.tokensPerMinute, this.limits.tokensPerMinute / MINUTE_MS);
  }

  /** How a limit reads in a 429: the platform's, and this replica's share when it is shared. */
  private describe(limit: "requestsPerMinute" | "tokensPerMinute"): string {
    const what = limit === "requestsPerMinute" ? "requests" : "tokens";
    return this.replicas === 1
      ? `${what} per minute (${this.platform[limit]})`
      : `${what} per minute (${this.platform[limit]} for the platform, ${this.limits[limit]} on each of ${this.replicas} gateway replicas)`;
  }

  private bucketsOf(keyId: string): KeyBuckets {
    let bucket = this.buckets.get(keyId);
    if (bucket === undefined) {
      if (this.buckets.size >= 10_000) this.sweep();
      bucket = {
        requests: new TokenBucket(this.limits.requestsPerMinute, this.limits.requestsPerMinute / MINUTE_MS),
        tokens: new TokenBucket(this.limits.tokensPerMinute, this.limits.tokensPerMinute / MINUTE_MS),
      };
      this.buckets.set(keyId, bucket);
    }
    return bucket;
  }

  /** Full buckets carry no state worth keeping. */
  private sweep(): void {
    for (const [key, bucket] of this.buckets) {
      if (bucket.requests.isFull() && bucket.tokens.isFull()) this.buckets.delete(key);
    }
  }

  /** Admits one request for the key or throws 429 with Retry-After. */
  admit(keyId: string): void {
    const bucket = this.bucketsOf(keyId);
    const tokenWait = bucket.tokens.waitForPositive();
    if (tokenWait > 0) throw rateLimited(this.describe("tokensPerMinute"), tokenWait, "tokens");
    const requestWait = bucket.requests.take(1);
    if (requestWait > 0) throw rateLimited(this.describe("requestsPerMinute"), requestWait, "requests");
  }

  /** Charges the tokens a response used. */
  charge(keyId: string, tokens: number): void {
    if (tokens > 0) this.bucketsOf(keyId).tokens.charge(tokens);
  }
}

/** The error codes of a 429 from RateLimiter.admit, one per limit. */
export const RATE_LIMIT_CODES = { requests: "rate_limit_requests", tokens: "rate_limit_tokens" } as const;

function rateLimited(what: string, waitMs: number, limit: keyof typeof RATE_LIMIT_CODES): GatewayError {
  const seconds = Math.max(1, Math.ceil(waitMs / 1000));
  return new GatewayError(
    429,
    ErrorType.rateLimit,
    `rate limit reached for ${what}; retry after ${seconds}s`,
    RATE_LIMIT_CODES[limit],
    null,
    {
      "retry-after": String(seconds),
    },
  );
}

interface Waiter {
  resolve(): void;
  reject(error: GatewayError): void;
}

/** At most `concurrency` requests run at once; up to `queue` more wait in order; beyond that, 503. */
export class ConcurrencyLimiter {
  private active = 0;
  private readonly waiting: Waiter[] = [];

  constructor(
    private concurrency: number,
    private queueLimit: number,
    private readonly onQueueChange: (depth: number) => void = () => undefined,
  ) {}

  update(concurrency: number, queueLimit: number): void {
    this.concurrency = concurrency;
    this.queueLimit = queueLimit;
    this.drain();
  }

  get inFlight(): number {
    return this.active;
  }

  get queued(): number {
    return this.waiting.length;
  }

  /** Takes a slot if one is free now. */
  tryAcquire(): boolean {
    if (this.active >= this.concurrency) return false;
    this.active++;
    return true;
  }

  /**
   * Resolves when a slot is free; returns undefined when one is free now (no promise on the fast path).
   * A waiter removed by `signal` rejects with the signal's reason.
   */
  acquire(signal?: AbortSignal): Promise<void> | undefined {
    if (this.active < this.concurrency) {
      this.active++;
      return undefined;
    }
    if (this.waiting.length >= this.queueLimit) {
      throw new GatewayError(
        503,
        ErrorType.overloaded,
        `this adapter is at capacity (${this.concurrency} running, ${this.queueLimit} queued)`,
        "adapter_overloaded",
        null,
        {
          "retry-after": "1",
        },
      );
    }
    return new Promise<void>((resolve, reject) => {
      const waiter: Waiter = {
        resolve: () => {
          signal?.removeEventListener("abort", onAbort);
          resolve();
        },
        reject,
      };
      const onAbort = () => {
        const index = this.waiting.indexOf(waiter);
        if (index >= 0) {
          this.waiting.splice(index, 1);
          this.onQueueChange(this.waiting.length);
        }
        reject(
          signal?.reason instanceof GatewayError
            ? signal.reason
            : new GatewayError(499, ErrorType.server, "client went away while queued", "client_closed"),
        );
      };
      signal?.addEventListener("abort", onAbort, { once: true });
      this.waiting.push(waiter);
      this.onQueueChange(this.waiting.length);
    });
  }

  release(): void {
    this.active--;
    this.drain();
  }

  private drain(): void {
    let changed = false;
    while (this.active < this.concurrency && this.waiting.length > 0) {
      const next = this.waiting.shift();
      changed = true;
      if (next) {
        this.active++;
        next.resolve();
      }
    }
    if (changed) this.onQueueChange(this.waiting.length);
  }
}
