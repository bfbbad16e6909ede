/**
 * The routing stage: sends the request to its targets in order (lib/routing.ts), retrying each with
 * backoff, skipping targets over the cost ceiling or behind an open circuit, and falling back on the error
 * kinds the policy names. It leaves either `ctx.response` or `ctx.streamEvents` behind. A stream can fall
 * back only until its first part arrived; after that a failure ends the stream with an error event.
 */
import { performance } from 'node:perf_hooks';
import type { BreakerTransition } from '../breaker.js';
import { BreakerRegistry } from '../breaker.js';
import type { GatewayContext } from '../context.js';
import { abortSourceOf, applyResponseHooks } from '../context.js';
import { affordableTargets } from '../cost-ceiling.js';
import { GatewayError, clientStatusOf, toGatewayError } from '../errors.js';
import type { AdapterResult, StreamPart, Target } from '../providers/adapter.js';
import { Deadline, retryDelayMs, sleep } from '../retry.js';
import type { RoutingSettings } from '../routing-config.js';
import { routingSettings } from '../routing-config.js';
import type { PlannedTarget, RoutePlan } from '../routing.js';
import { planRoute } from '../routing.js';
import type { Stage } from '../stage.js';
import { buildResponse, unifiedStream } from './route-result.js';

type Success =
  | { type: 'json'; result: AdapterResult }
  | { type: 'stream'; first: StreamPart; parts: AsyncGenerator<StreamPart> };

/** What one request's routing works with. */
interface RouteRun {
  ctx: GatewayContext;
  plan: RoutePlan;
  settings: RoutingSettings;
  deadline: Deadline;
  breakers: BreakerRegistry;
}

/** One call to one target; throws a GatewayError on any failure. */
async function attemptOnce(
  ctx: GatewayContext,
  t: PlannedTarget,
  apiKey: string | undefined,
  deadline: Deadline,
): Promise<Success> {
  const target: Target = { provider: t.provider.config, model: t.model, apiKey, stream: ctx.stream };
  if (!ctx.stream) {
    return {
      type: 'json',
      result: await t.provider.client.send(t.provider.adapter, ctx.request, target, deadline),
    };
  }
  const parts = await t.provider.client.openStream(t.provider.adapter, ctx.request, target, deadline);
  // Waiting for the first part keeps fallback possible: nothing has reached the client yet.
  const first = await parts.next();
  if (first.done)
    throw new GatewayError('server_error', `${t.provider.config.name} ended the stream without any data.`);
  if (first.value.type === 'error') {
    await parts.return(undefined);
    throw new GatewayError(first.value.kind, `${t.provider.config.name}: ${first.value.message}`);
  }
  return { type: 'stream', first: first.value, parts };
}

function logTransition(run: RouteRun, provider: string, transition: BreakerTransition): void {
  const logger = run.ctx.runtime.logger;
  if (transition === 'opened') {
    logger.warn(
      { provider, cooldown_ms: run.settings.breaker.cooldownMs, request_id: run.ctx.requestId },
      `Circuit opened for ${provider} after ${run.settings.breaker.failureThreshold} failures in a row; it is skipped until a probe succeeds.`,
    );
  } else if (transition === 'closed') {
    logger.info(
      { provider, request_id: run.ctx.requestId },
      `Circuit closed for ${provider}: it answered again.`,
    );
  }
}

function record(ctx: GatewayContext, t: PlannedTarget, started: number, error?: GatewayError): void {
  const provider = t.provider.config.name;
  const model = t.model;
  const latency_ms = Math.round(performance.now() - started);
  // Built whole, in the order clients see the fields: no intermediate object to spread.
  ctx.attempts.push(
    !error
      ? { provider, model, status: 200, latency_ms }
      : error.upstreamStatus
        ? { provider, model, error_kind: error.kind, status: error.upstreamStatus, latency_ms }
        : { provider, model, error_kind: error.kind, latency_ms },
  );
}

/**
 * One target with its retries. Resolves with the success, or with the error that ends this target (for the
 * caller to decide on fallback); throws when the whole request is over (client gone, deadline passed).
 */
async function tryTarget(run: RouteRun, t: PlannedTarget): Promise<Success | GatewayError> {
  const { ctx, deadline, settings } = run;
  const name = t.provider.config.name;
  const breaker = run.breakers.for(name);
  const since = performance.now();
  let keyRetries = 0;
  let rotatedKey: string | undefined;
  for (let retry = 0; ; retry++) {
    const started = performance.now();
    let apiKey: string | undefined;
    try {
      apiKey = rotatedKey ?? ctx.runtime.nextKey(t.provider);
      rotatedKey = undefined;
      const success = await attemptOnce(ctx, t, apiKey, deadline);
      record(ctx, t, started);
      logTransition(run, name, breaker.onSuccess());
      return success;
    } catch (err) {
      const error = toGatewayError(err);
      error.provider ??= name;
      if (deadline.aborted) {
        // Not the provider's verdict: our own clock or the client ended the call.
        breaker.release();
        record(ctx, t, started, deadline.expired ? deadline.error(undefined) : error);
        throw deadline.expired ? deadline.error(ctx.attempts) : error;
      }
      record(ctx, t, started, error);
      t.provider.keys.report(apiKey, error);
      // A key the provider refused leaves the rotation; the next key gets the request at once, so that a
      // revoked key costs no request as long as another one works.
      if (error.upstreamStatus === 401 && keyRetries <= t.provider.keys.size) {
        rotatedKey = t.provider.keys.newerKey(apiKey);
        if (rotatedKey || (keyRetries < t.provider.keys.size - 1 && t.provider.keys.hasUsableKey())) {
          keyRetries += 1;
          retry -= 1;
          continue;
        }
      }
      // Only failures another attempt may cure count against the provider; a 400 proves it is up.
      logTransition(run, name, error.retryable ? breaker.onFailure(settings.breaker) : breaker.onSuccess());
      if (!error.retryable || retry >= t.provider.config.maxRetries) return error;
      const wait = retryDelayMs(retry, error.retryAfterMs, settings.maxRetryWaitMs);
      const spent = performance.now() - since;
      if (wait === undefined || spent + wait > settings.retryBudgetMs || wait >= deadline.remainingMs()) {
        ctx.runtime.logger.info(
          {
            request_id: ctx.requestId,
            provider: name,
            retry_after_ms: error.retryAfterMs,
            spent_ms: Math.round(spent),
          },
          wait === undefined
            ? `${name} asked to wait longer than routing.max_retry_wait_seconds; not retrying it.`
            : `No time left to retry ${name} (retry budget or request deadline).`,
        );
        return error;
      }
      if (!(await sleep(wait, deadline))) {
        throw deadline.expired ? deadline.error(ctx.attempts) : error;
      }
      // The circuit may have opened meanwhile (this request's failures, or others'): move on then.
      if (!breaker.tryAcquire(settings.breaker)) return error;
    }
  }
}

/** What the client sees when routing gives up. */
function finalError(ctx: GatewayContext, last: GatewayError): GatewayError {
  const providers = new Set(ctx.attempts.map((a) => a.provider));
  if (providers.size <= 1) {
    return new GatewayError(last.kind, last.message, {
      provider: last.provider,
      status: clientStatusOf(last.kind, last.upstreamStatus),
      upstreamStatus: last.upstreamStatus,
      retryAfterMs: last.retryAfterMs,
      attempts: ctx.attempts,
    });
  }
  const summary = ctx.attempts.map((a) => `${a.provider}/${a.model}: ${a.error_kind}`).join('; ');
  // When the last provider refused for rate limits, the client is best served by a 429 it can retry.
  const rateLimited = last.kind === 'rate_limit';
  return new GatewayError(
    rateLimited ? 'rate_limit' : 'all_providers_failed',
    `Every provider failed: ${summary}.`,
    {
      status: rateLimited ? 429 : 502,
      retryAfterMs: last.retryAfterMs,
      attempts: ctx.attempts,
    },
  );
}

async function deliver(
  run: RouteRun,
  t: PlannedTarget,
  success: Success,
  targetsTried: number,
): Promise<void> {
  const { ctx } = run;
  const name = t.provider.config.name;
  if (success.type === 'json') ctx.response = buildResponse(ctx, t, success.result);
  else ctx.streamEvents = unifiedStream(ctx, t, success.first, success.parts);
  ctx.responseHeaders['X-Gateway-Provider'] = name;
  ctx.responseHeaders['X-Gateway-Model'] = t.model;
  // Counts targets moved past, not retries on the same target (those are in `attempts`).
  ctx.responseHeaders['X-Gateway-Fallback-Count'] = String(targetsTried - 1);
  if (ctx.attempts.length > 1) {
    ctx.runtime.logger.info(
      {
        request_id: ctx.requestId,
        provider: name,
        model: t.model,
        attempts: ctx.attempts,
        source: run.plan.source,
      },
      targetsTried > 1 ? 'Request served by a fallback target.' : 'Request served after retries.',
    );
  }
  await applyResponseHooks(ctx);
}

async function route(run: RouteRun): Promise<void> {
  const { ctx, plan, settings } = run;
  let targets = plan.targets;
  if (plan.maxCostPerRequest !== undefined) {
    const { fits, skipped } = await affordableTargets(
      ctx.runtime,
      targets,
      ctx.request,
      plan.maxCostPerRequest,
    );
    for (const s of skipped) {
      ctx.runtime.logger.info(
        {
          request_id: ctx.requestId,
          provider: s.target.provider.config.name,
          model: s.target.model,
          worst_case_cost: s.worstCase,
        },
        'Target skipped: its worst-case cost exceeds max_cost_per_request.',
      );
    }
    targets = fits;
  }
  const open: PlannedTarget[] = [];
  let last: GatewayError | undefined;
  let tried = 0;
  const attempt = async (t: PlannedTarget): Promise<'done' | 'next' | 'stop'> => {
    tried += 1;
    const outcome = await tryTarget(run, t);
    if (!(outcome instanceof GatewayError)) {
      // Outside tryTarget: a failing response hook is the gateway's error, not a reason to fall back.
      await deliver(run, t, outcome, tried);
      return 'done';
    }
    last = outcome;
    if (!plan.fallbackOn.includes(outcome.kind)) return 'stop';
    return 'next';
  };

  for (const t of targets) {
    if (!run.breakers.for(t.provider.config.name).tryAcquire(settings.breaker)) {
      open.push(t);
      ctx.runtime.logger.debug?.(
        { request_id: ctx.requestId, provider: t.provider.config.name },
        'Target skipped: its circuit is open.',
      );
      continue;
    }
    const result = await attempt(t);
    if (result === 'done') return;
    if (result === 'stop') break;
    ctx.runtime.logger.warn(
      { request_id: ctx.requestId, provider: t.provider.config.name, model: t.model, error_kind: last!.kind },
      'Provider failed; trying the next target.',
    );
  }
  if (tried === 0 && open.length > 0) {
    // Every target is open: a call to the one that recovers first beats failing without trying.
    const reopens = (t: PlannedTarget) =>
      run.breakers.for(t.provider.config.name).reopensAt(settings.breaker);
    const soonest = open.reduce((a, b) => (reopens(b) < reopens(a) ? b : a));
    run.breakers.for(soonest.provider.config.name).forceAcquire();
    if ((await attempt(soonest)) === 'done') return;
  }
  throw finalError(ctx, last!);
}

const sharedBreakers = new BreakerRegistry();

export async function runRoute(
  ctx: GatewayContext,
  breakers: BreakerRegistry = sharedBreakers,
): Promise<void> {
  if (ctx.response || ctx.streamEvents) return;
  const plan = planRoute(ctx.runtime, ctx.request.model);
  const settings = routingSettings(ctx.runtime.config);
  const deadline = new Deadline(abortSourceOf(ctx), settings.requestTimeoutMs);
  try {
    await route({ ctx, plan, settings, deadline, breakers });
  } finally {
    // Ends the deadline once routing is over; a stream already flowing is bounded by its idle timeout.
    deadline.stop();
  }
}

export interface RouteStageOptions {
  /**
   * Circuit breakers by provider name. The Gateway passes its own, so that they outlive config reloads
   * and show in /health; by default a stage gets one of its own.
   */
  breakers?: BreakerRegistry;
}

export function routeStage(options: RouteStageOptions = {}): Stage {
  const breakers = options.breakers ?? new BreakerRegistry();
  return { name: 'route', run: (ctx) => runRoute(ctx, breakers) };
}
