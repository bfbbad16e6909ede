/**
 * `gateway.analytics.recent()` and `GET /stats/recent` on both storages (a temporary SQLite file, and a
 * throwaway schema in the real PostgreSQL): one row per request (never per attempt), newest first, with
 * exactly the documented fields and no content or secret; the limit and the user/provider/model filters;
 * validation as a 400 naming the parameter; the admin guard; and the answer when analytics is off.
 */
import assert from 'node:assert/strict';
import type { Knex } from 'knex';
import request from 'supertest';
import type { RecentRequest, RecentRequests } from '../lib/analytics/index.js';
import { REQUESTS_TABLE } from '../lib/analytics/schema.js';
import { GatewayError, InvalidRequestError } from '../lib/errors.js';
import type { Gateway } from '../lib/gateway.js';
import { silentLogger } from '../lib/logger.js';
import { startFakeOpenAI } from '../lib/testing/fake-openai.js';
import type { FakeProvider } from '../lib/testing/fake-server.js';
import { RECENT_FIELDS, craft, postgres, sqlite, type Storage } from './helpers/analytics.js';
import { hostApp, recordingLogger } from './helpers/setup.js';

const KEY = 'sk-recent-secret-key-0123456789abcdef';
const ADMIN = 'admin-recent-key-0123456789abcdef';
const MARKER = 'okapinarwhal';
const MODEL = 'gpt-4o-mini';

function rowsOf(r: RecentRequests | { enabled: false }): RecentRequest[] {
  assert.equal(r.enabled, true);
  return (r as RecentRequests).requests;
}

async function kindsIn(db: Knex): Promise<string[]> {
  return (await db(REQUESTS_TABLE).select('kind')).map((r: any) => r.kind);
}

for (const backend of [sqlite, postgres]) {
  describe(`analytics.recent() on ${backend.name}`, function () {
    let fake: FakeProvider;
    let storage: Storage;
    let gateway: Gateway | undefined;

    before(async function () {
      await backend.check(this);
      fake = await startFakeOpenAI({ apiKeys: [KEY] });
    });
    after(async () => {
      await fake?.close();
    });
    beforeEach(async () => {
      storage = await backend.fresh();
    });
    afterEach(async () => {
      fake.clearFaults();
      await gateway?.close();
      gateway = undefined;
      await storage.cleanup();
    });

    function host(rateLimiting?: { per_user_rpm: number }) {
      const logger = recordingLogger();
      const h = hostApp({
        providers: { openai: { api_key: KEY, base_url: fake.baseUrl, models: [MODEL], max_retries: 0 } },
        // A long flush interval: rows stay buffered unless recent() flushes them itself.
        analytics: { flush_interval_ms: 600_000, ...storage.config },
        auth: { admin_keys: [ADMIN] },
        ...(rateLimiting ? { rate_limiting: rateLimiting } : {}),
        logger,
      });
      gateway = h.gateway;
      return { ...h, logger };
    }

    function record(o: Parameters<typeof craft>[1]): string {
      const { ctx, outcome } = craft(gateway!, o);
      gateway!.analytics.recordOutcome(outcome, ctx);
      return ctx.requestId;
    }

    it('lists request rows only, newest first, with exactly the documented fields and values', async () => {
      host();
      const now = Date.now();
      const failure = new GatewayError('server_error', 'upstream failed', { status: 502 });
      const ids = [
        record({ user: 'ann', at: now - 4000, prompt: 3, completion: 4, cost: 0.25, latency: 40 }),
        record({ user: 'ben', at: now - 3000, provider: 'openai', error: failure, latency: 7 }),
        record({ user: 'ann', at: now - 2000, cached: true, costSaved: 0.125, prompt: 2, completion: 2 }),
        record({ at: now - 1000, provider: 'p2', model: 'm2', prompt: 1, completion: 9, cost: 0.5 }),
      ];
      // Nothing is written yet: recent() must flush the buffer to see these.
      assert.equal(gateway!.analytics.stats().buffered, 5);

      const rows = rowsOf(await gateway!.analytics.recent());
      // 4 requests and the failed attempt stored (an answering attempt is stored on its request row); only
      // the requests are listed.
      assert.deepEqual((await kindsIn(storage.db)).sort(), [
        'attempt',
        'request',
        'request',
        'request',
        'request',
      ]);
      assert.deepEqual(
        rows.map((r) => r.request_id),
        [...ids].reverse(),
      );
      for (const r of rows) assert.deepEqual(Object.keys(r).sort(), RECENT_FIELDS);
      const [newest, hit, failed, oldest] = rows;
      assert.deepEqual(newest, {
        time: new Date(now - 1000).toISOString(),
        request_id: ids[3],
        user: null,
        provider: 'p2',
        model: 'm2',
        status: 200,
        error_kind: null,
        prompt_tokens: 1,
        completion_tokens: 9,
        cost: 0.5,
        cost_saved: 0,
        latency_ms: 1,
        ttft_ms: null,
        cached: false,
        stream: false,
        rate_limited: false,
      });
      assert.deepEqual(
        [hit!.user, hit!.cached, hit!.cost, hit!.cost_saved, hit!.prompt_tokens, hit!.completion_tokens],
        ['ann', true, 0, 0.125, 2, 2],
      );
      assert.deepEqual(
        [failed!.user, failed!.status, failed!.error_kind, failed!.cost, failed!.latency_ms > 0],
        ['ben', 502, 'server_error', 0, true],
      );
      assert.deepEqual(
        [oldest!.time, oldest!.cost, oldest!.latency_ms, oldest!.cached],
        [new Date(now - 4000).toISOString(), 0.25, 40, false],
      );
    });

    it('reports real traffic (stream, rate limit) without message content or a secret', async () => {
      const { app, logger } = host({ per_user_rpm: 3 });
      const send = (path: string, text: string) =>
        request(app)
          .post(`/ai${path}`)
          .set('X-User-Id', 'eve')
          .send({ model: MODEL, messages: [{ role: 'user', content: `${text} ${MARKER}` }] });
      assert.equal((await send('/chat', 'plain question')).status, 200);
      const streamed = await send('/chat/stream', 'streamed question');
      assert.match(streamed.text, /event: done/);
      assert.equal((await send('/chat', 'plain question')).headers['x-gateway-cache'], 'HIT');
      assert.equal((await send('/chat', 'one too many')).status, 429);

      const res = await request(app)
        .get('/ai/stats/recent')
        .set('Authorization', `Bearer ${ADMIN}`)
        .expect(200);
      assert.equal(res.headers['cache-control'], 'no-store');
      assert.equal(res.body.limit, 50);
      const rows: RecentRequest[] = res.body.requests;
      assert.deepEqual(
        rows.map((r) => [r.user, r.provider, r.model, r.status, r.stream, r.cached]),
        [
          ['eve', null, MODEL, 429, false, false],
          ['eve', 'openai', MODEL, 200, false, true],
          ['eve', 'openai', MODEL, 200, true, false],
          ['eve', 'openai', MODEL, 200, false, false],
        ],
      );
      assert.deepEqual(
        rows.map((r) => [r.rate_limited, r.error_kind]),
        [
          [true, 'rate_limit'],
          [false, null],
          [false, null],
          [false, null],
        ],
      );
      assert.ok(rows[2]!.ttft_ms !== null && rows[2]!.ttft_ms > 0, 'a stream reports its first token');
      assert.ok(rows[3]!.prompt_tokens > 0 && rows[3]!.completion_tokens > 0 && rows[3]!.cost > 0);
      const everything = JSON.stringify(res.body) + logger.text();
      assert.ok(!everything.includes(MARKER), 'no message content');
      assert.ok(!everything.includes(KEY), 'no provider key');
      assert.ok(!everything.includes(ADMIN), 'no admin key');
    });

    it('honours limit (default 50, newest kept) and the user, provider and model filters', async () => {
      const { app } = host();
      const now = Date.now();
      const ids: string[] = [];
      for (let i = 0; i < 60; i++) {
        ids.push(
          record({
            at: now - 60_000 + i * 100,
            user: i % 2 ? 'odd' : 'even',
            provider: i % 3 ? 'openai' : 'p3',
            model: i % 5 ? MODEL : 'm5',
          }),
        );
      }
      const newestFirst = [...ids].reverse();
      const all = rowsOf(await gateway!.analytics.recent());
      assert.deepEqual(
        all.map((r) => r.request_id),
        newestFirst.slice(0, 50),
      );
      assert.equal(rowsOf(await gateway!.analytics.recent({ limit: 500 })).length, 60);
      assert.deepEqual(
        rowsOf(await gateway!.analytics.recent({ limit: 3 })).map((r) => r.request_id),
        newestFirst.slice(0, 3),
      );
      // Query strings arrive as strings.
      assert.equal(rowsOf(await gateway!.analytics.recent({ limit: '7' })).length, 7);

      const odd = rowsOf(await gateway!.analytics.recent({ user: 'odd', limit: 500 }));
      assert.equal(odd.length, 30);
      assert.ok(odd.every((r) => r.user === 'odd'));
      const p3 = rowsOf(await gateway!.analytics.recent({ provider: 'p3', limit: 500 }));
      assert.equal(p3.length, 20);
      assert.ok(p3.every((r) => r.provider === 'p3'));
      const m5 = rowsOf(await gateway!.analytics.recent({ model: 'm5', limit: 500 }));
      assert.equal(m5.length, 12);
      // i divisible by 2, 3 and 5 at once: 0, 30.
      const both = rowsOf(await gateway!.analytics.recent({ user: 'even', provider: 'p3', model: 'm5' }));
      assert.deepEqual(
        both.map((r) => r.request_id),
        [ids[30], ids[0]],
      );
      assert.deepEqual(rowsOf(await gateway!.analytics.recent({ user: 'nobody' })), []);

      const http = await request(app)
        .get('/ai/stats/recent?limit=2&user=odd&provider=p3')
        .set('x-api-key', ADMIN)
        .expect(200);
      assert.deepEqual(http.body.filters, { user: 'odd', provider: 'p3' });
      // Odd multiples of 3, newest first: 57, 51.
      assert.deepEqual(
        http.body.requests.map((r: RecentRequest) => r.request_id),
        [ids[57], ids[51]],
      );
    });

    it('answers a bad limit or filter with a 400 naming it, and refuses callers without an admin key', async () => {
      const { app } = host();
      record({ user: 'x' });
      for (const limit of [0, 501, -1, 2.5, Number.NaN]) {
        await assert.rejects(
          gateway!.analytics.recent({ limit }),
          (err: unknown) => err instanceof InvalidRequestError && err.param === 'limit',
          `limit ${limit}`,
        );
      }
      const bad: [string, string][] = [
        ['/ai/stats/recent?limit=0', 'limit'],
        ['/ai/stats/recent?limit=501', 'limit'],
        ['/ai/stats/recent?limit=ten', 'limit'],
        ['/ai/stats/recent?limit=1.5', 'limit'],
        ['/ai/stats/recent?limit=-3', 'limit'],
        ['/ai/stats/recent?limit=1&limit=2', 'limit'],
        ['/ai/stats/recent?user=a&user=b', 'user'],
        [`/ai/stats/recent?model=${'m'.repeat(201)}`, 'model'],
      ];
      for (const [url, param] of bad) {
        const res = await request(app).get(url).set('x-api-key', ADMIN).expect(400);
        assert.equal(res.body.error.type, 'invalid_request', url);
        assert.equal(res.body.error.param, param, url);
        assert.match(res.body.error.message, new RegExp(`^${param}: `), url);
      }
      const edge = await request(app).get('/ai/stats/recent?limit=500').set('x-api-key', ADMIN).expect(200);
      assert.equal(edge.body.limit, 500);
      assert.equal(edge.body.requests.length, 1);

      // The admin guard on /stats covers /stats/recent: rows carry user ids.
      await request(app).get('/ai/stats/recent').expect(401);
      await request(app).get('/ai/stats/recent').set('x-api-key', 'not-an-admin-key-0123456789').expect(401);
    });
  });
}

describe('analytics.recent() with analytics disabled', () => {
  it('answers the disabled object (404 over HTTP) and still validates the limit', async () => {
    const { app, gateway } = hostApp({
      providers: { openai: { api_key: KEY, base_url: 'http://127.0.0.1:9', models: [MODEL] } },
      analytics: { enabled: false },
      logger: silentLogger,
    });
    try {
      const r = await gateway.analytics.recent();
      assert.equal(r.enabled, false);
      assert.match((r as { message: string }).message, /analytics\.enabled: true/);
      await assert.rejects(gateway.analytics.recent({ limit: 0 }), InvalidRequestError);
      const res = await request(app).get('/ai/stats/recent').expect(404);
      assert.equal(res.body.error.type, 'not_found');
      await request(app).get('/ai/stats/recent?limit=9999').expect(400);
    } finally {
      await gateway.close();
    }
  });
});
