/**
 * Rate limiting with in-memory stores (issue 6): every limit trips exactly at its number for both
 * algorithms, token buckets refill on a controllable clock, the RateLimit-* headers, per-user and
 * per-model isolation, the buckets both faces and the express-rate-limit middlewares share. The Redis
 * side is in rate-limit-redis.test.ts.
 */
import assert from 'node:assert/strict';
import express from 'express';
import request from 'supertest';
import { GatewayError } from '../lib/errors.js';
import { rateLimitStage } from '../lib/middlewares/rate-limit.js';
import { globalRateLimit, userRateLimit } from '../lib/middlewares/rate-limiters.js';
import type { Stage } from '../lib/stage.js';
import { TokenBucketMemoryStore } from '../lib/stores/token-bucket-memory.js';
import { TokenBucketRedisStore } from '../lib/stores/token-bucket-redis.js';
import type { FakeProvider } from '../lib/testing/fake-server.js';
import { startFakeOpenAI } from '../lib/testing/fake-openai.js';
import type { RateLimitingFileConfig } from '../types/index.js';
import type { BuildOptions } from './helpers/rate-limit.js';
import { ALGORITHMS, body, buildLimitedGateway, chat, manualClock } from './helpers/rate-limit.js';

describe('rate limiting', () => {
  let fake: FakeProvider;
  const build = (rl: RateLimitingFileConfig, options?: BuildOptions) =>
    buildLimitedGateway(fake, rl, options);

  before(async () => {
    fake = await startFakeOpenAI({ chunkDelayMs: 0 });
  });
  after(() => fake.close());

  describe('rate limiting (memory stores)', () => {
    for (const algorithm of ALGORITHMS) {
      describe(algorithm, () => {
        it('admits exactly global_rpm requests, then refuses with the unified 429 that names the limit', async () => {
          const { app } = build({ global_rpm: 3, algorithm });
          const before = fake.requests.length;
          const remaining: string[] = [];
          for (let i = 0; i < 3; i++) {
            const r = await chat(app).expect(200);
            remaining.push(r.headers['ratelimit-remaining']);
            assert.equal(r.headers['ratelimit-limit'], '3');
            assert.equal(r.headers['ratelimit-policy'], '3;w=60');
            assert.ok(
              Number(r.headers['ratelimit-reset']) >= 0 && Number(r.headers['ratelimit-reset']) <= 60,
            );
          }
          assert.deepEqual(remaining, ['2', '1', '0']);
          const refused = await chat(app).expect(429);
          assert.equal(refused.body.error.type, 'rate_limit');
          assert.equal(refused.body.error.limit, 'global');
          assert.match(refused.body.error.message, /global limit of 3/);
          assert.ok(refused.body.error.request_id);
          const retry = Number(refused.headers['retry-after']);
          assert.ok(retry >= 1 && retry <= 60, `Retry-After ${retry}`);
          assert.equal(refused.headers['ratelimit-remaining'], '0');
          assert.equal(refused.headers['ratelimit-limit'], '3');
          assert.equal(fake.requests.length - before, 3, 'the refused request never reached the provider');
        });

        it('keeps users apart; the header and the body `user` are the same user; anonymous share one bucket', async () => {
          const { app } = build({ per_user_rpm: 2, algorithm });
          await chat(app, body(), 'alice').expect(200);
          await chat(app, body('gpt-4o-mini', { user: 'alice' })).expect(200);
          const r = await chat(app, body(), 'alice').expect(429);
          assert.equal(r.body.error.limit, 'user');
          assert.match(r.body.error.message, /per-user limit of 2/);
          await chat(app, body(), 'bob').expect(200);
          await chat(app, body(), 'bob').expect(200);
          await chat(app).expect(200);
          await chat(app).expect(200);
          const anon = await chat(app).expect(429);
          assert.equal(anon.body.error.limit, 'user');
          // A user may not name themselves into the anonymous bucket, or out of it.
          await chat(app, body(), 'anonymous').expect(200);
        });

        it('keeps models apart; provider/model and the bare name count against one bucket', async () => {
          const { app } = build({ per_model_rpm: 2, algorithm });
          await chat(app, body('gpt-4o-mini')).expect(200);
          await chat(app, body('openai/gpt-4o-mini')).expect(200);
          const r = await chat(app, body('gpt-4o-mini')).expect(429);
          assert.equal(r.body.error.limit, 'model');
          await chat(app, body('gpt-4o')).expect(200);
        });

        it('a request refused by one limit does not use up the others', async () => {
          const { app } = build({ global_rpm: 3, per_user_rpm: 1, algorithm });
          await chat(app, body(), 'a').expect(200);
          assert.equal((await chat(app, body(), 'a').expect(429)).body.error.limit, 'user');
          assert.equal((await chat(app, body(), 'a').expect(429)).body.error.limit, 'user');
          await chat(app, body(), 'b').expect(200);
          const last = await chat(app, body(), 'c').expect(200);
          assert.equal(last.headers['ratelimit-policy'], '3;w=60, 1;w=60');
          assert.equal(last.headers['ratelimit-remaining'], '0');
          assert.equal((await chat(app, body(), 'd').expect(429)).body.error.limit, 'global');
        });

        it('an admitted request reports the limit with the least room left, the first of equals', async () => {
          const { app } = build({ global_rpm: 4, per_user_rpm: 3, per_model_rpm: 5, algorithm });
          const shown = (r: request.Response) =>
            ['policy', 'limit', 'remaining'].map((h) => r.headers[`ratelimit-${h}`]);
          const policy = '4;w=60, 3;w=60, 5;w=60';
          assert.deepEqual(shown(await chat(app, body(), 'a').expect(200)), [policy, '3', '2']);
          assert.deepEqual(shown(await chat(app, body(), 'b').expect(200)), [policy, '4', '2']);
          assert.deepEqual(shown(await chat(app, body('gpt-4o'), 'b').expect(200)), [policy, '4', '1']);
        });

        it('Gateway.chat() and the router share the limit; analytics sees a rate-limited outcome', async () => {
          const seen: { status: number; kind?: string; rateLimited?: unknown }[] = [];
          const probe: Stage = {
            name: 'probe',
            run(ctx) {
              ctx.outcomeHooks.push((o, c) =>
                seen.push({ status: o.status, kind: o.error?.kind, rateLimited: c.locals.rateLimited }),
              );
            },
          };
          const { gateway, app } = build(
            { global_rpm: 2, algorithm },
            { pipeline: [probe, 'rateLimit', 'route'] },
          );
          const before = fake.requests.length;
          await gateway.chat(body() as never);
          await chat(app).expect(200);
          await assert.rejects(gateway.chat(body() as never), (err: unknown) => {
            assert.ok(err instanceof GatewayError);
            assert.equal(err.kind, 'rate_limit');
            assert.equal(err.status, 429);
            assert.equal(err.limit, 'global');
            assert.ok(err.retryAfterMs! >= 1000);
            return true;
          });
          await chat(app).expect(429);
          const stream = gateway.chatStream(body() as never);
          await assert.rejects(async () => {
            for await (const _ of stream) void _;
          }, /global limit/);
          assert.equal(fake.requests.length - before, 2);
          assert.deepEqual(
            seen.map((s) => [s.status, s.kind ?? 'ok', s.rateLimited ?? false]),
            [
              [200, 'ok', false],
              [200, 'ok', false],
              [429, 'rate_limit', true],
              [429, 'rate_limit', true],
              [429, 'rate_limit', true],
            ],
          );
        });

        it('a reload changes the limits of a running gateway', async () => {
          const { gateway, app } = build({ global_rpm: 1, algorithm });
          await chat(app).expect(200);
          await chat(app).expect(429);
          gateway.reload({
            providers: { openai: { api_key: 'test-key', base_url: fake.baseUrl, models: ['gpt-4o-mini'] } },
            rate_limiting: { global_rpm: 3, algorithm },
            analytics: { enabled: false },
          });
          const r = await chat(app).expect(200);
          assert.equal(r.headers['ratelimit-limit'], '3');
        });
      });
    }

    it('streams carry the RateLimit headers too', async () => {
      const { app } = build({ global_rpm: 5 });
      const r = await request(app).post('/ai/chat/stream').send(body()).expect(200);
      assert.equal(r.headers['ratelimit-limit'], '5');
      assert.equal(r.headers['ratelimit-remaining'], '4');
    });

    it('without limits the stage adds no headers and refuses nothing', async () => {
      const { app } = build({});
      for (let i = 0; i < 5; i++) {
        const r = await chat(app).expect(200);
        assert.equal(r.headers['ratelimit-limit'], undefined);
      }
    });

    it('a code-level identity function decides who the user is', async () => {
      const tenantOf = (ctx: { request: { metadata?: Record<string, unknown> } }) =>
        typeof ctx.request.metadata?.tenant === 'string' ? ctx.request.metadata.tenant : undefined;
      const { app } = build(
        { per_user_rpm: 1 },
        { pipeline: (gateway) => [rateLimitStage(gateway, { identify: tenantOf }), 'route'] },
      );
      await chat(app, body('gpt-4o-mini', { metadata: { tenant: 't1' } }), 'x').expect(200);
      const r = await chat(app, body('gpt-4o-mini', { metadata: { tenant: 't1' } }), 'y').expect(429);
      assert.equal(r.body.error.limit, 'user', 'two X-User-Ids, one tenant: one bucket');
      await chat(app, body('gpt-4o-mini', { metadata: { tenant: 't2' } }), 'x').expect(200);
    });

    it('rejects store: redis without a redis_url at construction, saying what to set', () => {
      assert.throws(() => build({ global_rpm: 1, store: 'redis' }), /rate_limiting\.redis_url: required/);
    });
  });

  describe('token bucket refill (controllable clock)', () => {
    it('bursts to capacity, then admits one request per capacity/60 seconds', async () => {
      const clock = manualClock();
      const { app } = build({ global_rpm: 60, algorithm: 'token_bucket' }, { now: clock.now });
      for (let i = 0; i < 60; i++) await chat(app).expect(200);
      const refused = await chat(app).expect(429);
      assert.equal(refused.headers['retry-after'], '1');
      clock.advance(999);
      await chat(app).expect(429);
      clock.advance(1);
      const ok = await chat(app).expect(200);
      assert.equal(ok.headers['ratelimit-remaining'], '0');
      assert.equal(ok.headers['ratelimit-reset'], '60', 'an empty bucket is full again after a minute');
      await chat(app).expect(429);
      clock.advance(30_000);
      const half = await chat(app).expect(200);
      assert.equal(half.headers['ratelimit-remaining'], '29');
      clock.advance(120_000);
      for (let i = 0; i < 60; i++) await chat(app).expect(200);
      await chat(app).expect(429);
    });

    it('forgets idle buckets once they are full again, so memory stays flat', () => {
      const clock = manualClock();
      // Capacity 10: one token every 6 s, so a bucket that gave one token is full again 6 s later.
      const store = new TokenBucketMemoryStore({ capacity: 10, now: clock.now });
      for (let i = 0; i < 1000; i++) store.increment(`user-${i}`);
      assert.equal(store.size, 1000);
      clock.advance(58_000);
      store.increment('recent');
      assert.equal(store.size, 1001);
      clock.advance(3_000);
      store.increment('trigger');
      assert.equal(store.size, 2, 'the thousand idle buckets were dropped, the one still refilling kept');
      assert.equal(store.increment('recent').totalHits, 2, 'the kept bucket still remembers its take');
    });

    it('takes, refuses, refills by time, never mints tokens on a clock going back, and honours a raised limit', () => {
      const clock = manualClock();
      // Capacity 6: one token every 10 s.
      const store = new TokenBucketMemoryStore({ capacity: 6, now: clock.now });
      for (let i = 1; i <= 6; i++) assert.equal(store.increment('k').totalHits, i);
      const refused = store.increment('k');
      assert.equal(refused.totalHits, 7, 'a refusal reports capacity + 1');
      assert.equal(refused.resetTime!.getTime() - clock.now(), 10_000, 'the next token comes in 10 s');
      clock.advance(-30_000);
      assert.equal(store.increment('k').totalHits, 7, 'a clock that went back gives nothing');
      clock.advance(30_000 + 10_000);
      assert.equal(store.increment('k').totalHits, 6, 'one token refilled and taken');
      assert.equal(store.increment('k').totalHits, 7);
      assert.equal(store.increment('k', 8).totalHits, 7, 'a limit raised by 2 gives 2 tokens at once');
      assert.equal(store.increment('k', 8).totalHits, 8);
      assert.equal(store.increment('k', 8).totalHits, 9);
      store.decrement('k');
      assert.equal(store.increment('k', 8).totalHits, 8, 'a refund is a token back');
      assert.equal(store.increment('other').totalHits, 1, 'buckets are per key');
    });

    it('validates its options with messages that say how to fix them', () => {
      assert.throws(
        () => new TokenBucketMemoryStore({ capacity: 0 }),
        /capacity must be a number of at least 1/,
      );
      assert.throws(
        () => new TokenBucketMemoryStore({ refillPerSecond: -1 }),
        /refillPerSecond must be a positive/,
      );
      assert.throws(() => new TokenBucketRedisStore({} as never), /sendCommand is required/);
      assert.throws(() => new TokenBucketMemoryStore({}).increment('k'), /no capacity/);
    });
  });

  describe('express-rate-limit middlewares', () => {
    it("userRateLimit({ gateway }) shares the gateway stage's buckets and answers with the unified 429", async () => {
      const { gateway, app } = build({ per_user_rpm: 2 });
      app.post('/upload', express.json(), userRateLimit({ gateway }), (_req, res) => {
        res.json({ ok: true });
      });
      const up = await request(app).post('/upload').set('X-User-Id', 'u1').send({}).expect(200);
      assert.equal(up.headers['ratelimit-limit'], '2');
      assert.equal(up.headers['ratelimit-remaining'], '1');
      await chat(app, body(), 'u1').expect(200);
      assert.equal((await chat(app, body(), 'u1').expect(429)).body.error.limit, 'user');
      const refused = await request(app).post('/upload').set('X-User-Id', 'u1').send({}).expect(429);
      assert.equal(refused.body.error.type, 'rate_limit');
      assert.equal(refused.body.error.limit, 'user');
      assert.ok(Number(refused.headers['retry-after']) >= 1);
      assert.equal(refused.headers['ratelimit-remaining'], '0');
      await request(app).post('/upload').set('X-User-Id', 'u2').send({}).expect(200);
    });

    for (const algorithm of ALGORITHMS) {
      it(`globalRateLimit({ limit }) works on its own (${algorithm})`, async () => {
        const app = express();
        app.get('/x', globalRateLimit({ limit: 2, algorithm }), (_req, res) => void res.send('ok'));
        await request(app).get('/x').expect(200);
        await request(app).get('/x').expect(200);
        const r = await request(app).get('/x').expect(429);
        assert.match(r.body.error.message, /global limit of 2/);
      });
    }

    it('refuses options that cannot work, naming the fix', () => {
      assert.throws(() => userRateLimit(), /pass \{ gateway \}.*or \{ limit \}/);
      assert.throws(() => globalRateLimit({ limit: 0 }), /limit must be a positive whole number/);
    });
  });
});
