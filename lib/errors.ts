/**
 * Typed errors. Every failure the gateway reports is a GatewayError with a `kind` that routing understands
 * (fallback decides on the kind alone) and an HTTP status for the wire.
 */
import type { Attempt, ErrorBody, ErrorKind, RateLimitScope } from '../types/index.js';

/** Every error kind, in one list for config validation. */
export const ERROR_KINDS = [
  'invalid_request',
  'authentication',
  'permission',
  'not_found',
  'payload_too_large',
  'rate_limit',
  'timeout',
  'server_error',
  'connection',
  'content_filter',
  'budget_exceeded',
  'all_providers_failed',
] as const satisfies readonly ErrorKind[];

const STATUS_OF_KIND: Record<ErrorKind, number> = {
  invalid_request: 400,
  authentication: 401,
  permission: 403,
  not_found: 404,
  payload_too_large: 413,
  rate_limit: 429,
  timeout: 504,
  server_error: 502,
  connection: 503,
  content_filter: 400,
  budget_exceeded: 402,
  all_providers_failed: 502,
};

/** Kinds that another attempt (the same provider later, or another provider) may cure. */
const RETRYABLE_KINDS = new Set<ErrorKind>(['rate_limit', 'timeout', 'server_error', 'connection']);

export interface GatewayErrorOptions {
  provider?: string;
  status?: number;
  /** The upstream HTTP status, when the error came from a provider. */
  upstreamStatus?: number;
  /** How long the upstream asked us to wait, in milliseconds. */
  retryAfterMs?: number;
  param?: string;
  /** Why a middleware refused the request (e.g. `prompt_injection`). */
  reason?: string;
  attempts?: Attempt[];
  /** Which of the gateway's own rate limits refused the request. */
  limit?: RateLimitScope;
  cause?: unknown;
}

export class GatewayError extends Error {
  readonly kind: ErrorKind;
  readonly status: number;
  provider?: string;
  readonly upstreamStatus?: number;
  readonly retryAfterMs?: number;
  readonly param?: string;
  readonly reason?: string;
  attempts?: Attempt[];
  readonly limit?: RateLimitScope;

  constructor(kind: ErrorKind, message: string, options: GatewayErrorOptions = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = 'GatewayError';
    this.kind = kind;
    this.status = options.status ?? STATUS_OF_KIND[kind];
    this.provider = options.provider;
    this.upstreamStatus = options.upstreamStatus;
    this.retryAfterMs = options.retryAfterMs;
    this.param = options.param;
    this.reason = options.reason;
    this.attempts = options.attempts;
    this.limit = options.limit;
  }

  get retryable(): boolean {
    return RETRYABLE_KINDS.has(this.kind);
  }

  toJSON(requestId?: string): ErrorBody {
    return {
      error: {
        type: this.kind,
        message: this.message,
        ...(this.provider ? { provider: this.provider } : {}),
        ...(requestId ? { request_id: requestId } : {}),
        ...(this.param ? { param: this.param } : {}),
        ...(this.reason ? { reason: this.reason } : {}),
        ...(this.attempts ? { attempts: this.attempts } : {}),
        ...(this.limit ? { limit: this.limit } : {}),
      },
    };
  }
}

export class InvalidRequestError extends GatewayError {
  constructor(message: string, param?: string) {
    super('invalid_request', message, { param });
    this.name = 'InvalidRequestError';
  }
}

export class NotFoundError extends GatewayError {
  constructor(message: string) {
    super('not_found', message);
    this.name = 'NotFoundError';
  }
}

/** Thrown at construction for a config that cannot work; the message names the path and the fix. */
export class ConfigError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'ConfigError';
  }
}

/** Maps an upstream HTTP status to the kind routing acts on. */
export function kindOfStatus(status: number): ErrorKind {
  if (status === 400 || status === 422) return 'invalid_request';
  if (status === 401) return 'authentication';
  if (status === 402 || status === 403) return 'permission';
  if (status === 404) return 'not_found';
  if (status === 408) return 'timeout';
  if (status === 413) return 'payload_too_large';
  if (status === 429) return 'rate_limit';
  if (status === 504) return 'timeout';
  return 'server_error';
}

/** Status the gateway answers with when an upstream failure of this kind reaches the client. */
export function clientStatusOf(kind: ErrorKind, upstreamStatus?: number): number {
  // Upstream auth problems are the operator's, not the client's: a 401 to the client would suggest that
  // *their* gateway key is wrong. Report them as a bad gateway instead.
  if (kind === 'authentication' || kind === 'permission') return 502;
  if (kind === 'not_found' && upstreamStatus) return 502;
  return STATUS_OF_KIND[kind];
}

/** Normalises anything thrown into a GatewayError without leaking its internals. */
export function toGatewayError(err: unknown): GatewayError {
  if (err instanceof GatewayError) return err;
  if (err instanceof SyntaxError || (err as { type?: string })?.type === 'entity.parse.failed') {
    return new InvalidRequestError('Request body is not valid JSON.');
  }
  const type = (err as { type?: string })?.type;
  if (type === 'entity.too.large') {
    return new GatewayError('payload_too_large', 'Request body is larger than the configured limit.');
  }
  if (type === 'encoding.unsupported' || type === 'charset.unsupported') {
    return new InvalidRequestError('Request body encoding is not supported; send UTF-8 JSON.');
  }
  return new GatewayError('server_error', 'Internal gateway error.', { status: 500, cause: err });
}
