/**
 * The analytics write path without a database: the bounded buffer (drops are counted and logged), the
 * backoff after a failed write (on a controllable clock), and a gateway whose analytics are disabled.
 */
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import request from 'supertest';
import { AnalyticsRecorder } from '../lib/analytics/recorder.js';
import { rowsFromOutcome, type AnalyticsRow } from '../lib/analytics/rows.js';
import { GatewayError } from '../lib/errors.js';
import { Gateway } from '../lib/gateway.js';
import { silentLogger } from '../lib/logger.js';
import { startFakeOpenAI } from '../lib/testing/fake-openai.js';
import type { FakeProvider } from '../lib/testing/fake-server.js';
import { craft } from './helpers/analytics.js';
import { hostApp, recordingLogger } from './helpers/setup.js';

const row = (i: number): AnalyticsRow => ({
  ts: i,
  kind: 'request',
  event_id: `e${i}`,
  attempt: 0,
  request_id: `r${i}`,
  user_id: null,
  provider: null,
  model: null,
  status: 200,
  error_kind: null,
  prompt_tokens: 0,
  completion_tokens: 0,
  total_tokens: 0,
  cost: 0,
  cost_saved: 0,
  latency_ms: 1,
  ttft_ms: null,
  cached: false,
  rate_limited: false,
  stream: false,
  attempts: 0,
  upstream_latency_ms: null,
});

/** Waits for I/O we cannot step (a SQLite write) to reach `done`, for at most two seconds. */
async function until(done: () => boolean): Promise<void> {
  for (let i = 0; i < 400 && !done(); i++) await new Promise((r) => setTimeout(r, 5));
}

/** Resolves after pending setImmediate callbacks (the recorder's "batch full" flush) have run. */
const tick = () => new Promise<void>((r) => setImmediate(r));

/** A recorder whose writes report their sizes; with `holdFirst` the first one waits for `release()`. */
function sizedRecorder(batchSize: number, options: { holdFirst?: boolean; flushIntervalMs?: number } = {}) {
  const sizes: number[] = [];
  let release = () => {};
  const rec = new AnalyticsRecorder({
    write: async (rows) => {
      sizes.push(rows.length);
      // The first write hangs until released, so that rows pile up behind it.
      if (options.holdFirst && sizes.length === 1) await new Promise<void>((r) => (release = r));
    },
    logger: recordingLogger(),
    batchSize: () => batchSize,
    flushIntervalMs: () => options.flushIntervalMs ?? 600_000,
  });
  return { rec, sizes, release: () => release() };
}

/** Lets the recorder's "batch full" flushes and the writes' promise chains run. */
async function settled(): Promise<void> {
  for (let i = 0; i < 5; i++) await tick();
}

function recorder(options: { maxBufferedRows?: number; batchSize?: number; now?: () => number } = {}) {
  const written: AnalyticsRow[] = [];
  const state = { down: true, calls: 0 };
  const logger = recordingLogger();
  const rec = new AnalyticsRecorder({
    write: async (rows) => {
      state.calls += 1;
      if (state.down) throw new Error('connect ECONNREFUSED');
      written.push(...rows);
    },
    logger,
    batchSize: () => options.batchSize ?? 100,
    flushIntervalMs: () => 600_000,
    maxBufferedRows: options.maxBufferedRows,
    backoffMs: 500,
    now: options.now,
  });
  return { rec, written, state, logger };
}

describe('analytics recorder', () => {
  it('bounds the buffer while the database is down, counting and logging every dropped row', async () => {
    const { rec, written, state, logger } = recorder({ maxBufferedRows: 5 });
    for (let i = 0; i < 8; i++) rec.push(row(i));
    assert.deepEqual(rec.stats(), {
      buffered: 5,
      written: 0,
      dropped: 3,
      failedWrites: 0,
      backpressureWaits: 0,
    });
    assert.match(logger.text(), /Analytics rows dropped/);
    assert.equal(await rec.flush(), false);
    state.down = false;
    assert.equal(await rec.flush(), true);
    assert.deepEqual(
      written.map((r) => r.request_id),
      ['r0', 'r1', 'r2', 'r3', 'r4'],
    );
    await rec.close();
    rec.push(row(99));
    assert.equal(rec.stats().dropped, 4, 'a row pushed after close is counted, not lost silently');
  });

  it('backs off after a failed write and writes every row once the database answers', async () => {
    let clock = 1_000;
    const { rec, written, state, logger } = recorder({ batchSize: 2, now: () => clock });
    rec.push(row(1));
    rec.push(row(2)); // a full batch: written at once, and it fails
    await tick();
    await tick();
    assert.equal(state.calls, 1);
    assert.match(logger.text(), /"retry_in_ms":500/);
    rec.push(row(3));
    rec.push(row(4));
    await tick();
    assert.equal(state.calls, 1, 'no write before the backoff has passed');
    clock += 500;
    state.down = false;
    rec.push(row(5));
    rec.push(row(6));
    await tick();
    await tick();
    // Six rows waiting are more than two batches: one catch-up write takes them all.
    assert.equal(state.calls, 2, 'the failed batch and the two new ones, in one catch-up write');
    assert.deepEqual(
      written.map((r) => r.ts),
      [1, 2, 3, 4, 5, 6],
    );
    assert.match(logger.text(), /writable again/);
    await rec.close();
  });

  it('writes a backlog in catch-up writes of up to four batches, and single batches otherwise', async () => {
    const { rec, sizes, release } = sizedRecorder(2, { holdFirst: true });
    for (let i = 0; i < 2; i++) rec.push(row(i));
    await tick();
    assert.deepEqual(sizes, [2], 'a full batch goes at once');
    for (let i = 2; i < 13; i++) rec.push(row(i));
    release();
    await until(() => sizes.reduce((a, b) => a + b, 0) === 12);
    // Behind the first write: 11 rows, more than two batches, so four at once; the 3 left are not, so
    // they go one batch at a time, and the last row waits for a full batch or the interval.
    await settled();
    assert.deepEqual(sizes, [2, 8, 2]);
    await rec.close();
    assert.deepEqual(sizes, [2, 8, 2, 1]);

    // A large batch_size is not multiplied past one INSERT's 500 rows.
    const { rec: bigRec, sizes: big } = sizedRecorder(300);
    for (let i = 0; i < 2000; i++) bigRec.push(row(i));
    await bigRec.close();
    assert.equal(
      big.reduce((a, b) => a + b, 0),
      2000,
    );
    assert.ok(Math.max(...big) <= 500, `writes of ${big.join(', ')}`);
    assert.ok(big.includes(500), `a backlog of 2000 went out in writes of ${big.join(', ')}`);
  });

  it('leaves rows that arrive during a write for a full batch or the interval, not a write of their own', async () => {
    const { rec, sizes, release } = sizedRecorder(4, { holdFirst: true });
    for (let i = 0; i < 4; i++) rec.push(row(i));
    await settled();
    assert.deepEqual(sizes, [4], 'a full batch goes at once');
    for (let i = 4; i < 7; i++) rec.push(row(i));
    release();
    await settled();
    assert.deepEqual(sizes, [4], 'three rows that came during the write are not a write');
    rec.push(row(7));
    await settled();
    assert.deepEqual(sizes, [4, 4], 'the fourth makes a batch');
    rec.push(row(8));
    rec.push(row(9));
    await settled();
    assert.deepEqual(sizes, [4, 4]);
    await rec.close();
    assert.deepEqual(sizes, [4, 4, 2], 'close writes the rest');

    // The interval writes what it finds, a partial batch too.
    const { rec: timedRec, sizes: timed } = sizedRecorder(4, { flushIntervalMs: 20 });
    for (let i = 0; i < 3; i++) timedRec.push(row(i));
    await until(() => timed.length > 0);
    assert.deepEqual(timed, [3]);
    await timedRec.close();
  });

  it('rejects a buffer bound that cannot work, saying what to use', () => {
    assert.throws(
      () => recorder({ maxBufferedRows: 0 }),
      /maxBufferedRows must be a positive integer.*100000/,
    );
  });

  describe('backpressure on a writer that falls behind', () => {
    /** A writer whose writes finish only when the test says so, and a waitForWriter that records calls. */
    function slowWriter(batchSize: number) {
      const finishes: (() => void)[] = [];
      const waits: number[] = [];
      let failing = false;
      const rec = new AnalyticsRecorder({
        write: () =>
          new Promise<void>((resolve, reject) => {
            finishes.push(failing ? () => reject(new Error('connect ECONNREFUSED')) : resolve);
          }),
        waitForWriter: (timeoutMs) => waits.push(timeoutMs),
        logger: silentLogger,
        batchSize: () => batchSize,
        flushIntervalMs: () => 600_000,
        backoffMs: 600_000,
      });
      return { rec, finishes, waits, fail: () => (failing = true) };
    }

    it('waits for the writer only once a write is in flight and the backlog passes 20 batches', async () => {
      const { rec, finishes, waits } = slowWriter(2);
      // 40 rows is the threshold (20 batches of 2): the first batch's write starts at row 2.
      for (let i = 0; i < 40; i++) rec.push(row(i));
      await tick();
      assert.equal(finishes.length, 1, 'one write in flight');
      assert.deepEqual(waits, [], 'no wait at or below the threshold');
      rec.push(row(40));
      rec.push(row(41));
      assert.equal(waits.length, 2, 'each push over the threshold waits once');
      assert.ok(
        waits.every((ms) => ms > 0 && ms <= 50),
        `bounded waits: ${waits.join(',')}`,
      );
      assert.equal(rec.stats().backpressureWaits, 2);
      // The writer catches up: below the threshold nothing waits any more.
      while (finishes.length) {
        finishes.shift()!();
        await tick();
        await tick();
      }
      const before = waits.length;
      rec.push(row(42));
      assert.equal(waits.length, before);
      assert.equal(rec.stats().dropped, 0);
      let closed = false;
      const closing = rec.close().then(() => (closed = true));
      for (let i = 0; i < 100 && !closed; i++) {
        while (finishes.length) finishes.shift()!();
        await tick();
      }
      await closing;
      assert.equal(rec.stats().written, 43);
    });

    it('blocks at most a quarter of each second: a slow database is not allowed to throttle every request', async () => {
      let clock = 1_000_000;
      const waits: number[] = [];
      const finishes: (() => void)[] = [];
      const rec = new AnalyticsRecorder({
        write: () => new Promise<void>((resolve) => finishes.push(resolve)),
        // A writer held up by its database: every wait runs to its timeout.
        waitForWriter: (timeoutMs) => {
          waits.push(timeoutMs);
          clock += timeoutMs;
        },
        logger: silentLogger,
        batchSize: () => 1,
        flushIntervalMs: () => 600_000,
        now: () => clock,
      });
      rec.push(row(0));
      await tick();
      assert.equal(finishes.length, 1, 'one write in flight, never finishing');
      for (let i = 1; i < 100; i++) rec.push(row(i));
      assert.deepEqual(waits, [50, 50, 50, 50, 50], '250 ms of waits in this second, then none');
      clock += 1_000;
      rec.push(row(100));
      assert.equal(waits.length, 6, 'a new second, a new budget');
      assert.equal(rec.stats().dropped, 0);
    });

    it('never waits while the database is failing: an outage buffers rows instead of stalling requests', async () => {
      const { rec, finishes, waits, fail } = slowWriter(2);
      fail();
      rec.push(row(0));
      rec.push(row(1));
      await tick();
      finishes.shift()!();
      await tick();
      await tick();
      assert.equal(rec.stats().failedWrites, 1);
      for (let i = 2; i < 200; i++) rec.push(row(i));
      assert.deepEqual(waits, []);
      assert.equal(rec.stats().buffered, 200);
    });
  });
});

describe('analytics disabled, and per-gateway metrics', () => {
  let fake: FakeProvider;
  let dir: string;
  before(async () => {
    fake = await startFakeOpenAI();
    dir = mkdtempSync(join(tmpdir(), 'gw-analytics-off-'));
  });
  after(async () => {
    await fake.close();
    rmSync(dir, { recursive: true, force: true });
  });
  const providers = () => ({
    openai: { api_key: 'test-key', base_url: fake.baseUrl, models: ['gpt-4o-mini'] },
  });

  it('builds rows: a cache hit spends nothing, a limiter refusal is flagged, the winner is on the request row', async () => {
    const gateway = new Gateway({
      providers: providers(),
      analytics: { enabled: false },
      logger: silentLogger,
    });
    const hit = craft(gateway, { cached: true, costSaved: 0.5, cost: 0.5, prompt: 3, completion: 4 });
    const [hitRow, ...none] = rowsFromOutcome(hit.outcome, hit.ctx);
    assert.deepEqual(none, []);
    assert.deepEqual(
      [hitRow!.cached, hitRow!.cost, hitRow!.cost_saved, hitRow!.total_tokens],
      [true, 0, 0.5, 7],
    );

    const limited = craft(gateway, { error: new GatewayError('rate_limit', 'slow down') });
    limited.ctx.locals.rateLimited = true;
    const [limitedRow] = rowsFromOutcome(limited.outcome, limited.ctx);
    assert.deepEqual([limitedRow!.rate_limited, limitedRow!.status, limitedRow!.provider], [true, 429, null]);
    // An upstream 429 that exhausted the providers is not the gateway's own refusal.
    const upstream = craft(gateway, {
      provider: 'openai',
      error: new GatewayError('rate_limit', 'upstream'),
    });
    assert.equal(rowsFromOutcome(upstream.outcome, upstream.ctx)[0]!.rate_limited, false);

    const fell = craft(gateway, { prompt: 2, completion: 3, cost: 0.01 });
    fell.ctx.attempts.unshift({
      provider: 'first',
      model: 'gpt-4o-mini',
      error_kind: 'server_error',
      status: 500,
      latency_ms: 7,
    });
    fell.ctx.attempts[1]!.latency_ms = 11;
    const rows = rowsFromOutcome(fell.outcome, fell.ctx);
    // The failed attempt has a row of its own; the one that answered is stored on the request row.
    assert.deepEqual(
      rows.map((r) => [
        r.kind,
        r.attempt,
        r.provider,
        r.error_kind,
        r.total_tokens,
        r.cost,
        r.upstream_latency_ms,
      ]),
      [
        ['request', 0, 'openai', null, 5, 0.01, 11],
        ['attempt', 1, 'first', 'server_error', 0, 0, null],
      ],
    );
    assert.equal(new Set(rows.map((r) => r.event_id)).size, 1);
    await gateway.close();
  });

  it('stores an answering attempt on its request row only when that row says all it would', async () => {
    const gateway = new Gateway({
      providers: providers(),
      analytics: { enabled: false },
      logger: silentLogger,
    });
    const shape = (rows: AnalyticsRow[]) =>
      rows.map((r) => [r.kind, r.attempt, r.provider, r.model, r.status, r.upstream_latency_ms]);

    const one = craft(gateway, { latency: 9 });
    one.ctx.attempts[0]!.latency_ms = 6;
    assert.deepEqual(shape(rowsFromOutcome(one.outcome, one.ctx)), [
      ['request', 0, 'openai', 'gpt-4o-mini', 200, 6],
    ]);

    // No answer: every attempt keeps its row, and nothing is folded.
    const failed = craft(gateway, {
      provider: 'openai',
      error: new GatewayError('server_error', 'down', { status: 502 }),
    });
    assert.deepEqual(shape(rowsFromOutcome(failed.outcome, failed.ctx)), [
      ['request', 0, 'openai', 'gpt-4o-mini', 502, null],
      ['attempt', 1, 'openai', 'gpt-4o-mini', 500, null],
    ]);

    // An attempt whose model or status the request row does not repeat keeps its own row.
    const renamed = craft(gateway, {});
    renamed.ctx.attempts[0]!.model = 'gpt-4o-mini-2024-07-18';
    assert.deepEqual(shape(rowsFromOutcome(renamed.outcome, renamed.ctx)), [
      ['request', 0, 'openai', 'gpt-4o-mini', 200, null],
      ['attempt', 1, 'openai', 'gpt-4o-mini-2024-07-18', 200, null],
    ]);
    const created = craft(gateway, {});
    created.ctx.attempts[0]!.status = 201;
    assert.deepEqual(shape(rowsFromOutcome(created.outcome, created.ctx)), [
      ['request', 0, 'openai', 'gpt-4o-mini', 200, null],
      ['attempt', 1, 'openai', 'gpt-4o-mini', 201, null],
    ]);
    await gateway.close();
  });

  it('stores a lone surrogate, sent by the client or left by the 200-character cut, as U+FFFD', async () => {
    const gateway = new Gateway({
      providers: providers(),
      analytics: { enabled: false },
      logger: silentLogger,
    });
    const lone = craft(gateway, { user: 'user-\ud800-x', model: 'm\udc00' });
    const [row] = rowsFromOutcome(lone.outcome, lone.ctx);
    assert.equal(row!.user_id, 'user-\ufffd-x');
    assert.equal(row!.model, 'm\ufffd');
    // 199 characters, then an emoji (two UTF-16 units) that the cut at 200 splits.
    const cut = craft(gateway, { user: `${'u'.repeat(199)}\u{1f600}` });
    const [cutRow] = rowsFromOutcome(cut.outcome, cut.ctx);
    assert.equal(cutRow!.user_id, `${'u'.repeat(199)}\ufffd`);
    // Well-formed text, astral characters included, is kept as it is.
    const fine = craft(gateway, { user: 'ユーザー\u{1f600}' });
    assert.equal(rowsFromOutcome(fine.outcome, fine.ctx)[0]!.user_id, 'ユーザー\u{1f600}');
    await gateway.close();
  });

  it('says so from summary() and GET /stats, stores nothing, and still serves /metrics', async () => {
    const path = join(dir, 'never.db');
    const { app, gateway } = hostApp({
      providers: providers(),
      analytics: { enabled: false, sqlite_path: path },
      logger: silentLogger,
    });
    await request(app)
      .post('/ai/chat')
      .send({ model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'hi' }] })
      .expect(200);
    const s = await gateway.analytics.summary({ period: '1h' });
    assert.equal(s.enabled, false);
    assert.match(s.enabled ? '' : s.message, /analytics\.enabled: true/);
    const r = await request(app).get('/ai/stats').expect(404);
    assert.equal(r.body.error.type, 'not_found');
    // Query validation still applies.
    await request(app).get('/ai/stats?period=2y').expect(400);
    const m = await request(app).get('/ai/metrics').expect(200);
    assert.match(m.text, /gateway_requests_total\{provider="openai",model="gpt-4o-mini",status="200"\} 1\n/);
    await gateway.close();
    assert.equal(existsSync(path), false);
  });

  it('keeps each gateway on its own registry, and applies a reloaded batch size', async () => {
    const config = (batchSize: number) => ({
      providers: providers(),
      analytics: { sqlite_path: join(dir, 'reload.db'), flush_interval_ms: 600_000, batch_size: batchSize },
      logger: silentLogger,
    });
    const a = new Gateway(config(100));
    const b = new Gateway(config(100));
    const ask = (content: string) => a.chat({ model: 'gpt-4o-mini', messages: [{ role: 'user', content }] });
    try {
      await ask('one');
      // One row: the request, its one attempt stored on it.
      assert.deepEqual(a.analytics.stats(), {
        buffered: 1,
        written: 0,
        dropped: 0,
        failedWrites: 0,
        backpressureWaits: 0,
      });
      assert.match(
        (await a.analytics.metrics.text()).body,
        /gateway_requests_total\{[^}]*status="200"\} 1\n/,
      );
      assert.doesNotMatch((await b.analytics.metrics.text()).body, /gateway_requests_total\{/);
      a.reload(config(1));
      await ask('two');
      // A full batch is written without waiting for the (10 minute) timer.
      await until(() => a.analytics.stats().written === 2);
      assert.deepEqual(a.analytics.stats(), {
        buffered: 0,
        written: 2,
        dropped: 0,
        failedWrites: 0,
        backpressureWaits: 0,
      });
    } finally {
      await a.close();
      await b.close();
    }
  });
});
