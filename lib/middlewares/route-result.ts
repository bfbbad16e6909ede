/**
 * What a successful attempt becomes: the unified JSON response, or the unified stream of chunk and done
 * events (with usage, cost and the outcome report at its end). Kept apart from the routing loop, which only
 * decides where to send the request.
 */
import type { ChatResponse, StreamDone, ToolCall, Usage } from '../../types/index.js';
import type { GatewayContext, StreamEvent } from '../context.js';
import { elapsedMs, finishContext } from '../context.js';
import { GatewayError, toGatewayError } from '../errors.js';
import type { AdapterResult, StreamPart } from '../providers/adapter.js';
import type { PlannedTarget } from '../routing.js';

function costOf(ctx: GatewayContext, t: PlannedTarget, usage: Usage): number {
  return ctx.runtime.prices.costOf(usage, t.provider.config.name, t.provider.config.type, t.model);
}

/** Gemini says STOP even when it asked for a tool; clients' agent loops need `tool_calls`. */
function finalFinishReason(reason: AdapterResult['finish_reason'], toolCalls: ToolCall[] | undefined) {
  return toolCalls?.length && (reason === 'stop' || reason === 'other') ? 'tool_calls' : reason;
}

export function buildResponse(ctx: GatewayContext, t: PlannedTarget, result: AdapterResult): ChatResponse {
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
export async function* unifiedStream(
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

  // A plain function, not a generator: a part yields at most one event, and a generator per streamed part
  // is an allocation and a delegation for nothing.
  function handle(part: StreamPart): StreamEvent | undefined {
    switch (part.type) {
      case 'delta':
        ttftMs ??= elapsedMs(ctx);
        content += part.text;
        return { type: 'chunk', chunk: { delta: part.text, provider, model } };
      case 'tool_calls':
        // Adapters may emit calls in several parts; every one of them belongs in `done`.
        toolCalls = [...(toolCalls ?? []), ...part.tool_calls];
        return { type: 'chunk', chunk: { delta: '', provider, model, tool_calls: part.tool_calls } };
      case 'finish':
        finish = part.finish_reason;
        return undefined;
      case 'usage':
        mergeUsage(usage, part.usage);
        return undefined;
      case 'error':
        throw new GatewayError(part.kind, `${provider}: ${part.message}`, { provider });
    }
  }

  try {
    if (first) {
      const event = handle(first);
      if (event) yield event;
    }
    for await (const part of rest) {
      const event = handle(part);
      if (event) yield event;
    }
    if (!finish) {
      throw new GatewayError('server_error', `${provider} ended the stream before it completed.`, {
        provider,
      });
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
        new GatewayError('connection', 'The client closed the stream before it completed.', {
          provider,
          status: 499,
        });
      finishContext(ctx, { status: error.status, error, ttftMs });
    }
  }
}
