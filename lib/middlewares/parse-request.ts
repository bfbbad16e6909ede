/**
 * The first stage over HTTP: validates the JSON body into the unified request and creates the shared
 * context in `res.locals.gateway`. It also ties the context's abort signal to the client's connection, so
 * that a client that leaves cancels the upstream call.
 */
import type { RequestHandler } from 'express';
import { bindCredential, identityFrom, presentedKey } from '../auth.js';
import { createContext } from '../context.js';
import type { Gateway } from '../gateway.js';
import { isStructureChecked } from '../json-guard.js';
import { validateChatRequest } from '../validations.js';

export interface ParseRequestOptions {
  stream: boolean;
}

export function parseRequest(gateway: Gateway, options: ParseRequestOptions): RequestHandler {
  const { stream } = options;
  return function parseRequestMiddleware(req, res, next) {
    const runtime = gateway.runtime;
    try {
      const warnings: string[] = [];
      const request = validateChatRequest(req.body, warnings, runtime.config.requestLimits, {
        structureChecked: isStructureChecked(req.body),
      });
      const headerUser = req.headers[runtime.config.rateLimiting.userHeader];
      const ctx = createContext(runtime, request, {
        stream,
        requestId: req.headers['x-request-id'] as string | undefined,
        user: typeof headerUser === 'string' && headerUser ? headerUser.slice(0, 256) : undefined,
      });
      ctx.warnings.push(...warnings);
      // The cache stage honours `Cache-Control: no-cache / no-store`; stages never see the HTTP request.
      const cacheControl = req.headers['cache-control'];
      if (typeof cacheControl === 'string') ctx.locals.cacheControl = cacheControl;
      // For the auth stage: the presented key, or who gatewayAuth() / the host's own auth found.
      bindCredential(ctx, {
        presented: presentedKey(req.headers),
        identity: identityFrom(res.locals.gatewayAuth),
      });
      res.locals.gateway = ctx;
      res.on('close', () => {
        if (!res.writableFinished) ctx.abort();
      });
      next();
    } catch (err) {
      next(err);
    }
  };
}
