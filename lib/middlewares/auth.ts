/**
 * Access control for the gateway's own clients, who authenticate with gateway keys (`auth.keys`), never
 * with provider keys:
 * - `gatewayAuth(gateway)`: Express middleware in front of the chat routes. Refuses a missing, unknown or
 *   revoked key with 401 before the body is even read, and records who the client is in
 *   `res.locals.gatewayAuth`. A host with its own authentication puts that in front instead and sets
 *   `res.locals.gatewayAuth = { user, models?, rpm?, budgetUsdPerDay? }` itself.
 * - the `auth` stage (first in the default pipeline, both faces): applies the identity to the context
 *   (`ctx.user`, `ctx.locals.keyRpm`, `ctx.locals.budgetUsdPerDay`, `ctx.locals.authKeyId`) and enforces the
 *   key's models (403 `permission`). For `Gateway.chat()` it authenticates `CallOptions.apiKey`; a call
 *   without one comes from the host's own code and is trusted.
 * - `adminAuth(gateway)`: guards /stats, /metrics, /dashboard and /admin with `auth.admin_keys`.
 * Refusals never echo the presented key.
 */
import type { RequestHandler, Response } from 'express';
import type { AuthIdentity } from '../auth.js';
import { credentialOf, identityFrom, keyStoreOf, modelAllowed, presentedKey } from '../auth.js';
import type { GatewayContext } from '../context.js';
import { requestIdFrom } from '../context.js';
import { GatewayError } from '../errors.js';
import type { Gateway } from '../gateway.js';
import type { Stage } from '../stage.js';
import { writeJson } from './respond.js';

const HOW_TO_AUTHENTICATE = 'send `Authorization: Bearer <gateway key>` or `x-api-key: <gateway key>`';

function missingKey(): GatewayError {
  return new GatewayError('authentication', `A gateway key is required: ${HOW_TO_AUTHENTICATE}.`);
}

function invalidKey(): GatewayError {
  // One message for unknown and revoked keys: which of the two it is helps only a guesser.
  return new GatewayError('authentication', 'The gateway key is invalid or has been revoked.');
}

/** Applies an authenticated identity to the context; the rate limiter and analytics read it from there. */
function applyIdentity(ctx: GatewayContext, identity: AuthIdentity): void {
  // The key decides who the request is for; a header or body `user` could name anyone.
  ctx.user = identity.user;
  if (identity.keyId) ctx.locals.authKeyId = identity.keyId;
  if (identity.rpm !== undefined) ctx.locals.keyRpm = identity.rpm;
  if (identity.budgetUsdPerDay !== undefined) ctx.locals.budgetUsdPerDay = identity.budgetUsdPerDay;
  if (identity.models) {
    const model = ctx.request.model;
    if (!modelAllowed(model, identity.models, ctx.runtime.providers.keys())) {
      throw new GatewayError(
        'permission',
        `This gateway key may not use model "${model.slice(0, 256)}". Allowed: ${identity.models.join(', ')}.`,
      );
    }
  }
}

export function authStage(gateway: Gateway): Stage {
  const store = keyStoreOf(gateway);
  return {
    name: 'auth',
    run(ctx) {
      const credential = credentialOf(ctx);
      // A programmatic call without apiKey: the host's own code.
      if (!credential) return;
      const auth = ctx.runtime.config.auth;
      let identity = credential.identity;
      if (!identity) {
        // An open gateway ignores a presented key (it may even be a misdirected provider key).
        if (!store.hasKeys(auth)) return;
        if (credential.presented === undefined) throw missingKey();
        identity = store.lookup(auth, credential.presented);
        if (!identity) throw invalidKey();
      }
      applyIdentity(ctx, identity);
    },
  };
}

function refuse(
  req: { headers: Record<string, string | string[] | undefined> },
  res: Response,
  error: GatewayError,
) {
  const requestId = requestIdFrom(req.headers['x-request-id']);
  const headers: Record<string, string> = { 'X-Request-Id': requestId };
  if (error.status === 401) headers['WWW-Authenticate'] = 'Bearer realm="express-ai-gateway"';
  writeJson(res, error.status, error.toJSON(requestId), headers);
}

const warned = new WeakSet<Gateway>();

export function gatewayAuth(gateway: Gateway): RequestHandler {
  const store = keyStoreOf(gateway);
  if (!store.hasKeys(gateway.runtime.config.auth) && !warned.has(gateway)) {
    warned.add(gateway);
    gateway.logger.warn(
      { auth: 'open' },
      'No gateway access keys are configured (auth.keys): anyone who can reach the chat routes can spend ' +
        'your provider credits. Add auth.keys, or put your own authentication in front and set ' +
        'res.locals.gatewayAuth.',
    );
  }
  return function gatewayAuthMiddleware(req, res, next) {
    // The host's own auth ran in front and said who this is.
    if (identityFrom(res.locals.gatewayAuth)) return next();
    const auth = gateway.runtime.config.auth;
    if (!store.hasKeys(auth)) return next();
    const presented = presentedKey(req.headers);
    if (presented === undefined) return refuse(req, res, missingKey());
    const identity = store.lookup(auth, presented);
    if (!identity) return refuse(req, res, invalidKey());
    res.locals.gatewayAuth = identity;
    next();
  };
}

/** Whether the admin routes are guarded at all, and how; see the README's Security section. */
export function adminAuth(gateway: Gateway): RequestHandler {
  const store = keyStoreOf(gateway);
  return function adminAuthMiddleware(req, res, next) {
    const auth = gateway.runtime.config.auth;
    if (!auth.protectAdminRoutes) return next();
    const presented = presentedKey(req.headers);
    if (auth.adminKeysSha256.length > 0) {
      if (store.isAdmin(auth, presented)) {
        res.locals.gatewayAdmin = true;
        return next();
      }
      if (presented === undefined) {
        return refuse(
          req,
          res,
          new GatewayError('authentication', `An admin key is required: ${HOW_TO_AUTHENTICATE}.`),
        );
      }
      // A valid user key is a known client without the right; anything else is simply a wrong key.
      if (store.lookup(auth, presented)) {
        return refuse(
          req,
          res,
          new GatewayError('permission', 'This route needs an admin key (auth.admin_keys).'),
        );
      }
      return refuse(req, res, invalidKey());
    }
    if (auth.adminOpen || !store.hasKeys(auth)) return next();
    refuse(
      req,
      res,
      new GatewayError(
        'permission',
        'Admin routes are closed: gateway keys are configured but no admin key. Set auth.admin_keys ' +
          '(or auth.admin_open: true to leave them open).',
      ),
    );
  };
}
