/**
 * Shared pieces of the cache tests: one OpenAI fake per suite (request log reset before each test), hosts
 * built against it and closed after each test, and the cache key of a body as the stage computes it.
 */
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { cacheKeyOf } from '../../lib/cache-key.js';
import type { Gateway, GatewayOptions } from '../../lib/gateway.js';
import { silentLogger } from '../../lib/logger.js';
import { startFakeOpenAI } from '../../lib/testing/fake-openai.js';
import type { FakeProvider } from '../../lib/testing/fake-server.js';
import { validateChatRequest } from '../../lib/validations.js';
import type { CacheFileConfig } from '../../types/index.js';
import { hostApp } from './setup.js';

/** Redis keys of this run live under it, so parallel runs never meet and cleanup is exact. */
export const RUN_PREFIX = `aigw-test:cache:${process.pid}-${Date.now()}:`;
export const MODELS = ['gpt-4o-mini', 'gpt-4o'];
export const user = (content: string) => [{ role: 'user', content }];

/** Polls a condition (something written asynchronously); not a timing assertion. */
export async function until(check: () => Promise<boolean> | boolean, what: string): Promise<void> {
  for (let i = 0; i < 500; i++) {
    if (await check()) return;
    await new Promise((r) => setTimeout(r, 10));
  }
  throw new Error(`gave up waiting for ${what}`);
}

/** The cache key of a body, as the stage computes it. */
export function keyOf(body: unknown, cache: CacheFileConfig = {}, who?: string): string {
  return cacheKeyOf(
    validateChatRequest(body),
    { hashStrategy: cache.hash_strategy ?? 'full_request', scope: cache.scope ?? 'global' },
    who,
  );
}

/** Registers mocha hooks for a fake and returns `build()`, which mounts a gateway on it. */
export function cacheSuite() {
  const state = { fake: undefined as unknown as FakeProvider };
  const gateways: Gateway[] = [];
  before(async () => {
    state.fake = await startFakeOpenAI({});
  });
  after(() => state.fake.close());
  beforeEach(() => {
    state.fake.requests.length = 0;
    state.fake.clearFaults();
  });
  afterEach(async () => {
    for (const g of gateways.splice(0)) await g.close();
  });
  function build(options: Partial<GatewayOptions> = {}) {
    const host = hostApp({
      providers: { openai: { api_key: 'test-key', base_url: state.fake.baseUrl, models: MODELS } },
      logger: silentLogger,
      analytics: { enabled: false },
      ...options,
    } as GatewayOptions);
    gateways.push(host.gateway);
    return host;
  }
  return {
    get fake() {
      return state.fake;
    },
    build,
  };
}

export interface BurstAnswer {
  status: number;
  cache: string | null;
  body: { content: string };
}

/**
 * Sends `count` identical chat requests at once over real sockets (supertest would send them one server
 * at a time) and collects each answer. Make the upstream slow first, so that all arrive while the first
 * is in flight.
 */
export async function burst(
  app: http.RequestListener,
  count: number,
  content: string,
): Promise<BurstAnswer[]> {
  const server = http.createServer(app).listen(0, '127.0.0.1');
  await new Promise((r) => server.once('listening', r));
  const { port } = server.address() as AddressInfo;
  try {
    return await Promise.all(
      Array.from({ length: count }, () =>
        fetch(`http://127.0.0.1:${port}/ai/chat`, {
          method: 'POST',
          headers: { 'content-type': 'application/json' },
          body: JSON.stringify({ model: 'gpt-4o-mini', messages: user(content) }),
        }).then(async (r) => ({
          status: r.status,
          cache: r.headers.get('x-gateway-cache'),
          body: (await r.json()) as { content: string },
        })),
      ),
    );
  } finally {
    await new Promise((r) => server.close(r));
  }
}
