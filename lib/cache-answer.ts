/**
 * What the cache stores: one provider answer in a shape both faces can serve, whether it was produced by
 * `/chat` or by a completed stream. A hit turns it back into a JSON response or replays it as the unified
 * stream events, so a client cannot tell a cached stream from a live one except by `cached: true`.
 */
import type { ChatResponse, FinishReason, StreamDone, ToolCall, Usage } from '../types/index.js';
import { jsonString } from './cache-key.js';
import type { GatewayContext, StreamEvent } from './context.js';
import { elapsedMs, finishContext } from './context.js';
import { GatewayError } from './errors.js';

export interface CachedAnswer {
  content: string;
  finish_reason: FinishReason;
  usage: Usage;
  provider: string;
  model: string;
  /** What the answer cost when it was produced: what each hit saves. */
  cost: number;
  tool_calls?: ToolCall[];
}

// Copies, not references: response hooks may rewrite the live objects after the answer was captured.
function copyUsage(u: Usage): Usage {
  return { ...u };
}

function copyToolCalls(calls: ToolCall[] | undefined): ToolCall[] | undefined {
  return calls?.length ? calls.map((c) => ({ ...c, function: { ...c.function } })) : undefined;
}

export function answerFromResponse(r: ChatResponse): CachedAnswer {
  const answer: CachedAnswer = {
    content: r.content,
    finish_reason: r.finish_reason,
    usage: copyUsage(r.usage),
    provider: r.provider,
    model: r.model,
    cost: r.cost,
  };
  const calls = copyToolCalls(r.tool_calls);
  if (calls) answer.tool_calls = calls;
  return answer;
}

export function answerFromStream(done: StreamDone, content: string): CachedAnswer {
  const answer: CachedAnswer = {
    content,
    finish_reason: done.finish_reason,
    usage: copyUsage(done.usage),
    provider: done.provider,
    model: done.model,
    cost: done.cost,
  };
  const calls = copyToolCalls(done.tool_calls);
  if (calls) answer.tool_calls = calls;
  return answer;
}

/**
 * JSON.stringify(answer) for an answer made by answerFromResponse() or answerFromStream(), written directly:
 * the content is most of it and seldom needs escaping, which jsonString() finds out without copying.
 */
export function serializeAnswer(a: CachedAnswer): string {
  const { content, finish_reason, usage, provider, model, cost, tool_calls } = a;
  if (
    typeof content !== 'string' ||
    typeof finish_reason !== 'string' ||
    typeof provider !== 'string' ||
    typeof model !== 'string' ||
    typeof cost !== 'number' ||
    typeof usage !== 'object' ||
    usage === null
  ) {
    return JSON.stringify(a);
  }
  const calls = tool_calls === undefined ? '' : `,"tool_calls":${JSON.stringify(tool_calls)}`;
  return (
    `{"content":${jsonString(content)},"finish_reason":${jsonString(finish_reason)},` +
    `"usage":${JSON.stringify(usage)},"provider":${jsonString(provider)},"model":${jsonString(model)},` +
    `"cost":${JSON.stringify(cost)}${calls}}`
  );
}

/** Anything else in a store (another version, another writer, corruption) reads as a miss. */
export function parseCachedAnswer(text: string): CachedAnswer | undefined {
  let v: any;
  try {
    v = JSON.parse(text);
  } catch {
    return undefined;
  }
  if (
    !v ||
    typeof v !== 'object' ||
    typeof v.content !== 'string' ||
    typeof v.finish_reason !== 'string' ||
    typeof v.provider !== 'string' ||
    typeof v.model !== 'string' ||
    typeof v.cost !== 'number' ||
    !v.usage ||
    typeof v.usage.total_tokens !== 'number'
  ) {
    return undefined;
  }
  return v as CachedAnswer;
}

export function responseFromAnswer(ctx: GatewayContext, a: CachedAnswer): ChatResponse {
  const response: ChatResponse = {
    id: ctx.requestId,
    provider: a.provider,
    model: a.model,
    content: a.content,
    finish_reason: a.finish_reason,
    usage: copyUsage(a.usage),
    cost: 0,
    latency_ms: elapsedMs(ctx),
    cached: true,
  };
  const calls = copyToolCalls(a.tool_calls);
  if (calls) response.tool_calls = calls;
  return response;
}

/** Word-sized pieces whose concatenation is exactly `text`, like a provider's own stream. */
export function splitWords(text: string): string[] {
  return text.match(/\s*\S+|\s+$/g) ?? [];
}

/**
 * Replays an answer as the unified stream events, reporting the outcome exactly once as the routing
 * stage's stream does: completed before `done` is handed out, or a client-closed error if left early.
 */
export async function* replayAnswer(ctx: GatewayContext, a: CachedAnswer): AsyncGenerator<StreamEvent> {
  const { provider, model } = a;
  let completed = false;
  let ttftMs: number | undefined;
  try {
    for (const delta of splitWords(a.content)) {
      ttftMs ??= elapsedMs(ctx);
      yield { type: 'chunk', chunk: { delta, provider, model } };
    }
    const calls = copyToolCalls(a.tool_calls);
    if (calls) yield { type: 'chunk', chunk: { delta: '', provider, model, tool_calls: calls } };
    const done: StreamDone = {
      finish_reason: a.finish_reason,
      usage: copyUsage(a.usage),
      cost: 0,
      provider,
      model,
      latency_ms: elapsedMs(ctx),
      cached: true,
    };
    if (calls) done.tool_calls = copyToolCalls(calls);
    completed = true;
    finishContext(ctx, { status: 200, done, ttftMs, content: a.content });
    yield { type: 'done', done };
  } finally {
    if (!completed) {
      const error = new GatewayError('connection', 'The client closed the stream before it completed.', {
        provider,
        status: 499,
      });
      finishContext(ctx, { status: error.status, error, ttftMs });
    }
  }
}
