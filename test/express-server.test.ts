import assert from 'node:assert/strict';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import express from 'express';
import { createExpressServer, createGatewayRouter, Gateway, silentLogger } from '../lib/index.js';
import { startFakeOpenAI, type FakeProvider } from '../lib/testing/index.js';
import { spawnTs } from './helpers/spawn.js';

async function listen(server: http.Server): Promise<string> {
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
}

async function close(server: http.Server): Promise<void> {
  server.closeAllConnections();
  await new Promise<void>((resolve) => server.close(() => resolve()));
}

describe('createExpressServer()', () => {
  let server: http.Server | undefined;
  let fake: FakeProvider | undefined;
  let gateway: Gateway | undefined;
  afterEach(async () => {
    if (server) await close(server);
    await gateway?.close();
    await fake?.close();
    server = fake = gateway = undefined;
  });

  it("constructs req and res with the application's prototypes, so that Express' own swap changes nothing", async () => {
    const app = express();
    const seen: { beforeExpress?: object; inHandler?: object; resInHandler?: object } = {};
    app.get('/', (req, res) => {
      seen.inHandler = Object.getPrototypeOf(req) as object;
      seen.resInHandler = Object.getPrototypeOf(res) as object;
      res.end('ok');
    });
    server = createExpressServer(app);
    // Runs before the application's own 'request' listener, i.e. before app.handle() swaps anything.
    server.prependListener('request', (req) => {
      seen.beforeExpress = Object.getPrototypeOf(req) as object;
    });
    const base = await listen(server);
    assert.equal(await (await fetch(base)).text(), 'ok');
    const prototypes = app as unknown as { request: object; response: object };
    assert.equal(seen.beforeExpress, prototypes.request);
    assert.equal(seen.inHandler, prototypes.request);
    assert.equal(seen.resInHandler, prototypes.response);
  });

  it("keeps Express' request and response API: req.app, req.get, req.query, params in a Router, res.status().json(), error handlers", async () => {
    const app = express();
    app.set('title', 'the host');
    const router = express.Router();
    router.get('/items/:id', (req, res) => {
      res.status(201).json({
        id: req.params.id,
        q: req.query.q,
        ua: req.get('x-test'),
        title: (req.app as express.Express).get('title'),
        isExpressReq: req instanceof http.IncomingMessage,
      });
    });
    router.get('/fail', () => {
      throw new Error('boom');
    });
    app.use('/api', router);
    app.use(((err, _req, res, _next) => {
      res.status(500).json({ caught: (err as Error).message });
    }) as express.ErrorRequestHandler);
    server = createExpressServer(app);
    const base = await listen(server);

    const ok = await fetch(`${base}/api/items/42?q=lamp`, { headers: { 'x-test': 'yes' } });
    assert.equal(ok.status, 201);
    assert.match(ok.headers.get('content-type') ?? '', /application\/json/);
    assert.deepEqual(await ok.json(), {
      id: '42',
      q: 'lamp',
      ua: 'yes',
      title: 'the host',
      isExpressReq: true,
    });

    const failed = await fetch(`${base}/api/fail`);
    assert.equal(failed.status, 500);
    assert.deepEqual(await failed.json(), { caught: 'boom' });

    const missing = await fetch(`${base}/nowhere`);
    assert.equal(missing.status, 404);
  });

  it('serves the gateway router mounted in the application', async () => {
    fake = await startFakeOpenAI();
    gateway = new Gateway(
      {
        providers: {
          openai: {
            api_key: fake.apiKeys[0]!,
            base_url: fake.baseUrl,
            models: ['gpt-4o-mini'],
            max_retries: 0,
          },
        },
        analytics: { enabled: false },
      },
      { logger: silentLogger },
    );
    const app = express();
    app.use('/ai', createGatewayRouter(gateway));
    server = createExpressServer(app);
    const base = await listen(server);
    const response = await fetch(`${base}/ai/chat`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'Say hello.' }] }),
    });
    assert.equal(response.status, 200);
    const body = (await response.json()) as { provider: string; content: string };
    assert.equal(body.provider, 'openai');
    assert.ok(body.content.length > 0);
    assert.ok(response.headers.get('x-request-id'));
  });

  it('reuses its classes for a second server of the same application, and leaves node options in place', async () => {
    const app = express();
    app.get('/', (_req, res) => res.end('ok'));
    const first = createExpressServer(app);
    const requestPrototype = (app as unknown as { request: object }).request;
    server = createExpressServer(app, { maxHeaderSize: 4096 });
    assert.equal((app as unknown as { request: object }).request, requestPrototype);
    const base = await listen(server);
    const tooLarge = await new Promise<number>((resolve, reject) => {
      const req = http.get(`${base}/`, { headers: { 'x-big': 'y'.repeat(8000) } }, (res) => {
        res.resume();
        resolve(res.statusCode ?? 0);
      });
      req.on('error', reject);
    });
    assert.equal(tooLarge, 431);
    assert.equal(await (await fetch(base)).text(), 'ok');
    first.close();
  });

  it('refuses what is not an Express application, saying what to pass', () => {
    assert.throws(
      () => createExpressServer(express.Router() as unknown as express.Express),
      /needs an Express application \(`express\(\)`\); for a Router, mount it in one/,
    );
  });

  it('gives every request the same hidden classes, where a plain server on Node 20 and 22 gives each its own', async function () {
    this.timeout(30_000);
    const child = spawnTs('test/fixtures/hidden-classes.ts');
    assert.equal(await child.exited, 0, child.output());
    const line = child.output().trim().split('\n').pop()!;
    const result = JSON.parse(line) as {
      v8: string;
      package: { counted: number; reqShared: number; resShared: number };
      plain: { counted: number; reqShared: number; resShared: number };
    };
    assert.equal(result.package.reqShared, result.package.counted, line);
    assert.equal(result.package.resShared, result.package.counted, line);
    // What the server avoids: V8 before 13 (Node 20 and 22) gives every request's objects their own.
    if (Number(result.v8.split('.')[0]) < 13) {
      assert.equal(result.plain.reqShared, 0, line);
      assert.equal(result.plain.resShared, 0, line);
    }
  });
});
