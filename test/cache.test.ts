/**
 * Response caching end to end (HTTP and programmatic face) against the OpenAI fake. The same suite runs on
 * the memory store and on a real Redis (keys under a unique prefix per run, removed afterwards); time is a
 * manual clock for memory and a shortened Redis TTL (PEXPIRE) for Redis, so no test sleeps for a TTL.
 */
import assert from 'node:assert/strict';
import request from 'supertest';
import type { GatewayOptions } from '../lib/gateway.js';
import type { Stage } from '../lib/stage.js';
import { MemoryCacheStore } from '../lib/stores/memory-cache-store.js';
import { RedisCacheStore } from '../lib/stores/redis-cache-store.js';
import type { CacheFileConfig, CacheStore } from '../types/index.js';
import { RUN_PREFIX, burst, cacheSuite, keyOf, until, user } from './helpers/cache.js';
import { REDIS_URL, probeRedis, requireService } from './helpers/services.js';
import { parseSse } from './helpers/setup.js';

interface Fixture {
  store: CacheStore;
  /** Lets `ms` pass for the entry at `key`, as far as its expiry is concerned. */
  elapse(ms: number, key: string): Promise<void>;
  cleanup(): Promise<void>;
}

let redisSeq = 0;
const BACKENDS: { name: string; redis: boolean; create(): Promise<Fixture> }[] = [
  {
    name: 'memory',
    redis: false,
    async create() {
      let t = Date.now();
      const store = new MemoryCacheStore({ now: () => t });
      return {
        store,
        async elapse(ms) {
          t += ms;
        },
        cleanup: () => store.close(),
      };
    },
  },
  {
    name: 'redis',
    redis: true,
    async create() {
      const store = new RedisCacheStore({ url: REDIS_URL, keyPrefix: `${RUN_PREFIX}${++redisSeq}:` });
      await store.ready();
      return {
        store,
        // Redis owns the clock: shortening the key's remaining TTL is the same as time passing.
        async elapse(ms, key) {
          const full = store.keyPrefix + key;
          // Entries are written just after the answer went out; wait for this one to exist.
          await until(async () => (await store.client.exists(full)) === 1, 'the entry to be written');
          const left = await store.client.pttl(full);
          if (left < 0) return;
          if (left > ms) {
            await store.client.pexpire(full, left - ms);
            return;
          }
          await store.client.pexpire(full, 1);
          await until(async () => (await store.client.exists(full)) === 0, 'the key to expire');
        },
        async cleanup() {
          await store.clear();
          await store.close();
        },
      };
    },
  },
];

describe('response cache', () => {
  const suite = cacheSuite();
  const build = suite.build;

  for (const backend of BACKENDS) {
    describe(`on the ${backend.name} store`, () => {
      let fx: Fixture;

      before(async function () {
        if (backend.redis) await requireService(this, 'Redis', () => probeRedis(REDIS_URL));
      });
      beforeEach(async () => {
        fx = await backend.create();
      });
      afterEach(() => fx.cleanup());

      const app = (cache: CacheFileConfig = {}, extra: Partial<GatewayOptions> = {}) =>
        build({ cache, cacheStore: fx.store, ...extra });

      it('misses, then hits with cached:true, cost 0 and X-Gateway-Cache: HIT; Gateway.chat() shares it', async () => {
        const { app: a, gateway } = app();
        const body = { model: 'gpt-4o-mini', messages: user('hello cache') };
        const first = await request(a).post('/ai/chat').send(body).expect(200);
        assert.equal(first.headers['x-gateway-cache'], 'MISS');
        assert.equal(first.body.cached, false);
        assert.ok(first.body.cost > 0);
        const second = await request(a).post('/ai/chat').send(body).expect(200);
        assert.equal(second.headers['x-gateway-cache'], 'HIT');
        assert.equal(second.headers['x-gateway-provider'], 'openai');
        assert.equal(second.body.cached, true);
        assert.equal(second.body.cost, 0);
        assert.equal(second.body.content, first.body.content);
        assert.deepEqual(second.body.usage, first.body.usage);
        assert.notEqual(second.body.id, first.body.id);
        const third = await gateway.chat(body as never);
        assert.equal(third.cached, true);
        assert.equal(third.content, 'echo: hello cache');
        assert.equal(suite.fake.requests.length, 1);
      });

      it('expires entries after ttl_seconds, and a request may set its own cache.ttl', async () => {
        const { app: a } = app({ ttl_seconds: 60 });
        const body = { model: 'gpt-4o-mini', messages: user('ttl please') };
        const key = keyOf(body);
        await request(a).post('/ai/chat').send(body).expect('X-Gateway-Cache', 'MISS');
        await fx.elapse(59_000, key);
        await request(a).post('/ai/chat').send(body).expect('X-Gateway-Cache', 'HIT');
        await fx.elapse(2_000, key);
        await request(a).post('/ai/chat').send(body).expect('X-Gateway-Cache', 'MISS');
        assert.equal(suite.fake.requests.length, 2);

        const short = { model: 'gpt-4o-mini', messages: user('short ttl'), cache: { ttl: 5 } };
        const shortKey = keyOf(short);
        await request(a).post('/ai/chat').send(short).expect('X-Gateway-Cache', 'MISS');
        await fx.elapse(4_000, shortKey);
        await request(a).post('/ai/chat').send(short).expect('X-Gateway-Cache', 'HIT');
        await fx.elapse(2_000, shortKey);
        await request(a).post('/ai/chat').send(short).expect('X-Gateway-Cache', 'MISS');
        assert.equal(suite.fake.requests.length, 4);
      });

      it('content strategy: metadata, user, request id and model never change the key', async () => {
        const { app: a } = app({ hash_strategy: 'content' });
        await request(a)
          .post('/ai/chat')
          .set('X-Request-Id', 'one')
          .send({ model: 'gpt-4o-mini', messages: user('same words'), metadata: { a: 1 }, user: 'u1' })
          .expect('X-Gateway-Cache', 'MISS');
        const r = await request(a)
          .post('/ai/chat')
          .set('X-Request-Id', 'two')
          .send({
            model: 'gpt-4o',
            messages: user('same words'),
            metadata: { b: 2 },
            user: 'u2',
            max_tokens: 9,
          })
          .expect('X-Gateway-Cache', 'HIT');
        assert.equal(r.body.model, 'gpt-4o-mini', 'the stored answer names the model that produced it');
        await request(a)
          .post('/ai/chat')
          .send({ model: 'gpt-4o', messages: user('other words') })
          .expect('X-Gateway-Cache', 'MISS');
        assert.equal(suite.fake.requests.length, 2);
      });

      it('content+model strategy: another model misses, metadata is still ignored', async () => {
        const { app: a } = app({ hash_strategy: 'content+model' });
        const messages = user('model matters');
        await request(a)
          .post('/ai/chat')
          .send({ model: 'gpt-4o-mini', messages })
          .expect('X-Gateway-Cache', 'MISS');
        await request(a)
          .post('/ai/chat')
          .send({ model: 'gpt-4o', messages })
          .expect('X-Gateway-Cache', 'MISS');
        await request(a)
          .post('/ai/chat')
          .send({ model: 'gpt-4o', messages, metadata: { trace: 'x' }, max_tokens: 20 })
          .expect('X-Gateway-Cache', 'HIT');
        assert.deepEqual(
          suite.fake.requests.map((q) => q.body.model),
          ['gpt-4o-mini', 'gpt-4o'],
        );
      });

      it('full_request strategy: answer-changing and unknown fields count; metadata, user, key order do not', async () => {
        const { app: a } = app({ hash_strategy: 'full_request' });
        const base = { model: 'gpt-4o-mini', messages: user('full'), max_tokens: 30, stop: ['x'], seed: 7 };
        await request(a).post('/ai/chat').send(base).expect('X-Gateway-Cache', 'MISS');
        // Same fields in another order, with bookkeeping that must not matter.
        const reordered = {
          seed: 7,
          stop: ['x'],
          max_tokens: 30,
          messages: [{ content: 'full', role: 'user' }],
          model: 'gpt-4o-mini',
        };
        await request(a)
          .post('/ai/chat')
          .set('X-User-Id', 'someone')
          .send({ ...reordered, metadata: { m: 1 }, user: 'u' })
          .expect('X-Gateway-Cache', 'HIT');
        for (const change of [{ max_tokens: 31 }, { stop: ['y'] }, { top_p: 0.5 }, { seed: 8 }]) {
          const r = await request(a)
            .post('/ai/chat')
            .send({ ...base, ...change });
          assert.equal(r.headers['x-gateway-cache'], 'MISS', `changing ${JSON.stringify(change)} must miss`);
        }
        assert.equal(suite.fake.requests.length, 5);
      });

      it('bypass: cache.bypass and Cache-Control no-store neither read nor write; no-cache refreshes', async () => {
        const { app: a } = app();
        const body = { model: 'gpt-4o-mini', messages: user('bypass me') };
        await request(a)
          .post('/ai/chat')
          .send({ ...body, cache: { bypass: true } })
          .expect('X-Gateway-Cache', 'BYPASS');
        await request(a)
          .post('/ai/chat')
          .set('Cache-Control', 'no-store')
          .send(body)
          .expect('X-Gateway-Cache', 'BYPASS');
        assert.equal(await fx.store.get(keyOf(body)), undefined, 'nothing was stored');
        await request(a).post('/ai/chat').send(body).expect('X-Gateway-Cache', 'MISS');
        await request(a).post('/ai/chat').send(body).expect('X-Gateway-Cache', 'HIT');
        const fresh = await request(a).post('/ai/chat').set('Cache-Control', 'no-cache').send(body);
        assert.equal(fresh.headers['x-gateway-cache'], 'BYPASS');
        assert.equal(fresh.body.cached, false);
        await request(a)
          .post('/ai/chat')
          .send({ ...body, cache: { bypass: true } })
          .expect('X-Gateway-Cache', 'BYPASS');
        assert.equal(suite.fake.requests.length, 5);
        await request(a).post('/ai/chat').send(body).expect('X-Gateway-Cache', 'HIT');
        assert.equal(suite.fake.requests.length, 5);
      });

      it('per_user scope keeps users apart (X-User-Id); global scope shares', async () => {
        const { app: a } = app({ scope: 'per_user' });
        const body = { model: 'gpt-4o-mini', messages: user('whose answer') };
        await request(a)
          .post('/ai/chat')
          .set('X-User-Id', 'alice')
          .send(body)
          .expect('X-Gateway-Cache', 'MISS');
        await request(a)
          .post('/ai/chat')
          .set('X-User-Id', 'alice')
          .send(body)
          .expect('X-Gateway-Cache', 'HIT');
        await request(a)
          .post('/ai/chat')
          .set('X-User-Id', 'bob')
          .send(body)
          .expect('X-Gateway-Cache', 'MISS');
        await request(a)
          .post('/ai/chat')
          .send({ ...body, user: 'bob' })
          .expect('X-Gateway-Cache', 'HIT');
        assert.equal(suite.fake.requests.length, 2);

        const { app: g } = app({ scope: 'global' });
        const shared = { model: 'gpt-4o-mini', messages: user('everyone') };
        await request(g)
          .post('/ai/chat')
          .set('X-User-Id', 'alice')
          .send(shared)
          .expect('X-Gateway-Cache', 'MISS');
        await request(g)
          .post('/ai/chat')
          .set('X-User-Id', 'bob')
          .send(shared)
          .expect('X-Gateway-Cache', 'HIT');
      });

      it('caches only deterministic requests unless cache_nondeterministic is set', async () => {
        const { app: a } = app();
        const hot = { model: 'gpt-4o-mini', messages: user('creative'), temperature: 0.8 };
        await request(a).post('/ai/chat').send(hot).expect('X-Gateway-Cache', 'BYPASS');
        await request(a).post('/ai/chat').send(hot).expect('X-Gateway-Cache', 'BYPASS');
        const cold = { model: 'gpt-4o-mini', messages: user('exact'), temperature: 0 };
        await request(a).post('/ai/chat').send(cold).expect('X-Gateway-Cache', 'MISS');
        await request(a).post('/ai/chat').send(cold).expect('X-Gateway-Cache', 'HIT');
        assert.equal(suite.fake.requests.length, 3);

        const { app: all } = app({ cache_nondeterministic: true });
        await request(all).post('/ai/chat').send(hot).expect('X-Gateway-Cache', 'MISS');
        await request(all).post('/ai/chat').send(hot).expect('X-Gateway-Cache', 'HIT');
        assert.equal(suite.fake.requests.length, 4);
      });

      it('stores a completed stream and replays it: same deltas, usage and finish, cached:true', async () => {
        const { app: a, gateway } = app();
        const body = { model: 'gpt-4o-mini', messages: user('stream me a few words please') };
        const live = await request(a).post('/ai/chat/stream').send(body).expect(200);
        assert.equal(live.headers['x-gateway-cache'], 'MISS');
        const liveEvents = parseSse(live.text);
        const liveDone = liveEvents.find((e) => e.event === 'done')!.data;
        const liveText = liveEvents
          .filter((e) => e.event === 'message')
          .map((e) => e.data.delta)
          .join('');
        assert.equal(liveText, 'echo: stream me a few words please');
        assert.equal(liveDone.cached, false);

        const replay = await request(a).post('/ai/chat/stream').send(body).expect(200);
        assert.equal(replay.headers['x-gateway-cache'], 'HIT');
        const events = parseSse(replay.text);
        const chunks = events.filter((e) => e.event === 'message');
        assert.ok(chunks.length > 1, 'replayed in several chunks');
        assert.equal(chunks.map((e) => e.data.delta).join(''), liveText);
        const done = events.at(-1)!;
        assert.equal(done.event, 'done');
        assert.equal(done.data.cached, true);
        assert.equal(done.data.cost, 0);
        assert.deepEqual(done.data.usage, liveDone.usage);
        assert.equal(done.data.finish_reason, liveDone.finish_reason);
        assert.equal(done.data.provider, 'openai');

        // The same entry serves the JSON face, and a JSON answer serves a stream.
        const json = await request(a).post('/ai/chat').send(body).expect('X-Gateway-Cache', 'HIT');
        assert.equal(json.body.content, liveText);
        await request(a)
          .post('/ai/chat')
          .send({ model: 'gpt-4o-mini', messages: user('json first') });
        const chunksOut: string[] = [];
        const stream = gateway.chatStream({ model: 'gpt-4o-mini', messages: user('json first') } as never);
        for await (const c of stream) chunksOut.push(c.delta);
        assert.equal(chunksOut.join(''), 'echo: json first');
        assert.equal((await stream.done).cached, true);
        assert.equal(suite.fake.requests.length, 2);
      });

      it('never stores errors or truncated streams', async () => {
        const { app: a } = app();
        const body = { model: 'gpt-4o-mini', messages: user('fragile') };
        suite.fake.fault({ status: 400, times: 1 });
        await request(a).post('/ai/chat').send(body).expect(400);
        suite.fake.fault({ cutStreamAfter: 1, times: 1 });
        const cut = await request(a).post('/ai/chat/stream').send(body).expect(200);
        assert.ok(
          parseSse(cut.text).some((e) => e.event === 'error'),
          'the cut stream ended with an error',
        );
        assert.equal(await fx.store.get(keyOf(body)), undefined);
        await request(a).post('/ai/chat').send(body).expect('X-Gateway-Cache', 'MISS');
        assert.equal(suite.fake.requests.length, 3);
      });

      it('20 concurrent identical requests make exactly one upstream call', async () => {
        const { app: a } = app();
        // The first upstream answer is slow, so every other request arrives while it is in flight.
        suite.fake.fault({ delayMs: 150, times: 1 });
        const answers = await burst(a, 20, 'burst');
        assert.equal(suite.fake.requests.length, 1);
        assert.ok(answers.every((r) => r.status === 200 && r.body.content === 'echo: burst'));
        assert.equal(answers.filter((r) => r.cache === 'MISS').length, 1);
        assert.equal(answers.filter((r) => r.cache === 'HIT').length, 19);
      });

      it('stores the provider answer before response hooks, and runs them again on a hit', async () => {
        // A response hook that personalises the answer (as PII restore does) must not leak into the cache.
        const personalise: Stage = {
          name: 'personalise',
          run(ctx) {
            ctx.responseHooks.push((c) => {
              if (c.response) c.response = { ...c.response, content: `${c.response.content} for ${c.user}` };
            });
          },
        };
        const { app: a } = app({}, { pipeline: [personalise, 'cache', 'route'] });
        const body = { model: 'gpt-4o-mini', messages: user('private') };
        const first = await request(a).post('/ai/chat').set('X-User-Id', 'ann').send(body).expect(200);
        assert.equal(first.body.content, 'echo: private for ann');
        const second = await request(a)
          .post('/ai/chat')
          .set('X-User-Id', 'ben')
          .send(body)
          .expect('X-Gateway-Cache', 'HIT');
        assert.equal(second.body.content, 'echo: private for ben');
        assert.equal(JSON.parse((await fx.store.get(keyOf(body)))!).content, 'echo: private');
      });
    });
  }
});
