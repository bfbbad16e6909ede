/**
 * The OpenAI-compatible face of the router: `POST /v1/chat/completions`, `GET /v1/models` and
 * `GET /v1/models/{id}`, so that an application built on an OpenAI SDK only changes its base URL.
 *
 * A chat completion runs the very same pipeline as `/chat`: the OpenAI body is translated into the unified
 * one, handed to `parseRequest()` (validation, request id, user, abort on disconnect), then the gateway's
 * stages, then a respond step and an error handler that speak OpenAI's format. Gateway extras travel in
 * headers (`X-Request-Id`, `X-Gateway-Provider`, `X-Gateway-Cache`...) so the body stays exactly OpenAI's.
 *
 * The client's `Authorization: Bearer` token is not a provider key: upstream calls only ever carry the
 * keys of the gateway's config, and checking the token belongs to an auth stage in the pipeline.
 */
import type { ErrorRequestHandler, RequestHandler, Router } from 'express';
import type { GatewayContext } from '../context.js';
import { finishContext } from '../context.js';
import { NotFoundError } from '../errors.js';
import type { Gateway } from '../gateway.js';
import { openaiErrorRenderer } from '../openai-compat/errors.js';
import { findOpenAIModel, listOpenAIModels } from '../openai-compat/models.js';
import { translateOpenAIRequest } from '../openai-compat/request.js';
import type { CompletionMeta } from '../openai-compat/response.js';
import { completionMeta, toChatCompletion } from '../openai-compat/response.js';
import { writeOpenAIStream } from '../openai-compat/stream.js';
import { contextOf } from '../stage.js';
import { errorHandler } from './error-handler.js';
import { parseRequest } from './parse-request.js';
import { gatewayHeaders, writeJson } from './respond.js';

/** Per-request state of this face, kept in `ctx.locals` under this key. */
const STATE = 'openaiCompat';

interface CompatState {
  meta: CompletionMeta;
  includeUsage: boolean;
}

/**
 * Translates the OpenAI body, then delegates to parseRequest() so that context creation stays in one
 * place. Later stages (and plain Express middlewares in a custom pipeline) see the unified body in
 * `req.body`, exactly as on `/chat`.
 */
export function openaiParseRequest(gateway: Gateway): RequestHandler {
  const parsers = {
    json: parseRequest(gateway, { stream: false }),
    stream: parseRequest(gateway, { stream: true }),
  };
  return function openaiParseRequestMiddleware(req, res, next) {
    let translated: ReturnType<typeof translateOpenAIRequest>;
    try {
      translated = translateOpenAIRequest(req.body);
    } catch (err) {
      next(err);
      return;
    }
    req.body = translated.body;
    const parse = translated.stream ? parsers.stream : parsers.json;
    parse(req, res, (err?: unknown) => {
      if (err) {
        next(err);
        return;
      }
      const ctx = res.locals.gateway as GatewayContext;
      ctx.warnings.unshift(...translated.warnings);
      const state: CompatState = {
        meta: completionMeta(ctx.receivedAt),
        includeUsage: translated.includeUsage,
      };
      ctx.locals[STATE] = state;
      next();
    });
  };
}

export function openaiRespond(): RequestHandler {
  return function openaiRespondMiddleware(_req, res, next) {
    let ctx: GatewayContext;
    try {
      ctx = contextOf(res, 'openaiRespond()');
    } catch (err) {
      next(err);
      return;
    }
    const state = ctx.locals[STATE] as CompatState | undefined;
    if (!state) {
      next(new Error('openaiRespond() needs openaiParseRequest(gateway) before it.'));
      return;
    }
    if (ctx.streamEvents) {
      const headers = gatewayHeaders(ctx);
      writeOpenAIStream(ctx, res, { meta: state.meta, includeUsage: state.includeUsage, headers }).catch(
        next,
      );
      return;
    }
    const response = ctx.response;
    if (!response) {
      next(new Error('No stage produced a response: is the route stage in the pipeline?'));
      return;
    }
    const headers = gatewayHeaders(ctx);
    headers['X-Gateway-Provider'] = response.provider;
    headers['X-Gateway-Model'] = response.model;
    headers['X-Gateway-Cost'] = String(response.cost);
    // The unified finish reason, for the values OpenAI's enum cannot express ("error", "other").
    headers['X-Gateway-Finish-Reason'] = response.finish_reason;
    writeJson(res, 200, toChatCompletion(response, state.meta), headers);
    finishContext(ctx, { status: 200, response });
  };
}

/** Errors of these routes in OpenAI's shape; placed on the routes, before the router's generic handler. */
export function openaiErrorHandler(gateway: Gateway) {
  return errorHandler({ logger: gateway.logger, render: openaiErrorRenderer });
}

function listModelsHandler(gateway: Gateway): RequestHandler {
  return function openaiListModels(_req, res) {
    writeJson(res, 200, { object: 'list', data: listOpenAIModels(gateway.runtime) }, {});
  };
}

function retrieveModelHandler(gateway: Gateway): RequestHandler {
  return function openaiRetrieveModel(req, res, next) {
    // `provider/model` ids contain a slash, so the id is the rest of the path.
    const raw = (req.params as Record<string, string | string[]>).model;
    const id = Array.isArray(raw) ? raw.join('/') : String(raw);
    const found = findOpenAIModel(gateway.runtime, id);
    if (!found) {
      next(
        new NotFoundError(
          `The model \`${id.slice(0, 256)}\` does not exist in this gateway's configuration.`,
        ),
      );
      return;
    }
    writeJson(res, 200, found, {});
  };
}

/**
 * The handlers of `POST /v1/chat/completions`, after the gateway-key guard. `chain` is the router's own
 * pipeline (the gateway's stages as Express middlewares) and `jsonBody` its body parser, so the route runs
 * exactly what `/chat` runs.
 */
export function openAIChatCompletions(
  gateway: Gateway,
  chain: readonly RequestHandler[],
  jsonBody: RequestHandler,
): (RequestHandler | ErrorRequestHandler)[] {
  return [jsonBody, openaiParseRequest(gateway), ...chain, openaiRespond(), openaiErrorHandler(gateway)];
}

/** Mounts `GET /v1/models` and `GET /v1/models/:model`. */
export function mountOpenAIModels(router: Router, gateway: Gateway): void {
  const onError = openaiErrorHandler(gateway);
  router.get('/v1/models', listModelsHandler(gateway), onError);
  router.get('/v1/models/*model', retrieveModelHandler(gateway), onError);
}
