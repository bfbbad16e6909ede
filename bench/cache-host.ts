/**
 * One target of the cache bench, in a process of its own (`CACHE_BENCH_TARGET`): `plain` is an Express
 * route answering a fixed JSON body (the floor a cache hit is measured against); `memory` and `redis` are
 * the gateway router with that cache backend, everything else in its default pipeline.
 */
import express from 'express';
import { benchServer, MODEL, reportReady } from './common.js';
import { gatewayModules } from './package-under-test.js';

const { Gateway, silentLogger, createGatewayRouter, RedisCacheStore } = await gatewayModules();

const target = process.env.CACHE_BENCH_TARGET ?? 'memory';
const app = express();
let cleanup: () => Promise<void> = async () => {};

if (target === 'plain') {
  const payload = JSON.parse(process.env.CACHE_BENCH_PAYLOAD ?? '{}') as unknown;
  app.post('/plain', express.json(), (_req, res) => {
    res.json(payload);
  });
} else {
  const store =
    target === 'redis'
      ? new RedisCacheStore({
          url: process.env.CACHE_BENCH_REDIS_URL!,
          keyPrefix: `aigw-bench:${process.pid}:`,
        })
      : undefined;
  if (store) await store.ready();
  const gateway = new Gateway({
    providers: {
      openai: {
        api_key: 'bench-key',
        base_url: process.env.CACHE_BENCH_UPSTREAM!,
        models: [MODEL],
        max_retries: 0,
      },
    },
    cache: { backend: 'memory', ttl_seconds: 3600 },
    analytics: { enabled: false },
    // Cache store failures are what would make a bench request miss: show them.
    logger: { ...silentLogger, error: (obj: unknown, msg?: string) => console.error(msg, obj) },
    ...(store ? { cacheStore: store } : {}),
  });
  app.use('/ai', createGatewayRouter(gateway));
  cleanup = async () => {
    await gateway.close();
    if (store) {
      await store.clear();
      await store.close();
    }
  };
}

const server = benchServer(app).listen(0, '127.0.0.1', () => {
  const address = server.address();
  reportReady(typeof address === 'object' && address ? address.port : 0, async () => {
    server.close();
    await cleanup();
  });
});
