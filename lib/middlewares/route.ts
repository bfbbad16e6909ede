/**
 * The routing stage: sends the request to its targets in order, falling back on the error kinds the
 * policy names, and leaves either `ctx.response` or `ctx.streamEvents` behind. A stream can fall back only
 * until its first part arrived; after that a failure ends the stream with an error event.
 */
import { performance } from 'node:perf_hooks';
import type { ChatResponse, ErrorKind, StreamDone, ToolCall, Usage } from '../../types/index.js';
import type { GatewayContext, StreamEvent } from '../context.js';
import { applyResponseHooks, elapsedMs, finishContext } from '../context.js';
import { GatewayError, clientStatusOf, toGatewayError } from '../errors.js';
import type { AdapterResult, StreamPart, Target } from '../providers/adapter.js';
import type { PlannedTarget } from '../routing.js';
import { planTargets } from '../routing.js';
import type { Stage } from '../stage.js';

const DEFAULT_FALLBACK_ON: readonly ErrorKind[] = ['rate_limit', 'timeout', 'server_error', 'connection'];

function costOf(ctx: GatewayContext, t: PlannedTarget, usage: Usage): number {
  return ctx.runtime.prices.costOf(usage, t.provider.config.name, t.provider.config.type, t.model);
}

/** Gemini says STOP even when it asked for a tool; clients' agent loops need `tool_calls`. */
function finalFinishReason(reason: AdapterResult['finish_reason'], toolCalls: ToolCall[] | undefined) {
  return toolCalls?.length && (reason === 'stop' || reason === 'other') ? 'tool_calls' : reason;
}

function buildResponse(ctx: GatewayContext, t: PlannedTarget, result: AdapterResult): ChatResponse {
  const response: ChatResponse = {
    id: ctx.requestId,
    provider: t.provider.config.name,
    model: t.model,
    content: result.content,
    finish_reason: finalFinishReason(result.finish_reason, result.tool_calls),
    usage: result.usage,
    cost: costOf(ctx, t, result.usage),
    latency_ms: elapsedMs(ctx),
    cached: false,
  };
  if (result.tool_calls?.length) response.tool_calls = result.tool_calls;
  if (ctx.attempts.length > 1) response.attempts = ctx.attempts;
  return response;
}

function mergeUsage(into: Usage, part: Partial<Usage>): void {
  for (const [k, v] of Object.entries(part) as [keyof Usage, number | undefined][]) {
    if (typeof v === 'number') into[k] = v;
  }
}

/** Turns adapter parts into unified events, computes usage and cost, and reports the outcome. */
async function* unifiedStream(
  ctx: GatewayContext,
  t: PlannedTarget,
  first: StreamPart | undefined,
  rest: AsyncGenerator<StreamPart>,
): AsyncGenerator<StreamEvent> {
  const provider = t.provider.config.name;
  const model = t.model;
  const usage: Usage = { prompt_tokens: 0, completion_tokens: 0, total_tokens: 0 };
  let finish: AdapterResult['finish_reason'] | undefined;
  let toolCalls: ToolCall[] | undefined;
  let ttftMs: number | undefined;
  let completed = false;
  let failure: GatewayError | undefined;
  let content = '';

  function* handle(part: StreamPart): Generator<StreamEvent> {
    switch (part.type) {
      case 'delta':
        ttftMs ??= elapsedMs(ctx);
        content += part.text;
        yield { type: 'chunk', chunk: { delta: part.text, provider, model } };
        break;
      case 'tool_calls':
        toolCalls = part.tool_calls;
        yield { type: 'chunk', chunk: { delta: '', provider, model, tool_calls: part.tool_calls } };
        break;
      case 'finish':
        finish = part.finish_reason;
        break;
      case 'usage':
        mergeUsage(usage, part.usage);
        break;
      case 'error':
        throw new GatewayError(part.kind, `${provider}: ${part.message}`, { provider });
    }
  }

  try {
    if (first) yield* handle(first);
    for await (const part of rest) yield* handle(part);
    if (!finish) {
      throw new GatewayError('server_error', `${provider} ended the stream before it completed.`, { provider });
    }
    if (usage.total_tokens < usage.prompt_tokens + usage.completion_tokens) {
      usage.total_tokens = usage.prompt_tokens + usage.completion_tokens;
    }
    const done: StreamDone = {
      finish_reason: finalFinishReason(finish, toolCalls),
      usage,
      cost: costOf(ctx, t, usage),
      provider,
      model,
      latency_ms: elapsedMs(ctx),
      cached: false,
    };
    if (toolCalls) done.tool_calls = toolCalls;
    completed = true;
    finishContext(ctx, { status: 200, done, ttftMs, content });
    yield { type: 'done', done };
  } catch (err) {
    failure = toGatewayError(err);
    failure.provider ??= provider;
    throw failure;
  } finally {
    await rest.return(undefined);
    if (!completed) {
      // Ended by an error, or by the consumer leaving early (client disconnect).
      const error =
        failure ??
        new GatewayError('connection', 'The client closed the stream before it completed.', { provider, status: 499 });
      finishContext(ctx, { status: error.status, error, ttftMs });
    }
  }
}

function shouldFallback(ctx: GatewayContext, err: GatewayError): boolean {
  if (ctx.signal.aborted) return false;
  const on = ctx.runtime.config.routing?.fallbackOn ?? DEFAULT_FALLBACK_ON;
  return on.includes(err.kind);
}

/** What the client sees when routing gives up. */
function finalError(ctx: GatewayContext, last: GatewayError): GatewayError {
  if (ctx.attempts.length <= 1) {
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
  return new GatewayError(rateLimited ? 'rate_limit' : 'all_providers_failed', `Every provider failed: ${summary}.`, {
    status: rateLimited ? 429 : 502,
    retryAfterMs: last.retryAfterMs,
    attempts: ctx.attempts,
  });
}

export async function runRoute(ctx: GatewayContext): Promise<void> {
  if (ctx.response || ctx.streamEvents) return;
  const targets = planTargets(ctx.runtime, ctx.request.model);
  let last: GatewayError | undefined;
  for (const t of targets) {
    const started = performance.now();
    const target: Target = {
      provider: t.provider.config,
      model: t.model,
      apiKey: ctx.runtime.nextKey(t.provider),
      stream: ctx.stream,
    };
    try {
      if (!ctx.stream) {
        const result = await t.provider.client.send(t.provider.adapter, ctx.request, target, ctx.signal);
        ctx.attempts.push({
          provider: target.provider.name,
          model: t.model,
          status: 200,
          latency_ms: Math.round(performance.now() - started),
        });
        ctx.response = buildResponse(ctx, t, result);
      } else {
        const parts = await t.provider.client.openStream(t.provider.adapter, ctx.request, target, ctx.signal);
        // Waiting for the first part keeps fallback possible: nothing has reached the client yet.
        const first = await parts.next();
        if (!first.done && first.value.type === 'error') {
          await parts.return(undefined);
          throw new GatewayError(first.value.kind, `${target.provider.name}: ${first.value.message}`);
        }
        if (first.done) {
          throw new GatewayError('server_error', `${target.provider.name} ended the stream without any data.`);
        }
        ctx.attempts.push({
          provider: target.provider.name,
          model: t.model,
          status: 200,
          latency_ms: Math.round(performance.now() - started),
        });
        ctx.streamEvents = unifiedStream(ctx, t, first.value, parts);
      }
      ctx.responseHeaders['X-Gateway-Provider'] = target.provider.name;
      ctx.responseHeaders['X-Gateway-Model'] = t.model;
      ctx.responseHeaders['X-Gateway-Fallback-Count'] = String(ctx.attempts.length - 1);
    } catch (err) {
      const error = toGatewayError(err);
      error.provider ??= target.provider.name;
      ctx.attempts.push({
        provider: target.provider.name,
        model: t.model,
        error_kind: error.kind,
        ...(error.upstreamStatus ? { status: error.upstreamStatus } : {}),
        latency_ms: Math.round(performance.now() - started),
      });
      last = error;
      if (ctx.signal.aborted) throw error;
      if (!shouldFallback(ctx, error)) break;
      ctx.runtime.logger.warn(
        { request_id: ctx.requestId, provider: target.provider.name, model: t.model, error_kind: error.kind },
        'Provider attempt failed; trying the next target.',
      );
      continue;
    }
    // Outside the try: a failing response hook is the gateway's error, not a reason to fall back.
    await applyResponseHooks(ctx);
    return;
  }
  throw finalError(ctx, last!);
}

export function routeStage(): Stage {
  return { name: 'route', run: runRoute };
}
