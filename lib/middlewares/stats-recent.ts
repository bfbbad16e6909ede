/**
 * `GET /stats/recent`: the latest requests as JSON (`limit` 1..500, default 50; optional user, provider and
 * model filters), validated by gateway.analytics; a bad value is a 400 invalid_request through the error
 * handler. Admin only, like /stats: rows carry user ids.
 */
import type { RequestHandler } from 'express';
import type { Gateway } from '../gateway.js';
import { writeJson } from './respond.js';

export function statsRecent(gateway: Gateway): RequestHandler {
  return function statsRecentMiddleware(req, res, next) {
    gateway.analytics.recent(req.query as Record<string, unknown>).then((body) => {
      // Same answer as /stats when analytics is off, so a client handles both one way.
      if (!body.enabled) writeJson(res, 404, { error: { type: 'not_found', message: body.message } }, {});
      // Every request adds a row: a cache in between would hide the newest.
      else writeJson(res, 200, body, { 'Cache-Control': 'no-store' });
    }, next);
  };
}
