/**
 * The standalone dashboard server, for a gateway run on its own (`express-ai-gateway serve` starts it on
 * `analytics.dashboard_port` when analytics is enabled). It serves the dashboard and the read-only admin
 * routes it builds on (/stats, /stats/timeseries, /stats/recent, /metrics, /health), never the chat
 * routes, so the port can be exposed to operators without exposing the gateway. Admin keys guard it exactly
 * as on the router.
 */
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import express from 'express';
import type { Gateway } from '../gateway.js';
import { adminAuth } from '../middlewares/auth.js';
import { errorHandler } from '../middlewares/error-handler.js';
import { metrics } from '../middlewares/metrics.js';
import { writeJson } from '../middlewares/respond.js';
import { stats } from '../middlewares/stats.js';
import { statsRecent } from '../middlewares/stats-recent.js';
import { createExpressServer } from '../express-server.js';
import { hardenServer } from '../server-timeouts.js';
import { dashboard, dashboardCredentials, type DashboardOptions } from './index.js';

export interface DashboardServerOptions extends DashboardOptions {
  /** Default: `analytics.dashboard_port` (8080). 0 picks a free port. */
  port?: number;
  /** Address to bind; default 127.0.0.1 (the figures are for operators, not the network at large). */
  host?: string;
}

export interface DashboardServer {
  readonly server: http.Server;
  readonly port: number;
  /** Origin, e.g. `http://127.0.0.1:8080`. */
  readonly origin: string;
  /** The page itself: `<origin>/dashboard`. */
  readonly url: string;
  close(): Promise<void>;
}

export function dashboardApp(gateway: Gateway, options: DashboardOptions = {}): express.Express {
  const app = express();
  app.disable('x-powered-by');
  app.use('/dashboard', dashboardCredentials());
  app.use(['/stats', '/metrics', '/dashboard'], adminAuth(gateway));
  app.get('/', (_req, res) => res.redirect(302, '/dashboard'));
  app.get('/health', (_req, res) => writeJson(res, 200, gateway.health(), {}));
  app.get('/stats', stats(gateway));
  app.get('/stats/timeseries', stats(gateway, { timeseries: true }));
  app.get('/stats/recent', statsRecent(gateway));
  app.get('/metrics', metrics(gateway));
  app.use('/dashboard', dashboard(gateway, options));
  app.use(errorHandler({ logger: gateway.logger }));
  return app;
}

/** Starts the dashboard on its own port; resolves once it listens. `close()` stops it (not the gateway). */
export async function startDashboardServer(
  gateway: Gateway,
  options: DashboardServerOptions = {},
): Promise<DashboardServer> {
  const port = options.port ?? gateway.runtime.config.analytics.dashboardPort;
  const host = options.host ?? '127.0.0.1';
  const server = hardenServer(createExpressServer(dashboardApp(gateway, options)));
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => {
      server.off('error', reject);
      resolve();
    });
  });
  const bound = (server.address() as AddressInfo).port;
  const hostPart = host.includes(':') ? `[${host}]` : host;
  const origin = `http://${hostPart}:${bound}`;
  return {
    server,
    port: bound,
    origin,
    url: `${origin}/dashboard`,
    close: () =>
      new Promise<void>((resolve) => {
        // The page polls with keep-alive; idle sockets must not hold the close open, nor, for long, busy ones.
        const force = setTimeout(() => server.closeAllConnections(), 2000);
        force.unref();
        server.close(() => {
          clearTimeout(force);
          resolve();
        });
        server.closeIdleConnections();
      }),
  };
}
