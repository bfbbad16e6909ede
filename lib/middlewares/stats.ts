/**
 * `GET /stats` and `GET /stats/timeseries`: the analytics summary as JSON. Query parameters (period, from,
 * to, user, provider, model, bucket) are validated by gateway.analytics; a bad value is a 400
 * invalid_request through the error handler.
 */
import type { RequestHandler } from 'express';
import type { Gateway } from '../gateway.js';
import { writeJson } from './respond.js';

function disabledBody(message: string) {
  return { error: { type: 'not_found', message } };
}

export function stats(gateway: Gateway, options: { timeseries?: boolean } = {}): RequestHandler {
  const timeseries = options.timeseries ?? false;
  return function statsMiddleware(req, res, next) {
    const query = req.query as Record<string, unknown>;
    const answer = timeseries ? gateway.analytics.timeseries(query) : gateway.analytics.summary(query);
    answer.then((body) => {
      if (!body.enabled) writeJson(res, 404, disabledBody(body.message), {});
      // Figures change with every request: a cache in between would show stale numbers.
      else writeJson(res, 200, body, { 'Cache-Control': 'no-store' });
    }, next);
  };
}
