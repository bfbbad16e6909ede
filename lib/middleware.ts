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

async function call<T>(
  mw: Middleware,
  hook: string,
  ctx: GatewayContext,
  fn: () => MaybePromise<T>,
): Promise<{ ok: true; value: T } | { ok: false }> {
  try {
    const r = fn();
    return { ok: true, value: r instanceof Promise ? await r : r };
  } catch (err) {
    const failure = middlewareFailure(mw, hook, err, ctx);
    if (failure) throw failure;
    return { ok: false };
  }
}

function toChunks(result: ChunkResult, original: StreamChunk): StreamChunk[] {
  if (result === undefined) return [original];
  if (result === null) return [];
  return Array.isArray(result) ? result : [result];
}

/** Passes chunks through the stream hooks of `list[from..]`, checking what each hook hands on. */
async function throughChunkHooks(
  list: readonly Middleware[],
  from: number,
  chunks: StreamChunk[],
  ctx: GatewayContext,
): Promise<StreamChunk[]> {
  let current = chunks;
  for (let i = from; i < list.length && current.length; i++) {
    const mw = list[i]!;
    if (!mw.onStreamChunk) continue;
    const next: StreamChunk[] = [];
    for (const chunk of current) {
      const r = await call(mw, 'onStreamChunk', ctx, () => mw.onStreamChunk!(chunk, ctx));
      const out = r.ok ? toChunks(r.value, chunk) : [chunk];
      for (const c of out) {
        const problem = checkChunkShape(c);
        if (problem)
          throw new GatewayError(
            'server_error',
            `Middleware "${mw.name}" produced a malformed chunk: ${problem}.`,
            { status: 500 },
          );
      }
      next.push(...out);
    }
    current = next;
  }
  return current;
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
      for (const chunk of await throughChunkHooks(list, 0, [event.chunk], ctx))
        yield { type: 'chunk', chunk };
      continue;
    }
    // Held-back text must reach the client before `done`, and still pass the hooks after its owner.
    for (let i = 0; i < list.length; i++) {
      const mw = list[i]!;
      if (!mw.onStreamEnd) continue;
      const r = await call(mw, 'onStreamEnd', ctx, () => mw.onStreamEnd!(ctx));
      const tail = r.ok && r.value ? r.value : [];
      for (const chunk of await throughChunkHooks(list, i + 1, tail, ctx)) yield { type: 'chunk', chunk };
    }
    yield event;
  }
}

async function runResponseHooks(list: readonly Middleware[], ctx: GatewayContext): Promise<void> {
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
    for (const mw of list) {
      if (!mw.postResponse) continue;
      const response: ChatResponse = ctx.response;
      const r = await call(mw, 'postResponse', ctx, (): MaybePromise<ChatResponse | void> =>
        mw.postResponse!(response, ctx),
      );
      if (r.ok && r.value) ctx.response = r.value;
      const after = checkResponseShape(ctx.response);
      if (after) {
        throw new GatewayError(
          'server_error',
          `Middleware "${mw.name}" produced a malformed response: ${after}.`,
          { status: 500 },
        );
      }
    }
  } else if (ctx.streamEvents) {
    ctx.streamEvents = wrapStream(ctx.streamEvents, list, ctx);
  }
}

/**
 * Runs the preRequest hooks now and registers the response and error hooks for later. Response hooks run
 * in reverse order, like an onion: a PII scrubber listed first restores placeholders last, after every
 * other middleware saw the scrubbed answer.
 */
export async function runMiddlewares(list: readonly Middleware[], ctx: GatewayContext): Promise<void> {
  const reversed = [...list].reverse();
  // Registered first so that a failing preRequest still reaches every onError.
  if (list.some((mw) => mw.onError)) {
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
  for (const mw of list) {
    if (!mw.preRequest) continue;
    const request = ctx.request;
    const r = await call(mw, 'preRequest', ctx, () => mw.preRequest!(request, ctx));
    if (r.ok && r.value) ctx.request = r.value;
    if (!ctx.request || !Array.isArray(ctx.request.messages)) {
      throw new GatewayError('server_error', `Middleware "${mw.name}" left no valid request behind.`, {
        status: 500,
      });
    }
  }
}
