/**
 * The usage dashboard: the page and its assets over HTTP (same-host URLs only, admin key through ?key= and
 * the session cookie, the standalone server), then end to end in headless Chromium against the OpenAI fake:
 * the tiles and the latest-requests table show the workload, follow new traffic without a reload, degrade
 * visibly without analytics, and look right at 1280 and 390 px, light and dark (screenshots in
 * test/artifacts/).
 */
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Browser, Page } from 'playwright-core';
import request from 'supertest';
import { DASHBOARD_COOKIE } from '../lib/dashboard/index.js';
import { startDashboardServer } from '../lib/dashboard/server.js';
import type { Gateway } from '../lib/gateway.js';
import { silentLogger } from '../lib/logger.js';
import { startFakeOpenAI } from '../lib/testing/fake-openai.js';
import type { FakeProvider } from '../lib/testing/fake-server.js';
import type { GatewayFileConfig } from '../types/index.js';
import { RECENT_FIELDS } from './helpers/analytics.js';
import { launchChromium, requireChromium } from './helpers/browser.js';
import { spawnTs } from './helpers/spawn.js';
import { hostApp } from './helpers/setup.js';

// The callbacks given to page.evaluate() run in the page; the project compiles without the DOM library.
declare const document: any;
declare const window: any;
declare function getComputedStyle(element: unknown): any;

const ADMIN = 'admin-dashboard-key-0123456789abcdef';
const MODEL = 'gpt-4o-mini';
const ARTIFACTS = join(import.meta.dirname, 'artifacts');

function config(fake: FakeProvider, dbPath: string | undefined, admin = true): GatewayFileConfig {
  return {
    providers: {
      openai: { api_key: 'test-key', base_url: fake.baseUrl, models: [MODEL], max_retries: 0 },
    },
    analytics: dbPath
      ? { enabled: true, storage: 'sqlite', sqlite_path: dbPath, flush_interval_ms: 100 }
      : { enabled: false },
    ...(admin ? { auth: { admin_keys: [ADMIN] } } : {}),
  };
}

async function listen(app: http.RequestListener): Promise<{ server: http.Server; base: string }> {
  const server = http.createServer(app);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return { server, base: `http://127.0.0.1:${(server.address() as AddressInfo).port}` };
}

function close(server: http.Server): Promise<void> {
  server.closeAllConnections();
  return new Promise((resolve) => server.close(() => resolve()));
}

let seq = 0;

/** One chat request; the text is new each time (the memory cache would answer a repeat) unless given. */
async function chat(
  base: string,
  user: string,
  stream = false,
  text = `hello from ${user} #${++seq}`,
): Promise<number> {
  const res = await fetch(`${base}/ai/chat${stream ? '/stream' : ''}`, {
    method: 'POST',
    headers: { 'Content-Type': 'application/json', 'X-User-Id': user },
    body: JSON.stringify({ model: MODEL, messages: [{ role: 'user', content: text }] }),
  });
  await res.text();
  return res.status;
}

/** Every src/href the page loads over the network (`data:` URLs are inline). */
function assetUrls(html: string): string[] {
  return [...html.matchAll(/\b(?:src|href)="([^"]*)"/g)]
    .map((m) => m[1]!)
    .filter((u) => !u.startsWith('data:'));
}

describe('dashboard', function () {
  this.timeout(30_000);
  let fake: FakeProvider;
  let dir: string;

  before(async () => {
    fake = await startFakeOpenAI();
    dir = mkdtempSync(join(tmpdir(), 'gw-dashboard-'));
  });
  after(async () => {
    await fake.close();
    rmSync(dir, { recursive: true, force: true });
  });

  describe('over HTTP', () => {
    let gateway: Gateway;
    let app: ReturnType<typeof hostApp>['app'];

    before(() => {
      ({ app, gateway } = hostApp({ ...config(fake, join(dir, 'http.db')), logger: silentLogger }));
    });
    after(() => gateway.close());

    it('serves the page and assets from this host only, under a strict CSP', async () => {
      const page = await request(app)
        .get('/ai/dashboard')
        .set('Authorization', `Bearer ${ADMIN}`)
        .expect(200);
      assert.match(String(page.headers['content-type']), /^text\/html/);
      assert.match(String(page.headers['content-security-policy']), /default-src 'none'; script-src 'self'/);
      const urls = assetUrls(page.text);
      assert.deepEqual(urls.sort(), [
        'dashboard/assets/app.js',
        'dashboard/assets/chart.umd.js',
        'dashboard/assets/style.css',
      ]);
      for (const url of urls) {
        assert.doesNotMatch(url, /^(?:[a-z]+:|\/\/)/i, `${url} must be relative to the page`);
        const asset = await request(app).get(`/ai/${url}`).set('x-api-key', ADMIN).expect(200);
        assert.match(
          String(asset.headers['content-type']),
          url.endsWith('.css') ? /^text\/css/ : /^text\/javascript/,
        );
        assert.ok(asset.text.length > 500, `${url} is empty`);
      }
      // From /ai/dashboard/ the same assets are one level down.
      const slash = await request(app).get('/ai/dashboard/').set('x-api-key', ADMIN).expect(200);
      assert.ok(
        assetUrls(slash.text).every((u) => u.startsWith('assets/')),
        assetUrls(slash.text).join(' '),
      );
      const chartJs = await request(app).get('/ai/dashboard/assets/chart.umd.js').set('x-api-key', ADMIN);
      assert.match(chartJs.text.slice(0, 200), /Chart\.js v4/);
    });

    it('is guarded: ?key= becomes an HttpOnly session cookie that only the dashboard honours', async () => {
      await request(app).get('/ai/dashboard').expect(401);
      await request(app).get('/ai/dashboard/api/overview').expect(401);
      await request(app).get('/ai/dashboard/assets/app.js').expect(401);
      const wrong = await request(app).get('/ai/dashboard?key=not-the-admin-key-0123456789').expect(401);
      assert.equal(wrong.headers['set-cookie'], undefined);

      const entry = await request(app).get(`/ai/dashboard?period=7d&key=${ADMIN}`).expect(303);
      assert.equal(entry.headers.location, '/ai/dashboard?period=7d');
      const setCookie = String(entry.headers['set-cookie']);
      assert.match(setCookie, new RegExp(`^${DASHBOARD_COOKIE}=`));
      assert.match(setCookie, /Path=\/ai\/dashboard; HttpOnly; SameSite=Strict/);
      const cookie = setCookie.split(';')[0]!;

      await request(app).get('/ai/dashboard').set('Cookie', cookie).expect(200);
      const overview = await request(app).get('/ai/dashboard/api/overview').set('Cookie', cookie).expect(200);
      assert.equal(overview.body.enabled, true);
      // The cookie is not a general admin credential.
      await request(app).get('/ai/stats').set('Cookie', cookie).expect(401);
    });

    it('answers the overview with summary, timeseries, health and latest requests; rejects a bad period', async () => {
      assert.equal(await chat(await base(), 'carol'), 200);
      const r = await request(app)
        .get('/ai/dashboard/api/overview?period=1h')
        .set('x-api-key', ADMIN)
        .expect(200);
      assert.equal(r.headers['cache-control'], 'no-store');
      assert.equal(r.body.period, '1h');
      assert.equal(r.body.summary.total_requests, 1);
      assert.equal(r.body.timeseries.points.length > 50, true);
      assert.equal(r.body.recent.length, 1);
      // Exactly these fields: ids, counts, timings and flags (anything else could be content or a secret).
      assert.deepEqual(Object.keys(r.body.recent[0]).sort(), RECENT_FIELDS);
      assert.deepEqual(
        [r.body.recent[0].user, r.body.recent[0].provider, r.body.recent[0].status],
        ['carol', 'openai', 200],
      );
      assert.deepEqual(
        r.body.health.map((p: any) => [p.name, p.circuit.state, p.keys_active, p.keys_total]),
        [['openai', 'closed', 1, 1]],
      );
      assert.ok(!JSON.stringify(r.body).includes('hello from'), 'no message content in the overview');
      const bad = await request(app)
        .get('/ai/dashboard/api/overview?period=2y')
        .set('x-api-key', ADMIN)
        .expect(400);
      assert.match(bad.body.error.message, /period: must be one of 1h, 24h, 7d, 30d/);
    });

    let listening: { server: http.Server; base: string } | undefined;
    async function base() {
      listening ??= await listen(app);
      return listening.base;
    }
    after(async () => {
      if (listening) await close(listening.server);
    });
  });

  describe('standalone server', () => {
    it('serves the page, /stats and /health on its own port, and no chat route', async () => {
      const { gateway } = hostApp({
        ...config(fake, join(dir, 'standalone.db'), false),
        logger: silentLogger,
      });
      const dash = await startDashboardServer(gateway, { port: 0 });
      try {
        assert.notEqual(dash.port, 0);
        await gateway.chat({ model: MODEL, messages: [{ role: 'user', content: 'one' }] }, { user: 'dora' });
        await gateway.chat({ model: MODEL, messages: [{ role: 'user', content: 'two' }] }, { user: 'dora' });
        const page = await fetch(dash.url);
        assert.equal(page.status, 200);
        assert.match(await page.text(), /data-testid="tile-requests"/);
        const root = await fetch(`${dash.origin}/`, { redirect: 'manual' });
        assert.equal(root.headers.get('location'), '/dashboard');
        const stats = (await (await fetch(`${dash.origin}/stats?period=1h`)).json()) as any;
        assert.equal(stats.total_requests, 2);
        assert.deepEqual(
          stats.by_user.map((u: any) => [u.name, u.requests]),
          [['dora', 2]],
        );
        const ts = (await (await fetch(`${dash.origin}/stats/timeseries?period=1h`)).json()) as any;
        assert.equal(
          ts.points.reduce((n: number, p: any) => n + p.requests, 0),
          2,
        );
        const recent = (await (await fetch(`${dash.origin}/stats/recent?limit=5`)).json()) as any;
        assert.deepEqual(
          recent.requests.map((r: any) => r.user),
          ['dora', 'dora'],
        );
        const health = (await (await fetch(`${dash.origin}/health`)).json()) as any;
        assert.equal(health.providers[0].name, 'openai');
        const chatRoute = await fetch(`${dash.origin}/chat`, { method: 'POST', body: '{}' });
        assert.equal(chatRoute.status, 404);
      } finally {
        await dash.close();
        await gateway.close();
      }
      assert.equal(dash.server.listening, false);
    });

    it('is guarded by admin keys like the router', async () => {
      const { gateway } = hostApp({ ...config(fake, join(dir, 'guarded.db')), logger: silentLogger });
      const dash = await startDashboardServer(gateway, { port: 0 });
      try {
        assert.equal((await fetch(`${dash.origin}/stats`)).status, 401);
        assert.equal((await fetch(`${dash.origin}/stats/recent`)).status, 401);
        assert.equal((await fetch(dash.url)).status, 401);
        const ok = await fetch(`${dash.origin}/stats`, { headers: { Authorization: `Bearer ${ADMIN}` } });
        assert.equal(ok.status, 200);
      } finally {
        await dash.close();
        await gateway.close();
      }
    });
  });

  describe('CLI', () => {
    it('serve starts the standalone dashboard when analytics is on, prints it, and closes it on SIGTERM', async () => {
      const file = join(dir, 'cli.yaml');
      writeFileSync(
        file,
        `providers:
  openai:
    api_key: test-key
    base_url: "${fake.baseUrl}"
    models: ["${MODEL}"]
analytics:
  enabled: true
  sqlite_path: "${join(dir, 'cli.db').replaceAll('\\', '/')}"
  dashboard_port: 0
`,
      );
      const child = spawnTs('lib/cli.ts', ['serve', '--config', file, '--port', '0']);
      try {
        const [, url] = await child.waitFor(/standalone: (http:\/\/\S+\/dashboard)/);
        const page = await fetch(url!);
        assert.equal(page.status, 200);
        assert.match(await page.text(), /data-testid="tile-requests"/);
        child.kill('SIGTERM');
        assert.equal(await child.exited, 0);
        await assert.rejects(fetch(url!), 'the dashboard port is closed after shutdown');
      } finally {
        child.kill('SIGKILL');
      }
    });
  });

  describe('in a browser', function () {
    let browser: Browser;
    let gateway: Gateway;
    let listening: { server: http.Server; base: string };
    let page: Page;
    const offHost: string[] = [];
    const problems: string[] = [];

    before(async function () {
      await requireChromium(this);
      mkdirSync(ARTIFACTS, { recursive: true });
      const host = hostApp({ ...config(fake, join(dir, 'browser.db')), logger: silentLogger });
      gateway = host.gateway;
      listening = await listen(host.app);
      browser = await launchChromium();
      page = await browser.newPage({ viewport: { width: 1280, height: 900 } });
      page.on('request', (r) => {
        if (!r.url().startsWith(`${listening.base}/`)) offHost.push(r.url());
      });
      page.on('response', (r) => {
        if (r.status() >= 400) problems.push(`HTTP ${r.status()} for ${r.url()}`);
      });
      page.on('pageerror', (e) => problems.push(`pageerror: ${e.message}`));
      page.on('console', (m) => {
        if (m.type() === 'error' || m.type() === 'warning') problems.push(`console ${m.type()}: ${m.text()}`);
      });
    });
    after(async () => {
      await browser?.close();
      if (listening) await close(listening.server);
      await gateway?.close();
    });

    async function tileText(name: string): Promise<string> {
      return (await page.locator(`[data-testid="tile-${name}"] .value`).textContent())!.trim();
    }

    /** The latest-requests table as the page shows it, top to bottom. */
    async function latestRows() {
      return page.$$eval('[data-testid="latest-requests"] [data-testid="latest-row"]', (rows: any[]) =>
        rows.map((tr) => ({
          time: tr.getAttribute('data-time') as string,
          user: tr.children[1].textContent as string,
          status: tr.querySelector('[data-testid="latest-status"]').textContent as string,
          hit: tr.querySelector('[data-testid="badge-cache-hit"]')?.textContent ?? null,
          stream: tr.querySelector('[data-testid="badge-stream"]') !== null,
        })),
      );
    }

    async function waitForTile(name: string, text: string, timeout = 10_000): Promise<void> {
      await page.waitForFunction(
        ([n, t]) => document.querySelector(`[data-testid="tile-${n}"] .value`)?.textContent?.trim() === t,
        [name, text] as const,
        { timeout },
      );
    }

    it('shows the workload in the tiles and follows new traffic without a reload', async () => {
      const base = listening.base;
      // 4 answers, 1 cache hit, 1 stream, 1 upstream error: 7 requests, 1 error, 1 hit.
      for (const user of ['alice', 'alice', 'bob', 'bob']) assert.equal(await chat(base, user), 200);
      assert.equal(await chat(base, 'bob', false, 'a question asked twice'), 200);
      assert.equal(await chat(base, 'bob', false, 'a question asked twice'), 200);
      assert.equal(await chat(base, 'bob', true), 200);
      fake.fault({ status: 500, times: 1 });
      const failed = await fetch(`${base}/ai/chat`, {
        method: 'POST',
        headers: { 'Content-Type': 'application/json', 'X-User-Id': 'alice' },
        body: JSON.stringify({ model: MODEL, messages: [{ role: 'user', content: 'this one fails' }] }),
      });
      assert.ok(failed.status >= 500, `upstream error: ${failed.status}`);
      // The error kind the client was told is what the table must show for this request.
      const failedKind = ((await failed.json()) as any).error.type as string;
      assert.match(failedKind, /^[a-z_]+$/);

      await page.goto(`${base}/ai/dashboard?key=${ADMIN}`);
      // The key left the address bar; the session cookie carries it from here on.
      assert.equal(new URL(page.url()).search, '');
      await waitForTile('requests', '8');
      assert.equal(await tileText('error-rate'), '12.5%');
      assert.equal(Number(await page.getAttribute('[data-testid="tile-error-rate"]', 'data-value')), 1 / 8);
      assert.equal(await tileText('cache-hit-rate'), '12.5%');
      assert.ok(Number(await page.getAttribute('[data-testid="tile-cost-saved"]', 'data-value')) > 0);
      assert.match(await tileText('cost'), /^\$\d/);
      assert.match(await tileText('latency-p95'), /^\d+ ms$|^\d+\.\d\d s$/);
      assert.equal(await page.locator('[data-testid="circuit-openai"]').textContent(), 'closed');
      const users = await page.locator('#by-user tbody tr td:first-child').allTextContents();
      assert.deepEqual(users.sort(), ['alice', 'bob']);
      assert.equal(await page.locator('#banner').isVisible(), false);
      const charts = await page.evaluate(() => document.querySelectorAll('canvas').length);
      assert.equal(charts, 4);

      // One row per request sent, newest first: the failure, the stream, the cache hit, then the rest.
      const latest = await latestRows();
      assert.equal(latest.length, 8);
      assert.deepEqual(
        latest.map((r) => r.user),
        ['alice', 'bob', 'bob', 'bob', 'bob', 'bob', 'alice', 'alice'],
      );
      const times = latest.map((r) => Date.parse(r.time));
      assert.deepEqual(
        times,
        [...times].sort((a, b) => b - a),
        'newest first',
      );
      assert.equal(latest[0]!.status, `${failed.status} ${failedKind}`);
      assert.deepEqual(
        latest.map((r) => r.stream),
        [false, true, false, false, false, false, false, false],
      );
      assert.deepEqual(
        latest.map((r) => r.hit),
        [null, null, 'HIT', null, null, null, null, null],
      );
      assert.deepEqual(
        latest.slice(1).map((r) => r.status),
        Array(7).fill('200'),
      );

      // Same document throughout: a marker set now survives only if nothing reloads the page.
      await page.evaluate(() => ((window as any).__sameDocument = true));
      for (const user of ['carol', 'carol', 'dave']) assert.equal(await chat(base, user), 200);
      await waitForTile('requests', '11');
      await waitForTile('error-rate', '9.1%', 5000);
      assert.equal(await page.evaluate(() => (window as any).__sameDocument), true);
      const users2 = await page.locator('#by-user tbody tr td:first-child').allTextContents();
      assert.deepEqual(users2.sort(), ['alice', 'bob', 'carol', 'dave']);
      // The table follows too, in the same document: three new rows on top.
      await page.waitForFunction(
        () => document.querySelectorAll('[data-testid="latest-row"]').length === 11,
        undefined,
        { timeout: 5000 },
      );
      const latest2 = await latestRows();
      assert.deepEqual(
        latest2.slice(0, 4).map((r) => r.user),
        ['dave', 'carol', 'carol', 'alice'],
      );
      assert.equal(latest2[3]!.status, `${failed.status} ${failedKind}`);
    });

    it('switches period without a reload', async () => {
      await page.click('button[data-period="1h"]');
      await page.waitForFunction(
        () => document.querySelector('[data-period="1h"]')?.getAttribute('aria-pressed') === 'true',
      );
      // 1h has one-minute buckets: 60 or 61 labels on the requests chart.
      await page.waitForFunction(() => {
        const chart = (window as any).Chart?.getChart(document.getElementById('chart-requests'));
        return chart && chart.data.labels.length >= 60;
      });
      assert.equal(await tileText('requests'), '11');
      // The latest requests do not depend on the period: still all 11.
      assert.equal(await page.locator('[data-testid="latest-row"]').count(), 11);
      await page.click('button[data-period="24h"]');
      await page.waitForFunction(() => {
        const chart = (window as any).Chart?.getChart(document.getElementById('chart-requests'));
        return chart && chart.data.labels.length <= 25;
      });
    });

    it('looks right at 1280 and 390 px, light and dark (screenshots)', async () => {
      for (const scheme of ['light', 'dark'] as const) {
        await page.emulateMedia({ colorScheme: scheme });
        for (const width of [1280, 390]) {
          await page.setViewportSize({ width, height: width === 390 ? 844 : 900 });
          // Let Chart.js's resize observer repaint at the new width.
          await page.waitForTimeout(300);
          const overflow = await page.evaluate(
            () => document.documentElement.scrollWidth - window.innerWidth,
          );
          assert.ok(overflow <= 0, `${width}px ${scheme}: the page scrolls sideways by ${overflow}px`);
          // The latest-requests table hides columns on a phone instead of scrolling inside its panel.
          const tableOverflow = await page.evaluate(() => {
            const wrap = document.querySelector('[data-testid="latest-requests"]').parentElement;
            return wrap.scrollWidth - wrap.clientWidth;
          });
          assert.ok(tableOverflow <= 0, `${width}px ${scheme}: latest requests scroll by ${tableOverflow}px`);
          const bg = await page.evaluate(() => getComputedStyle(document.body).backgroundColor);
          const red = Number(/(\d+)/.exec(bg)?.[1]);
          assert.equal(red < 100, scheme === 'dark', `${scheme}: background ${bg}`);
          await page.screenshot({
            path: join(ARTIFACTS, `dashboard-${width}-${scheme}.png`),
            fullPage: true,
          });
        }
      }
      await page.emulateMedia({ colorScheme: 'light' });
      await page.setViewportSize({ width: 1280, height: 900 });
    });

    it('loaded nothing from another host and logged no errors', () => {
      assert.deepEqual(offHost, []);
      assert.deepEqual(problems, []);
    });

    it('says clearly that analytics is disabled instead of drawing empty charts', async () => {
      const host = hostApp({ ...config(fake, undefined, false), logger: silentLogger });
      const off = await listen(host.app);
      const tab = await browser.newPage({ viewport: { width: 1280, height: 800 } });
      try {
        await tab.goto(`${off.base}/ai/dashboard`);
        await tab.waitForSelector('#banner[data-state="disabled"]', { state: 'visible', timeout: 10_000 });
        assert.match((await tab.locator('#banner-message').textContent())!, /analytics\.enabled: true/);
        assert.equal(await tab.locator('#analytics').isVisible(), false);
        // Provider health does not need analytics and stays.
        assert.equal(await tab.locator('[data-testid="circuit-openai"]').textContent(), 'closed');
        await tab.screenshot({ path: join(ARTIFACTS, 'dashboard-disabled.png'), fullPage: true });
      } finally {
        await tab.close();
        await close(off.server);
        await host.gateway.close();
      }
    });
  });
});
