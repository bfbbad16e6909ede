/**
 * The `rateLimit` stage: counts each chat request against the configured global, per-user and per-model
 * limits before anything else spends money on it. It runs in both faces (router and `Gateway.chat()`),
 * so the limits hold whichever way a request arrives. A refused request throws a `rate_limit` error (429
 * with `Retry-After`) and never reaches a provider; admitted ones carry the `RateLimit-*` headers.
 */
import type { GatewayContext } from '../context.js';
import { ConfigError } from '../errors.js';
import type { Gateway } from '../gateway.js';
import type { RateLimitingOptions } from '../rate-limit.js';
import { RateLimiting, rateLimitingOf } from '../rate-limit.js';
import type { Stage } from '../stage.js';

export type RateLimitStageOptions = RateLimitingOptions;

export function rateLimitStage(gateway: Gateway, options: RateLimitStageOptions = {}): Stage {
  // Long-lived: the stores outlive requests and reloads, and the router's limiters share them.
  const limiting = rateLimitingOf(gateway);
  limiting.configure(options);
  const rl0 = gateway.runtime.config.rateLimiting;
  // Stores connect on first use (so code-only options such as a Redis prefix can still be set), but a
  // config that cannot work fails here, at construction.
  if (rl0.store === 'redis' && !rl0.redisUrl) {
    throw new ConfigError(
      'rate_limiting.redis_url: required when rate_limiting.store is redis, e.g. redis://127.0.0.1:6379.',
    );
  }

  function refused(ctx: GatewayContext, err: unknown): never {
    // Analytics (first in the pipeline) reads this along with the error outcome.
    if ((err as { kind?: string }).kind === 'rate_limit') ctx.locals.rateLimited = true;
    throw err;
  }

  /** Synchronous with memory stores (no promise on the hot path); a promise with Redis. */
  function check(ctx: GatewayContext): void | Promise<void> {
    let admitted: void | Promise<void>;
    try {
      admitted = limiting.admit(ctx, ctx.runtime.config.rateLimiting);
    } catch (err) {
      refused(ctx, err);
    }
    return admitted?.catch((err: unknown) => refused(ctx, err));
  }

  return {
    name: 'rateLimit',
    run(ctx) {
      // Without limits the stage stays synchronous: no promise on the hot path.
      if (!RateLimiting.active(ctx.runtime.config.rateLimiting)) return;
      return check(ctx);
    },
  };
}
