/**
 * The analytics writer thread: rows reach the database through it (never through a connection on the
 * request path's thread), gateway.close() drains it and ends it, and a thread that dies is reported and
 * replaced without losing or duplicating a buffered row, while requests keep succeeding.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Worker } from 'node:worker_threads';
import knexFactory from 'knex';
import type { Analytics } from '../lib/analytics/index.js';
import { AnalyticsRecorder } from '../lib/analytics/recorder.js';
import type { AnalyticsRow } from '../lib/analytics/rows.js';
import { COLUMNS, rowValues, rowsFromOutcome } from '../lib/analytics/rows.js';
import { REQUESTS_TABLE } from '../lib/analytics/schema.js';
import type { AnalyticsStore } from '../lib/analytics/store.js';
import { AnalyticsWriter } from '../lib/analytics/writer.js';
import { Gateway } from '../lib/gateway.js';
import { silentLogger } from '../lib/logger.js';
import { startFakeOpenAI } from '../lib/testing/fake-openai.js';
import type { FakeProvider } from '../lib/testing/fake-server.js';
import { craft } from './helpers/analytics.js';
import { recordingLogger } from './helpers/setup.js';

/** What the tests look at inside gateway.analytics: its writer thread and its query-side store. */
const internals = (a: Analytics) => a as unknown as { writer: AnalyticsWriter; store: AnalyticsStore };

async function countRows(path: string): Promise<{ rows: number; distinct: number }> {
  const db = knexFactory({ client: 'sqlite3', connection: { filename: path }, useNullAsDefault: true });
  try {
    const rows = await db(REQUESTS_TABLE).select('event_id', 'attempt');
    return { rows: rows.length, distinct: new Set(rows.map((r) => `${r.event_id}/${r.attempt}`)).size };
  } finally {
    await db.destroy();
  }
}

describe('analytics writer thread', () => {
  let fake: FakeProvider;
  let dir: string;
  let gateway: Gateway | undefined;
  before(async () => {
    fake = await startFakeOpenAI();
  });
  after(async () => {
    await fake.close();
  });
  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'gw-analytics-writer-'));
  });
  afterEach(async () => {
    await gateway?.close();
    gateway = undefined;
    rmSync(dir, { recursive: true, force: true });
  });

  function start(batchSize = 1000) {
    const logger = recordingLogger();
    const path = join(dir, 'analytics.db');
    gateway = new Gateway({
      providers: { openai: { api_key: 'test-key', base_url: fake.baseUrl, models: ['gpt-4o-mini'] } },
      analytics: { sqlite_path: path, flush_interval_ms: 600_000, batch_size: batchSize },
      logger,
    });
    const chat = (content: string) =>
      gateway!.chat({ model: 'gpt-4o-mini', messages: [{ role: 'user', content }] });
    return { gateway, logger, path, chat, writer: internals(gateway.analytics).writer };
  }

  it('writes the rows from a worker thread; the main thread opens no connection for them', async () => {
    const { gateway, path, chat, writer } = start();
    assert.equal(writer.worker, undefined, 'no thread before the first write');
    for (let i = 0; i < 3; i++) await chat(`hello ${i}`);
    assert.equal(await gateway.analytics.flush(), true);
    const thread = writer.worker as Worker | undefined;
    assert.ok(thread, 'the writer thread is running');
    assert.notEqual(thread.threadId, 0);
    assert.equal(internals(gateway.analytics).store.opened, false);
    // One row per request: each answering attempt is stored on its request row.
    assert.deepEqual(await countRows(path), { rows: 3, distinct: 3 });
    assert.deepEqual(gateway.analytics.stats(), {
      buffered: 0,
      written: 3,
      dropped: 0,
      failedWrites: 0,
      backpressureWaits: 0,
    });
  });

  it('gateway.close() writes what is buffered through the thread, then ends the thread', async () => {
    const { gateway: g, path, chat, writer } = start();
    await chat('one');
    assert.equal(await g.analytics.flush(), true);
    await chat('two');
    await chat('three');
    assert.equal(g.analytics.stats().buffered, 2);
    const thread = writer.worker!;
    const exited = new Promise<number>((resolve) => thread.once('exit', resolve));
    await g.close();
    gateway = undefined;
    await exited;
    assert.equal(writer.worker, undefined);
    assert.equal(writer.crashes, 0, 'a thread ended by close() is not a crash');
    assert.deepEqual(await countRows(path), { rows: 3, distinct: 3 });
  });

  it('a thread that dies is logged and replaced; every buffered row is written once; requests go on', async () => {
    const { gateway: g, logger, path, chat, writer } = start();
    for (let i = 0; i < 3; i++) await chat(`before ${i}`);
    assert.equal(await g.analytics.flush(), true);
    for (let i = 0; i < 4; i++) await chat(`buffered ${i}`);
    // Killed with a batch in flight: the thread may or may not have committed (and acknowledged) it
    // before it died; either way each row must end up in the table exactly once.
    const first = writer.worker!;
    const flushing = g.analytics.flush();
    await first.terminate();
    const acknowledged = await flushing;
    assert.match(logger.text(), /Analytics writer thread stopped unexpectedly/);
    assert.equal(writer.crashes, 1);
    assert.equal(writer.worker, undefined);
    assert.equal(g.analytics.stats().buffered, acknowledged ? 0 : 4, 'unacknowledged rows stay buffered');
    // Requests are untouched by the writer's fate.
    for (let i = 0; i < 2; i++) assert.equal((await chat(`after ${i}`)).provider, 'openai');
    assert.equal(await g.analytics.flush(), true);
    assert.ok(writer.worker && writer.worker !== first, 'a new thread took over');
    assert.deepEqual(await countRows(path), { rows: 9, distinct: 9 });
    const stats = g.analytics.stats();
    assert.deepEqual([stats.buffered, stats.written, stats.dropped], [0, 9, 0]);
    assert.equal(stats.failedWrites, acknowledged ? 0 : 1);
  });

  it('an AnalyticsWriter used directly: batches in column order arrive intact, failures reject', async () => {
    const path = join(dir, 'direct.db');
    const logger = recordingLogger();
    const writer = new AnalyticsWriter({
      storage: { storage: 'sqlite', sqlitePath: path, postgresUrl: undefined },
      logger,
    });
    const g = new Gateway({
      providers: { openai: { api_key: 'test-key', models: ['gpt-4o-mini'] } },
      analytics: { enabled: false },
      logger: silentLogger,
    });
    try {
      const recorder = new AnalyticsRecorder({
        write: (rows) => writer.write(rows),
        logger,
        batchSize: () => 3,
        flushIntervalMs: () => 600_000,
      });
      const crafted = craft(g, { user: 'u"1', provider: 'openai', prompt: 7, completion: 9, cost: 0.25 });
      const rows = rowsFromOutcome(crafted.outcome, crafted.ctx);
      for (let i = 0; i < 4; i++) {
        const again = craft(g, { user: `user-${i}`, prompt: i, completion: 1 });
        rows.push(...rowsFromOutcome(again.outcome, again.ctx));
      }
      for (const row of rows) recorder.push(row);
      assert.equal(await recorder.flush(), true);
      await recorder.close();
      const db = knexFactory({ client: 'sqlite3', connection: { filename: path }, useNullAsDefault: true });
      try {
        const stored = await db(REQUESTS_TABLE).select('*').orderBy('id');
        assert.equal(stored.length, rows.length);
        const first = stored[0];
        assert.deepEqual(
          [first.user_id, first.provider, first.prompt_tokens, first.completion_tokens, first.cost],
          ['u"1', 'openai', 7, 9, 0.25],
        );
        assert.deepEqual(
          stored.map((r) => [r.event_id, r.attempt, r.kind]),
          rows.map((r) => [r.event_id, r.attempt, r.kind]),
        );
        // A write the database refuses rejects with its message; nothing is acknowledged.
        await db.raw(
          `CREATE TRIGGER refuse BEFORE INSERT ON ${REQUESTS_TABLE} BEGIN SELECT RAISE(FAIL, 'disk is down'); END`,
        );
        const again = craft(g, {});
        await assert.rejects(writer.write(rowsFromOutcome(again.outcome, again.ctx)), /disk is down/);
      } finally {
        await db.destroy();
      }
    } finally {
      await writer.close();
      await g.close();
    }
    await assert.rejects(
      writer.write([]).then(() => writer.schema()),
      /closed/,
    );
  });

  it('waitForProgress() returns at once with nothing in flight, and as soon as the thread answers', async () => {
    const writer = new AnalyticsWriter({
      storage: { storage: 'sqlite', sqlitePath: join(dir, 'progress.db'), postgresUrl: undefined },
      logger: silentLogger,
    });
    const g = new Gateway({
      providers: { openai: { api_key: 'test-key', models: ['gpt-4o-mini'] } },
      analytics: { enabled: false },
      logger: silentLogger,
    });
    try {
      let t = performance.now();
      writer.waitForProgress(5_000);
      assert.ok(performance.now() - t < 1_000, 'no thread yet: no wait');
      await writer.schema();
      t = performance.now();
      writer.waitForProgress(5_000);
      assert.ok(performance.now() - t < 1_000, 'every message answered: no wait');
      // A write in flight: the wait blocks this thread (its promise cannot settle meanwhile) and ends
      // when the thread has committed the batch, well before the timeout.
      const crafted = craft(g, {});
      let settled = false;
      const writing = writer
        .write(rowsFromOutcome(crafted.outcome, crafted.ctx))
        .then(() => (settled = true));
      t = performance.now();
      writer.waitForProgress(5_000);
      assert.ok(performance.now() - t < 4_000, 'woken by the thread, not by the timeout');
      assert.equal(settled, false, 'the answer is processed by the event loop afterwards');
      await writing;
      assert.equal(settled, true);
    } finally {
      await writer.close();
      await g.close();
    }
  });

  it('rowValues() lays every field of every row out in COLUMNS order, the order the thread binds', () => {
    const row = (n: number): AnalyticsRow => ({
      ts: n + 1,
      kind: 'attempt',
      event_id: `event-${n}`,
      attempt: n + 2,
      request_id: `request-${n}`,
      user_id: `user-${n}`,
      provider: `provider-${n}`,
      model: `model-${n}`,
      status: n + 3,
      error_kind: `error-${n}`,
      prompt_tokens: n + 4,
      completion_tokens: n + 5,
      total_tokens: n + 6,
      cost: n + 7,
      cost_saved: n + 8,
      latency_ms: n + 9,
      ttft_ms: n + 10,
      cached: n % 2 === 0,
      rate_limited: n % 2 === 1,
      stream: n % 2 === 0,
      attempts: n + 11,
      upstream_latency_ms: n + 12,
    });
    const rows = [row(0), row(1)];
    assert.deepEqual(Object.keys(rows[0]!).sort(), [...COLUMNS].sort(), 'COLUMNS names every field');
    assert.deepEqual(
      rowValues(rows),
      rows.flatMap((r) => COLUMNS.map((c) => r[c])),
    );
  });
});
