/**
 * The Redis connection the rate-limit stores share. Its one job beyond connecting is never to make a
 * request wait on a Redis that is away: commands are not queued while disconnected (they fail at once,
 * and the caller's fail-open / fail-closed policy decides), and every command has a timeout.
 */
import { Redis } from 'ioredis';
import { ConfigError } from '../errors.js';
import type { SendCommand } from './token-bucket-redis.js';

export interface RedisConnectionOptions {
  /** Per-command timeout; a Redis that accepts the connection but does not answer fails after this. */
  commandTimeoutMs?: number;
  /** How long a command may wait for the very first connection (startup), before failing. */
  connectTimeoutMs?: number;
  /** Told about connection errors (ioredis would otherwise print them for lack of a listener). */
  onError?: (err: Error) => void;
}

export function createRedisClient(url: string, options: RedisConnectionOptions = {}): Redis {
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    throw new ConfigError(`rate_limiting.redis_url: "${url}" is not a URL; write it as redis://host:6379.`);
  }
  if (parsed.protocol !== 'redis:' && parsed.protocol !== 'rediss:') {
    throw new ConfigError(
      `rate_limiting.redis_url: use a redis:// or rediss:// URL, not ${parsed.protocol}//.`,
    );
  }
  const client = new Redis(url, {
    enableOfflineQueue: false,
    commandTimeout: options.commandTimeoutMs ?? 1000,
    connectTimeout: options.connectTimeoutMs ?? 2000,
    maxRetriesPerRequest: 1,
    // Keep trying in the background, at most every 2 s, so that the limits come back with Redis.
    retryStrategy: (times) => Math.min(times * 100, 2000),
  });
  client.on('error', (err: Error) => options.onError?.(err));
  return client;
}

const CONNECTING = new Set(['wait', 'connecting', 'connect']);
const noop = () => {};

/**
 * A `sendCommand` for the stores. Without an offline queue, commands sent while the first connection is
 * still being made would fail, so those (and only those) wait for it, bounded by `waitMs`; a client that
 * lost its connection fails at once.
 */
export function redisSendCommand(client: Redis, waitMs = 2000): SendCommand {
  let firstConnect: Promise<void> | undefined;
  const whenReady = (): Promise<void> => {
    firstConnect ??= new Promise<void>((resolve, reject) => {
      const done = (err?: Error) => {
        clearTimeout(timer);
        client.off('ready', onReady);
        client.off('error', onFail);
        client.off('end', onEnd);
        firstConnect = undefined;
        if (err) reject(err);
        else resolve();
      };
      const onReady = () => done();
      const onFail = (err: Error) => done(err);
      const onEnd = () => done(new Error('Redis connection closed.'));
      const timer = setTimeout(() => done(new Error(`Redis did not connect within ${waitMs} ms.`)), waitMs);
      timer.unref();
      client.once('ready', onReady);
      client.once('error', onFail);
      client.once('end', onEnd);
    });
    return firstConnect;
  };
  return async (...args: string[]) => {
    if (client.status !== 'ready') {
      if (!CONNECTING.has(client.status)) throw new Error(`Redis is not connected (${client.status}).`);
      // A host's own client made with lazyConnect waits for its first command.
      if (client.status === 'wait') client.connect().catch(noop);
      await whenReady();
    }
    const [command, ...rest] = args;
    return client.call(command!, ...rest);
  };
}
