/**
 * `npm run bench:soak`: steady load on the gateway's default pipeline for a while, sampling the gateway
 * process' memory, to show that it stays flat: the cache within its cap, analytics rows flushed rather than
 * piling up, breaker and limiter state bounded even with a new user on every request (idle limiter keys
 * are dropped).
 *
 * Environment: SOAK_SECONDS (default 600), SOAK_SAMPLE_SECONDS (default 10), SOAK_CONNECTIONS (default 16),
 * SOAK_CACHE_MB (the cache cap, default 16: small enough to be reached and held during the run).
 * Each sample also reports the cache's bytes and entries (against the cap), the analytics rows waiting in
 * the buffer and any dropped, and the limiter's keys.
 * Heap figures are taken after a forced full GC (the gateway runs with --expose-gc), so they show what is
 * really kept alive rather than garbage not yet collected.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { CORE_LOAD, CORE_UNDER_TEST, RESULTS_DIR, pinSelf, startServer } from './common.js';
import { load } from './load.js';

const SECONDS = Number(process.env.SOAK_SECONDS ?? 600);
const SAMPLE = Number(process.env.SOAK_SAMPLE_SECONDS ?? 10);
const CONNECTIONS = Number(process.env.SOAK_CONNECTIONS ?? 16);
const CACHE_MB = process.env.SOAK_CACHE_MB ?? '16';
const MB = 1024 * 1024;

interface Sample {
  t: number;
  rssMb: number;
  heapUsedMb: number;
  heapTotalMb: number;
  externalMb: number;
  limiterKeys?: number;
  cacheMb?: number;
  cacheEntries?: number;
  analyticsBuffered?: number;
  analyticsDropped?: number;
  /** Times a request blocked for the analytics writer so far (its backlog past the threshold). */
  analyticsBackpressureWaits?: number;
  requests: number;
}

interface HostState {
  limiterKeys?: number;
  cacheBytes?: number;
  cacheEntries?: number;
  analyticsBuffered?: number;
  analyticsWritten?: number;
  analyticsDropped?: number;
  analyticsBackpressureWaits?: number;
}

async function main(): Promise<void> {
  pinSelf(CORE_LOAD);
  const upstream = await startServer('upstream', 'upstream.ts', { core: CORE_LOAD });
  const gateway = await startServer('gateway', 'gateway-host.ts', {
    env: { UPSTREAM_PORT: String(upstream.port), BENCH_CACHE_MB: CACHE_MB },
    core: CORE_UNDER_TEST,
    nodeArgs: ['--expose-gc'],
  });
  const started = Date.now();
  const samples: Sample[] = [];
  let served = 0;
  let failed = 0;
  const sample = async () => {
    const m = await gateway.ask<NodeJS.MemoryUsage & { state?: HostState }>('memory');
    const s: Sample = {
      t: Math.round((Date.now() - started) / 1000),
      rssMb: Math.round((m.rss / MB) * 10) / 10,
      heapUsedMb: Math.round((m.heapUsed / MB) * 10) / 10,
      heapTotalMb: Math.round((m.heapTotal / MB) * 10) / 10,
      externalMb: Math.round((m.external / MB) * 10) / 10,
      limiterKeys: m.state?.limiterKeys,
      cacheMb:
        m.state?.cacheBytes === undefined ? undefined : Math.round((m.state.cacheBytes / MB) * 10) / 10,
      cacheEntries: m.state?.cacheEntries,
      analyticsBuffered: m.state?.analyticsBuffered,
      analyticsDropped: m.state?.analyticsDropped,
      analyticsBackpressureWaits: m.state?.analyticsBackpressureWaits,
      requests: served,
    };
    samples.push(s);
    console.log(JSON.stringify(s));
  };
  console.log(`soak: ${SECONDS}s at ${CONNECTIONS} connections, every request distinct and from a new user`);
  await sample();
  // Load in slices of SAMPLE seconds with a sample between them: steady, and no sample races a request.
  while (Date.now() - started < SECONDS * 1000) {
    const r = await load({
      port: gateway.port,
      path: '/ai/chat',
      connections: CONNECTIONS,
      seconds: SAMPLE,
      unique: true,
      distinctUsers: true,
    });
    served += r.requests;
    failed += r.non2xx + r.errors;
    await sample();
  }
  await gateway.stop();
  await upstream.stop();

  const half = samples.slice(Math.floor(samples.length / 2));
  const spread = (k: keyof Sample) => {
    const v = half.map((s) => s[k] as number);
    return Math.round((Math.max(...v) - Math.min(...v)) * 10) / 10;
  };
  const summary = {
    date: new Date().toISOString(),
    seconds: SECONDS,
    connections: CONNECTIONS,
    cacheCapMb: Number(CACHE_MB),
    served,
    failed,
    secondHalfSpreadMb: { rss: spread('rssMb'), heapUsed: spread('heapUsedMb') },
    maxCacheMb: Math.max(...samples.map((s) => s.cacheMb ?? 0)),
    maxAnalyticsBuffered: Math.max(...samples.map((s) => s.analyticsBuffered ?? 0)),
    analyticsDropped: samples.at(-1)?.analyticsDropped,
    analyticsBackpressureWaits: samples.at(-1)?.analyticsBackpressureWaits,
    samples,
  };
  console.log(JSON.stringify({ ...summary, samples: undefined }, null, 2));
  mkdirSync(RESULTS_DIR, { recursive: true });
  writeFileSync(join(RESULTS_DIR, 'soak-latest.json'), JSON.stringify(summary, null, 2));
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
