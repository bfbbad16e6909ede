/**
 * Request/response middlewares: small objects with optional hooks around the provider call. The
 * `middleware` stage (lib/middlewares/middleware-stage.ts) runs the gateway's list; `mw.express()` runs one
 * middleware inside a host's own Express chain on the same context. Both go through runMiddlewares(), so a
 * middleware behaves the same wherever it is mounted.
 */
import type { RequestHandler } from 'express';
import type { ChatRequest, ChatResponse, StreamChunk } from '../types/index.js';
import type { GatewayContext, StreamEvent } from './context.js';
import { ConfigError, GatewayError } from './errors.js';
import { scrubPII } from './pii-detectors.js';
import { redactSecrets } from './redact.js';
import { checkChunkShape, checkResponseShape } from './response-shape.js';
import { toExpress } from './stage.js';

/** What a stream hook may answer: a replacement chunk, several, `null` to drop it, nothing to keep it. */
export type ChunkResult = StreamChunk | StreamChunk[] | null | void;

type MaybePromise<T> = T | Promise<T>;

/** Options every middleware understands (`on_error` in YAML). */
export interface CommonMiddlewareOptions {
  /** `fail` (default): the request fails with a 500 naming the middleware; `skip`: log and go on. */
  on_error?: 'fail' | 'skip';
}

export abstract class Middleware {
  /** Names the middleware in errors, logs and the config; defaults to the class name. */
  name: string;
  /** When true, a failing hook is logged and skipped instead of failing the request. */
  skipOnError: boolean;

  constructor(options: { name?: string; skipOnError?: boolean; on_error?: unknown } = {}) {
    this.name = options.name ?? new.target.name;
    if (options.on_error !== undefined && options.on_error !== 'fail' && options.on_error !== 'skip') {
      throw new ConfigError(
        `middleware ${this.name}.on_error: must be "fail" or "skip", got ${JSON.stringify(options.on_error)}.`,
      );
    }
    this.skipOnError = options.skipOnError ?? options.on_error === 'skip';
  }

  // Every hook is optional: a subclass defines only the ones it needs, and the runner skips the rest.
  /** Before routing, in list order. May mutate the request and/or return a replacement. */
  preRequest?(request: ChatRequest, ctx: GatewayContext): MaybePromise<ChatRequest | void>;
  /** After a JSON answer exists, in reverse list order (the first middleware sees the answer last). */
  postResponse?(response: ChatResponse, ctx: GatewayContext): MaybePromise<ChatResponse | void>;
  /** For each streamed chunk, in reverse list order. */
  onStreamChunk?(chunk: StreamChunk, ctx: GatewayContext): MaybePromise<ChunkResult>;
  /** When the stream completes: chunks still held back (e.g. a buffered partial placeholder). */
  onStreamEnd?(ctx: GatewayContext): MaybePromise<StreamChunk[] | void>;
  /** Once, when the request ended with an error (including errors after the first streamed chunk). */
  onError?(err: GatewayError, ctx: GatewayContext): MaybePromise<void>;

  /** This middleware alone as an Express middleware; mount it after parseRequest() in a host's chain. */
  express(): RequestHandler {
    return toExpress({ name: this.name, run: (ctx) => runMiddlewares([this], ctx) });
  }
}

/** Validates that an options object only holds known keys; the message lists what is allowed. */
export function checkOptionKeys(
  name: string,
  options: Record<string, unknown>,
  known: readonly string[],
): void {
  const allowed = [...known, 'on_error'];
  for (const key of Object.keys(options)) {
    if (!allowed.includes(key)) {
      throw new ConfigError(
        `middleware ${name}.${key}: unknown option. Known options: ${allowed.join(', ')}.`,
      );
    }
  }
}

/** A hook's failure: GatewayErrors are deliberate answers (e.g. a block) and pass through unchanged. */
function middlewareFailure(
  mw: Middleware,
  hook: string,
  err: unknown,
  ctx: GatewayContext,
): GatewayError | null {
  if (err instanceof GatewayError) return err;
  const raw = err instanceof Error ? err.message : String(err);
  // Error messages can quote the request: keep keys and personal data out of the answer and the logs.
  const message = scrubPII(redactSecrets(raw, ctx.runtime.secrets)).slice(0, 300);
  if (mw.skipOnError) {
    ctx.runtime.logger.warn(
      { request_id: ctx.requestId, middleware: mw.name, hook, err: message },
      'Middleware failed; skipped (on_error: skip).',
    );
    return null;
  }
  return new GatewayError('server_error', `Middleware "${mw.name}" failed: ${message}`, {
    status: 500,
    cause: err,
  });
}

/**
 * What a failed hook means: the error to fail the request with (thrown), or, with `on_error: skip`,
 * undefined, which every hook's caller reads as "no change".
 */
function skipOrThrow(mw: Middleware, hook: string, err: unknown, ctx: GatewayContext): undefined {
  const failure = middlewareFailure(mw, hook, err, ctx);
  if (failure) throw failure;
  return undefined;
}

/**
 * Calls one hook, mapping a throw or a rejection through skipOrThrow (`undefined` means "no change"). The
 * promise only when the hook answered with one.
 */
function guardedHook<T>(
  mw: Middleware,
  hook: string,
  ctx: GatewayContext,
  call: () => MaybePromise<T>,
): MaybePromise<T | undefined> {
  let result: MaybePromise<T>;
  try {
    result = call();
  } catch (err) {
    return skipOrThrow(mw, hook, err, ctx);
  }
  if (result instanceof Promise) return result.catch((err: unknown) => skipOrThrow(mw, hook, err, ctx));
  return result;
}

/*
 * The runners below call each hook directly and continue synchronously when it answered synchronously:
 * most middlewares are synchronous, and a promise (and a microtask hop) per hook, per request and per
 * streamed chunk is measurable on the hot path. Only a hook that returns a promise makes its runner
 * asynchronous from there on. Only `Promise` instances are awaited, never other thenables.
 */

function adoptRequest(mw: Middleware, value: ChatRequest | void, ctx: GatewayContext): void {
  if (value) ctx.request = value;
  if (!ctx.request || !Array.isArray(ctx.request.messages)) {
    throw new GatewayError('server_error', `Middleware "${mw.name}" left no valid request behind.`, {
      status: 500,
    });
  }
}

function adoptResponse(mw: Middleware, value: ChatResponse | void, ctx: GatewayContext): void {
  if (value) ctx.response = value;
  const problem = checkResponseShape(ctx.response);
  if (problem) {
    const message = `Middleware "${mw.name}" produced a malformed response: ${problem}.`;
    throw new GatewayError('server_error', message, { status: 500 });
  }
}

/** A hook that rewrites the context's request or response in place, as the chain runner sees it. */
interface RewriteHook<T> {
  name: 'preRequest' | 'postResponse';
  call(mw: Middleware, ctx: GatewayContext): MaybePromise<T | void>;
  /** Takes the hook's answer into the context, then checks what the context now holds. */
  adopt(mw: Middleware, value: T | void, ctx: GatewayContext): void;
}

const PRE_REQUEST: RewriteHook<ChatRequest> = {
  name: 'preRequest',
  call: (mw, ctx) => mw.preRequest!(ctx.request, ctx),
  adopt: adoptRequest,
};

const POST_RESPONSE: RewriteHook<ChatResponse> = {
  name: 'postResponse',
  // Checked by the caller and after every hook.
  call: (mw, ctx) => mw.postResponse!(ctx.response!, ctx),
  adopt: adoptResponse,
};

/** Runs `hook` of `list[from..]` in order, synchronously until one answers with a promise. */
function runRewriteHooks<T>(
  hook: RewriteHook<T>,
  list: readonly Middleware[],
  from: number,
  ctx: GatewayContext,
): void | Promise<void> {
  for (let i = from; i < list.length; i++) {
    const mw = list[i]!;
    if (!mw[hook.name]) continue;
    const result = guardedHook(mw, hook.name, ctx, () => hook.call(mw, ctx));
    if (result instanceof Promise) {
      return result.then((value) => {
        hook.adopt(mw, value, ctx);
        return runRewriteHooks(hook, list, i + 1, ctx);
      });
    }
    hook.adopt(mw, result, ctx);
  }
}

function chunkHook(mw: Middleware, chunk: StreamChunk, ctx: GatewayContext): MaybePromise<ChunkResult> {
  return guardedHook(mw, 'onStreamChunk', ctx, () => mw.onStreamChunk!(chunk, ctx));
}

function checkedChunk(mw: Middleware, chunk: StreamChunk): StreamChunk {
  const problem = checkChunkShape(chunk);
  if (problem) {
    const message = `Middleware "${mw.name}" produced a malformed chunk: ${problem}.`;
    throw new GatewayError('server_error', message, { status: 500 });
  }
  return chunk;
}

/** Appends what a chunk hook hands on to `next`: the chunk itself, nothing, a replacement or several. */
function handOn(mw: Middleware, result: ChunkResult, original: StreamChunk, next: StreamChunk[]): void {
  if (result === null) return;
  if (result === undefined) next.push(checkedChunk(mw, original));
  else if (Array.isArray(result)) for (const c of result) next.push(checkedChunk(mw, c));
  else next.push(checkedChunk(mw, result));
}

/** Passes chunks through the stream hooks of `list[from..]`, checking what each hook hands on. */
function throughChunkHooks(
  list: readonly Middleware[],
  from: number,
  chunks: StreamChunk[],
  ctx: GatewayContext,
): StreamChunk[] | Promise<StreamChunk[]> {
  let current = chunks;
  for (let i = from; i < list.length && current.length; i++) {
    const mw = list[i]!;
    if (!mw.onStreamChunk) continue;
    const next: StreamChunk[] = [];
    for (let k = 0; k < current.length; k++) {
      const result = chunkHook(mw, current[k]!, ctx);
      if (result instanceof Promise) return resumeChunkHooks(list, i, current, k, result, next, ctx);
      handOn(mw, result, current[k]!, next);
    }
    current = next;
  }
  return current;
}

/** throughChunkHooks() from the hook of `list[at]` on `current[k]` that answered with a promise. */
async function resumeChunkHooks(
  list: readonly Middleware[],
  at: number,
  current: StreamChunk[],
  k: number,
  pending: Promise<ChunkResult>,
  next: StreamChunk[],
  ctx: GatewayContext,
): Promise<StreamChunk[]> {
  const mw = list[at]!;
  handOn(mw, await pending, current[k]!, next);
  for (let j = k + 1; j < current.length; j++) {
    const result = chunkHook(mw, current[j]!, ctx);
    handOn(mw, result instanceof Promise ? await result : result, current[j]!, next);
  }
  return throughChunkHooks(list, at + 1, next, ctx);
}

function streamEndHook(mw: Middleware, ctx: GatewayContext): MaybePromise<StreamChunk[] | void> {
  return guardedHook(mw, 'onStreamEnd', ctx, () => mw.onStreamEnd!(ctx));
}

async function* wrapStream(
  source: AsyncIterable<StreamEvent>,
  list: readonly Middleware[],
  ctx: GatewayContext,
): AsyncGenerator<StreamEvent> {
  for await (const event of source) {
    if (event.type === 'chunk') {
      const problem = checkChunkShape(event.chunk);
      if (problem) {
        throw new GatewayError(
          'server_error',
          `${event.chunk?.provider ?? 'The provider'} sent a malformed stream chunk: ${problem}.`,
        );
      }
      const out = throughChunkHooks(list, 0, [event.chunk], ctx);
      for (const chunk of out instanceof Promise ? await out : out) yield { type: 'chunk', chunk };
      continue;
    }
    // Held-back text must reach the client before `done`, and still pass the hooks after its owner.
    for (let i = 0; i < list.length; i++) {
      const mw = list[i]!;
      if (!mw.onStreamEnd) continue;
      const ended = streamEndHook(mw, ctx);
      const tail = (ended instanceof Promise ? await ended : ended) || [];
      const out = throughChunkHooks(list, i + 1, tail, ctx);
      for (const chunk of out instanceof Promise ? await out : out) yield { type: 'chunk', chunk };
    }
    yield event;
  }
}

function runResponseHooks(list: readonly Middleware[], ctx: GatewayContext): void | Promise<void> {
  if (ctx.response) {
    const problem = checkResponseShape(ctx.response);
    if (problem) {
      const provider = (ctx.response as { provider?: unknown }).provider;
      throw new GatewayError(
        'server_error',
        `${typeof provider === 'string' ? provider : 'The provider'} returned a malformed response: ${problem}.`,
        { status: 502, ...(typeof provider === 'string' ? { provider } : {}) },
      );
    }
    return runRewriteHooks(POST_RESPONSE, list, 0, ctx);
  } else if (ctx.streamEvents) {
    ctx.streamEvents = wrapStream(ctx.streamEvents, list, ctx);
  }
}

function hasErrorHook(list: readonly Middleware[]): boolean {
  for (const mw of list) if (mw.onError) return true;
  return false;
}

/**
 * Runs the preRequest hooks now and registers the response and error hooks for later. Response hooks run
 * in reverse order, like an onion: a PII scrubber listed first restores placeholders last, after every
 * other middleware saw the scrubbed answer. Synchronous (no promise) when every preRequest hook is.
 */
export function runMiddlewares(list: readonly Middleware[], ctx: GatewayContext): void | Promise<void> {
  const reversed = [...list].reverse();
  // Registered first so that a failing preRequest still reaches every onError.
  if (hasErrorHook(list)) {
    ctx.outcomeHooks.push((outcome) => {
      if (!outcome.error) return;
      for (const mw of list) {
        if (!mw.onError) continue;
        const fail = (err: unknown) =>
          ctx.runtime.logger.error(
            {
              request_id: ctx.requestId,
              middleware: mw.name,
              err: redactSecrets(String(err), ctx.runtime.secrets),
            },
            'Middleware onError hook failed.',
          );
        try {
          const r = mw.onError(outcome.error, ctx);
          if (r instanceof Promise) r.catch(fail);
        } catch (err) {
          fail(err);
        }
      }
    });
  }
  ctx.responseHooks.push((c) => runResponseHooks(reversed, c));
  return runRewriteHooks(PRE_REQUEST, list, 0, ctx);
}
