/**
 * The key admin API, mounted at `/admin/keys` behind adminAuth():
 * - `GET /admin/keys`: every live key's id, user and limits (never a key or a digest);
 * - `POST /admin/keys` `{user, models?, rpm?, budget_usd_per_day?}`: creates a key and returns it once;
 *   only its SHA-256 is kept, in memory (keys created here end with the process);
 * - `DELETE /admin/keys/:id`: revokes a key, config keys included (until restart).
 * Because creating the first key closes an open gateway, the API is off unless admin keys exist (or the
 * operator opened it on purpose with `auth.admin_open`, or guards /admin itself with
 * `auth.protect_admin_routes: false`).
 */
import express, { type RequestHandler, type Router } from 'express';
import { keyStoreOf } from '../auth.js';
import { GatewayError, InvalidRequestError } from '../errors.js';
import type { Gateway } from '../gateway.js';
import { jsonBody } from './json-body.js';
import { writeJson } from './respond.js';

function specFrom(body: unknown) {
  if (!body || typeof body !== 'object' || Array.isArray(body)) {
    throw new InvalidRequestError(
      'Send a JSON object like {"user": "alice", "models": ["gpt-4o-mini"], "rpm": 60}.',
      'body',
    );
  }
  const b = body as Record<string, unknown>;
  for (const key of Object.keys(b)) {
    if (!['user', 'models', 'rpm', 'budget_usd_per_day'].includes(key)) {
      throw new InvalidRequestError(
        `Unknown field "${key.slice(0, 64)}"; allowed: user, models, rpm, budget_usd_per_day.`,
        key.slice(0, 64),
      );
    }
  }
  if (typeof b.user !== 'string' || b.user === '' || b.user.length > 256) {
    throw new InvalidRequestError('user must be a non-empty string of at most 256 characters.', 'user');
  }
  if (
    b.models !== undefined &&
    !(Array.isArray(b.models) && b.models.every((m) => typeof m === 'string' && m))
  ) {
    throw new InvalidRequestError('models must be an array of model names.', 'models');
  }
  if (b.rpm !== undefined && !(Number.isInteger(b.rpm) && (b.rpm as number) > 0)) {
    throw new InvalidRequestError('rpm must be a positive integer.', 'rpm');
  }
  const budget = b.budget_usd_per_day;
  if (budget !== undefined && !(typeof budget === 'number' && Number.isFinite(budget) && budget > 0)) {
    throw new InvalidRequestError('budget_usd_per_day must be a positive number.', 'budget_usd_per_day');
  }
  return {
    user: b.user,
    ...(b.models ? { models: b.models as string[] } : {}),
    ...(b.rpm !== undefined ? { rpm: b.rpm as number } : {}),
    ...(budget !== undefined ? { budgetUsdPerDay: budget as number } : {}),
  };
}

export function adminKeys(gateway: Gateway): Router {
  const store = keyStoreOf(gateway);
  const router = express.Router();
  const enabled: RequestHandler = (_req, _res, next) => {
    const auth = gateway.runtime.config.auth;
    if (auth.adminKeysSha256.length > 0 || auth.adminOpen || !auth.protectAdminRoutes) return next();
    next(new GatewayError('permission', 'The key admin API is off: configure auth.admin_keys to use it.'));
  };
  const noStore = { 'Cache-Control': 'no-store' };

  router.get('/', enabled, (_req, res) => {
    writeJson(res, 200, { keys: store.list(gateway.runtime.config.auth) }, noStore);
  });
  router.post('/', enabled, jsonBody('16kb'), (req, res) => {
    const created = store.create(specFrom(req.body));
    gateway.logger.info({ key_id: created.id, user: created.user }, 'Gateway key created.');
    writeJson(res, 201, created, noStore);
  });
  router.delete('/:id', enabled, (req, res, next) => {
    const id = String(req.params.id);
    if (!store.revoke(gateway.runtime.config.auth, id)) {
      next(new GatewayError('not_found', 'No live gateway key has this id.'));
      return;
    }
    gateway.logger.info({ key_id: id }, 'Gateway key revoked.');
    writeJson(res, 200, { id, revoked: true }, noStore);
  });
  return router;
}
