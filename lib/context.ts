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
  /**
   * Aborted when the client goes away. Made on first read: the routing path listens through `onAbort()`
   * instead, which costs no AbortController and no EventTarget listener per request.
   */
  readonly signal: AbortSignal;
  /** True once the request was aborted (the client went away). Always set on contexts from createContext(). */
  readonly aborted?: boolean;
  /**
   * Calls `listener` once when the request is aborted, at once if it already was; returns the function that
   * removes it. Always present on contexts from createContext(); optional so that hand-made contexts (test
   * doubles) still type-check.
   */
  onAbort?(listener: () => void): () => void;
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

/** The millisecond timeOrderedUuid() last formatted, and its formatted time part. */
let uuidPrefixMs = Number.NaN;
let uuidPrefix = '';

/**
 * A UUIDv7 (RFC 9562): 48 bits of Unix milliseconds ahead of 74 random bits, so that ids sort by time.
 * Analytics indexes `request_id`: a random v4 id lands on a random page of that index on every insert,
 * which cost ~10 µs of a row's ~30 here and grows with the table; ids that grow with time append. The
 * random part and the variant bits are those of `randomUUID()`, which draws from a pooled entropy buffer
 * (under 1 µs per id here; the `uuid` package's v7 reads fresh entropy per id, 2.2 µs).
 */
export function timeOrderedUuid(now = Date.now()): string {
  // Requests arrive many per millisecond under load: the time part is formatted once per millisecond.
  if (now !== uuidPrefixMs) {
    const ms = now.toString(16).padStart(12, '0');
    uuidPrefix = `${ms.slice(0, 8)}-${ms.slice(8, 12)}-7`;
    uuidPrefixMs = now;
  }
  // randomUUID(): xxxxxxxx-xxxx-4xxx-yxxx-xxxxxxxxxxxx; its tail from the version nibble on is kept.
  return uuidPrefix + randomUUID().slice(15);
}

/** The client's request id when it is safe to echo, else a new one. */
export function requestIdFrom(clientValue: unknown): string {
  return typeof clientValue === 'string' && CLIENT_REQUEST_ID.test(clientValue)
    ? clientValue
    : `req_${timeOrderedUuid()}`;
}

/**
 * What the routing hot path waits on instead of an AbortSignal: a flag and plain callbacks. Under load an
 * AbortController per request and per attempt, chained by EventTarget listeners, cost more CPU than the
 * feature is worth.
 */
export interface AbortSource {
  readonly aborted: boolean;
  /** Calls `listener` once on abort, at once if already aborted; returns the function that removes it. */
  onAbort(listener: () => void): () => void;
}

const noop = () => {};

/** An AbortSource to build on: callbacks run once, in the order they were added. */
export class AbortCallbacks implements AbortSource {
  private fired = false;
  private listeners: (() => void)[] | undefined;

  get aborted(): boolean {
    return this.fired;
  }

  onAbort(listener: () => void): () => void {
    if (this.fired) {
      listener();
      return noop;
    }
    (this.listeners ??= []).push(listener);
    return () => this.removeAbortListener(listener);
  }

  protected removeAbortListener(listener: () => void): void {
    const listeners = this.listeners;
    const i = listeners ? listeners.indexOf(listener) : -1;
    if (i !== -1) listeners!.splice(i, 1);
  }

  /** Runs between marking the source aborted and its callbacks. */
  protected onAborted(): void {}

  /** Marks the source aborted and runs its callbacks; false when that already happened. */
  protected fire(): boolean {
    if (this.fired) return false;
    this.fired = true;
    this.onAborted();
    const listeners = this.listeners;
    this.listeners = undefined;
    if (listeners) {
      for (const listener of listeners) {
        try {
          listener();
        } catch (err) {
          // As an EventTarget does: one failing listener neither stops the others nor throws into the
          // code that aborted.
          process.nextTick(() => {
            throw err;
          });
        }
      }
    }
    return true;
  }
}

/** Listens to either kind of abort source; returns the function that stops listening. */
export function listenForAbort(source: AbortSignal | AbortSource, listener: () => void): () => void {
  if (typeof (source as AbortSource).onAbort === 'function') return (source as AbortSource).onAbort(listener);
  const signal = source as AbortSignal;
  if (signal.aborted) {
    listener();
    return noop;
  }
  signal.addEventListener('abort', listener, { once: true });
  return () => signal.removeEventListener('abort', listener);
}

/** The context's own abort source, or its signal for a hand-made context that has none. */
export function abortSourceOf(ctx: GatewayContext): AbortSignal | AbortSource {
  return typeof ctx.onAbort === 'function' ? (ctx as AbortSource) : ctx.signal;
}

// A class rather than an object literal: methods and getters on the prototype cost nothing per request,
// while an object literal with accessors is built through a slow path every time.
class RequestContext extends AbortCallbacks implements GatewayContext {
  readonly receivedAt = new Date();
  readonly startedAt = performance.now();
  readonly attempts: Attempt[] = [];
  readonly warnings: string[] = [];
  readonly responseHeaders: Record<string, string> = {};
  readonly locals: Record<string, unknown> = {};
  readonly outcomeHooks: OutcomeHook[] = [];
  readonly responseHooks: ResponseHook[] = [];
  response?: ChatResponse;
  streamEvents?: AsyncIterable<StreamEvent>;
  cacheStatus?: 'HIT' | 'MISS' | 'BYPASS';
  finished = false;
  // Made on the first read of `signal`: a request answered before routing (a cache hit, a refusal), or
  // routed, which listens through onAbort(), never needs one.
  private controller: AbortController | undefined;

  constructor(
    readonly requestId: string,
    readonly runtime: GatewayRuntime,
    public request: ChatRequest,
    readonly stream: boolean,
    public user: string | undefined,
  ) {
    super();
  }

  get signal(): AbortSignal {
    if (!this.controller) {
      this.controller = new AbortController();
      if (this.aborted) this.controller.abort();
    }
    return this.controller.signal;
  }

  // The signal aborts before the callbacks run, so that either kind of listener sees the same state.
  protected override onAborted(): void {
    this.controller?.abort();
  }

  abort(): void {
    this.fire();
  }
}

export function createContext(
  runtime: GatewayRuntime,
  request: ChatRequest,
  options: { stream: boolean; requestId?: string; user?: string; signal?: AbortSignal },
): GatewayContext {
  const ctx = new RequestContext(
    requestIdFrom(options.requestId),
    runtime,
    request,
    options.stream,
    options.user ?? request.user,
  );
  const signal = options.signal;
  if (signal) {
    if (signal.aborted) {
      ctx.abort();
    } else {
      const abort = () => ctx.abort();
      signal.addEventListener('abort', abort, { once: true });
      // A caller may pass one long-lived signal (its server's shutdown) to every call: each call's listener
      // goes when the call ends, or they would pile up on it, each holding its finished context.
      ctx.outcomeHooks.push(() => signal.removeEventListener('abort', abort));
    }
  }
  return ctx;
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
  const pending = applyResponseHooksNow(ctx);
  if (pending) await pending;
}

/**
 * applyResponseHooks() without a promise while every hook is synchronous (the built-in middlewares' are):
 * a cache hit then answers within the same turn, as the stages that ran before it did.
 */
export function applyResponseHooksNow(ctx: GatewayContext, from = 0): void | Promise<void> {
  const hooks = ctx.responseHooks;
  for (let i = from; i < hooks.length; i++) {
    const pending = hooks[i]!(ctx);
    if (pending) return pending.then(() => applyResponseHooksNow(ctx, i + 1));
  }
}

export function elapsedMs(ctx: GatewayContext): number {
  return Math.round((performance.now() - ctx.startedAt) * 100) / 100;
}
