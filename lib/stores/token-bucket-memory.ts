/**
 * A token bucket as an express-rate-limit `Store`, in process memory.
 *
 * The bucket holds `capacity` tokens and refills continuously at `capacity / 60` per second (the
 * per-minute figure), so a client may burst up to the capacity and then gets a steady rate. To fit the
 * Store contract, `increment()` reports `totalHits = capacity - tokens left`: an admitted request reports at
 * most `capacity`, a refused one `capacity + 1`, which is exactly what express-rate-limit compares against
 * its `limit`. A refused request takes no token, so a client hammering a full bucket still gets its steady
 * rate once it slows down.
 */
import type { ClientRateLimitInfo, Options, Store } from 'express-rate-limit';
import { ConfigError } from '../errors.js';

export interface TokenBucketOptions {
  /**
   * Tokens the bucket holds (the per-minute figure). May be left out when express-rate-limit's `limit` is a
   * number (taken in `init()`), or given per call as `increment(key, capacity)` when limits hot-reload.
   */
  capacity?: number;
  /** Refill rate per second; default `capacity / 60`. */
  refillPerSecond?: number;
  /** Clock in milliseconds; injectable so tests can move time without waiting. */
  now?: () => number;
  /** Prepended to keys (express-rate-limit's double-count check reads it). */
  prefix?: string;
}

interface Bucket {
  tokens: number;
  updatedAt: number;
  capacity: number;
}

/** Validates the shared options of both token-bucket stores. */
export function checkTokenBucketOptions(options: TokenBucketOptions, who: string): void {
  const { capacity, refillPerSecond } = options;
  if (capacity !== undefined && !(Number.isFinite(capacity) && capacity >= 1)) {
    throw new ConfigError(
      `${who}: capacity must be a number of at least 1 (the requests allowed per minute).`,
    );
  }
  if (refillPerSecond !== undefined && !(Number.isFinite(refillPerSecond) && refillPerSecond > 0)) {
    throw new ConfigError(
      `${who}: refillPerSecond must be a positive number; leave it out for capacity / 60.`,
    );
  }
  if (options.now !== undefined && typeof options.now !== 'function') {
    throw new ConfigError(`${who}: now must be a function returning milliseconds, like Date.now.`);
  }
}

/** The refill rate in tokens per millisecond for a capacity. */
export function ratePerMs(capacity: number, refillPerSecond?: number): number {
  return (refillPerSecond ?? capacity / 60) / 1000;
}

/**
 * What the Store contract reports for a bucket after a take: `resetTime` is when the next token arrives
 * for a refused request (what Retry-After must say) and when the bucket is full again otherwise.
 */
export function bucketInfo(
  allowed: boolean,
  tokens: number,
  capacity: number,
  perMs: number,
  now: number,
): ClientRateLimitInfo {
  if (!allowed) {
    return { totalHits: capacity + 1, resetTime: new Date(now + Math.ceil((1 - tokens) / perMs)) };
  }
  return {
    totalHits: Math.max(0, capacity - Math.floor(tokens)),
    resetTime: new Date(now + Math.ceil((capacity - tokens) / perMs)),
  };
}

export class TokenBucketMemoryStore implements Store {
  readonly localKeys = true;
  readonly prefix: string;
  capacity?: number;
  private readonly refillPerSecond?: number;
  private readonly now: () => number;
  private readonly buckets = new Map<string, Bucket>();
  private lastSweep: number;

  constructor(options: TokenBucketOptions = {}) {
    checkTokenBucketOptions(options, 'TokenBucketMemoryStore');
    this.capacity = options.capacity;
    this.refillPerSecond = options.refillPerSecond;
    this.now = options.now ?? Date.now;
    this.prefix = options.prefix ?? '';
    this.lastSweep = this.now();
  }

  init(options: Options): void {
    if (this.capacity === undefined && typeof options.limit === 'number') this.capacity = options.limit;
  }

  /** Buckets currently held; idle ones are dropped (see sweep()). */
  get size(): number {
    return this.buckets.size;
  }

  private capacityFor(capacity: number | undefined): number {
    const c = capacity ?? this.capacity;
    if (c === undefined) {
      throw new ConfigError(
        'TokenBucketMemoryStore: no capacity; pass `capacity` or a numeric express-rate-limit `limit`.',
      );
    }
    return c;
  }

  /** The tokens in `b` once refilled up to `now` at `capacity`. */
  private tokensAt(b: Bucket, capacity: number, now: number): number {
    // A clock that goes backwards must not mint tokens.
    const elapsed = Math.max(0, now - b.updatedAt);
    // A raised limit (config reload) is usable at once, as it would be with a fixed window.
    const raised = Math.max(0, capacity - b.capacity);
    return Math.min(capacity, b.tokens + raised + elapsed * ratePerMs(capacity, this.refillPerSecond));
  }

  /** The bucket refilled up to `now`, as a copy; a missing one is full. */
  private refill(key: string, capacity: number, now: number): Bucket {
    const b = this.buckets.get(key);
    if (!b) return { tokens: capacity, updatedAt: now, capacity };
    return { tokens: this.tokensAt(b, capacity, now), updatedAt: Math.max(now, b.updatedAt), capacity };
  }

  /** Takes one token when one is there. `capacity` overrides the store's (limits that hot-reload). */
  increment(key: string, capacity?: number): ClientRateLimitInfo {
    const cap = this.capacityFor(capacity);
    const now = this.now();
    this.maybeSweep(now);
    const id = this.prefix + key;
    // Every request takes a token from each of its limits: a held bucket changes in place, no copy.
    const held = this.buckets.get(id);
    let tokens = held ? this.tokensAt(held, cap, now) : cap;
    const allowed = tokens >= 1;
    if (allowed) tokens -= 1;
    if (held) {
      held.tokens = tokens;
      held.updatedAt = Math.max(now, held.updatedAt);
      held.capacity = cap;
    } else {
      this.buckets.set(id, { tokens, updatedAt: now, capacity: cap });
    }
    return bucketInfo(allowed, tokens, cap, ratePerMs(cap, this.refillPerSecond), now);
  }

  get(key: string): ClientRateLimitInfo | undefined {
    const b = this.buckets.get(this.prefix + key);
    if (!b) return undefined;
    const now = this.now();
    const r = this.refill(this.prefix + key, b.capacity, now);
    return bucketInfo(true, r.tokens, r.capacity, ratePerMs(r.capacity, this.refillPerSecond), now);
  }

  /** Gives a token back (a request that was counted but then refused by another limit). */
  decrement(key: string): void {
    const b = this.buckets.get(this.prefix + key);
    if (!b) return;
    const r = this.refill(this.prefix + key, b.capacity, this.now());
    r.tokens = Math.min(r.capacity, r.tokens + 1);
    this.buckets.set(this.prefix + key, r);
  }

  resetKey(key: string): void {
    this.buckets.delete(this.prefix + key);
  }

  resetAll(): void {
    this.buckets.clear();
  }

  /**
   * Drops buckets that have refilled completely: a full bucket is the same as no bucket, so forgetting it
   * changes nothing and keeps memory flat however many distinct keys pass through.
   */
  sweep(now = this.now()): void {
    this.lastSweep = now;
    for (const [key, b] of this.buckets) {
      if (this.refill(key, b.capacity, now).tokens >= b.capacity) this.buckets.delete(key);
    }
  }

  // Sweeping on the request path (at most once a minute) needs no timer that a host would have to stop.
  private maybeSweep(now: number): void {
    if (now - this.lastSweep >= 60_000) this.sweep(now);
  }

  shutdown(): void {
    this.buckets.clear();
  }
}
