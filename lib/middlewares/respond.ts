/**
 * The last stage over HTTP: writes `ctx.response` as JSON, or `ctx.streamEvents` as server-sent events in
 * the gateway's one stream format. Written with node's own response methods: Express' `res.json()` adds an
 * ETag hash and a second serialisation we do not need.
 */
import type { RequestHandler, Response } from 'express';
import type { GatewayContext } from '../context.js';
import { finishContext } from '../context.js';
import { toGatewayError } from '../errors.js';
import { sendNow, sseEvent, writeEventStreamHead } from '../sse.js';
import { contextOf } from '../stage.js';

/** Header values must be printable ASCII; anything a client or provider put in them is cleaned here. */
function headerSafe(value: string): string {
  return value.replace(/[^\x20-\x7e]/g, '?').slice(0, 1024);
}

// Header objects on the response path are built by assignment and copied with for...in. A spread of a
// non-empty object followed by more properties (`{ ...headers, 'Content-Type': ... }`) takes V8's slow
// path on Node 20: ~1.6 µs for the three of a JSON answer against ~0.1 µs this way.

/** The gateway's headers of this request; a fresh object that callers add their own headers to. */
export function gatewayHeaders(ctx: GatewayContext): Record<string, string> {
  const headers: Record<string, string> = { 'X-Request-Id': ctx.requestId };
  const fromStages = ctx.responseHeaders;
  for (const name in fromStages) headers[name] = fromStages[name]!;
  if (ctx.cacheStatus) headers['X-Gateway-Cache'] = ctx.cacheStatus;
  if (ctx.warnings.length) headers['X-Gateway-Warnings'] = headerSafe(ctx.warnings.join('; '));
  return headers;
}

export function writeJson(
  res: Response,
  status: number,
  body: unknown,
  headers: Readonly<Record<string, string>>,
): void {
  const text = JSON.stringify(body);
  const all: Record<string, string | number> = {};
  for (const name in headers) all[name] = headers[name]!;
  all['Content-Type'] = 'application/json; charset=utf-8';
  all['Content-Length'] = Buffer.byteLength(text);
  res.writeHead(status, all);
  res.end(text);
}

function drained(res: Response): Promise<void> {
  return new Promise((resolve) => {
    const done = () => {
      res.off('drain', done);
      res.off('close', done);
      resolve();
    };
    res.on('drain', done);
    res.on('close', done);
  });
}

async function writeStream(ctx: GatewayContext, res: Response): Promise<void> {
  writeEventStreamHead(res, gatewayHeaders(ctx));
  // The headers leave with the first event when it is already here (an upstream usually sends its first
  // event with its own headers): one write to the socket instead of two. When it is not, they leave at the
  // next turn of the event loop, so that the client sees the stream open while the first token is still on
  // its way.
  let headersWaiting: NodeJS.Immediate | undefined = setImmediate(() => {
    headersWaiting = undefined;
    if (!res.destroyed) res.flushHeaders();
  });
  const events = ctx.streamEvents![Symbol.asyncIterator]();
  let first = true;
  try {
    for (;;) {
      if (res.destroyed) break;
      const { value, done } = await events.next();
      if (done) break;
      if (headersWaiting) {
        clearImmediate(headersWaiting);
        headersWaiting = undefined;
      }
      const ok =
        value.type === 'chunk' ? res.write(sseEvent(value.chunk)) : res.write(sseEvent(value.done, 'done'));
      if (first) {
        first = false;
        sendNow(res);
      }
      // A client that reads slowly must slow the upstream down, not make us buffer the answer in memory:
      // stop pulling until the socket drains (or closes).
      if (!ok && !res.destroyed) await drained(res);
    }
  } catch (err) {
    const error = toGatewayError(err);
    if (!res.destroyed) res.write(sseEvent(error.toJSON(ctx.requestId), 'error'));
  } finally {
    if (headersWaiting) clearImmediate(headersWaiting);
    // Stops the upstream when we leave early (client gone).
    await events.return?.(undefined);
    res.end();
  }
}

export function respond(): RequestHandler {
  return function respondMiddleware(_req, res, next) {
    let ctx: GatewayContext;
    try {
      ctx = contextOf(res, 'respond()');
    } catch (err) {
      next(err);
      return;
    }
    if (ctx.streamEvents) {
      writeStream(ctx, res).catch(next);
      return;
    }
    if (!ctx.response) {
      next(new Error('No stage produced a response: is the route stage in the pipeline?'));
      return;
    }
    const headers = gatewayHeaders(ctx);
    headers['X-Gateway-Provider'] = ctx.response.provider;
    headers['X-Gateway-Model'] = ctx.response.model;
    writeJson(res, 200, ctx.response, headers);
    finishContext(ctx, { status: 200, response: ctx.response });
  };
}
