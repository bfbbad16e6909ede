/**
 * A token bucket as an express-rate-limit `Store`, in Redis, so that every gateway instance draws from
 * the same buckets. Refill, check and take happen in one Lua script, which Redis runs atomically: two
 * instances can never both take the last token. Each bucket is a hash with a TTL of the time it needs to
 * refill completely, so an idle key disappears exactly when forgetting it no longer changes anything.
 *
 * Same reporting as the memory store (see token-bucket-memory.ts): `totalHits = capacity - tokens left`.
 */
import { createHash } from 'node:crypto';
import type { ClientRateLimitInfo, Options, Store } from 'express-rate-limit';
import { ConfigError } from '../errors.js';
import type { TokenBucketOptions } from './token-bucket-memory.js';
import { bucketInfo, checkTokenBucketOptions, ratePerMs } from './token-bucket-memory.js';

/** Sends one raw command, e.g. with ioredis `(...args) => client.call(...args)`. */
export type SendCommand = (...args: string[]) => Promise<unknown>;

export interface TokenBucketRedisOptions extends TokenBucketOptions {
  sendCommand: SendCommand;
}

// A raised capacity (config reload) adds its difference at once, as in the memory store.
// ARGV: capacity, tokens per ms, cost (1 take, 0 look, -1 give back), now in ms or '' for Redis' own clock.
// Redis' clock by default: instances on different machines then agree on time even when theirs drift.
const SCRIPT = `
local capacity = tonumber(ARGV[1])
local per_ms = tonumber(ARGV[2])
local cost = tonumber(ARGV[3])
local now = tonumber(ARGV[4])
if not now then
  local t = redis.call('TIME')
  now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end
local state = redis.call('HMGET', KEYS[1], 't', 'u', 'c')
local tokens = tonumber(state[1])
local updated = tonumber(state[2])
local was = tonumber(state[3]) or capacity
if tokens == nil or updated == nil then
  tokens = capacity
  updated = now
else
  if capacity > was then tokens = tokens + capacity - was end
  if now > updated then
    tokens = tokens + (now - updated) * per_ms
    updated = now
  end
end
if tokens > capacity then tokens = capacity end
local allowed = 1
if cost > 0 then
  if tokens >= cost then tokens = tokens - cost else allowed = 0 end
elseif cost < 0 then
  tokens = math.min(capacity, tokens - cost)
end
redis.call('HSET', KEYS[1], 't', string.format('%.17g', tokens), 'u', string.format('%.17g', updated), 'c', ARGV[1])
redis.call('PEXPIRE', KEYS[1], math.ceil((capacity - tokens) / per_ms) + 1000)
return { allowed, string.format('%.17g', tokens) }
`.trim();

const SCRIPT_SHA = createHash('sha1').update(SCRIPT).digest('hex');

export class TokenBucketRedisStore implements Store {
  readonly localKeys = false;
  readonly prefix: string;
  capacity?: number;
  private readonly refillPerSecond?: number;
  private readonly now?: () => number;
  private readonly sendCommand: SendCommand;

  constructor(options: TokenBucketRedisOptions) {
    if (!options || typeof options.sendCommand !== 'function') {
      throw new ConfigError(
        'TokenBucketRedisStore: sendCommand is required, e.g. `sendCommand: (...args) => redis.call(...args)` with ioredis.',
      );
    }
    checkTokenBucketOptions(options, 'TokenBucketRedisStore');
    this.sendCommand = options.sendCommand;
    this.capacity = options.capacity;
    this.refillPerSecond = options.refillPerSecond;
    this.now = options.now;
    this.prefix = options.prefix ?? 'rl:tb:';
  }

  init(options: Options): void {
    if (this.capacity === undefined && typeof options.limit === 'number') this.capacity = options.limit;
  }

  private async run(key: string, cost: number, capacity?: number): Promise<ClientRateLimitInfo> {
    const cap = capacity ?? this.capacity;
    if (cap === undefined) {
      throw new ConfigError(
        'TokenBucketRedisStore: no capacity; pass `capacity` or a numeric express-rate-limit `limit`.',
      );
    }
    const perMs = ratePerMs(cap, this.refillPerSecond);
    const args = [String(cap), String(perMs), String(cost), this.now ? String(this.now()) : ''];
    const fullKey = this.prefix + key;
    let reply: unknown;
    try {
      reply = await this.sendCommand('EVALSHA', SCRIPT_SHA, '1', fullKey, ...args);
    } catch (err) {
      // Only a cache miss of the script (after a restart or SCRIPT FLUSH) is worth a second round trip.
      if (!String((err as Error)?.message ?? err).includes('NOSCRIPT')) throw err;
      reply = await this.sendCommand('EVAL', SCRIPT, '1', fullKey, ...args);
    }
    if (!Array.isArray(reply) || reply.length !== 2) {
      throw new TypeError(`TokenBucketRedisStore: unexpected reply from Redis: ${JSON.stringify(reply)}.`);
    }
    const allowed = Number(reply[0]) === 1;
    const tokens = Number(reply[1]);
    return bucketInfo(allowed, tokens, cap, perMs, this.now ? this.now() : Date.now());
  }

  /** Takes one token when one is there. `capacity` overrides the store's (limits that hot-reload). */
  increment(key: string, capacity?: number): Promise<ClientRateLimitInfo> {
    return this.run(key, 1, capacity);
  }

  async get(key: string): Promise<ClientRateLimitInfo | undefined> {
    if (this.capacity === undefined) return undefined;
    return this.run(key, 0);
  }

  /** Gives a token back (a request that was counted but then refused by another limit). */
  async decrement(key: string, capacity?: number): Promise<void> {
    await this.run(key, -1, capacity);
  }

  async resetKey(key: string): Promise<void> {
    await this.sendCommand('DEL', this.prefix + key);
  }
}
