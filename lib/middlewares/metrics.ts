/**
 * `GET /metrics`: this gateway's Prometheus registry in the text exposition format.
 */
import type { RequestHandler } from 'express';
import type { Gateway } from '../gateway.js';

export function metrics(gateway: Gateway): RequestHandler {
  return function metricsMiddleware(_req, res, next) {
    gateway.analytics.metrics.text().then(({ contentType, body }) => {
      res.writeHead(200, { 'Content-Type': contentType, 'Cache-Control': 'no-store' });
      res.end(body);
    }, next);
  };
}
