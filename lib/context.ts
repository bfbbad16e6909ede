/**
 * The per-request context every stage shares. Over HTTP it lives in `res.locals.gateway`; in
 * `Gateway.chat()` it is created directly. Stages read and write it and nothing else, so the same stage
 * runs unchanged in both faces.
 */
import { randomUUID } from 'node:crypto';
import { performance } from 'node:perf_hooks';
import type { Attempt, ChatRequest, ChatResponse, StreamChunk, StreamDone } from '../types/index.js';
import type { GatewayError } from './errors.js';
import type { GatewayRuntime } from './runtime.js';

export type StreamEvent = { type: 'chunk'; chunk: StreamChunk } | { type: 'done'; done: StreamDone };

export interface RequestOutcome {
  /** The HTTP status the client got (or would have got, for the programmatic face). */
  status: number;
  response?: ChatResponse;
  done?: StreamDone;
  error?: GatewayError;
  /** Time to the first streamed chunk. */
  ttftMs?: number;
  /** Streams: the whole text that was streamed (what a cache stores). */
  content?: string;
}

export type OutcomeHook = (outcome: RequestOutcome, ctx: GatewayContext) => void;

/**
 * Runs once a response exists, before it reaches the client: may rewrite `ctx.response` or wrap
 * `ctx.streamEvents` (response middlewares, PII restore). Registered by stages that run before routing.
 */
export type ResponseHook = (ctx: GatewayContext) => void | Promise<void>;

export interface GatewayContext {
  readonly requestId: string;
  /** The config snapshot this request runs on, start to finish. */
  readonly runtime: GatewayRuntime;
  /** The validated request; middlewares may rewrite it (PII scrubbing) before routing. */
  request: ChatRequest;
  readonly stream: boolean;
  /** Who the request is for (rate limits, analytics); from auth, a header or the body's `user`. */
  user?: string;
  readonly receivedAt: Date;
  /** performance.now() at arrival. */
  readonly startedAt: number;
  /** Aborted when the client goes away; every upstream call listens to it. */
  readonly signal: AbortSignal;
  /** Set by the stage that produced the answer (routing, or a cache hit). */
  response?: ChatResponse;
  streamEvents?: AsyncIterable<StreamEvent>;
  cacheStatus?: 'HIT' | 'MISS' | 'BYPASS';
  readonly attempts: Attempt[];
  /** Sent to the client as `X-Gateway-Warnings` (values the gateway ignored or changed). */
  readonly warnings: string[];
  /** Extra headers for the HTTP face. */
  readonly responseHeaders: Record<string, string>;
  /** Room for middlewares' own per-request state. */
  readonly locals: Record<string, unknown>;
  /** Hooks called exactly once with the final outcome (analytics, cache store, logging). */
  readonly outcomeHooks: OutcomeHook[];
  /** Hooks run on the response before it is sent; see applyResponseHooks(). */
  readonly responseHooks: ResponseHook[];
  finished: boolean;
  abort(): void;
}

const CLIENT_REQUEST_ID = /^[A-Za-z0-9._:-]{1,128}$/;

/** The client's request id when it is safe to echo, else a new one. */
export function requestIdFrom(clientValue: unknown): string {
  return typeof clientValue === 'string' && CLIENT_REQUEST_ID.test(clientValue)
    ? clientValue
    : `req_${randomUUID()}`;
}

export function createContext(
  runtime: GatewayRuntime,
  request: ChatRequest,
  options: { stream: boolean; requestId?: string; user?: string; signal?: AbortSignal },
): GatewayContext {
  // Made on first use: a request answered before routing (a cache hit, a refusal) never needs one, and an
  // AbortController is one of the costlier objects a request creates.
  let controller: AbortController | undefined;
  const controllerOf = () => (controller ??= new AbortController());
  if (options.signal) {
    const c = controllerOf();
    if (options.signal.aborted) c.abort();
    else options.signal.addEventListener('abort', () => c.abort(), { once: true });
  }
  const requestId = requestIdFrom(options.requestId);
  return {
    requestId,
    runtime,
    request,
    stream: options.stream,
    user: options.user ?? request.user,
    receivedAt: new Date(),
    startedAt: performance.now(),
    get signal() {
      return controllerOf().signal;
    },
    attempts: [],
    warnings: [],
    responseHeaders: {},
    locals: {},
    outcomeHooks: [],
    responseHooks: [],
    finished: false,
    abort: () => controllerOf().abort(),
  };
}

/** Reports the outcome to every hook, once; a failing hook is logged and never affects the client. */
export function finishContext(ctx: GatewayContext, outcome: RequestOutcome): void {
  if (ctx.finished) return;
  ctx.finished = true;
  for (const hook of ctx.outcomeHooks) {
    try {
      hook(outcome, ctx);
    } catch (err) {
      ctx.runtime.logger.error({ err: String(err), request_id: ctx.requestId }, 'An outcome hook failed.');
    }
  }
}

/** Called by whichever stage produced the response (routing, or a cache hit). */
export async function applyResponseHooks(ctx: GatewayContext): Promise<void> {
  for (const hook of ctx.responseHooks) {
    const r = hook(ctx);
    if (r) await r;
  }
}

export function elapsedMs(ctx: GatewayContext): number {
  return Math.round((performance.now() - ctx.startedAt) * 100) / 100;
}
