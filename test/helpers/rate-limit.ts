/**
 * Shared by the rate-limit test files: a gateway against the OpenAI fake with the given `rate_limiting`
 * (analytics and cache off, so every request reaches the limiter and the fake), a hand-moved clock, and
 * a chat request.
 */
import express from 'express';
import request from 'supertest';
import { Gateway } from '../../lib/gateway.js';
import { silentLogger } from '../../lib/logger.js';
import { rateLimitingOf } from '../../lib/rate-limit.js';
import { createGatewayRouter } from '../../lib/router.js';
import type { Stage } from '../../lib/stage.js';
import type { FakeProvider } from '../../lib/testing/fake-server.js';
import type { Logger, RateLimitingFileConfig } from '../../types/index.js';

export const ALGORITHMS = ['token_bucket', 'fixed_window'] as const;

export const body = (model = 'gpt-4o-mini', extra: Record<string, unknown> = {}) => ({
  model,
  messages: [{ role: 'user', content: 'hi' }],
  ...extra,
});

/** A clock tests move by hand. */
export function manualClock(start = 1_700_000_000_000) {
  let t = start;
  return { now: () => t, advance: (ms: number) => void (t += ms) };
}

export interface BuildOptions {
  logger?: Logger;
  now?: () => number;
  redisPrefix?: string;
  pipeline?: (string | Stage)[] | ((gateway: Gateway) => (string | Stage)[]);
}

export function buildLimitedGateway(
  fake: FakeProvider,
  rate_limiting: RateLimitingFileConfig,
  options: BuildOptions = {},
) {
  const gateway = new Gateway({
    providers: { openai: { api_key: 'test-key', base_url: fake.baseUrl, models: ['gpt-4o-mini', 'gpt-4o'] } },
    rate_limiting,
    analytics: { enabled: false },
    // Identical test requests must all reach the limiter and the fake, not be answered from the cache.
    cache: { backend: 'disabled' },
    logger: options.logger ?? silentLogger,
    ...(Array.isArray(options.pipeline) ? { pipeline: options.pipeline } : {}),
  });
  rateLimitingOf(gateway).configure({ now: options.now, redisPrefix: options.redisPrefix });
  // The router takes the gateway's stages when it is made, so a pipeline built on the gateway goes first.
  if (typeof options.pipeline === 'function') gateway.setPipeline(options.pipeline(gateway));
  const app = express();
  app.use('/ai', createGatewayRouter(gateway));
  return { gateway, app };
}

export const chat = (app: express.Express, payload: object = body(), user?: string) => {
  const r = request(app).post('/ai/chat');
  if (user) r.set('X-User-Id', user);
  return r.send(payload);
};
