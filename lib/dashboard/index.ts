/**
 * The usage dashboard: `GET /dashboard` (one HTML page), its assets under `/dashboard/assets/`, and one
 * JSON endpoint the page polls, `/dashboard/api/overview`. It reads only public APIs
 * (`gateway.analytics.summary()`, `.timeseries()`, `.recent()`, `gateway.health()`), and is meant to sit
 * behind `adminAuth()` like /stats.
 *
 * A browser cannot put an `Authorization` header on the page request itself or on `<script src>`, so the
 * admin key reaches the guard another way: the user opens `/dashboard?key=<admin key>` once;
 * `dashboardCredentials()` (mounted *before* the guard, on /dashboard only) presents that key to the guard
 * as a Bearer token; once the guard accepts it, the page stores it in an HttpOnly, SameSite=Strict cookie
 * scoped to the dashboard's path and redirects to the same URL without the key, so the key leaves the
 * address bar and history. Later requests under /dashboard present the cookie the same way. A real
 * `Authorization` or `x-api-key` header always wins.
 */
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import express, { type Request, type RequestHandler, type Response, type Router } from 'express';
import type { AnalyticsSummary, RecentRequest, Timeseries } from '../analytics/index.js';
import { InvalidRequestError } from '../errors.js';
import type { Gateway } from '../gateway.js';
import { writeJson } from '../middlewares/respond.js';
import { APP_JS } from './client.js';
import { renderPage } from './page.js';
import { STYLE_CSS } from './style.js';

export const DASHBOARD_COOKIE = 'ai_gateway_dashboard_key';

const PERIODS = ['1h', '24h', '7d', '30d'] as const;
type DashboardPeriod = (typeof PERIODS)[number];

/** Rows in the "Latest requests" table: enough to see a burst, few enough for a phone. */
const LATEST_REQUESTS = 25;

export interface DashboardOptions {
  /** How often the page polls for fresh figures, in milliseconds; default 2000. */
  pollMs?: number;
}

/**
 * Strict: the page only runs its own script and style and only talks to its own origin, so an injected
 * string (a user id is client-controlled) could not load or send anything anywhere.
 */
const PAGE_HEADERS = {
  'Content-Type': 'text/html; charset=utf-8',
  'Cache-Control': 'no-store',
  'Content-Security-Policy':
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; " +
    "base-uri 'none'; form-action 'none'; frame-ancestors 'none'",
  'X-Content-Type-Options': 'nosniff',
  'X-Frame-Options': 'DENY',
  'Referrer-Policy': 'no-referrer',
};

let chartJs: Buffer | undefined;

/**
 * Chart.js's UMD build, read once from the installed package. Its package exports do not list the UMD
 * file, so it is found next to the package's main entry.
 */
export function chartJsSource(): Buffer {
  if (!chartJs) {
    const main = createRequire(import.meta.url).resolve('chart.js');
    chartJs = readFileSync(join(dirname(main), 'chart.umd.js'));
  }
  return chartJs;
}

function cookieValue(header: string | undefined, name: string): string | undefined {
  if (!header) return undefined;
  for (const part of header.split(';')) {
    const eq = part.indexOf('=');
    if (eq === -1 || part.slice(0, eq).trim() !== name) continue;
    try {
      return decodeURIComponent(part.slice(eq + 1).trim());
    } catch {
      return undefined;
    }
  }
  return undefined;
}

function queryKey(req: Request): string | undefined {
  const key = (req.query as Record<string, unknown>).key;
  return typeof key === 'string' && key !== '' && key.length <= 512 ? key : undefined;
}

/**
 * Mount on /dashboard before the admin guard: presents `?key=` or the dashboard cookie as a Bearer token
 * when the request carries no key header of its own. It grants nothing by itself; the guard decides.
 */
export function dashboardCredentials(): RequestHandler {
  return function dashboardCredentialsMiddleware(req, res, next) {
    if (req.headers.authorization || req.headers['x-api-key']) return next();
    const fromQuery = queryKey(req);
    const key = fromQuery ?? cookieValue(req.headers.cookie, DASHBOARD_COOKIE);
    // A key with whitespace could never be a valid Bearer token; leave it to the guard's own refusal.
    if (key !== undefined && !/\s/.test(key)) {
      req.headers.authorization = `Bearer ${key}`;
      if (fromQuery !== undefined) res.locals.dashboardQueryKey = true;
    }
    next();
  };
}

/** The page's URL without `key`, for the redirect that takes the key out of the address bar. */
function withoutKey(req: Request): string {
  const url = new URL(req.originalUrl, 'http://localhost');
  url.searchParams.delete('key');
  // Never a protocol-relative Location (`//host`), whatever the request path looked like.
  return url.pathname.replace(/^\/+/, '/') + url.search;
}

/** From the page's URL to the dashboard's root: `dashboard/` for `/ai/dashboard`, `` for `/ai/dashboard/`. */
function relativeBase(req: Request): string {
  const path = new URL(req.originalUrl, 'http://localhost').pathname;
  if (path.endsWith('/')) return '';
  const last = path.slice(path.lastIndexOf('/') + 1);
  return `${last}/`;
}

function periodOf(req: Request): DashboardPeriod {
  const raw = (req.query as Record<string, unknown>).period;
  if (raw === undefined || raw === '') return '24h';
  if (typeof raw === 'string' && (PERIODS as readonly string[]).includes(raw)) return raw as DashboardPeriod;
  throw new InvalidRequestError(`period: must be one of ${PERIODS.join(', ')}.`, 'period');
}

/** Provider health for the page: circuit state and key counts, no key fingerprints. */
function providerHealth(gateway: Gateway) {
  return gateway.health().providers.map((p) => ({
    name: p.name,
    type: p.type,
    enabled: p.enabled,
    models: p.models,
    circuit: p.circuit,
    keys_total: p.keys.length,
    keys_active: p.keys.filter((k) => k.state === 'active').length,
  }));
}

export interface DashboardOverview {
  enabled: boolean;
  generated_at: string;
  period: DashboardPeriod;
  health: ReturnType<typeof providerHealth>;
  message?: string;
  summary?: AnalyticsSummary;
  timeseries?: Timeseries;
  /** The latest requests, newest first, whatever the period (ids, counts, timings; never content). */
  recent?: RecentRequest[];
  /** The analytics writer's counters (rows buffered, written, dropped). */
  recorder?: ReturnType<Gateway['analytics']['stats']>;
}

/** Everything the page shows, in one answer, so that one poll paints one consistent picture. */
export async function dashboardOverview(
  gateway: Gateway,
  period: DashboardPeriod,
): Promise<DashboardOverview> {
  const generated_at = new Date().toISOString();
  const health = providerHealth(gateway);
  const summary = await gateway.analytics.summary({ period });
  if (!summary.enabled) return { enabled: false, generated_at, period, health, message: summary.message };
  const timeseries = await gateway.analytics.timeseries({ period });
  if (!timeseries.enabled)
    return { enabled: false, generated_at, period, health, message: timeseries.message };
  const latest = await gateway.analytics.recent({ limit: LATEST_REQUESTS });
  const recent = latest.enabled ? latest.requests : [];
  return {
    enabled: true,
    generated_at,
    period,
    health,
    summary,
    timeseries,
    recent,
    recorder: gateway.analytics.stats(),
  };
}

function sendAsset(res: Response, contentType: string, body: string | Buffer): void {
  // Revalidated on every load (cheap: Express answers 304 by ETag), so an upgrade is picked up at once.
  res.set({
    'Content-Type': contentType,
    'Cache-Control': 'private, no-cache',
    'X-Content-Type-Options': 'nosniff',
  });
  res.send(body);
}

/** The dashboard's routes; mount at `/dashboard` behind `dashboardCredentials()` and `adminAuth()`. */
export function dashboard(gateway: Gateway, options: DashboardOptions = {}): Router {
  const router = express.Router();
  const pollMs = options.pollMs ?? 2000;

  router.get('/', function dashboardPage(req, res) {
    if (res.locals.dashboardQueryKey === true) {
      // Only a key the guard accepted as an admin key becomes the session; an open gateway needs none.
      if (res.locals.gatewayAdmin === true) {
        const key = req.headers.authorization!.slice('Bearer '.length);
        const cookie = [
          `${DASHBOARD_COOKIE}=${encodeURIComponent(key)}`,
          `Path=${req.baseUrl || '/'}`,
          'HttpOnly',
          'SameSite=Strict',
          ...(req.secure ? ['Secure'] : []),
        ].join('; ');
        res.setHeader('Set-Cookie', cookie);
      }
      res.setHeader('Cache-Control', 'no-store');
      res.setHeader('Referrer-Policy', 'no-referrer');
      res.redirect(303, withoutKey(req));
      return;
    }
    res.writeHead(200, PAGE_HEADERS);
    res.end(renderPage({ base: relativeBase(req), pollMs }));
  });
  router.get('/assets/app.js', (_req, res) => sendAsset(res, 'text/javascript; charset=utf-8', APP_JS));
  router.get('/assets/style.css', (_req, res) => sendAsset(res, 'text/css; charset=utf-8', STYLE_CSS));
  router.get('/assets/chart.umd.js', (_req, res, next) => {
    let source: Buffer;
    try {
      source = chartJsSource();
    } catch (err) {
      gateway.logger.warn(
        { err: (err as Error).message },
        'Dashboard: chart.js is not installed; charts are off.',
      );
      next();
      return;
    }
    sendAsset(res, 'text/javascript; charset=utf-8', source);
  });
  router.get('/api/overview', function dashboardOverviewHandler(req, res, next) {
    let period: DashboardPeriod;
    try {
      period = periodOf(req);
    } catch (err) {
      next(err);
      return;
    }
    dashboardOverview(gateway, period).then(
      (body) => writeJson(res, 200, body, { 'Cache-Control': 'no-store' }),
      next,
    );
  });
  return router;
}
