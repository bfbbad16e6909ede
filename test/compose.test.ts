import assert from 'node:assert/strict';
import express, { type ErrorRequestHandler, type RequestHandler } from 'express';
import request from 'supertest';
import { composeMiddlewares } from '../lib/middlewares/compose.js';

/** A route of the composed handlers, a second route on the same path, and a router-level error handler. */
function appWith(handlers: (RequestHandler | ErrorRequestHandler)[]) {
  const app = express();
  app.get('/x', ...composeMiddlewares(handlers));
  app.get('/x', (_req, res) => {
    res.send('next route');
  });
  app.use(((err, _req, res, _next) => {
    res.status(500).send(`app handler: ${(err as Error).message}`);
  }) as ErrorRequestHandler);
  return app;
}

const step =
  (seen: string[], name: string): RequestHandler =>
  (_req, _res, next) => {
    seen.push(name);
    next();
  };

const routeErrors: ErrorRequestHandler = (err, _req, res, _next) => {
  res.status(400).send(`route handler: ${(err as Error).message}`);
};

describe('composeMiddlewares', () => {
  it('folds each run of ordinary middlewares into one layer and keeps error handlers in place', () => {
    const a = step([], 'a');
    const layers = composeMiddlewares([a, a, a, routeErrors, a, a]);
    assert.equal(layers.length, 3);
    assert.equal(layers[1], routeErrors);
    assert.deepEqual(composeMiddlewares([a]), [a], 'a single middleware is left as it is');
  });

  it('calls the handlers in order, each once', async () => {
    const seen: string[] = [];
    const app = appWith([
      step(seen, 'a'),
      step(seen, 'b'),
      ((_req, res) => {
        seen.push('c');
        res.send('done');
      }) as RequestHandler,
    ]);
    const r = await request(app).get('/x').expect(200);
    assert.equal(r.text, 'done');
    assert.deepEqual(seen, ['a', 'b', 'c']);
  });

  it("sends a throw, a rejected promise and next(err) to the route's own error handler", async () => {
    for (const failing of [
      () => {
        throw new Error('thrown');
      },
      async () => {
        throw new Error('rejected');
      },
      ((_req, _res, next) => next(new Error('passed'))) as RequestHandler,
    ]) {
      const seen: string[] = [];
      const app = appWith([step(seen, 'a'), failing as RequestHandler, step(seen, 'never'), routeErrors]);
      const r = await request(app).get('/x').expect(400);
      assert.match(r.text, /^route handler: (thrown|rejected|passed)$/);
      assert.deepEqual(seen, ['a']);
    }
  });

  it('gives a rejection without a reason an error of its own, as Express does', async () => {
    const app = appWith([step([], 'a'), () => Promise.reject(undefined)]);
    const r = await request(app).get('/x').expect(500);
    assert.equal(r.text, 'app handler: Rejected promise');
  });

  it("leaves the route on next('route'), skipping the rest of it", async () => {
    const seen: string[] = [];
    const app = appWith([
      step(seen, 'a'),
      ((_req, _res, next) => next('route')) as RequestHandler,
      step(seen, 'never'),
      routeErrors,
      step(seen, 'never either'),
    ]);
    const r = await request(app).get('/x').expect(200);
    assert.equal(r.text, 'next route');
    assert.deepEqual(seen, ['a']);
  });
});
