/**
 * Usage analytics on both storages (a temporary SQLite file, and a throwaway schema in the real
 * PostgreSQL): figures from a known workload through the router, periods and filters, percentiles,
 * retention, a database outage that loses nothing, and the flush on close.
 */
import assert from 'node:assert/strict';
import type { Knex } from 'knex';
import request from 'supertest';
import type { AnalyticsSummary } from '../lib/analytics/index.js';
import { COLUMNS, rowValues, type AnalyticsRow } from '../lib/analytics/rows.js';
import { REQUESTS_TABLE, migrateUpTo } from '../lib/analytics/schema.js';
import {
  AnalyticsStore,
  JSON_EACH,
  PreparedInsert,
  batchJson,
  sqliteInsertSql,
  type SqliteConnection,
} from '../lib/analytics/store.js';
import { GatewayError } from '../lib/errors.js';
import type { Gateway } from '../lib/gateway.js';
import { loadPricingFile } from '../lib/pricing.js';
import { startFakeOpenAI } from '../lib/testing/fake-openai.js';
import type { FakeProvider } from '../lib/testing/fake-server.js';
import type { AnalyticsFileConfig } from '../types/index.js';
import { hostApp, recordingLogger } from './helpers/setup.js';
import {
  closeEnough,
  craft,
  expectedOf,
  postgres,
  sqlite,
  type Known,
  type Storage,
} from './helpers/analytics.js';

const KEY = 'sk-analytics-secret-key-0123456789';
const MARKER = 'zebraquokka';
const MODEL = 'gpt-4o-mini';
const PRICE = loadPricingFile()[`openai/${MODEL}`]!;
const words = (t: string) => t.trim().split(/\s+/).length;
const costOf = (p: number, c: number) => (p * PRICE.input_per_mtok + c * PRICE.output_per_mtok) / 1e6;

async function rowsIn(db: Knex): Promise<any[]> {
  if (!(await db.schema.hasTable(REQUESTS_TABLE))) return [];
  return db(REQUESTS_TABLE).select('*').orderBy('id');
}

function summaryOf(s: AnalyticsSummary | { enabled: false }): AnalyticsSummary {
  assert.equal(s.enabled, true);
  return s as AnalyticsSummary;
}

for (const backend of [sqlite, postgres]) {
  describe(`analytics on ${backend.name}`, function () {
    let primary: FakeProvider;
    let backup: FakeProvider;
    let storage: Storage;
    let gateway: Gateway | undefined;

    before(async function () {
      await backend.check(this);
      primary = await startFakeOpenAI({ apiKeys: [KEY] });
      backup = await startFakeOpenAI({ apiKeys: [KEY] });
    });
    after(async () => {
      await primary?.close();
      await backup?.close();
    });
    beforeEach(async () => {
      storage = await backend.fresh();
    });
    afterEach(async () => {
      primary.clearFaults();
      backup.clearFaults();
      await gateway?.close();
      gateway = undefined;
      await storage.cleanup();
    });

    function host(analytics: AnalyticsFileConfig = {}, rateLimiting?: { per_user_rpm: number }) {
      const logger = recordingLogger();
      const h = hostApp({
        providers: {
          openai: { api_key: KEY, base_url: primary.baseUrl, models: [MODEL], max_retries: 0 },
          backup: { type: 'openai', api_key: KEY, base_url: backup.baseUrl, models: [MODEL], max_retries: 0 },
        },
        analytics: { flush_interval_ms: 600_000, ...storage.config, ...analytics },
        ...(rateLimiting ? { rate_limiting: rateLimiting } : {}),
        logger,
      });
      gateway = h.gateway;
      return { ...h, logger };
    }

    const body = (text: string) => ({
      model: MODEL,
      messages: [{ role: 'user', content: `${text} ${MARKER}` }],
    });

    it('summarises a mixed workload exactly as the test computes it, without content or secrets', async () => {
      const { app, logger } = host({}, { per_user_rpm: 3 });
      const known: Known[] = [];
      const ok = (user: string, text: string, extra: Partial<Known> = {}): Known => {
        const p = words(text) + 1;
        const c = p + 1; // "echo: " + the prompt's words
        return {
          user,
          provider: 'openai',
          error: false,
          tokens: p + c,
          prompt: p,
          completion: c,
          cost: costOf(p, c),
          ...extra,
        };
      };
      const chat = (user: string, text: string) =>
        request(app).post('/ai/chat').set('X-User-Id', user).send(body(text));

      for (const [user, text] of [
        ['alice', 'hello there'],
        ['alice', 'one two three four'],
        ['bob', 'the quick brown fox'],
      ]) {
        assert.equal((await chat(user!, text!)).status, 200);
        known.push(ok(user!, text!, { attempts: [['openai', false]] }));
      }
      primary.fault({ status: 500, times: 1 });
      const fell = await chat('bob', 'fall back please');
      assert.equal(fell.status, 200);
      assert.equal(fell.body.provider, 'backup');
      known.push(
        ok('bob', 'fall back please', {
          provider: 'backup',
          attempts: [
            ['openai', true],
            ['backup', false],
          ],
        }),
      );

      primary.fault({ status: 400, times: 1 });
      const bad = await chat('carol', 'rejected upstream');
      assert.equal(bad.status, 400);
      known.push({ user: 'carol', provider: 'openai', error: true, attempts: [['openai', true]] });

      primary.fault({ status: 500, times: 1 });
      backup.fault({ status: 500, times: 1 });
      const failed = await chat('carol', 'everything fails');
      assert.equal(failed.status, 502);
      known.push({
        user: 'carol',
        provider: 'backup',
        error: true,
        attempts: [
          ['openai', true],
          ['backup', true],
        ],
      });

      for (const [user, text] of [
        ['alice', 'stream me now'],
        ['bob', 'another stream'],
      ]) {
        const r = await request(app).post('/ai/chat/stream').set('X-User-Id', user!).send(body(text!));
        assert.match(r.text, /event: done/);
        known.push(ok(user!, text!, { stream: true, attempts: [['openai', false]] }));
      }

      // Answered from the cache (same content and model as alice's first), then refused by the limiter.
      const hit = await chat('dave', 'hello there');
      assert.equal(hit.headers['x-gateway-cache'], 'HIT');
      const first = ok('dave', 'hello there');
      known.push({ ...first, cost: 0, cached: true, saved: first.cost });
      assert.equal((await chat('alice', 'one request too many')).status, 429);
      known.push({ user: 'alice', provider: null, error: true, rateLimited: true });

      const s = summaryOf(await gateway!.analytics.summary({ period: '24h' }));
      const e = expectedOf(known);
      assert.equal(s.total_requests, 10);
      for (const k of [
        'total_requests',
        'total_errors',
        'total_tokens',
        'prompt_tokens',
        'completion_tokens',
        'cache_hits',
        'rate_limited',
        'streams',
        'fallbacks',
      ] as const) {
        assert.equal(s[k], e[k], k);
      }
      closeEnough(s.total_cost, e.total_cost, 'total_cost');
      closeEnough(s.total_cost_saved, first.cost!, 'total_cost_saved');
      closeEnough(s.error_rate, 3 / 10, 'error_rate');
      closeEnough(s.cache_hit_rate, 1 / 10, 'cache_hit_rate');
      for (const dim of ['by_provider', 'by_user'] as const) {
        const got = s[dim]
          .map(({ avg_latency_ms: _l, ...rest }) => rest)
          .sort((a, b) => String(a.name).localeCompare(String(b.name)));
        assert.equal(got.length, e[dim].length, dim);
        got.forEach((g, i) => {
          const want = e[dim][i]!;
          assert.deepEqual(
            { ...g, cost: 0, error_rate: 0 },
            { ...want, cost: 0, error_rate: 0 },
            `${dim} ${String(g.name)}`,
          );
          closeEnough(g.cost, want.cost, `${dim} ${String(g.name)} cost`);
          closeEnough(g.error_rate, want.error_rate, `${dim} ${String(g.name)} error_rate`);
        });
      }
      assert.deepEqual(
        s.by_model.map((b) => [b.name, b.requests]),
        [[MODEL, 10]],
      );
      assert.deepEqual(
        s.upstream_by_provider.map((u) => [u.name, u.attempts, u.errors]),
        [
          ['openai', 8, 3],
          ['backup', 2, 1],
        ],
      );
      assert.ok(s.avg_ttft_ms !== null && s.avg_ttft_ms > 0, 'streams report a time to first token');
      assert.ok(s.p50_latency_ms <= s.p95_latency_ms && s.p95_latency_ms <= s.p99_latency_ms);

      // Nothing stored, logged or answered holds the key or the messages.
      const rows = await rowsIn(storage.db);
      assert.equal(rows.filter((r) => r.kind === 'request').length, 10);
      // Every upstream attempt has a row of its own except the one that answered, stored on its request row.
      const answered = known.filter((k) => !k.error && (k.attempts?.length ?? 0) > 0).length;
      const attempts = known.reduce((n, k) => n + (k.attempts?.length ?? 0), 0);
      assert.equal(attempts, 10);
      assert.equal(rows.filter((r) => r.kind === 'attempt').length, attempts - answered);
      assert.equal(
        rows.filter((r) => r.kind === 'request' && r.upstream_latency_ms !== null).length,
        answered,
      );
      const everything = JSON.stringify(rows) + logger.text() + JSON.stringify(s);
      assert.ok(!everything.includes(KEY), 'no secret anywhere');
      assert.ok(!everything.includes(MARKER), 'no message content anywhere');
      const streamed = rows.filter((r) => r.kind === 'request' && Boolean(r.stream));
      assert.ok(streamed.every((r) => r.ttft_ms > 0));

      const http = await request(app).get('/ai/stats?period=24h&user=alice').expect(200);
      assert.equal(http.body.total_requests, known.filter((k) => k.user === 'alice').length);
      assert.equal(
        http.body.total_tokens,
        known.filter((k) => k.user === 'alice').reduce((n, k) => n + (k.tokens ?? 0), 0),
      );

      const metrics = await request(app).get('/ai/metrics').expect(200);
      assert.match(metrics.headers['content-type']!, /text\/plain/);
      assert.match(
        metrics.text,
        /gateway_requests_total\{provider="backup",model="gpt-4o-mini",status="200"\} 1\n/,
      );
      assert.match(metrics.text, /gateway_requests_total\{provider="none",model="none",status="429"\} 1\n/);
      assert.match(metrics.text, /gateway_rate_limited_total 1\n/);
      assert.match(metrics.text, /gateway_cache_hits_total 1\n/);
      assert.match(
        metrics.text,
        /gateway_upstream_attempts_total\{provider="openai",model="gpt-4o-mini",outcome="server_error"\} 2\n/,
      );
      // Answering attempts are stored on their request rows; the counter still counts each one.
      for (const provider of ['openai', 'backup']) {
        const ok = known.flatMap((k) => k.attempts ?? []).filter(([p, failed]) => p === provider && !failed);
        assert.ok(ok.length > 0);
        assert.ok(
          metrics.text.includes(
            `gateway_upstream_attempts_total{provider="${provider}",model="${MODEL}",outcome="ok"} ${ok.length}\n`,
          ),
          `${provider}: ${ok.length} ok attempts`,
        );
      }
      assert.match(
        metrics.text,
        /gateway_time_to_first_token_seconds_count\{provider="openai",model="gpt-4o-mini"\} 2\n/,
      );
    });

    it('computes nearest-rank latency percentiles in the database', async () => {
      host();
      const record = (user: string, latency: number) => {
        const { ctx, outcome } = craft(gateway!, { user, latency });
        gateway!.analytics.recordOutcome(outcome, ctx);
      };
      const hundred = Array.from({ length: 100 }, (_, i) => i + 1).sort(() => Math.random() - 0.5);
      for (const l of hundred) record('perc', l);
      for (const l of [70, 10, 50, 30, 20, 60, 40]) record('seven', l);
      const s = summaryOf(await gateway!.analytics.summary({ user: 'perc' }));
      assert.deepEqual(
        [s.p50_latency_ms, s.p95_latency_ms, s.p99_latency_ms, s.avg_latency_ms],
        [50, 95, 99, 50.5],
      );
      const seven = summaryOf(await gateway!.analytics.summary({ user: 'seven' }));
      assert.deepEqual([seven.p50_latency_ms, seven.p95_latency_ms, seven.p99_latency_ms], [40, 70, 70]);
      const none = summaryOf(await gateway!.analytics.summary({ user: 'nobody' }));
      assert.deepEqual(
        [none.total_requests, none.p99_latency_ms, none.error_rate, none.avg_ttft_ms],
        [0, 0, 0, null],
      );
    });

    it('honours periods, from/to ranges and the user, provider and model filters; timeseries buckets agree', async () => {
      host();
      const now = Date.now();
      const HOUR = 3_600_000;
      const DAY = 24 * HOUR;
      const ages = [0.5 * HOUR, 2 * HOUR, 3 * DAY, 10 * DAY, 40 * DAY];
      for (const age of ages) {
        const { ctx, outcome } = craft(gateway!, {
          user: 'timeline',
          at: now - age,
          prompt: 1,
          completion: 2,
        });
        gateway!.analytics.recordOutcome(outcome, ctx);
      }
      const other = craft(gateway!, { user: 'other', provider: 'p2', model: 'm2', prompt: 5, completion: 5 });
      gateway!.analytics.recordOutcome(other.outcome, other.ctx);
      const count = async (q: Parameters<Gateway['analytics']['summary']>[0]) =>
        summaryOf(await gateway!.analytics.summary(q)).total_requests;
      assert.equal(await count({ period: '1h', user: 'timeline' }), 1);
      assert.equal(await count({ period: '24h', user: 'timeline' }), 2);
      assert.equal(await count({ period: '7d', user: 'timeline' }), 3);
      assert.equal(await count({ period: '30d', user: 'timeline' }), 4);
      assert.equal(
        await count({ from: new Date(now - 11 * DAY), to: new Date(now - DAY), user: 'timeline' }),
        2,
      );
      assert.equal(await count({ from: String(now - 45 * DAY) }), 6);
      assert.equal(await count({ period: '1h' }), 2);
      assert.equal(await count({ period: '1h', provider: 'p2' }), 1);
      assert.equal(await count({ period: '1h', model: 'm2' }), 1);
      assert.equal(await count({ period: '1h', model: 'm2', user: 'timeline' }), 0);
      const s = summaryOf(await gateway!.analytics.summary({ period: '1h', provider: 'p2' }));
      assert.equal(s.total_tokens, 10);

      const ts = await gateway!.analytics.timeseries({ period: '24h', user: 'timeline' });
      assert.ok(ts.enabled);
      assert.equal(ts.bucket_ms, HOUR);
      assert.ok(ts.points.length === 24 || ts.points.length === 25, `got ${ts.points.length} points`);
      assert.equal(
        ts.points.reduce((n, p) => n + p.requests, 0),
        2,
      );
      assert.equal(
        ts.points.reduce((n, p) => n + p.tokens, 0),
        6,
      );
      const bucketOf = (t: number) => new Date(t - (t % HOUR)).toISOString();
      for (const age of ages.slice(0, 2)) {
        assert.equal(ts.points.find((p) => p.t === bucketOf(now - age))?.requests, 1);
      }
      const daily = await gateway!.analytics.timeseries({ period: '30d', bucket: '1d', user: 'timeline' });
      assert.ok(daily.enabled);
      assert.equal(
        daily.points.reduce((n, p) => n + p.requests, 0),
        4,
      );
    });

    it('answers GET /stats and /stats/timeseries, and 400 with the parameter named for bad queries', async () => {
      const { app } = host();
      const r = await request(app).get('/ai/stats').expect(200);
      assert.equal(r.body.period, '24h');
      assert.equal(r.body.total_requests, 0);
      const t = await request(app).get('/ai/stats/timeseries?period=1h&bucket=5m').expect(200);
      assert.equal(t.body.bucket_ms, 300_000);
      assert.ok(t.body.points.length >= 12 && t.body.points.length <= 13);
      const bad: [string, string][] = [
        ['/ai/stats?period=2d', 'period'],
        ['/ai/stats?from=yesterday', 'from'],
        ['/ai/stats?from=2025-01-02T00:00:00Z&to=2025-01-01T00:00:00Z', 'from'],
        ['/ai/stats?period=1h&from=2025-01-01T00:00:00Z', 'period'],
        ['/ai/stats?user=a&user=b', 'user'],
        ['/ai/stats/timeseries?bucket=7s', 'bucket'],
        ['/ai/stats/timeseries?period=30d&bucket=1m', 'bucket'],
      ];
      for (const [url, param] of bad) {
        const res = await request(app).get(url).expect(400);
        assert.equal(res.body.error.type, 'invalid_request', url);
        assert.equal(res.body.error.param, param, url);
      }
    });

    it('retention deletes exactly the rows older than the cutoff, in batches', async () => {
      host({ retention_days: 30 });
      const now = Date.now();
      const DAY = 86_400_000;
      const at = (days: number, provider?: string) => {
        const { ctx, outcome } = craft(gateway!, { user: 'r', at: now - days * DAY, provider });
        gateway!.analytics.recordOutcome(outcome, ctx);
      };
      for (const d of [100, 95, 91]) at(d); // one row each: the answering attempt is on the request row
      at(60);
      at(1);
      assert.equal(await gateway!.analytics.flush(), true);
      assert.equal((await rowsIn(storage.db)).length, 5);
      assert.equal(await gateway!.analytics.purgeOlderThan(new Date(now - 90 * DAY), { batchSize: 2 }), 3);
      const left = await rowsIn(storage.db);
      assert.deepEqual(
        [...new Set(left.map((r) => Math.round((now - Number(r.ts)) / DAY)))].sort((a, b) => a - b),
        [1, 60],
      );
      // The scheduled job applies analytics.retention_days.
      assert.equal(await gateway!.analytics.applyRetention(), 1);
      assert.equal((await rowsIn(storage.db)).length, 1);
    });

    it('loses no row while the database is down, and never slows or fails requests meanwhile', async () => {
      const outage = await backend.outage(storage);
      try {
        const { app, logger } = host({ ...outage.config, batch_size: 2 });
        let n = 0;
        const chat = () =>
          request(app)
            .post('/ai/chat')
            .send(body(`during the outage ${n++}`));
        assert.equal((await chat()).status, 200);
        assert.equal(await gateway!.analytics.flush(), true);
        await outage.down();
        for (let i = 0; i < 5; i++) assert.equal((await chat()).status, 200);
        assert.equal(await gateway!.analytics.flush(), false);
        assert.equal(gateway!.analytics.stats().buffered, 5);
        assert.ok(gateway!.analytics.stats().failedWrites >= 1);
        assert.match(logger.text(), /Analytics write failed/);
        await outage.restore();
        assert.equal(await gateway!.analytics.flush(), true);
        const rows = await rowsIn(storage.db);
        assert.equal(rows.filter((r) => r.kind === 'request').length, 6);
        assert.equal(rows.length, 6, 'every row once: a retried batch is not written twice');
        assert.deepEqual(gateway!.analytics.stats(), {
          buffered: 0,
          written: 6,
          dropped: 0,
          failedWrites: gateway!.analytics.stats().failedWrites,
          backpressureWaits: 0,
        });
        assert.ok(!logger.text().includes(KEY));
      } finally {
        await gateway?.close();
        gateway = undefined;
        await outage.close();
      }
    });

    it('a database an earlier version wrote upgrades in place; its attempt rows count as before', async () => {
      // As the version before upstream_latency_ms left it: one row per request and one per attempt.
      await migrateUpTo(storage.db, '001_create_gateway_requests');
      const ts = Date.now() - 60_000;
      const old = {
        ts,
        event_id: 'old-1',
        request_id: 'req_old',
        provider: 'openai',
        model: MODEL,
        status: 200,
      };
      await storage.db(REQUESTS_TABLE).insert([
        { ...old, kind: 'request', attempt: 0, latency_ms: 15, attempts: 1 },
        { ...old, kind: 'attempt', attempt: 1, latency_ms: 10, attempts: 0 },
      ]);
      host();
      const answered = craft(gateway!, { user: 'new', latency: 25 });
      answered.ctx.attempts[0]!.latency_ms = 20;
      gateway!.analytics.recordOutcome(answered.outcome, answered.ctx);
      const failure = new GatewayError('server_error', 'down', { status: 502 });
      const failed = craft(gateway!, { provider: 'openai', latency: 30, error: failure });
      gateway!.analytics.recordOutcome(failed.outcome, failed.ctx);

      const s = summaryOf(await gateway!.analytics.summary({ period: '24h' }));
      assert.equal(s.total_requests, 3);
      // The old attempt row, the answering attempt on the new request row, and the failed attempt's row.
      assert.deepEqual(
        s.upstream_by_provider.map((u) => [u.name, u.attempts, u.errors]),
        [['openai', 3, 1]],
      );
      closeEnough(s.upstream_by_provider[0]!.avg_latency_ms, (10 + 20 + 30) / 3, 'avg upstream latency');
      const mine = summaryOf(await gateway!.analytics.summary({ period: '24h', user: 'new' }));
      assert.deepEqual(
        mine.upstream_by_provider.map((u) => [u.name, u.attempts, u.errors, u.avg_latency_ms]),
        [['openai', 1, 0, 20]],
      );
      const rows = await rowsIn(storage.db);
      assert.deepEqual(
        rows.map((r) => [r.kind, r.event_id === 'old-1', r.upstream_latency_ms]),
        [
          ['request', true, null],
          ['attempt', true, null],
          ['request', false, 20],
          ['request', false, null],
          ['attempt', false, null],
        ],
      );
    });

    it('gateway.close() writes what is still buffered', async () => {
      const { app } = host({ batch_size: 1000 });
      for (let i = 0; i < 3; i++) {
        await request(app)
          .post('/ai/chat')
          .send(body(`closing time ${i}`))
          .expect(200);
      }
      assert.equal(gateway!.analytics.stats().buffered, 3);
      assert.equal((await rowsIn(storage.db)).length, 0);
      await gateway!.close();
      gateway = undefined;
      const rows = await rowsIn(storage.db);
      assert.equal(rows.length, 3);
      assert.equal(rows.filter((r) => r.kind === 'request' && r.status === 200).length, 3);
    });

    it('the store writes batches of every size once each, a retried batch adds nothing, and it closes cleanly', async () => {
      const resolved = {
        storage: storage.config.storage!,
        sqlitePath: String(storage.config.sqlite_path ?? ''),
        postgresUrl: storage.config.postgres_url,
      };
      const row = (event: string, attempt: number): AnalyticsRow => ({
        ts: 1_700_000_000_000 + attempt,
        kind: attempt === 0 ? 'request' : 'attempt',
        event_id: event,
        attempt,
        request_id: `req_${event}`,
        user_id: attempt % 2 ? `user-${attempt}` : null,
        provider: 'openai',
        model: MODEL,
        status: 200,
        error_kind: null,
        prompt_tokens: attempt,
        completion_tokens: 2 * attempt,
        total_tokens: 3 * attempt,
        cost: attempt / 1000,
        cost_saved: 0,
        latency_ms: attempt + 0.5,
        ttft_ms: attempt % 3 ? null : attempt,
        cached: attempt % 4 === 0,
        rate_limited: false,
        stream: attempt % 5 === 0,
        attempts: 0,
        upstream_latency_ms: attempt % 2 ? attempt + 0.25 : null,
      });
      // More distinct sizes than the store keeps prepared, some repeated, one over a statement's chunk.
      const sizes = [100, 1, 7, 100, 33, 2, 100, 64, 7, 1, 650];
      const store = new AnalyticsStore(resolved);
      let written = 0;
      for (const [b, size] of sizes.entries()) {
        const batch = Array.from({ length: size }, (_, i) => row(`batch-${b}`, i));
        await store.insert(batch);
        // Written again, as the recorder does when a reply was lost: the unique key drops every copy.
        if (b % 3 === 0) await store.insert(batch);
        written += size;
      }
      await store.close();
      const rows = await rowsIn(storage.db);
      assert.equal(rows.length, written);
      const last = rows.filter((r) => r.event_id === 'batch-7').sort((a, b) => a.attempt - b.attempt);
      assert.equal(last.length, 64);
      const expected = row('batch-7', 33);
      const got = last[33]!;
      for (const column of [
        'request_id',
        'user_id',
        'total_tokens',
        'cost',
        'latency_ms',
        'ttft_ms',
        'upstream_latency_ms',
      ] as const) {
        assert.equal(got[column], expected[column], column);
      }
      assert.equal(Boolean(got.cached), expected.cached);
      // Closed with no statement left open: the same file opens and writes again.
      const again = new AnalyticsStore(resolved);
      await again.insert([row('after-close', 0)]);
      await again.close();
      assert.equal((await rowsIn(storage.db)).length, written + 1);
    });

    it('the store keeps every column as written: awkward text, nulls, flags, large and fractional numbers', async () => {
      const resolved = {
        storage: storage.config.storage!,
        sqlitePath: String(storage.config.sqlite_path ?? ''),
        postgresUrl: storage.config.postgres_url,
      };
      const texts = [
        'quote " and \\ backslash',
        "it's",
        'tab\tnew\nline',
        'ünïcödé 😀 ユーザー',
        '[1,2]',
        '{"a":1}',
      ];
      const written: AnalyticsRow[] = texts.map((text, i) => ({
        ts: 1_796_000_000_123 + i,
        kind: i % 2 ? 'attempt' : 'request',
        event_id: `awkward-${i}`,
        attempt: i,
        request_id: `req-${text}`,
        user_id: i === 1 ? null : text,
        provider: 'openai',
        model: text,
        status: i === 2 ? null : 200 + i,
        error_kind: i === 3 ? 'server_error' : null,
        prompt_tokens: 2_000_000_000 + i,
        completion_tokens: 0,
        total_tokens: i,
        cost: [0.0000198, 0.1 + 0.2, 1e-12, 12345.678, 0, 2.5e-7][i]!,
        cost_saved: i / 3,
        latency_ms: 123.4 + i,
        ttft_ms: i % 2 ? null : 0.5 * i,
        cached: i % 2 === 0,
        rate_limited: i === 5,
        stream: i === 4,
        attempts: i,
        upstream_latency_ms: i % 3 ? 7.25 : null,
      }));
      const store = new AnalyticsStore(resolved);
      await store.insert(written);
      await store.close();
      const back = await rowsIn(storage.db);
      assert.equal(back.length, written.length);
      for (const [i, expected] of written.entries()) {
        const got = back.find((r) => r.event_id === expected.event_id);
        assert.ok(got, expected.event_id);
        for (const column of COLUMNS) {
          const value = got[column];
          const want = expected[column];
          // PostgreSQL's driver gives bigints as strings and booleans as booleans, SQLite 1 and 0.
          const normal =
            typeof want === 'boolean'
              ? Boolean(value)
              : typeof want === 'number' && typeof value === 'string'
                ? Number(value)
                : value;
          assert.equal(normal, want, `row ${i}, ${column}`);
        }
      }
    });
  });
}

describe('the SQLite insert', () => {
  let storage: Storage;
  beforeEach(async () => {
    storage = await sqlite.fresh();
    await migrateUpTo(storage.db, '002_request_upstream_latency');
  });
  afterEach(() => storage.cleanup());

  const sampleRow = (i: number): AnalyticsRow => ({
    ts: 1_796_000_000_000 + i,
    kind: 'request',
    event_id: `row-${i}`,
    attempt: 0,
    request_id: `req-${i}`,
    user_id: null,
    provider: 'openai',
    model: 'gpt-4o-mini',
    status: 200,
    error_kind: null,
    prompt_tokens: i,
    completion_tokens: i,
    total_tokens: 2 * i,
    cost: 0.0001 * i,
    cost_saved: 0,
    latency_ms: 10 + i,
    ttft_ms: null,
    cached: false,
    rate_limited: false,
    stream: false,
    attempts: 1,
    upstream_latency_ms: 9 + i,
  });

  it('falls back to json_each where SQLite has no jsonb_each, and reports any other preparation error', async () => {
    // The pool's one connection, held while the inserts run and released before the table is read.
    const real = (await storage.db.client.acquireConnection()) as SqliteConnection;
    const prepared: string[] = [];
    try {
      // An SQLite older than 3.45, as the driver reports it: jsonb_each is an unknown table there.
      const old: SqliteConnection = {
        prepare(sql, done) {
          const jsonb = sql.includes('jsonb_each(');
          prepared.push(jsonb ? 'jsonb_each' : 'json_each');
          if (!jsonb) return real.prepare(sql, done);
          setImmediate(() => done(new Error('SQLITE_ERROR: no such table: jsonb_each')));
          return { run() {}, finalize() {} };
        },
      };
      const insert = new PreparedInsert(old);
      const rows = [0, 1, 2].map((i) => ({ ...sampleRow(i), event_id: `fallback-${i}` }));
      await insert.run(rowValues(rows), rows.length);
      await insert.run(rowValues([{ ...sampleRow(3), event_id: 'fallback-3' }]), 1);
      await insert.finalize();

      const broken: SqliteConnection = {
        prepare(_sql, done) {
          setImmediate(() => done(new Error('SQLITE_ERROR: no such table: gateway_requests')));
          return { run() {}, finalize() {} };
        },
      };
      const failing = new PreparedInsert(broken);
      await assert.rejects(failing.run(rowValues([sampleRow(9)]), 1), /no such table: gateway_requests/);
    } finally {
      await storage.db.client.releaseConnection(real);
    }
    // Prepared once, on the first write: the second write reused the json_each statement.
    assert.deepEqual(prepared, ['jsonb_each', 'json_each']);
    const ids = (await storage.db(REQUESTS_TABLE).select('event_id').orderBy('event_id')).map(
      (r: { event_id: string }) => r.event_id,
    );
    assert.deepEqual(ids, ['fallback-0', 'fallback-1', 'fallback-2', 'fallback-3']);
  });

  it('unpacks a batch alike with jsonb_each and the json_each fallback: values, SQL types, numbers to the last bit or one unit', async () => {
    const count = 400;
    const rows: AnalyticsRow[] = Array.from({ length: count }, (_, i) => ({
      ts: 1_796_000_000_000 + i * 7919,
      kind: i % 2 ? 'attempt' : 'request',
      event_id: `each-${i}`,
      attempt: i % 5,
      request_id: `req-${i}`,
      user_id: i % 4 ? `user-${i % 13}` : null,
      provider: 'openai',
      model: 'gpt-4o-mini',
      status: i % 6 ? 200 : null,
      error_kind: i % 6 ? null : 'timeout',
      prompt_tokens: i * 31,
      completion_tokens: i * 17,
      total_tokens: i * 48,
      // Doubles of every magnitude, most needing 16 or 17 significant digits.
      cost: Math.random() * 10 ** ((i % 21) - 12),
      cost_saved: i % 3 ? 0 : Math.random(),
      latency_ms: Math.random() * 5000,
      ttft_ms: i % 2 ? null : Math.random() * 100,
      cached: i % 3 === 0,
      rate_limited: i % 7 === 0,
      stream: i % 2 === 0,
      attempts: i % 4,
      upstream_latency_ms: i % 5 ? Math.random() * 100 : null,
    }));
    const json = batchJson(rowValues(rows), count);
    const types = COLUMNS.map((c) => `typeof(${c}) as t_${c}`).join(', ');
    const read = () =>
      storage.db.raw(`select *, ${types} from ${REQUESTS_TABLE} order by id`) as Promise<any[]>;
    const byFunction: any[][] = [];
    for (const each of JSON_EACH) {
      await storage.db.raw(sqliteInsertSql(each), [json]);
      byFunction.push(await read());
      await storage.db(REQUESTS_TABLE).delete();
    }
    // What binding each value as a parameter stored, for comparison: SQL types included.
    await storage.db.batchInsert(REQUESTS_TABLE, rows as any[], 50);
    const bound = await read();
    const ulp = (x: number) => 2 ** (Math.floor(Math.log2(Math.abs(x))) - 52);
    for (const [f, got] of byFunction.entries()) {
      assert.equal(got.length, count, JSON_EACH[f]);
      for (let i = 0; i < count; i++) {
        for (const column of COLUMNS) {
          const where = `${JSON_EACH[f]}, row ${i}, ${column}`;
          assert.equal(got[i][`t_${column}`], bound[i][`t_${column}`], `${where}: SQL type`);
          const [a, b] = [got[i][column], bound[i][column]];
          // SQLite's text-to-double conversion is off by one unit in the last place for ~1 in 10,000
          // 17-digit values; every other value comes back bit for bit.
          if (typeof b === 'number' && !Number.isInteger(b))
            assert.ok(Math.abs(a - b) <= ulp(b), `${where}: ${a} against ${b}`);
          else assert.equal(a, b, where);
        }
      }
    }
  });
});
