/**
 * The in-process cache store: node-cache holds the entries and frees expired ones on its own sweep; this
 * class adds the byte budget (`max_cache_size_mb`, oldest evicted first) and an injectable clock, so that
 * expiry can be tested without waiting.
 */
import NodeCache from 'node-cache';
import type { CacheStore } from '../../types/index.js';
import { ConfigError } from '../errors.js';

export interface MemoryCacheStoreOptions {
  /** The byte budget for keys plus values (UTF-8). Default 512 MB. */
  maxBytes?: number;
  /** Milliseconds since the epoch; default `Date.now`. Entries expire by this clock. */
  now?: () => number;
  /** How often node-cache sweeps out expired entries, in seconds. Default 60. */
  checkPeriodSeconds?: number;
}

interface Entry {
  value: string;
  /** 0: never. */
  expiresAt: number;
  /** What `parsedBy` made of the value (see getParsedNow). */
  parsed: unknown;
  parsedBy: ((value: string) => unknown) | undefined;
}

function checkPositive(name: string, v: unknown): void {
  if (typeof v !== 'number' || !Number.isFinite(v) || v <= 0) {
    throw new ConfigError(`MemoryCacheStore: ${name} must be a positive number; got ${JSON.stringify(v)}.`);
  }
}

export class MemoryCacheStore implements CacheStore {
  private readonly cache: NodeCache;
  private readonly now: () => number;
  /** Bytes per key, in insertion order: the first key is the oldest, the first to evict. */
  private readonly sizes = new Map<string, number>();
  private totalBytes = 0;
  private budget: number;
  /**
   * Where eviction walks `sizes` from, kept between evictions. Everything it has passed was evicted, and a
   * rewritten key goes to the end, so its next key is always the oldest. A walk started afresh each time
   * would step over the deleted slots the Map keeps until it compacts: once the store is full, every
   * store would pay for thousands of them.
   */
  private evictionCursor?: Iterator<string>;

  constructor(options: MemoryCacheStoreOptions = {}) {
    if (options.maxBytes !== undefined) checkPositive('maxBytes', options.maxBytes);
    if (options.checkPeriodSeconds !== undefined)
      checkPositive('checkPeriodSeconds', options.checkPeriodSeconds);
    if (options.now !== undefined && typeof options.now !== 'function') {
      throw new ConfigError(
        'MemoryCacheStore: now must be a function returning milliseconds, like Date.now.',
      );
    }
    this.budget = options.maxBytes ?? 512 * 1024 * 1024;
    this.now = options.now ?? Date.now;
    // useClones: false: values are immutable strings, and cloning every read would cost on the hot path.
    this.cache = new NodeCache({
      stdTTL: 0,
      checkperiod: options.checkPeriodSeconds ?? 60,
      useClones: false,
    });
    // node-cache deletes expired entries itself (sweep or read); keep the byte count in step.
    this.cache.on('del', (key: string) => this.untrack(key));
  }

  /** Bytes currently held, keys plus values. */
  get bytes(): number {
    return this.totalBytes;
  }

  get entries(): number {
    return this.sizes.size;
  }

  get maxBytes(): number {
    return this.budget;
  }

  /** Changes the budget (a config reload), evicting at once if the store is now over it. */
  setMaxBytes(maxBytes: number): void {
    // Called with the configured budget on every request: the usual answer is "unchanged".
    if (maxBytes === this.budget) return;
    checkPositive('maxBytes', maxBytes);
    this.budget = maxBytes;
    this.evictUntil(0);
  }

  async get(key: string): Promise<string | undefined> {
    return this.getNow(key);
  }

  async set(key: string, value: string, ttlSeconds: number): Promise<void> {
    this.setNow(key, value, ttlSeconds);
  }

  /** get() without the promise, for callers in this process: the store never waits on anything. */
  getNow(key: string): string | undefined {
    return this.live(key)?.value;
  }

  /**
   * What `parse` makes of the value, without the promise. It runs on the first read of each value and its
   * result is kept with the entry, so a caller that parses whatever it reads parses each value once rather
   * than on every read. Every reader gets the same result: treat it as read-only.
   */
  getParsedNow<T>(key: string, parse: (value: string) => T): T | undefined {
    const entry = this.live(key);
    if (!entry) return undefined;
    if (entry.parsedBy !== parse) {
      entry.parsed = parse(entry.value);
      entry.parsedBy = parse;
    }
    return entry.parsed as T;
  }

  /** set() without the promise. */
  setNow(key: string, value: string, ttlSeconds: number): void {
    const size = Buffer.byteLength(key) + Buffer.byteLength(value);
    this.cache.del(key);
    // An entry larger than the whole budget would evict everything and still not fit.
    if (size > this.budget) return;
    this.evictUntil(size);
    const entry: Entry = {
      value,
      expiresAt: ttlSeconds > 0 ? this.now() + ttlSeconds * 1000 : 0,
      parsed: undefined,
      parsedBy: undefined,
    };
    // node-cache's own TTL only frees memory on the real clock; expiry as clients see it is checked in live().
    this.cache.set(key, entry, ttlSeconds > 0 ? ttlSeconds : 0);
    this.sizes.set(key, size);
    this.totalBytes += size;
  }

  async delete(key: string): Promise<void> {
    this.cache.del(key);
  }

  async clear(): Promise<void> {
    this.cache.flushAll();
    this.sizes.clear();
    this.evictionCursor = undefined;
    this.totalBytes = 0;
  }

  /** Stops node-cache's sweep; the entries stay readable. */
  async close(): Promise<void> {
    this.cache.close();
  }

  /** The entry, unless missing or expired by our clock (then removed). */
  private live(key: string): Entry | undefined {
    const entry = this.cache.get<Entry>(key);
    if (entry && entry.expiresAt && entry.expiresAt <= this.now()) {
      this.cache.del(key);
      return undefined;
    }
    return entry;
  }

  private untrack(key: string): void {
    const size = this.sizes.get(key);
    if (size === undefined) return;
    this.sizes.delete(key);
    this.totalBytes -= size;
  }

  /** Evicts the oldest entries until `incoming` more bytes fit in the budget. */
  private evictUntil(incoming: number): void {
    while (this.totalBytes + incoming > this.budget) {
      let next = this.evictionCursor?.next();
      if (!next || next.done) {
        // A finished iterator stays finished, even once the Map has new entries.
        this.evictionCursor = this.sizes.keys();
        next = this.evictionCursor.next();
        if (next.done) return;
      }
      const key = next.value;
      this.cache.del(key);
      // node-cache emits `del` only for keys it still held; an entry it already dropped is untracked here.
      this.untrack(key);
    }
  }
}
