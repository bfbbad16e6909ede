/**
 * Gateway errors in OpenAI's error shape, `{"error": {message, type, param, code}}`, with the gateway's own
 * HTTP status: OpenAI's SDKs pick their typed error (RateLimitError, NotFoundError...) from the status and
 * read the body's fields, so both must look like OpenAI's. Gateway details (provider, attempts, request
 * id) stay out of the body; the request id travels in `X-Request-Id`.
 */
import type { ErrorKind } from '../../types/index.js';
import type { GatewayError } from '../errors.js';
import type { ErrorRenderer } from '../middlewares/error-handler.js';
import { sseEvent } from '../sse.js';

export interface OpenAIErrorBody {
  error: { message: string; type: string; param: string | null; code: string | null };
}

/** OpenAI's `type` and `code` for each kind, as OpenAI itself answers the matching status. */
const SHAPE_OF_KIND: Record<ErrorKind, [type: string, code: string | null]> = {
  invalid_request: ['invalid_request_error', null],
  authentication: ['invalid_request_error', 'invalid_api_key'],
  permission: ['invalid_request_error', 'permission_denied'],
  not_found: ['invalid_request_error', 'model_not_found'],
  payload_too_large: ['invalid_request_error', 'request_too_large'],
  rate_limit: ['requests', 'rate_limit_exceeded'],
  timeout: ['server_error', 'timeout'],
  server_error: ['server_error', null],
  connection: ['server_error', 'service_unavailable'],
  content_filter: ['invalid_request_error', 'content_filter'],
  budget_exceeded: ['invalid_request_error', 'budget_exceeded'],
  all_providers_failed: ['server_error', 'all_providers_failed'],
};

export function toOpenAIError(error: GatewayError): OpenAIErrorBody {
  let [type, code] = SHAPE_OF_KIND[error.kind];
  // An upstream refusal the gateway reports as a 5xx (a bad provider key, a model the provider lacks) is
  // the operator's problem: "invalid_api_key" would wrongly tell the client that *its* key is wrong.
  if (error.status >= 500 && type !== 'server_error') {
    type = 'server_error';
    code = `upstream_${error.kind}`;
  }
  return { error: { message: error.message, type, param: error.param ?? null, code } };
}

/** Plugs the OpenAI shape into the gateway's error handler (JSON answers and mid-stream errors). */
export const openaiErrorRenderer: ErrorRenderer = {
  json: (error) => toOpenAIError(error),
  // OpenAI streams carry errors as a plain `data:` event with an `error` member; its SDKs throw on it.
  streamEvent: (error) => sseEvent(toOpenAIError(error)),
};
