/**
 * Rate limiting against a real Redis: two gateway instances (two apps, two Redis clients) sharing one
 * limit admit exactly that many under 200 concurrent requests, for both algorithms; the token-bucket
 * script refills on an injected clock, expires idle keys and falls back from EVALSHA to EVAL; and with
 * Redis unreachable, fail_open admits and fail_closed refuses with 503, neither hanging.
 */
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import type express from 'express';
import { Redis } from 'ioredis';
import type { Gateway } from '../lib/gateway.js';
import { TokenBucketRedisStore } from '../lib/stores/token-bucket-redis.js';
import type { FakeProvider } from '../lib/testing/fake-server.js';
import { startFakeOpenAI } from '../lib/testing/fake-openai.js';
import type { Logger, RateLimitingFileConfig } from '../types/index.js';
import type { BuildOptions } from './helpers/rate-limit.js';
import { ALGORITHMS, body, buildLimitedGateway, chat, manualClock } from './helpers/rate-limit.js';
import { REDIS_URL, probeRedis, requireService } from './helpers/services.js';
import { recordingLogger } from './helpers/setup.js';

async function listen(app: express.Express): Promise<{ url: string; close: () => Promise<void> }> {
  const server = http.createServer(app);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}

async function closedPort(): Promise<number> {
  const server = http.createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

describe('rate limiting with Redis', function () {
  const prefix = `test:rl:${randomUUID()}:`;
  let admin: Redis;
  let fake: FakeProvider;
  const gateways: Gateway[] = [];
  const build = (rl: RateLimitingFileConfig, options?: BuildOptions) =>
    buildLimitedGateway(fake, rl, options);

  before(async function () {
    await requireService(this, 'Redis', () => probeRedis());
    admin = new Redis(REDIS_URL);
    fake = await startFakeOpenAI({ chunkDelayMs: 0 });
  });
  afterEach(async () => {
    for (const g of gateways.splice(0)) await g.close();
  });
  after(async () => {
    await fake?.close();
    if (!admin) return;
    const keys = await admin.keys(`${prefix}*`);
    if (keys.length) await admin.del(...keys);
    admin.disconnect();
  });

  const redisGateway = (
    rl: RateLimitingFileConfig,
    sub: string,
    options: { now?: () => number; logger?: Logger } = {},
  ) => {
    const built = build(
      { store: 'redis', redis_url: REDIS_URL, ...rl },
      { ...options, redisPrefix: `${prefix}${sub}:` },
    );
    gateways.push(built.gateway);
    return built;
  };

  for (const algorithm of ALGORITHMS) {
    it(`two gateway instances admit exactly the shared limit under 200 concurrent requests (${algorithm})`, async () => {
      // A frozen clock: with real time a token bucket would legitimately refill during the burst.
      const frozen = manualClock();
      const now = algorithm === 'token_bucket' ? frozen.now : undefined;
      const one = redisGateway({ global_rpm: 50, algorithm }, `burst-${algorithm}`, { now });
      const two = redisGateway({ global_rpm: 50, algorithm }, `burst-${algorithm}`, { now });
      const servers = [await listen(one.app), await listen(two.app)];
      const before = fake.requests.length;
      try {
        const statuses = await Promise.all(
          Array.from({ length: 200 }, async (_, i) => {
            const r = await fetch(`${servers[i % 2]!.url}/ai/chat`, {
              method: 'POST',
              headers: { 'content-type': 'application/json' },
              body: JSON.stringify(body()),
            });
            await r.arrayBuffer();
            return r.status;
          }),
        );
        const counts: Record<number, number> = {};
        for (const s of statuses) counts[s] = (counts[s] ?? 0) + 1;
        assert.deepEqual(counts, { 200: 50, 429: 150 });
        assert.equal(statuses.filter((s) => s === 429).length, 150);
        assert.equal(fake.requests.length - before, 50);
      } finally {
        for (const s of servers) await s.close();
      }
    });
  }

  it('token bucket on Redis refills on the injected clock, and its keys expire when idle', async () => {
    const clock = manualClock();
    const { app } = redisGateway({ per_user_rpm: 2, algorithm: 'token_bucket' }, 'refill', {
      now: clock.now,
    });
    await chat(app, body(), 'r').expect(200);
    await chat(app, body(), 'r').expect(200);
    const refused = await chat(app, body(), 'r').expect(429);
    assert.equal(refused.headers['retry-after'], '30');
    clock.advance(30_000);
    await chat(app, body(), 'r').expect(200);
    await chat(app, body(), 'r').expect(429);
    const [key] = await admin.keys(`${prefix}refill:tb:user:*`);
    assert.ok(key, 'the bucket is in Redis under the prefix');
    const ttl = await admin.pttl(key);
    assert.ok(ttl > 0 && ttl <= 61_000, `TTL ${ttl}`);
  });

  it('token bucket on Redis uses Redis time by default', async () => {
    const { app } = redisGateway({ global_rpm: 2, algorithm: 'token_bucket' }, 'redis-time');
    await chat(app).expect(200);
    const second = await chat(app).expect(200);
    assert.equal(second.headers['ratelimit-remaining'], '0');
    assert.equal((await chat(app).expect(429)).body.error.limit, 'global');
  });

  it('falls back from EVALSHA to EVAL when Redis does not know the script', async () => {
    // Not SCRIPT FLUSH: that would pull scripts from under other tests sharing this Redis.
    const sent: string[] = [];
    const sendCommand = async (...args: string[]) => {
      sent.push(args[0]!);
      if (args[0] === 'EVALSHA' && sent.length === 1) throw new Error('NOSCRIPT No matching script.');
      return admin.call(args[0]!, ...args.slice(1));
    };
    const store = new TokenBucketRedisStore({ sendCommand, capacity: 2, prefix: `${prefix}evalsha:` });
    assert.equal((await store.increment('k')).totalHits, 1);
    assert.equal((await store.increment('k')).totalHits, 2);
    assert.equal((await store.increment('k')).totalHits, 3, 'refused: capacity + 1');
    assert.deepEqual(sent, ['EVALSHA', 'EVAL', 'EVALSHA', 'EVALSHA']);
  });

  it('Redis unreachable, fail_open: admits, logs once, never hangs', async () => {
    const logger = recordingLogger();
    const port = await closedPort();
    const { gateway, app } = build(
      { global_rpm: 1, store: 'redis', redis_url: `redis://127.0.0.1:${port}` },
      { logger, redisPrefix: `${prefix}down:` },
    );
    gateways.push(gateway);
    for (let i = 0; i < 3; i++) await chat(app).expect(200);
    const warnings = logger.lines.filter((l) => l.msg?.includes('Rate-limit store failed'));
    assert.equal(warnings.length, 1);
  });

  for (const algorithm of ALGORITHMS) {
    it(`Redis unreachable, fail_closed: refuses with the unified 503 (${algorithm})`, async () => {
      const port = await closedPort();
      const { gateway, app } = build(
        {
          global_rpm: 1,
          store: 'redis',
          redis_url: `redis://127.0.0.1:${port}`,
          on_store_error: 'fail_closed',
          algorithm,
        },
        { redisPrefix: `${prefix}down:` },
      );
      gateways.push(gateway);
      const before = fake.requests.length;
      const r = await chat(app).expect(503);
      assert.equal(r.body.error.type, 'connection');
      assert.match(r.body.error.message, /Rate limiting is unavailable/);
      assert.equal(fake.requests.length - before, 0);
    });
  }
});
