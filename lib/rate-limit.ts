/**
 * Rate limiting, shared by both faces. One `RateLimiting` per Gateway owns the stores (memory or Redis,
 * token bucket or fixed window, one store per limit) and the decision; the `rateLimit` stage
 * (lib/middlewares/rate-limit.ts) asks it for every chat request whichever face it came through, and the
 * express-rate-limit middlewares (lib/middlewares/rate-limiters.ts) hand the very same store objects to
 * express-rate-limit, so a host's own routes draw from the same buckets.
 *
 * Limits and the store choice are read from the config at each request, so a reload changes them; the
 * stores themselves live as long as the Gateway (closed by `gateway.close()`).
 */
import type { ClientRateLimitInfo, Options, Store } from 'express-rate-limit';
import { MemoryStore } from 'express-rate-limit';
import type { Redis } from 'ioredis';
import { RedisStore } from 'rate-limit-redis';
import type { Logger, RateLimitScope, ResolvedConfig } from '../types/index.js';
import type { GatewayContext } from './context.js';
import { ConfigError, GatewayError } from './errors.js';
import type { Gateway } from './gateway.js';
import type { GatewayRuntime } from './runtime.js';
import { planTargets } from './routing.js';
import { createRedisClient, redisSendCommand } from './stores/redis-connection.js';
import { TokenBucketMemoryStore } from './stores/token-bucket-memory.js';
import { TokenBucketRedisStore } from './stores/token-bucket-redis.js';

export type RateLimitConfig = ResolvedConfig['rateLimiting'];

/**
 * An express-rate-limit Store whose `increment` may take the limit as a second argument. The token-bucket
 * stores need it (the limit is their capacity, and it can change on reload); counting stores ignore it.
 */
export interface LimitStore extends Store {
  increment(key: string, limit?: number): Promise<ClientRateLimitInfo> | ClientRateLimitInfo;
  decrement(key: string, limit?: number): Promise<void> | void;
}

/** Every limit is per minute; fixed windows are one minute long. */
export const WINDOW_MS = 60_000;

export const SCOPES: readonly RateLimitScope[] = ['global', 'user', 'model'];

/** The key every request without an identity shares (one bucket for all anonymous traffic). */
export const ANONYMOUS_KEY = 'anonymous';

export function limitOf(scope: RateLimitScope, rl: RateLimitConfig): number | undefined {
  if (scope === 'global') return rl.globalRpm;
  if (scope === 'user') return rl.perUserRpm;
  return rl.perModelRpm;
}

// Identified users get a prefix so that nobody can name themselves into the anonymous bucket.
export function userKeyOf(user: string | undefined): string {
  return user ? `id:${user}` : ANONYMOUS_KEY;
}

/**
 * The model's bucket: the first routing target's model, so `openai/gpt-4o` and `gpt-4o` count together.
 * A model the config does not know keeps its own string (routing will refuse it anyway).
 */
export function modelKeyOf(runtime: GatewayRuntime, model: string): string {
  try {
    return planTargets(runtime, model)[0]?.model ?? model;
  } catch {
    return model;
  }
}

export interface ScopeResult {
  scope: RateLimitScope;
  key: string;
  limit: number;
  totalHits: number;
  /** Milliseconds until the counter resets (fixed window) or the bucket refills (token bucket). */
  resetMs: number;
}

export function rateLimitError(result: ScopeResult): GatewayError {
  const what =
    result.scope === 'global'
      ? `the gateway's global limit of ${result.limit} requests per minute`
      : result.scope === 'user'
        ? `the per-user limit of ${result.limit} requests per minute`
        : `the per-model limit of ${result.limit} requests per minute`;
  return new GatewayError(
    'rate_limit',
    `Rate limit exceeded: ${what}. Retry after the Retry-After header's seconds.`,
    {
      retryAfterMs: Math.max(1000, result.resetMs),
      limit: result.scope,
    },
  );
}

/**
 * The IETF draft-6 `RateLimit-*` headers (as express-rate-limit's `standardHeaders: 'draft-6'` writes
 * them). With several limits, the one closest to refusing is reported and the policy lists them all.
 */
export function rateLimitHeaders(results: ScopeResult[], refused?: ScopeResult): Record<string, string> {
  if (results.length === 0) return {};
  const shown =
    refused ?? results.reduce((a, b) => (b.limit - b.totalHits < a.limit - a.totalHits ? b : a), results[0]!);
  return {
    'RateLimit-Policy': policyOf(results),
    'RateLimit-Limit': String(shown.limit),
    'RateLimit-Remaining': String(Math.max(0, shown.limit - shown.totalHits)),
    'RateLimit-Reset': String(Math.max(0, Math.ceil(shown.resetMs / 1000))),
  };
}

function policyOf(limits: readonly { limit: number }[]): string {
  return limits.map((r) => `${r.limit};w=${WINDOW_MS / 1000}`).join(', ');
}

export interface RateLimitingOptions {
  /** Clock for the token buckets (milliseconds); tests move it instead of waiting. Default: Date.now. */
  now?: () => number;
  /** Who a request is for; default `ctx.user` (auth, the user header or the body's `user`). */
  identify?: (ctx: GatewayContext) => string | undefined;
  /** Prefix of every Redis key; default `aigw:rl:`. Gateways sharing a Redis share limits when it matches. */
  redisPrefix?: string;
}

interface StoreEntry {
  store: LimitStore;
  /** The clock its reset times are on. */
  now: () => number;
}

/** One configured limit of a config, with what its headers need that never changes. */
interface PlannedLimit {
  readonly scope: RateLimitScope;
  readonly limit: number;
  readonly limitHeader: string;
  readonly entry: StoreEntry;
}

/** The configured limits of one config object, in SCOPES order, and their `RateLimit-Policy`. */
interface LimitPlan {
  readonly limits: readonly PlannedLimit[];
  readonly policy: string;
}

/** A store's answer to one increment: synchronous from memory stores, a promise from Redis. */
type Answer = ClientRateLimitInfo | Promise<ClientRateLimitInfo>;

/** How often a failing store is logged at most (a Redis outage must not flood the log). */
const ERROR_LOG_INTERVAL_MS = 30_000;

export class RateLimiting {
  identify?: (ctx: GatewayContext) => string | undefined;
  private clock?: () => number;
  private prefix = 'aigw:rl:';
  private readonly stores = new Map<string, StoreEntry>();
  /**
   * The entries a config object resolved to, per scope. A config object never changes (a reload makes a
   * new one), so its store ids need not be rebuilt on every request; close() drops this with the stores.
   */
  private byConfig = new WeakMap<RateLimitConfig, Partial<Record<RateLimitScope, StoreEntry>>>();
  /** Likewise the limits a config sets, so that a request rebuilds neither them nor the policy header. */
  private plans = new WeakMap<RateLimitConfig, LimitPlan>();
  private readonly clients = new Map<string, Redis>();
  private lastErrorLog = -Infinity;

  constructor(private readonly logger: Logger) {}

  /** Applies code-only options (a clock, an identity function); see rateLimitStage(). */
  configure(options: RateLimitingOptions): void {
    if (options.now !== undefined && typeof options.now !== 'function') {
      throw new ConfigError('rate limiting: `now` must be a function returning milliseconds, like Date.now.');
    }
    if (options.identify !== undefined && typeof options.identify !== 'function') {
      throw new ConfigError('rate limiting: `identify` must be a function (ctx) => user id or undefined.');
    }
    if (options.redisPrefix !== undefined) {
      if (typeof options.redisPrefix !== 'string' || !options.redisPrefix) {
        throw new ConfigError('rate limiting: `redisPrefix` must be a non-empty string such as "myapp:rl:".');
      }
      if (this.stores.size)
        throw new ConfigError('rate limiting: set `redisPrefix` before the first request.');
      this.prefix = options.redisPrefix;
    }
    if (options.now) this.clock = options.now;
    if (options.identify) this.identify = options.identify;
  }

  now(): number {
    return this.clock ? this.clock() : Date.now();
  }

  /** Whether any limit is configured: the stage costs nothing otherwise. */
  static active(rl: RateLimitConfig): boolean {
    return rl.globalRpm !== undefined || rl.perUserRpm !== undefined || rl.perModelRpm !== undefined;
  }

  keyOf(scope: RateLimitScope, ctx: GatewayContext): string {
    if (scope === 'global') return 'all';
    if (scope === 'user') return userKeyOf(this.identify ? this.identify(ctx) : ctx.user);
    return modelKeyOf(ctx.runtime, ctx.request.model);
  }

  /** The store of one limit for the config's algorithm and backend, made on first use. */
  storeFor(scope: RateLimitScope, rl: RateLimitConfig): StoreEntry {
    let known = this.byConfig.get(rl);
    const found = known?.[scope];
    if (found) return found;
    if (!known) this.byConfig.set(rl, (known = {}));
    const entry = this.createStore(scope, rl);
    known[scope] = entry;
    return entry;
  }

  private planFor(rl: RateLimitConfig): LimitPlan {
    let plan = this.plans.get(rl);
    if (plan) return plan;
    const limits: PlannedLimit[] = [];
    for (const scope of SCOPES) {
      const limit = limitOf(scope, rl);
      if (limit === undefined) continue;
      limits.push({ scope, limit, limitHeader: String(limit), entry: this.storeFor(scope, rl) });
    }
    plan = { limits, policy: policyOf(limits) };
    this.plans.set(rl, plan);
    return plan;
  }

  private createStore(scope: RateLimitScope, rl: RateLimitConfig): StoreEntry {
    const id = `${scope}|${rl.algorithm}|${rl.store}|${rl.store === 'redis' ? rl.redisUrl : ''}`;
    let entry = this.stores.get(id);
    if (entry) return entry;
    const tokenClock = () => this.now();
    if (rl.store === 'memory') {
      if (rl.algorithm === 'token_bucket') {
        entry = { store: new TokenBucketMemoryStore({ now: tokenClock }), now: tokenClock };
      } else {
        const store = new MemoryStore();
        store.init({ windowMs: WINDOW_MS } as Options);
        entry = { store, now: Date.now };
      }
    } else {
      const sendCommand = redisSendCommand(this.clientFor(rl));
      // The algorithm is in the key: the two keep different data, and a reload may switch between them.
      const prefix = `${this.prefix}${rl.algorithm === 'token_bucket' ? 'tb' : 'fw'}:${scope}:`;
      if (rl.algorithm === 'token_bucket') {
        // Without an injected clock the script uses Redis' own, which every instance shares.
        const store = new TokenBucketRedisStore({
          sendCommand,
          prefix,
          now: this.clock ? tokenClock : undefined,
        });
        entry = { store, now: tokenClock };
      } else {
        const store = new RedisStore({
          sendCommand: sendCommand as (...args: string[]) => Promise<never>,
          prefix,
        });
        store.init({ windowMs: WINDOW_MS } as Options);
        // It loads its scripts in the constructor; with Redis away those promises reject before anyone
        // awaits them. Each increment retries the load, so the early failure is only silenced here.
        store.incrementScriptSha.catch(() => {});
        store.getScriptSha.catch(() => {});
        entry = { store, now: Date.now };
      }
    }
    this.stores.set(id, entry);
    return entry;
  }

  private clientFor(rl: RateLimitConfig): Redis {
    const url = rl.redisUrl;
    if (!url) {
      throw new ConfigError(
        'rate_limiting.redis_url: required when rate_limiting.store is redis, e.g. redis://127.0.0.1:6379.',
      );
    }
    let client = this.clients.get(url);
    if (!client) {
      client = createRedisClient(url, { onError: (err) => this.storeFailed(err) });
      this.clients.set(url, client);
    }
    return client;
  }

  /** Logs a store failure at most once per interval. */
  storeFailed(err: unknown): void {
    const now = Date.now();
    if (now - this.lastErrorLog < ERROR_LOG_INTERVAL_MS) return;
    this.lastErrorLog = now;
    this.logger.warn(
      { err: err instanceof Error ? err.message : String(err) },
      'Rate-limit store failed; applying rate_limiting.on_store_error (logged at most every 30 s).',
    );
  }

  /** What a failing store means for this request under `on_store_error`. */
  storeError(err: unknown, rl: RateLimitConfig): GatewayError | undefined {
    this.storeFailed(err);
    if (rl.onStoreError === 'fail_open') return undefined;
    return new GatewayError(
      'connection',
      'Rate limiting is unavailable (its store cannot be reached) and the gateway is set to refuse requests then; retry shortly.',
      { status: 503, retryAfterMs: 1000 },
    );
  }

  /**
   * Counts one request against every configured limit at once (in parallel: with Redis that is one round
   * trip, not three). A request refused by one limit gives its token back to the others, so it only
   * counts where it was admitted. Throws the 429 (or the fail-closed 503).
   */
  async check(ctx: GatewayContext, rl: RateLimitConfig): Promise<ScopeResult[]> {
    return this.checkNow(ctx, rl);
  }

  /**
   * check() without a promise when every store answered synchronously (the memory stores do): the stage
   * then stays synchronous on the hot path. Otherwise (Redis) the same decision, once all stores settled.
   */
  checkNow(ctx: GatewayContext, rl: RateLimitConfig): ScopeResult[] | Promise<ScopeResult[]> {
    const plan = this.planFor(rl);
    const keys = this.keysOf(ctx, plan);
    const answers = this.increment(plan, keys);
    if (answers.some(isPending)) {
      return settle(answers).then((settled) => this.decide(ctx, rl, plan, keys, settled));
    }
    return this.decide(ctx, rl, plan, keys, answers.map(fulfilled));
  }

  /**
   * What the `rateLimit` stage runs: checkNow() writing the `RateLimit-*` headers itself. Every request
   * pays for it and nearly all are admitted, by memory stores in the default setup; that case builds no
   * result objects, no header object and no promise. Refusals and asynchronous stores take checkNow()'s
   * path.
   */
  admit(ctx: GatewayContext, rl: RateLimitConfig): void | Promise<void> {
    const plan = this.planFor(rl);
    const keys = this.keysOf(ctx, plan);
    const answers = this.increment(plan, keys);
    if (answers.some(isPending)) {
      return settle(answers).then((settled) => {
        Object.assign(ctx.responseHeaders, rateLimitHeaders(this.decide(ctx, rl, plan, keys, settled)));
      });
    }
    // The first limit with the least room left, as rateLimitHeaders() picks it.
    let shownAt = -1;
    let shownRoom = Infinity;
    for (let i = 0; i < answers.length; i++) {
      const room = plan.limits[i]!.limit - (answers[i] as ClientRateLimitInfo).totalHits;
      if (room < 0) {
        // Refused: decide() gives the other limits their token back and throws the 429.
        Object.assign(
          ctx.responseHeaders,
          rateLimitHeaders(this.decide(ctx, rl, plan, keys, answers.map(fulfilled))),
        );
        return;
      }
      if (room < shownRoom) {
        shownAt = i;
        shownRoom = room;
      }
    }
    if (shownAt === -1) return;
    const shown = plan.limits[shownAt]!;
    const { resetTime } = answers[shownAt] as ClientRateLimitInfo;
    const resetMs = resetTime ? resetTime.getTime() - shown.entry.now() : WINDOW_MS;
    const headers = ctx.responseHeaders;
    headers['RateLimit-Policy'] = plan.policy;
    headers['RateLimit-Limit'] = shown.limitHeader;
    headers['RateLimit-Remaining'] = String(shownRoom);
    headers['RateLimit-Reset'] = String(Math.max(0, Math.ceil(resetMs / 1000)));
  }

  /** Every key first: an identify() that throws must leave no limit counted. */
  private keysOf(ctx: GatewayContext, plan: LimitPlan): string[] {
    const keys: string[] = [];
    for (const planned of plan.limits) keys.push(this.keyOf(planned.scope, ctx));
    return keys;
  }

  private increment(plan: LimitPlan, keys: readonly string[]): Answer[] {
    const answers: Answer[] = [];
    for (let i = 0; i < keys.length; i++) {
      const planned = plan.limits[i]!;
      answers.push(planned.entry.store.increment(keys[i]!, planned.limit));
    }
    return answers;
  }

  private decide(
    ctx: GatewayContext,
    rl: RateLimitConfig,
    plan: LimitPlan,
    keys: readonly string[],
    settled: readonly PromiseSettledResult<ClientRateLimitInfo>[],
  ): ScopeResult[] {
    const results: ScopeResult[] = [];
    let failure: unknown;
    settled.forEach((s, i) => {
      const planned = plan.limits[i]!;
      if (s.status === 'rejected') failure ??= s.reason;
      else {
        const reset = s.value.resetTime ? s.value.resetTime.getTime() - planned.entry.now() : WINDOW_MS;
        results.push({
          scope: planned.scope,
          key: keys[i]!,
          limit: planned.limit,
          totalHits: s.value.totalHits,
          resetMs: reset,
        });
      }
    });
    if (failure !== undefined) {
      const error = this.storeError(failure, rl);
      if (!error) return results;
      this.refund(results, rl);
      throw error;
    }
    const refused = results.filter((r) => r.totalHits > r.limit);
    if (refused.length === 0) return results;
    // Of several refusals, the one that lasts longest is what the client must wait for.
    const worst = refused.reduce((a, b) => (b.resetMs > a.resetMs ? b : a));
    this.refund(
      results.filter((r) => r.totalHits <= r.limit),
      rl,
    );
    Object.assign(ctx.responseHeaders, rateLimitHeaders(results, worst));
    throw rateLimitError(worst);
  }

  private refund(admitted: ScopeResult[], rl: RateLimitConfig): void {
    for (const r of admitted) {
      // Best effort: a lost refund only makes the limit slightly stricter for a moment.
      Promise.resolve(this.storeFor(r.scope, rl).store.decrement(r.key, r.limit)).catch(() => {});
    }
  }

  async close(): Promise<void> {
    for (const { store } of this.stores.values()) await store.shutdown?.();
    this.stores.clear();
    this.byConfig = new WeakMap();
    this.plans = new WeakMap();
    for (const client of this.clients.values()) client.disconnect();
    this.clients.clear();
  }
}

function isPending(answer: Answer): boolean {
  return typeof (answer as Promise<unknown> | undefined)?.then === 'function';
}

function fulfilled(answer: Answer): PromiseSettledResult<ClientRateLimitInfo> {
  return { status: 'fulfilled', value: answer as ClientRateLimitInfo };
}

function settle(answers: readonly Answer[]): Promise<PromiseSettledResult<ClientRateLimitInfo>[]> {
  return Promise.allSettled(answers.map((a) => Promise.resolve(a)));
}

const perGateway = new WeakMap<Gateway, RateLimiting>();

/** The rate limiting of a gateway, shared by its stage and by every limiter middleware built on it. */
export function rateLimitingOf(gateway: Gateway): RateLimiting {
  let rl = perGateway.get(gateway);
  if (!rl) {
    rl = new RateLimiting(gateway.logger);
    perGateway.set(gateway, rl);
    const created = rl;
    gateway.onClose(() => created.close());
  }
  return rl;
}
