/**
 * The cache must never fail or hold up a request because of Redis: a Redis that vanishes mid-test (a TCP
 * proxy in front of the real one is taken down, then brought back), one that accepts and never answers, and
 * a config pointing at a closed port. Requests go on uncached, one error line per interval, and hits resume.
 */
import assert from 'node:assert/strict';
import net from 'node:net';
import type { AddressInfo } from 'node:net';
import { Redis } from 'ioredis';
import request from 'supertest';
import { RedisCacheStore } from '../lib/stores/redis-cache-store.js';
import type { CacheFileConfig } from '../types/index.js';
import { RUN_PREFIX, cacheSuite, keyOf, until, user } from './helpers/cache.js';
import { REDIS_URL, probeRedis, requireService } from './helpers/services.js';
import { parseSse, recordingLogger } from './helpers/setup.js';
import { startTcpProxy } from './helpers/tcp-proxy.js';

describe('response cache: Redis away or slow', () => {
  const suite = cacheSuite();
  const build = suite.build;

  let admin: Redis;
  const prefix = `${RUN_PREFIX}outage:`;

  before(async function () {
    await requireService(this, 'Redis', () => probeRedis(REDIS_URL));
    admin = new Redis(REDIS_URL);
  });
  after(async () => {
    if (!admin) return;
    const keys = await admin.keys(`${prefix}*`);
    if (keys.length) await admin.del(...keys);
    await admin.quit();
  });

  it('serves uncached while Redis is down, logs once, and hits again when it is back', async function () {
    const target = new URL(REDIS_URL);
    const proxy = await startTcpProxy({ host: target.hostname, port: Number(target.port || 6379) });
    const logger = recordingLogger();
    const store = new RedisCacheStore({ url: proxy.url, keyPrefix: prefix, maxReconnectDelayMs: 50 });
    try {
      await store.ready();
      const { app: a } = build({ cacheStore: store, logger });
      const body = { model: 'gpt-4o-mini', messages: user('through an outage') };
      await request(a).post('/ai/chat').send(body).expect('X-Gateway-Cache', 'MISS');
      await request(a).post('/ai/chat').send(body).expect('X-Gateway-Cache', 'HIT');

      await proxy.down();
      for (let i = 0; i < 5; i++) {
        const r = await request(a).post('/ai/chat').send(body).expect(200);
        assert.equal(r.body.cached, false);
        assert.equal(r.body.content, 'echo: through an outage');
      }
      assert.equal(suite.fake.requests.length, 6);
      const errors = logger.lines.filter((l) => l.level === 'error');
      assert.equal(errors.length, 1, `one error line per interval, got:\n${logger.text()}`);
      assert.match(errors[0]!.msg ?? '', /served uncached/);

      await proxy.up();
      await store.ready();
      await request(a).post('/ai/chat').send(body).expect('X-Gateway-Cache', 'HIT');
      assert.equal(suite.fake.requests.length, 6);
    } finally {
      await store.close();
      await proxy.close();
    }
  });

  it('a Redis that accepts but never answers costs a short timeout, not the request', async () => {
    const target = new URL(REDIS_URL);
    const proxy = await startTcpProxy({ host: target.hostname, port: Number(target.port || 6379) });
    const store = new RedisCacheStore({ url: proxy.url, keyPrefix: prefix });
    try {
      await store.ready();
      const { app: a } = build({ cacheStore: store, logger: recordingLogger() });
      proxy.stall(true);
      const body = { model: 'gpt-4o-mini', messages: user('stalled redis') };
      const r = await request(a).post('/ai/chat').send(body).expect(200);
      assert.equal(r.body.cached, false);
      const s = await request(a).post('/ai/chat/stream').send(body).expect(200);
      assert.equal(parseSse(s.text).at(-1)!.event, 'done');
      assert.equal(suite.fake.requests.length, 2);
    } finally {
      await store.close();
      await proxy.close();
    }
  });

  it('backend redis from config: a closed port serves uncached; redis_url is required', async () => {
    const probe = net.createServer().listen(0, '127.0.0.1');
    await new Promise((r) => probe.once('listening', r));
    const url = `redis://127.0.0.1:${(probe.address() as AddressInfo).port}`;
    await new Promise((r) => probe.close(r));
    const { app: a } = build({ cache: { backend: 'redis', redis_url: url }, logger: recordingLogger() });
    const body = { model: 'gpt-4o-mini', messages: user('nowhere') };
    for (let i = 0; i < 3; i++) {
      const r = await request(a).post('/ai/chat').send(body).expect(200);
      assert.equal(r.body.cached, false);
    }
    assert.equal(suite.fake.requests.length, 3);
    assert.throws(() => build({ cache: { backend: 'redis' } }), /cache\.redis_url: required/);
  });

  it('backend redis from config caches across two gateways, with the TTL held by Redis', async () => {
    const cache: CacheFileConfig = { backend: 'redis', redis_url: REDIS_URL, ttl_seconds: 120 };
    // A unique question so that the default key namespace cannot collide with another run.
    const body = { model: 'gpt-4o-mini', messages: user(`shared ${RUN_PREFIX}`) };
    const fullKey = `aigw:cache:${keyOf(body, cache)}`;
    try {
      const { app: a } = build({ cache });
      const { app: b } = build({ cache });
      await request(a).post('/ai/chat').send(body).expect('X-Gateway-Cache', 'MISS');
      await until(async () => (await admin.exists(fullKey)) === 1, 'the entry to be written');
      await request(b).post('/ai/chat').send(body).expect('X-Gateway-Cache', 'HIT');
      const ttl = await admin.pttl(fullKey);
      assert.ok(ttl > 100_000 && ttl <= 120_000, `PTTL ${ttl}`);
    } finally {
      await admin.del(fullKey);
    }
  });
});
