/**
 * The gateway's limits as express-rate-limit middlewares, for hosts that want them on their own routes
 * (an upload endpoint, a tool callback) or want to replace the gateway's own check with their own limiter.
 *
 * The gateway's router does not need them: its `rateLimit` stage already applies all three limits, in
 * both faces. Built with `{ gateway }`, a limiter uses the gateway's limits (re-read on every request, so
 * reloads apply) and the gateway's very stores, so a request counted here and one counted by the stage
 * draw from the same bucket. Mounting one in front of the gateway's router would count chat requests
 * twice; to swap the stage for these, leave `rateLimit` out of the pipeline.
 */
import type {
  RateLimitExceededEventHandler,
  RateLimitInfo,
  RateLimitRequestHandler,
  Store,
} from 'express-rate-limit';
import { MemoryStore, rateLimit } from 'express-rate-limit';
import type { Request, Response } from 'express';
import type { RateLimitScope } from '../../types/index.js';
import type { GatewayContext } from '../context.js';
import { finishContext } from '../context.js';
import { ConfigError } from '../errors.js';
import type { Gateway } from '../gateway.js';
import type { LimitStore } from '../rate-limit.js';
import { WINDOW_MS, limitOf, modelKeyOf, rateLimitError, rateLimitingOf, userKeyOf } from '../rate-limit.js';
import { TokenBucketMemoryStore } from '../stores/token-bucket-memory.js';
import { gatewayHeaders, writeJson } from './respond.js';

export interface RateLimiterOptions {
  /** Share this gateway's limits and stores. Without it, give `limit`. */
  gateway?: Gateway;
  /** Requests per minute. With a gateway, setting it makes this limiter's own policy, with its own store. */
  limit?: number;
  /** For a limiter with its own store; default token_bucket. */
  algorithm?: 'token_bucket' | 'fixed_window';
  /** Any express-rate-limit Store (e.g. TokenBucketRedisStore, rate-limit-redis' RedisStore). */
  store?: LimitStore | Store;
  /** Default: the same keys the gateway's stage uses. */
  keyGenerator?: (req: Request, res: Response) => string | Promise<string>;
  /** Default: the gateway's unified 429 JSON with Retry-After. */
  handler?: RateLimitExceededEventHandler;
  /** Default 'draft-6' (`RateLimit-Limit`, `-Remaining`, `-Reset`, `-Policy`), as the stage sends. */
  standardHeaders?: 'draft-6' | 'draft-7' | 'draft-8';
}

function contextOf(res: Response): GatewayContext | undefined {
  return res.locals.gateway as GatewayContext | undefined;
}

function defaultKey(scope: RateLimitScope, gateway: Gateway | undefined) {
  return (req: Request, res: Response): string => {
    const ctx = contextOf(res);
    if (scope === 'global') return 'all';
    if (scope === 'user') {
      if (ctx && gateway) return rateLimitingOf(gateway).keyOf('user', ctx);
      if (ctx) return userKeyOf(ctx.user);
      const header = req.headers[gateway?.runtime.config.rateLimiting.userHeader ?? 'x-user-id'];
      const body = (req.body as { user?: unknown } | undefined)?.user;
      const user =
        typeof header === 'string' && header ? header.slice(0, 256) : typeof body === 'string' ? body : '';
      return userKeyOf(user || undefined);
    }
    const raw = ctx?.request.model ?? (req.body as { model?: unknown } | undefined)?.model;
    const model = typeof raw === 'string' && raw ? raw : 'unknown';
    return gateway ? modelKeyOf(ctx?.runtime ?? gateway.runtime, model) : model;
  };
}

/** Delegates to the gateway's store for the current config, applying its on_store_error policy. */
function sharedStore(scope: RateLimitScope, gateway: Gateway): Store {
  const limiting = rateLimitingOf(gateway);
  const current = () => gateway.runtime.config.rateLimiting;
  const storeNow = () => limiting.storeFor(scope, current()).store;
  return {
    localKeys: false,
    prefix: `gateway:${scope}:`,
    async increment(key) {
      const rl = current();
      try {
        return await limiting.storeFor(scope, rl).store.increment(key, limitOf(scope, rl));
      } catch (err) {
        const refusal = limiting.storeError(err, rl);
        if (refusal) throw refusal;
        return { totalHits: 0, resetTime: undefined };
      }
    },
    async decrement(key) {
      await storeNow().decrement(key, limitOf(scope, current()));
    },
    async resetKey(key) {
      await storeNow().resetKey(key);
    },
  };
}

function unifiedHandler(scope: RateLimitScope): RateLimitExceededEventHandler {
  return (req, res) => {
    const info = (req as Request & { rateLimit?: RateLimitInfo }).rateLimit;
    const resetMs = info?.resetTime ? info.resetTime.getTime() - Date.now() : WINDOW_MS;
    const limit = info?.limit ?? 0;
    const error = rateLimitError({
      scope,
      key: info?.key ?? '',
      limit,
      totalHits: info?.used ?? limit + 1,
      resetMs,
    });
    const ctx = contextOf(res);
    if (ctx) ctx.locals.rateLimited = true;
    const headers: Record<string, string> = ctx ? gatewayHeaders(ctx) : {};
    headers['Retry-After'] = String(Math.max(1, Math.ceil((error.retryAfterMs ?? 0) / 1000)));
    writeJson(res, 429, error.toJSON(ctx?.requestId), headers);
    if (ctx) finishContext(ctx, { status: 429, error });
  };
}

function buildLimiter(scope: RateLimitScope, options: RateLimiterOptions): RateLimitRequestHandler {
  const who = `${scope}RateLimit()`;
  const { gateway, limit } = options;
  if (limit !== undefined && !(Number.isInteger(limit) && limit > 0)) {
    throw new ConfigError(`${who}: limit must be a positive whole number of requests per minute.`);
  }
  if (!gateway && limit === undefined) {
    throw new ConfigError(
      `${who}: pass { gateway } to use the gateway's rate_limiting, or { limit } for a limiter of its own.`,
    );
  }
  if (options.algorithm && !['token_bucket', 'fixed_window'].includes(options.algorithm)) {
    throw new ConfigError(`${who}: algorithm must be "token_bucket" or "fixed_window".`);
  }
  const shared = gateway && limit === undefined;
  const store: Store =
    options.store ??
    (shared
      ? sharedStore(scope, gateway)
      : options.algorithm === 'fixed_window'
        ? new MemoryStore()
        : new TokenBucketMemoryStore({ capacity: limit }));
  const limitNow = () => limit ?? (gateway ? limitOf(scope, gateway.runtime.config.rateLimiting) : undefined);
  return rateLimit({
    windowMs: WINDOW_MS,
    limit: () => limitNow() ?? Number.MAX_SAFE_INTEGER,
    // A scope the config leaves unlimited is not counted at all.
    skip: () => limitNow() === undefined,
    store,
    keyGenerator: options.keyGenerator ?? defaultKey(scope, gateway),
    handler: options.handler ?? unifiedHandler(scope),
    standardHeaders: options.standardHeaders ?? 'draft-6',
    legacyHeaders: false,
    // Keys are identities, not IP addresses, so the IP-related checks do not apply.
    validate: { keyGeneratorIpFallback: false, ip: false, trustProxy: false, xForwardedForHeader: false },
  });
}

/** One limit for all traffic (`rate_limiting.global_rpm`). */
export function globalRateLimit(options: RateLimiterOptions = {}): RateLimitRequestHandler {
  return buildLimiter('global', options);
}

/** One limit per user: the X-User-Id header (configurable) or the body's `user`; anonymous share one. */
export function userRateLimit(options: RateLimiterOptions = {}): RateLimitRequestHandler {
  return buildLimiter('user', options);
}

/** One limit per model; `openai/gpt-4o` and `gpt-4o` count together (`rate_limiting.per_model_rpm`). */
export function modelRateLimit(options: RateLimiterOptions = {}): RateLimitRequestHandler {
  return buildLimiter('model', options);
}
