/**
 * The cache stage: before routing, answers from the cache when it can (a JSON response, or a replay of
 * the unified stream events); otherwise lets routing run and stores the provider's answer once the request
 * succeeded. Identical non-stream misses in flight at the same time share one upstream call.
 */
import type { ChatRequest } from '../../types/index.js';
import type { CachedAnswer } from '../cache-answer.js';
import {
  answerFromResponse,
  answerFromStream,
  parseCachedAnswer,
  replayAnswer,
  responseFromAnswer,
  serializeAnswer,
} from '../cache-answer.js';
import type { CacheBackendOptions } from '../cache-backend.js';
import { CacheBackend } from '../cache-backend.js';
import { cacheKeyOf } from '../cache-key.js';
import type { GatewayContext, RequestOutcome } from '../context.js';
import { applyResponseHooksNow } from '../context.js';
import { GatewayError, InvalidRequestError } from '../errors.js';
import type { Gateway } from '../gateway.js';
import type { Stage } from '../stage.js';
import { toExpress } from '../stage.js';
import type { CacheStore } from '../../types/index.js';

export type CacheStageOptions = Omit<CacheBackendOptions, 'store'>;

// One backend per gateway, not per stage object: a host's custom router pipeline builds its own stage
// objects, and they must still share the gateway's store and in-flight map with `gateway.chat()`.
const backends = new WeakMap<Gateway, CacheBackend>();

function backendOf(gateway: Gateway, options: CacheStageOptions): CacheBackend {
  let backend = backends.get(gateway);
  if (!backend) {
    const created = new CacheBackend(gateway.logger, { ...options, store: gateway.cacheStore });
    gateway.onClose(() => created.close());
    backends.set(gateway, created);
    backend = created;
  }
  return backend;
}

interface RequestPolicy {
  ttl?: number;
  /** Neither read nor write (`cache.bypass`, `Cache-Control: no-store`). */
  skip: boolean;
  /** Do not read, but store the fresh answer (`Cache-Control: no-cache`): a forced refresh. */
  refresh: boolean;
}

function requestPolicy(ctx: GatewayContext): RequestPolicy {
  const c = ctx.request.cache as Record<string, unknown> | undefined;
  let ttl: number | undefined;
  let bypass = false;
  if (c) {
    if (c.ttl !== undefined) {
      if (typeof c.ttl !== 'number' || !Number.isFinite(c.ttl) || c.ttl <= 0) {
        throw new InvalidRequestError(
          'cache.ttl must be a positive number of seconds, e.g. {"cache": {"ttl": 60}}; to skip the cache send {"cache": {"bypass": true}}.',
          'cache.ttl',
        );
      }
      ttl = c.ttl;
    }
    if (c.bypass !== undefined) {
      if (typeof c.bypass !== 'boolean')
        throw new InvalidRequestError('cache.bypass must be true or false.', 'cache.bypass');
      bypass = c.bypass;
    }
  }
  // Set by parseRequest from the HTTP header; a host may set it for the programmatic face too.
  const header = ctx.locals.cacheControl;
  const directives =
    typeof header === 'string'
      ? header
          .toLowerCase()
          .split(',')
          .map((d) => d.trim())
      : [];
  return {
    ttl,
    skip: bypass || directives.includes('no-store'),
    refresh: directives.includes('no-cache') || directives.includes('max-age=0'),
  };
}

/** Sampling makes each answer a draw; serving one draw forever would change what the client asked for. */
function isDeterministic(request: ChatRequest): boolean {
  return request.temperature === undefined || request.temperature === 0;
}

function untilAborted<T>(promise: Promise<T>, signal: AbortSignal): Promise<T> {
  const gone = () =>
    new GatewayError('connection', 'The client closed the request while it waited for an identical one.', {
      status: 499,
    });
  if (signal.aborted) return Promise.reject(gone());
  return new Promise<T>((resolve, reject) => {
    const onAbort = () => reject(gone());
    signal.addEventListener('abort', onAbort, { once: true });
    promise.then(
      (v) => {
        signal.removeEventListener('abort', onAbort);
        resolve(v);
      },
      (err: unknown) => {
        signal.removeEventListener('abort', onAbort);
        reject(err);
      },
    );
  });
}

interface Leader {
  promise: Promise<CachedAnswer | undefined>;
  resolve(answer: CachedAnswer | undefined): void;
}

/** What a lookup found: an answer, the lead on this key (a non-stream miss), or neither. */
interface Found {
  answer?: CachedAnswer;
  leader?: Leader;
}

function answerOf(ctx: GatewayContext, outcome: RequestOutcome, captured: CachedAnswer | undefined) {
  if (outcome.status !== 200) return undefined;
  let answer: CachedAnswer | undefined;
  if (ctx.stream) {
    // A stream reports `done` only when it completed; a cut or failed one never reaches here as a 200.
    if (outcome.done && typeof outcome.content === 'string')
      answer = answerFromStream(outcome.done, outcome.content);
  } else {
    answer = captured ?? (outcome.response ? answerFromResponse(outcome.response) : undefined);
  }
  return answer && answer.finish_reason !== 'error' ? answer : undefined;
}

export function cacheStage(gateway: Gateway, options: CacheStageOptions = {}): Stage {
  const backend = backendOf(gateway, options);

  function lead(key: string): Leader {
    let resolve!: (a: CachedAnswer | undefined) => void;
    const promise = new Promise<CachedAnswer | undefined>((r) => (resolve = r));
    backend.pending.set(key, promise);
    return { promise, resolve };
  }

  /**
   * Waits for an identical request in flight. With `orLead`, takes the lead when there is none: the check
   * and the taking happen with no await in between, or two waiters could both go upstream.
   */
  async function follow(ctx: GatewayContext, key: string, orLead: boolean): Promise<Found> {
    // A leader that failed hands over to the next waiter, who may fail in turn: bounded, then go upstream.
    for (let round = 0; round < 3; round++) {
      const inFlight = backend.pending.get(key);
      if (!inFlight) return orLead ? { leader: lead(key) } : {};
      const answer = await untilAborted(inFlight, ctx.signal);
      if (answer) return { answer };
    }
    return {};
  }

  /**
   * What the store holds for this key, or the lead on a miss. Without a promise when nothing needs waiting
   * for (the in-process store, no identical request in flight): then the whole stage runs synchronously.
   */
  function lookup(ctx: GatewayContext, store: CacheStore, key: string): Found | Promise<Found> {
    // While a leader is in flight its answer is not stored yet: no need to ask the store.
    if (!ctx.stream && backend.pending.has(key)) return lookupAfterLeader(ctx, store, key);
    const got = backend.get(store, key, parseCachedAnswer);
    return got instanceof Promise
      ? got.then((stored) => storedOrLead(ctx, key, stored))
      : storedOrLead(ctx, key, got);
  }

  async function lookupAfterLeader(ctx: GatewayContext, store: CacheStore, key: string): Promise<Found> {
    const waited = await follow(ctx, key, false);
    if (waited.answer) return waited;
    const got = backend.get(store, key, parseCachedAnswer);
    return storedOrLead(ctx, key, got instanceof Promise ? await got : got);
  }

  function storedOrLead(
    ctx: GatewayContext,
    key: string,
    stored: CachedAnswer | undefined,
  ): Found | Promise<Found> {
    if (stored) return { answer: stored };
    if (ctx.stream) return {};
    // What follow() does when nothing is in flight, without its promise: the usual miss.
    return backend.pending.has(key) ? follow(ctx, key, true) : { leader: lead(key) };
  }

  /** Frees the key for the next identical request, unless a later leader holds it by now. */
  function endLead(key: string, leader: Leader | undefined): void {
    if (leader && backend.pending.get(key) === leader.promise) backend.pending.delete(key);
  }

  function storeOnSuccess(ctx: GatewayContext, store: CacheStore, key: string, ttl: number, leader?: Leader) {
    let captured: CachedAnswer | undefined;
    if (!ctx.stream) {
      // First in line: later hooks (PII restore, response middlewares) shape the answer for this client
      // only. The cache keeps what the provider said and a hit runs those hooks again for its own client.
      ctx.responseHooks.unshift((c) => {
        if (c.response) captured = answerFromResponse(c.response);
      });
    }
    ctx.outcomeHooks.push((outcome) => {
      const answer = answerOf(ctx, outcome, captured);
      leader?.resolve(answer);
      // Leadership ends only once the entry is written: a lookup that missed just before must still find
      // the leader rather than go upstream a second time.
      const writing = answer && backend.set(store, key, serializeAnswer(answer), ttl);
      if (writing) void writing.then(() => endLead(key, leader));
      else endLead(key, leader);
    });
  }

  function serveHit(ctx: GatewayContext, answer: CachedAnswer): void | Promise<void> {
    ctx.cacheStatus = 'HIT';
    ctx.locals.costSaved = answer.cost;
    ctx.responseHeaders['X-Gateway-Provider'] = answer.provider;
    ctx.responseHeaders['X-Gateway-Model'] = answer.model;
    if (ctx.stream) ctx.streamEvents = replayAnswer(ctx, answer);
    else ctx.response = responseFromAnswer(ctx, answer);
    // Synchronous response hooks (the built-in middlewares') keep the whole hit synchronous.
    return applyResponseHooksNow(ctx);
  }

  /** Serves what the lookup found, or arranges for the answer routing produces to be stored. */
  function afterLookup(
    ctx: GatewayContext,
    store: CacheStore,
    key: string,
    ttl: number,
    found: Found,
  ): void | Promise<void> {
    if (found.answer) return serveHit(ctx, found.answer);
    ctx.cacheStatus = 'MISS';
    storeOnSuccess(ctx, store, key, ttl, found.leader);
  }

  return {
    name: 'cache',
    run(ctx) {
      if (ctx.response || ctx.streamEvents) return;
      const config = ctx.runtime.config.cache;
      const store = backend.storeFor(config);
      if (!store) return;
      const policy = requestPolicy(ctx);
      if (policy.skip || (!config.cacheNondeterministic && !isDeterministic(ctx.request))) {
        ctx.cacheStatus = 'BYPASS';
        return;
      }
      const key = cacheKeyOf(ctx.request, config, ctx.user);
      const ttl = policy.ttl ?? config.ttlSeconds;
      if (policy.refresh) {
        ctx.cacheStatus = 'BYPASS';
        storeOnSuccess(ctx, store, key, ttl);
        return;
      }
      const found = lookup(ctx, store, key);
      if (found instanceof Promise) return found.then((f) => afterLookup(ctx, store, key, ttl, f));
      return afterLookup(ctx, store, key, ttl, found);
    },
  };
}

/** The cache stage as an Express middleware, for hosts that compose their own chain. */
export function cacheMiddleware(gateway: Gateway, options: CacheStageOptions = {}) {
  return toExpress(cacheStage(gateway, options));
}
