/**
 * Analytics on demand (`npx tsx bench/analytics.ts`): rows written per second to SQLite through the
 * store's batched insert, and what the outcome hook costs a request (build rows, count metrics, push to
 * the buffer), in microseconds. Not part of `npm test`: figures depend on the machine.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { Analytics } from '../lib/analytics/index.js';
import { GatewayMetrics } from '../lib/analytics/metrics.js';
import { AnalyticsRecorder } from '../lib/analytics/recorder.js';
import { rowsFromOutcome } from '../lib/analytics/rows.js';
import { AnalyticsStore } from '../lib/analytics/store.js';
import { resolveConfig } from '../lib/config.js';
import type { RequestOutcome } from '../lib/context.js';
import { Gateway } from '../lib/gateway.js';
import { silentLogger } from '../lib/logger.js';

const dir = mkdtempSync(join(tmpdir(), 'gw-analytics-bench-'));

async function writeThroughput(batchSize: number, total: number): Promise<number> {
  const store = new AnalyticsStore({
    storage: 'sqlite',
    sqlitePath: join(dir, `w${batchSize}.db`),
    postgresUrl: undefined,
  });
  await store.ready();
  const gateway = new Gateway({
    providers: { openai: { api_key: 'bench', models: ['gpt-4o-mini'] } },
    analytics: { enabled: false },
    logger: silentLogger,
  });
  const { ctx, outcome } = sample(gateway);
  const rows = Array.from({ length: total }, () => rowsFromOutcome(outcome, ctx)[0]!);
  const recorder = new AnalyticsRecorder({
    write: (batch) => store.insert(batch),
    logger: silentLogger,
    batchSize: () => batchSize,
    flushIntervalMs: () => 600_000,
    maxBufferedRows: total,
  });
  for (const row of rows) recorder.push(row);
  const started = performance.now();
  if (!(await recorder.flush())) throw new Error('the benchmark write failed');
  const seconds = (performance.now() - started) / 1000;
  await recorder.close();
  await store.close();
  await gateway.close();
  return total / seconds;
}

function sample(gateway: Gateway) {
  const ctx = gateway.createContext(
    { model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'hi' }] },
    false,
    {
      user: 'bench-user',
    },
  );
  ctx.attempts.push({ provider: 'openai', model: 'gpt-4o-mini', status: 200, latency_ms: 120 });
  const outcome: RequestOutcome = {
    status: 200,
    response: {
      id: ctx.requestId,
      provider: 'openai',
      model: 'gpt-4o-mini',
      content: 'hello',
      finish_reason: 'stop',
      usage: { prompt_tokens: 12, completion_tokens: 30, total_tokens: 42 },
      cost: 0.0000198,
      latency_ms: 123.4,
      cached: false,
    },
  };
  return { ctx, outcome };
}

/** Median over rounds of the mean time per call, in microseconds. */
function perCallMicros(rounds: number, perRound: number, fn: () => void): number {
  for (let i = 0; i < perRound; i++) fn(); // warm-up
  const means: number[] = [];
  for (let r = 0; r < rounds; r++) {
    const started = performance.now();
    for (let i = 0; i < perRound; i++) fn();
    means.push(((performance.now() - started) * 1000) / perRound);
  }
  means.sort((a, b) => a - b);
  return means[Math.floor(means.length / 2)]!;
}

async function hookCost() {
  const config = resolveConfig({
    providers: { openai: { api_key: 'bench', models: ['gpt-4o-mini'] } },
    analytics: { sqlite_path: join(dir, 'hook.db'), flush_interval_ms: 600_000, batch_size: 10_000_000 },
  });
  const analytics = new Analytics({
    current: () => config.analytics,
    logger: silentLogger,
    maxBufferedRows: 50_000_000,
  });
  const gateway = new Gateway({
    providers: { openai: { api_key: 'bench', models: ['gpt-4o-mini'] } },
    analytics: { enabled: false },
    logger: silentLogger,
  });
  const { ctx, outcome } = sample(gateway);
  const live = { ...ctx, runtime: { ...ctx.runtime, config } } as typeof ctx;
  const rows = rowsFromOutcome(outcome, ctx);
  const metrics = new GatewayMetrics();
  const recorder = new AnalyticsRecorder({
    write: async () => {},
    logger: silentLogger,
    batchSize: () => 10_000_000,
    flushIntervalMs: () => 600_000,
    maxBufferedRows: 50_000_000,
  });
  const result = {
    'recordOutcome (whole hook)': perCallMicros(15, 20_000, () => analytics.recordOutcome(outcome, live)),
    rowsFromOutcome: perCallMicros(15, 20_000, () => rowsFromOutcome(outcome, ctx)),
    'metrics.observe': perCallMicros(15, 20_000, () => metrics.observe(rows)),
    // One row since the answering attempt is stored on its request row.
    [`recorder.push x${rows.length} (one request's rows)`]: perCallMicros(15, 20_000, () => {
      for (const row of rows) recorder.push(row);
    }),
  };
  await recorder.close();
  await analytics.close().catch(() => {});
  await gateway.close();
  return result;
}

try {
  console.log(`node ${process.version}`);
  for (const batch of [100, 1000]) {
    const rate = await writeThroughput(batch, 50_000);
    console.log(
      `SQLite write: ${Math.round(rate).toLocaleString('en-US')} rows/s (50,000 rows, batch_size ${batch})`,
    );
  }
  for (const [name, us] of Object.entries(await hookCost())) {
    console.log(`hook cost, ${name}: ${us.toFixed(2)} µs per request`);
  }
} finally {
  rmSync(dir, { recursive: true, force: true });
}
