/**
 * Turns anything a stage threw into the one error JSON, `{"error": {type, message, provider, request_id}}`,
 * with its status. Internal errors are logged (without secrets) and answered with a generic message.
 */
import type { ErrorRequestHandler } from 'express';
import type { GatewayContext } from '../context.js';
import { finishContext, requestIdFrom } from '../context.js';
import { toGatewayError } from '../errors.js';
import type { Logger } from '../../types/index.js';
import { sseEvent } from '../sse.js';
import { gatewayHeaders, writeJson } from './respond.js';

export function errorHandler(options: { logger?: Logger } = {}): ErrorRequestHandler {
  return function errorHandlerMiddleware(err, req, res, _next) {
    const error = toGatewayError(err);
    const ctx = res.locals.gateway as GatewayContext | undefined;
    const logger = options.logger ?? ctx?.runtime.logger;
    if (error.status >= 500 && error.kind === 'server_error' && !error.provider) {
      logger?.error(
        { request_id: ctx?.requestId, err: err instanceof Error ? `${err.name}: ${err.message}` : String(err) },
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
      if (!res.writableEnded) res.end(sseEvent(error.toJSON(ctx?.requestId), 'error'));
    } else if (!res.destroyed) {
      writeJson(res, error.status, error.toJSON(ctx?.requestId ?? headers['X-Request-Id']), headers);
    }
    if (ctx) finishContext(ctx, { status: error.status, error });
  };
}
