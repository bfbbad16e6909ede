/**
 * The gateway for `npm run bench:analytics`, in a process of its own: the same Gateway mounted with
 * pipeline ['route'] at /s/route and ['analytics', 'route'] at /s/analytics (analytics on a temporary
 * SQLite file), so that the two targets differ by the analytics stage alone. Answers `analytics`
 * messages with the recorder's stats (rows written, buffered, dropped) for the rows-per-second figure.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import express from 'express';
import { benchServer, MODEL, reportReady } from './common.js';
import { gatewayModules } from './package-under-test.js';

const { Gateway, silentLogger, createGatewayRouter } = await gatewayModules();

const upstreamPort = Number(process.env.UPSTREAM_PORT);
const dir = mkdtempSync(join(tmpdir(), 'gw-bench-analytics-'));

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
    // The defaults a user gets: batches of 100 rows, a flush at least every second.
    analytics: { enabled: true, storage: 'sqlite', sqlite_path: join(dir, 'analytics.db') },
  },
  { logger: silentLogger },
);

const app = express();
app.disable('x-powered-by');
app.use('/s/route', createGatewayRouter(gateway, { pipeline: ['route'] }));
app.use('/s/analytics', createGatewayRouter(gateway, { pipeline: ['analytics', 'route'] }));

process.on('message', (m: { type?: string }) => {
  if (m?.type === 'analytics') process.send?.({ type: 'analytics', value: gateway.analytics.stats() });
});

const server = benchServer(app).listen(0, '127.0.0.1', () => {
  reportReady((server.address() as { port: number }).port, async () => {
    await new Promise<void>((r) => server.close(() => r()));
    await gateway.close();
    rmSync(dir, { recursive: true, force: true });
  });
});
server.keepAliveTimeout = 60_000;
