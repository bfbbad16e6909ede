/**
 * Turns anything a stage threw into the one error JSON, `{"error": {type, message, provider, request_id}}`,
 * with its status. Internal errors are logged (without secrets) and answered with a generic message.
 */
import type { ErrorRequestHandler } from 'express';
import type { GatewayContext } from '../context.js';
import { finishContext, requestIdFrom } from '../context.js';
import type { GatewayError } from '../errors.js';
import { toGatewayError } from '../errors.js';
import type { Logger } from '../../types/index.js';
import { sseEvent } from '../sse.js';
import { gatewayHeaders, writeJson } from './respond.js';

/** How an error is written; the OpenAI-compatible routes pass OpenAI's shape instead of the gateway's. */
export interface ErrorRenderer {
  json(error: GatewayError, requestId: string | undefined): unknown;
  /** Mid-stream, once the status is gone: one whole SSE event. */
  streamEvent(error: GatewayError, requestId: string | undefined): string;
}

const gatewayErrorRenderer: ErrorRenderer = {
  json: (error, requestId) => error.toJSON(requestId),
  streamEvent: (error, requestId) => sseEvent(error.toJSON(requestId), 'error'),
};

export function errorHandler(options: { logger?: Logger; render?: ErrorRenderer } = {}): ErrorRequestHandler {
  const render = options.render ?? gatewayErrorRenderer;
  return function errorHandlerMiddleware(err, req, res, _next) {
    const error = toGatewayError(err);
    const ctx = res.locals.gateway as GatewayContext | undefined;
    const logger = options.logger ?? ctx?.runtime.logger;
    if (error.status >= 500 && error.kind === 'server_error' && !error.provider) {
      logger?.error(
        {
          request_id: ctx?.requestId,
          err: err instanceof Error ? `${err.name}: ${err.message}` : String(err),
        },
        'Gateway internal error.',
      );
    }
    // Errors before the context exists (bad JSON, body too large) still get a request id.
    const headers: Record<string, string> = ctx
      ? gatewayHeaders(ctx)
      : { 'X-Request-Id': requestIdFrom(req.headers['x-request-id']) };
    if (error.retryAfterMs !== undefined && (error.status === 429 || error.status === 503)) {
      headers['Retry-After'] = String(Math.max(1, Math.ceil(error.retryAfterMs / 1000)));
    }
    if (res.headersSent) {
      // Mid-stream: the status is gone, so the error travels as an event.
      if (!res.writableEnded) res.end(render.streamEvent(error, ctx?.requestId));
    } else if (!res.destroyed) {
      writeJson(res, error.status, render.json(error, ctx?.requestId ?? headers['X-Request-Id']), headers);
    }
    if (ctx) finishContext(ctx, { status: error.status, error });
  };
}
