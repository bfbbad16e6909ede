/**
 * The gateway under test, mounted in a plain Express host as a user would mount it, in a process of its
 * own. Besides the default pipeline at /ai it mounts the same Gateway with shorter pipelines (what each
 * stage adds) and a plain Express route returning the gateway's JSON (the bar for a cache hit).
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import express from 'express';
import { benchServer, MODEL, reportReady } from './common.js';
import { gatewayModules } from './package-under-test.js';

const { Gateway, silentLogger, rateLimitingOf, createGatewayRouter, MemoryCacheStore } =
  await gatewayModules();

const upstreamPort = Number(process.env.UPSTREAM_PORT);
const dir = mkdtempSync(join(tmpdir(), 'gw-bench-'));
// Far above anything the bench can send in a minute: the limiter does all its work but never refuses.
const NEVER_TRIPS = 1_000_000_000;

// The same store the memory backend creates from `max_cache_size_mb`, made here so that the soak can
// read how many bytes it holds against its cap.
const cacheStore = new MemoryCacheStore({
  maxBytes: Number(process.env.BENCH_CACHE_MB ?? 64) * 1024 * 1024,
});

const gateway = new Gateway(
  {
    providers: {
      openai: {
        api_key: 'bench-key',
        base_url: `http://127.0.0.1:${upstreamPort}/v1`,
        models: [MODEL],
        max_retries: 0,
      },
    },
    rate_limiting: { global_rpm: NEVER_TRIPS, per_user_rpm: NEVER_TRIPS, per_model_rpm: NEVER_TRIPS },
    cache: { backend: 'memory', ttl_seconds: 3600 },
    analytics: { enabled: true, storage: 'sqlite', sqlite_path: join(dir, 'analytics.db') },
    middleware: ['pii_scrubber'],
    cacheStore,
  },
  { logger: silentLogger },
);

/** Stage by stage: each pipeline adds one stage to the one before. */
export const STAGE_PIPELINES: Record<string, string[]> = {
  route: ['route'],
  analytics: ['analytics', 'route'],
  ratelimit: ['analytics', 'rateLimit', 'route'],
  middleware: ['analytics', 'rateLimit', 'middleware', 'route'],
  cache: ['analytics', 'rateLimit', 'middleware', 'cache', 'route'],
  // The default pipeline minus analytics: what the hot path costs apart from the analytics writes.
  noanalytics: ['auth', 'rateLimit', 'middleware', 'cache', 'route'],
  // A cache hit stage by stage, from the cache alone up to `cache` above (which adds the middleware).
  hitcache: ['cache', 'route'],
  hitanalytics: ['analytics', 'cache', 'route'],
  hitratelimit: ['analytics', 'rateLimit', 'cache', 'route'],
};

const app = express();
app.disable('x-powered-by');
app.use('/ai', createGatewayRouter(gateway));
for (const [name, pipeline] of Object.entries(STAGE_PIPELINES)) {
  app.use(`/s/${name}`, createGatewayRouter(gateway, { pipeline }));
}

// What a cache hit answers, served by the plainest Express route: the bar a cache hit is measured against.
const plainAnswer = {
  id: 'req_00000000-0000-4000-8000-000000000000',
  provider: 'openai',
  model: MODEL,
  content:
    'A lighthouse keeper keeps the lamp burning through a night-long storm. At dawn a rescued crew rows ashore to thank him.',
  finish_reason: 'stop',
  usage: { prompt_tokens: 28, completion_tokens: 26, total_tokens: 54 },
  cost: 0.0000198,
  latency_ms: 0.12,
  cached: true,
};
app.post('/plain', express.json(), (_req, res) => {
  res.json(plainAnswer);
});

/** Best-effort view of the limiter's memory stores, for the soak (a private field: bench only). */
function limiterKeys(): number | undefined {
  const stores = (
    rateLimitingOf(gateway) as unknown as { stores?: Map<string, { store?: { size?: number } }> }
  ).stores;
  if (!stores) return undefined;
  let n = 0;
  for (const entry of stores.values()) n += entry.store?.size ?? 0;
  return n;
}

const server = benchServer(app).listen(0, '127.0.0.1', () => {
  reportReady(
    (server.address() as { port: number }).port,
    async () => {
      await new Promise<void>((r) => server.close(() => r()));
      await gateway.close();
      rmSync(dir, { recursive: true, force: true });
    },
    () => {
      const analytics = gateway.analytics.stats();
      return {
        limiterKeys: limiterKeys(),
        cacheBytes: cacheStore.bytes,
        cacheEntries: cacheStore.entries,
        analyticsBuffered: analytics.buffered,
        analyticsWritten: analytics.written,
        analyticsDropped: analytics.dropped,
        analyticsBackpressureWaits: analytics.backpressureWaits,
      };
    },
  );
});
server.keepAliveTimeout = 60_000;
