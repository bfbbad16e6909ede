/**
 * An http.Server for an Express application whose requests are born with the application's prototypes.
 *
 * Express' `app.handle()` runs `Object.setPrototypeOf(req, app.request)` (and the same for `res`) on every
 * request. On V8 before 13 (Node 20 and 22), each property added to an object after its prototype was
 * swapped gives that object a hidden class of its own. Every request then leaves a trail of one-off
 * hidden classes, the property accesses of Express, the router and the gateway on `req`/`res` never see
 * the same shape twice, and each request's objects outlive the next young-generation collection. Measured
 * on the bench (`npm run bench:gc`): ~8 KB promoted per request and 3-4 ms collection pauses for a bare
 * Express application, against nothing for the same handler in a Router.
 *
 * Here the server constructs `req` and `res` from subclasses of node's own classes whose prototypes
 * already are the application's (the subclass prototypes are placed between `app.request` and the objects,
 * and become `app.request`/`app.response`). Express' swap is then a no-op: the prototype is already the
 * one it sets. Everything Express adds to `req`/`res` is still found through the prototype chain.
 * Node 24 shares those hidden classes by itself; this changes nothing there but the construction.
 *
 * A sub-application mounted with `app.use(path, subApp)` still swaps prototypes for the requests it
 * handles; Routers (such as the gateway's) do not.
 */
import http from 'node:http';
import type { Express } from 'express';

/** What Express puts on an application, typed loosely: both are plain objects in Express 5. */
interface ExpressPrototypes {
  request: object;
  response: object;
}

/** One pair of classes per application, so that a second server for the same app reuses them. */
const classesOf = new WeakMap<
  object,
  { IncomingMessage: typeof http.IncomingMessage; ServerResponse: typeof http.ServerResponse }
>();

function classesFor(app: Express) {
  const known = classesOf.get(app);
  if (known) return known;
  const prototypes = app as unknown as ExpressPrototypes;
  if (!isObject(prototypes.request) || !isObject(prototypes.response)) {
    throw new TypeError(
      'createExpressServer(app) needs an Express application (`express()`); for a Router, mount it in one.',
    );
  }
  class ExpressRequest extends http.IncomingMessage {}
  class ExpressResponse extends http.ServerResponse {}
  Object.setPrototypeOf(ExpressRequest.prototype, prototypes.request);
  Object.setPrototypeOf(ExpressResponse.prototype, prototypes.response);
  prototypes.request = ExpressRequest.prototype;
  prototypes.response = ExpressResponse.prototype;
  // Node's typings declare ServerResponse generic over the request class; a subclass is not, hence the cast.
  const classes = {
    IncomingMessage: ExpressRequest,
    ServerResponse: ExpressResponse as typeof http.ServerResponse,
  };
  classesOf.set(app, classes);
  return classes;
}

function isObject(value: unknown): value is object {
  return typeof value === 'object' && value !== null;
}

/**
 * `http.createServer(app)`, with `req`/`res` constructed with the application's prototypes. Use it in
 * place of `app.listen()`: `createExpressServer(app).listen(port)`. `options` are node's server options;
 * `IncomingMessage` and `ServerResponse` in them are replaced.
 */
export function createExpressServer(app: Express, options: http.ServerOptions = {}): http.Server {
  return http.createServer({ ...options, ...classesFor(app) }, app);
}
