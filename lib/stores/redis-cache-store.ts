/**
 * The Redis cache store: entries shared by every gateway process, expired by Redis itself (`SET ... PX`).
 * It must never make a request wait on a Redis that is away: commands are not queued while disconnected
 * (they fail at once and the request goes on uncached), each has a short timeout, and ioredis keeps
 * reconnecting in the background so the cache comes back with Redis.
 */
import { Redis } from 'ioredis';
import type { CacheStore } from '../../types/index.js';
import { ConfigError } from '../errors.js';

export interface RedisCacheStoreOptions {
  /** `redis://host:6379` (or `rediss://`). Either this or `client`. */
  url?: string;
  /** A host's own client; the store never closes it. Create it with `enableOfflineQueue: false`. */
  client?: Redis;
  /** Namespace in front of every key; `clear()` removes only keys under it. Default `aigw:cache:`. */
  keyPrefix?: string;
  /**
   * Per-command timeout in ms. Default 250: a backstop that clears commands a stalled Redis never answers;
   * the cache stage bounds each request's wait itself (100 ms), so this one need not be tighter.
   */
  commandTimeoutMs?: number;
  /** Upper bound of the reconnect back-off in ms. Default 2000. */
  maxReconnectDelayMs?: number;
  /** Told about connection errors (ioredis would otherwise print them for lack of a listener). */
  onError?: (err: Error) => void;
}

const CONNECTING = new Set(['wait', 'connecting', 'connect']);

function checkMs(name: string, v: unknown): void {
  if (v !== undefined && (typeof v !== 'number' || !Number.isFinite(v) || v <= 0)) {
    throw new ConfigError(
      `RedisCacheStore: ${name} must be a positive number of milliseconds; got ${JSON.stringify(v)}.`,
    );
  }
}

function checkUrl(url: string): void {
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    throw new ConfigError(`cache.redis_url: "${url}" is not a URL; write it as redis://host:6379.`);
  }
  if (parsed.protocol !== 'redis:' && parsed.protocol !== 'rediss:') {
    throw new ConfigError(`cache.redis_url: use a redis:// or rediss:// URL, not ${parsed.protocol}//.`);
  }
}

export class RedisCacheStore implements CacheStore {
  readonly client: Redis;
  readonly keyPrefix: string;
  private readonly ownsClient: boolean;
  private readonly commandTimeoutMs: number;
  private firstConnect?: Promise<void>;

  constructor(options: RedisCacheStoreOptions) {
    if (!options || (!options.url && !options.client)) {
      throw new ConfigError('RedisCacheStore needs `url` (redis://host:6379) or an ioredis `client`.');
    }
    checkMs('commandTimeoutMs', options.commandTimeoutMs);
    checkMs('maxReconnectDelayMs', options.maxReconnectDelayMs);
    if (options.keyPrefix !== undefined && typeof options.keyPrefix !== 'string') {
      throw new ConfigError('RedisCacheStore: keyPrefix must be a string such as "myapp:cache:".');
    }
    this.keyPrefix = options.keyPrefix ?? 'aigw:cache:';
    this.commandTimeoutMs = options.commandTimeoutMs ?? 250;
    if (options.client) {
      this.client = options.client;
      this.ownsClient = false;
    } else {
      checkUrl(options.url!);
      const maxDelay = options.maxReconnectDelayMs ?? 2000;
      this.client = new Redis(options.url!, {
        enableOfflineQueue: false,
        commandTimeout: this.commandTimeoutMs,
        connectTimeout: 2000,
        // A command caught by a dropped connection fails rather than being resent later: its request is gone.
        maxRetriesPerRequest: 0,
        retryStrategy: (times) => Math.min(times * 50, maxDelay),
      });
      this.ownsClient = true;
    }
    if (options.onError) this.client.on('error', options.onError);
    else if (this.ownsClient) this.client.on('error', () => {});
  }

  /** Resolves once the client is connected (tests, and hosts that want to warm up before serving). */
  ready(): Promise<void> {
    if (this.client.status === 'ready') return Promise.resolve();
    return new Promise((resolve) => this.client.once('ready', () => resolve()));
  }

  async get(key: string): Promise<string | undefined> {
    if (this.client.status !== 'ready') await this.connected();
    const v = await this.client.get(this.keyPrefix + key);
    return v ?? undefined;
  }

  async set(key: string, value: string, ttlSeconds: number): Promise<void> {
    if (this.client.status !== 'ready') await this.connected();
    if (ttlSeconds > 0) {
      await this.client.set(this.keyPrefix + key, value, 'PX', Math.max(1, Math.round(ttlSeconds * 1000)));
    } else {
      await this.client.set(this.keyPrefix + key, value);
    }
  }

  async delete(key: string): Promise<void> {
    if (this.client.status !== 'ready') await this.connected();
    await this.client.del(this.keyPrefix + key);
  }

  async clear(): Promise<void> {
    if (this.client.status !== 'ready') await this.connected();
    const pattern = `${this.keyPrefix.replace(/[*?[\]\\]/g, '\\$&')}*`;
    let cursor = '0';
    do {
      const [next, keys] = await this.client.scan(cursor, 'MATCH', pattern, 'COUNT', 500);
      if (keys.length) await this.client.unlink(...keys);
      cursor = next;
    } while (cursor !== '0');
  }

  async close(): Promise<void> {
    if (!this.ownsClient) return;
    try {
      await this.client.quit();
    } catch {
      this.client.disconnect();
    }
  }

  /**
   * Without an offline queue a command sent while a connection is being made would fail; those wait for it,
   * bounded by the command timeout. Between reconnect attempts (Redis away) commands fail at once. Callers
   * check for `ready` first: awaiting this when connected would cost every command a promise and a turn.
   */
  private async connected(): Promise<void> {
    const status = this.client.status;
    if (status === 'ready') return;
    if (!CONNECTING.has(status)) throw new Error(`Redis is not connected (${status}).`);
    if (status === 'wait') this.client.connect().catch(() => {});
    this.firstConnect ??= new Promise<void>((resolve, reject) => {
      const done = (err?: Error) => {
        clearTimeout(timer);
        this.client.off('ready', onReady);
        this.firstConnect = undefined;
        if (err) reject(err);
        else resolve();
      };
      const onReady = () => done();
      const timer = setTimeout(
        () => done(new Error(`Redis did not connect within ${this.commandTimeoutMs} ms.`)),
        this.commandTimeoutMs,
      );
      timer.unref();
      this.client.once('ready', onReady);
    });
    return this.firstConnect;
  }
}
