/**
 * The smallest servers that tell apart what makes young-generation garbage collection expensive in the
 * bench's hosts (see gc-promotion.ts). `GC_HOST` picks one:
 * - `node-http`: node:http alone, parsing the JSON body and answering a fixed completion;
 * - `express-router`: the same handler in an Express Router called straight from node:http;
 * - `express-app`: the same handler in an Express application, which swaps the prototypes of `req` and
 *   `res` for its own on every request;
 * - `express-app-server`: that application served by the package's `createExpressServer()`, which builds
 *   `req` and `res` with the application's prototypes so that the swap changes nothing;
 * - `node-http-axios`: node:http forwarding to the upstream with the floor's axios settings, no Express.
 *
 * Started with `--allow-natives-syntax`, the host also counts how often a request object ends its request
 * with a hidden class (V8 map) of its own instead of the one the previous request's object had.
 */
import http from 'node:http';
import express from 'express';
import { createExpressServer } from '../lib/express-server.js';
import { reportReady } from './common.js';
import { floorClient } from './floor-client.js';

const HOST = process.env.GC_HOST ?? 'node-http';
const upstream = `http://127.0.0.1:${Number(process.env.UPSTREAM_PORT)}`;
const { client, httpAgent: agent } = floorClient();
// The size of the upstream's completion, so that every host writes about the same answer.
const answer = JSON.stringify({ id: 'chatcmpl-bench', object: 'chat.completion', content: 'x'.repeat(420) });

/** `%HaveSameMap` when natives syntax is allowed; a V8 intrinsic, so it only exists in that mode. */
const sameMap = (() => {
  try {
    return new Function('a', 'b', 'return %HaveSameMap(a, b)') as (a: object, b: object) => boolean;
  } catch {
    return undefined;
  }
})();
const maps = { requests: 0, reqMapOfItsOwn: 0, resMapOfItsOwn: 0 };
/** What a host reports of hidden classes (gc-promotion.ts reads it). */
export type MapCount = typeof maps;
let previous: { req: object; res: object } | undefined;
function countMaps(req: object, res: object): void {
  if (!sameMap) return;
  maps.requests++;
  if (previous) {
    if (!sameMap(previous.req, req)) maps.reqMapOfItsOwn++;
    if (!sameMap(previous.res, res)) maps.resMapOfItsOwn++;
  }
  previous = { req, res };
}

function answerFixed(req: http.IncomingMessage, res: http.ServerResponse): void {
  const parts: Buffer[] = [];
  req.on('data', (b: Buffer) => parts.push(b));
  req.on('end', () => {
    JSON.parse(Buffer.concat(parts).toString());
    res.writeHead(200, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(answer) });
    res.end(answer);
    countMaps(req, res);
  });
}

function forward(req: http.IncomingMessage, res: http.ServerResponse): void {
  const parts: Buffer[] = [];
  req.on('data', (b: Buffer) => parts.push(b));
  req.on('end', () => {
    client
      .post<string>(`${upstream}/v1/chat/completions`, Buffer.concat(parts).toString(), {
        headers: { 'content-type': 'application/json', authorization: 'Bearer bench-key' },
        responseType: 'text',
      })
      .then((up) => {
        res.writeHead(up.status, {
          'content-type': 'application/json',
          'content-length': Buffer.byteLength(up.data),
        });
        res.end(up.data);
        countMaps(req, res);
      })
      .catch(() => {
        res.writeHead(502).end();
      });
  });
}

function expressApp(): express.Express {
  const app = express();
  app.disable('x-powered-by');
  app.post('/v1/chat/completions', (req, res) => answerFixed(req, res));
  return app;
}

function serverFor(host: string): http.Server {
  switch (host) {
    case 'node-http':
      return http.createServer(answerFixed);
    case 'node-http-axios':
      return http.createServer(forward);
    case 'express-router': {
      const router = express.Router();
      router.post('/v1/chat/completions', (req, res) => answerFixed(req, res));
      return http.createServer((req, res) =>
        router(req as express.Request, res as express.Response, () => res.writeHead(404).end()),
      );
    }
    case 'express-app':
      return http.createServer(expressApp());
    case 'express-app-server':
      return createExpressServer(expressApp());
    default:
      throw new Error(
        `GC_HOST must be node-http, express-router, express-app, express-app-server or node-http-axios, not "${host}".`,
      );
  }
}

const server = serverFor(HOST);
server.keepAliveTimeout = 60_000;
server.listen(0, '127.0.0.1', () => {
  reportReady(
    (server.address() as { port: number }).port,
    () => {
      agent.destroy();
      return new Promise((r) => server.close(() => r()));
    },
    () => (sameMap ? maps : undefined),
  );
});
