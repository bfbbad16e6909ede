/**
 * The cache stage's long-lived state for one gateway: the store the current config asks for (rebuilt when a
 * reload changes the backend), the requests in flight per key (coalescing), and the guard that keeps a slow
 * or failing store from ever failing or holding up a request.
 */
import type { CacheStore, Logger, ResolvedConfig } from '../types/index.js';
import type { CachedAnswer } from './cache-answer.js';
import { ConfigError } from './errors.js';
import { MemoryCacheStore } from './stores/memory-cache-store.js';
import { RedisCacheStore } from './stores/redis-cache-store.js';

export interface CacheBackendOptions {
  /** A host's own store; used for every backend except `disabled`. The host closes it. */
  store?: CacheStore;
  /** Longest a lookup or write may take before the request goes on uncached. Default 100 ms. */
  timeoutMs?: number;
  /** Store failures are logged at most once per this interval (ms). Default 10 000. */
  logIntervalMs?: number;
  /** Clock for the log interval; default `Date.now`. */
  now?: () => number;
}

const MB = 1024 * 1024;

/**
 * The in-process store, built from the config or handed in by the host (a host that wants to read its size,
 * as the bench does): it answers at once. A subclass may override `get`/`set`, so it goes the generic way.
 */
function isInProcess(store: CacheStore): store is MemoryCacheStore {
  return Object.getPrototypeOf(store) === MemoryCacheStore.prototype;
}

function checkPositive(name: string, v: unknown): void {
  if (v !== undefined && (typeof v !== 'number' || !Number.isFinite(v) || v <= 0)) {
    throw new ConfigError(
      `cache stage: ${name} must be a positive number of milliseconds; got ${JSON.stringify(v)}.`,
    );
  }
}

export class CacheBackend {
  /** Non-stream misses being answered upstream, by key: identical requests wait for these. */
  readonly pending = new Map<string, Promise<CachedAnswer | undefined>>();
  private readonly hostStore?: CacheStore;
  private readonly timeoutMs: number;
  private readonly logIntervalMs: number;
  private readonly now: () => number;
  private memory?: MemoryCacheStore;
  private redis?: { url: string; store: RedisCacheStore };
  private lastLogAt = Number.NEGATIVE_INFINITY;
  private suppressed = 0;

  constructor(
    private readonly logger: Logger,
    options: CacheBackendOptions = {},
  ) {
    checkPositive('timeoutMs', options.timeoutMs);
    checkPositive('logIntervalMs', options.logIntervalMs);
    const s = options.store;
    if (s !== undefined && (typeof s?.get !== 'function' || typeof s?.set !== 'function')) {
      throw new ConfigError(
        'cacheStore must implement the CacheStore interface: get, set, delete, clear, close.',
      );
    }
    this.hostStore = s;
    this.timeoutMs = options.timeoutMs ?? 100;
    this.logIntervalMs = options.logIntervalMs ?? 10_000;
    this.now = options.now ?? Date.now;
  }

  /** The store for this request's config snapshot; undefined when caching is off. */
  storeFor(config: ResolvedConfig['cache']): CacheStore | undefined {
    if (config.backend === 'disabled') return undefined;
    if (this.hostStore) return this.hostStore;
    if (config.backend === 'memory') {
      const maxBytes = config.maxCacheSizeMb * MB;
      if (this.memory) this.memory.setMaxBytes(maxBytes);
      else this.memory = new MemoryCacheStore({ maxBytes });
      return this.memory;
    }
    const url = config.redisUrl;
    if (!url) {
      this.report('config', new Error('cache.backend is redis but cache.redis_url is not set'));
      return undefined;
    }
    if (this.redis?.url !== url) {
      // A reload pointed the cache elsewhere; requests still holding the old store just miss.
      const old = this.redis?.store;
      if (old) void old.close();
      this.redis = {
        url,
        store: new RedisCacheStore({ url, onError: (err) => this.report('connection', err) }),
      };
    }
    return this.redis.store;
  }

  /**
   * The stored value as `parse` reads it; undefined on a miss, an error or a timeout. The in-process store
   * answers at once, without a promise (on a hit, a promise and the turns spent waiting for it are a
   * measurable share of the work), and parses each stored value once: the result is shared by every hit.
   * Any other store answers with a promise that never rejects.
   */
  get<T>(
    store: CacheStore,
    key: string,
    parse: (text: string) => T | undefined,
  ): T | undefined | Promise<T | undefined> {
    if (isInProcess(store)) {
      try {
        return store.getParsedNow(key, parse);
      } catch (err) {
        this.report('get', err);
        return undefined;
      }
    }
    return this.bounded('get', () => store.get(key)).then((text) =>
      text === undefined ? undefined : parse(text),
    );
  }

  /**
   * Writes the value: at once to the in-process store (nothing returned), else with a promise that resolves
   * when written, failed or timed out, and never rejects.
   */
  set(store: CacheStore, key: string, value: string, ttlSeconds: number): Promise<void> | undefined {
    if (isInProcess(store)) {
      try {
        store.setNow(key, value, ttlSeconds);
      } catch (err) {
        this.report('set', err);
      }
      return undefined;
    }
    return this.bounded('set', () => store.set(key, value, ttlSeconds));
  }

  async close(): Promise<void> {
    const stores = [this.memory, this.redis?.store];
    this.memory = undefined;
    this.redis = undefined;
    await Promise.all(stores.map((s) => s?.close().catch(() => {})));
  }

  /** One line per interval: a Redis that is down would otherwise log on every request. */
  report(op: string, err: unknown): void {
    const t = this.now();
    if (t - this.lastLogAt < this.logIntervalMs) {
      this.suppressed += 1;
      return;
    }
    this.lastLogAt = t;
    const suppressed = this.suppressed;
    this.suppressed = 0;
    this.logger.error(
      { op, err: err instanceof Error ? err.message : String(err), suppressed_since_last: suppressed },
      'Cache store failed; requests are served uncached until it answers again.',
    );
  }

  private bounded<T>(op: string, call: () => Promise<T>): Promise<T | undefined> {
    let pending: Promise<T>;
    try {
      pending = Promise.resolve(call());
    } catch (err) {
      this.report(op, err);
      return Promise.resolve(undefined);
    }
    // One promise settled by whichever comes first, rather than a race of two: this runs on every lookup.
    return new Promise<T | undefined>((resolve) => {
      const timer = setTimeout(() => {
        // Timers run before I/O in each loop turn: on a busy loop the answer may already be waiting in the
        // socket. Let I/O run once before declaring a timeout, so lag is not mistaken for a slow store.
        setImmediate(() => {
          this.report(op, new Error(`no answer within ${this.timeoutMs} ms`));
          resolve(undefined);
        });
      }, this.timeoutMs);
      pending.then(
        (v) => {
          clearTimeout(timer);
          resolve(v);
        },
        (err: unknown) => {
          clearTimeout(timer);
          this.report(op, err);
          resolve(undefined);
        },
      );
    });
  }
}
