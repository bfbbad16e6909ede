/**
 * The unified stream rendered with OpenAI's exact SSE framing: `chat.completion.chunk` objects as plain
 * `data:` events (the first delta carries the role), a chunk with the finish reason, a usage chunk with
 * empty `choices` when the client asked for `stream_options.include_usage`, then `data: [DONE]`.
 */
import type { Response } from 'express';
import type { StreamDone, ToolCall } from '../../types/index.js';
import type { GatewayContext, StreamEvent } from '../context.js';
import { GatewayError, toGatewayError } from '../errors.js';
import { sendNow, sseEvent, writeEventStreamHead } from '../sse.js';
import { toOpenAIError } from './errors.js';
import type { CompletionMeta, OpenAIFinishReason } from './response.js';
import { toOpenAIFinishReason, toOpenAIToolCalls, toOpenAIUsage } from './response.js';

export interface OpenAIStreamOptions {
  meta: CompletionMeta;
  includeUsage: boolean;
  /** The gateway's headers, a fresh object: the stream's own are added to it. */
  headers: Record<string, string>;
}

/** Builds the chunks of one answer; they share id, created and (once known) the answering model. */
function chunkWriter(res: Response, options: OpenAIStreamOptions) {
  const { meta, includeUsage } = options;
  let roleSent = false;
  let toolCallsSent = false;

  const write = (model: string, body: { choices: unknown[]; usage?: unknown }) => {
    res.write(
      sseEvent({
        id: meta.id,
        object: 'chat.completion.chunk',
        created: meta.created,
        model,
        ...body,
        // With include_usage, OpenAI sends `usage: null` on every chunk but the last.
        ...(includeUsage && body.usage === undefined ? { usage: null } : {}),
      }),
    );
  };
  const delta = (model: string, d: Record<string, unknown>, finish: OpenAIFinishReason | null = null) => {
    // OpenAI's first delta always names the role; clients that assemble messages rely on it.
    const first = roleSent ? {} : { role: 'assistant', content: '' };
    roleSent = true;
    write(model, {
      choices: [{ index: 0, delta: { ...first, ...d }, logprobs: null, finish_reason: finish }],
    });
  };
  const toolCalls = (model: string, calls: ToolCall[]) => {
    toolCallsSent = true;
    // The unified stream delivers each call whole; one delta with every call (and its index) is valid OpenAI.
    delta(model, { tool_calls: toOpenAIToolCalls(calls).map((c, index) => ({ index, ...c })) });
  };

  return {
    event(event: StreamEvent): void {
      if (event.type === 'chunk') {
        const { chunk } = event;
        if (chunk.delta || !roleSent) delta(chunk.model, chunk.delta ? { content: chunk.delta } : {});
        if (chunk.tool_calls?.length) toolCalls(chunk.model, chunk.tool_calls);
        return;
      }
      const done: StreamDone = event.done;
      if (done.tool_calls?.length && !toolCallsSent) toolCalls(done.model, done.tool_calls);
      delta(done.model, {}, toOpenAIFinishReason(done.finish_reason));
      if (includeUsage) write(done.model, { choices: [], usage: toOpenAIUsage(done.usage) });
      res.write('data: [DONE]\n\n');
    },
  };
}

export async function writeOpenAIStream(
  ctx: GatewayContext,
  res: Response,
  options: OpenAIStreamOptions,
): Promise<void> {
  const events = ctx.streamEvents![Symbol.asyncIterator]();
  // The first event is awaited before the status line, so a failure there still gets its own HTTP status
  // (and an OpenAI SDK its typed error) from the error handler.
  let next: IteratorResult<StreamEvent>;
  try {
    next = await events.next();
  } catch (err) {
    await events.return?.(undefined);
    throw err;
  }
  writeEventStreamHead(res, options.headers);
  // No flushHeaders(): the first chunk is written just below, and the headers leave in the same write.
  const writer = chunkWriter(res, options);
  let completed = false;
  try {
    let first = true;
    for (;;) {
      if (res.destroyed || next.done) break;
      writer.event(next.value);
      if (first) {
        first = false;
        sendNow(res);
      }
      if (next.value.type === 'done') completed = true;
      next = await events.next();
    }
    if (!completed && !res.destroyed) {
      throw new GatewayError('server_error', 'The stream ended before it completed.', { status: 502 });
    }
  } catch (err) {
    // The status is already sent: the error travels as a `data:` event, which OpenAI's SDKs throw on.
    if (!res.destroyed) res.write(sseEvent(toOpenAIError(toGatewayError(err))));
  } finally {
    // Stops the upstream when we leave early (client gone).
    await events.return?.(undefined);
    res.end();
  }
}
