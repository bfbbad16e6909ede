/**
 * OpenAI Chat Completions.
 * @see https://platform.openai.com/docs/api-reference/chat
 */
import type { ChatMessage, ChatRequest, FinishReason, ToolCall, Usage } from '../../types/index.js';
import { GatewayError } from '../errors.js';
import type { AdapterResult, ProviderAdapter, StreamPart, Target, UpstreamEvent } from './adapter.js';
import { emptyUsage, joinUrl } from './adapter.js';

/** Reasoning models refuse `max_tokens` and want `max_completion_tokens`. */
const NEEDS_MAX_COMPLETION_TOKENS = /^(o\d|gpt-5)/;

export function convertToOpenAIMessages(messages: ChatMessage[]): Record<string, unknown>[] {
  return messages.map((m) => {
    const out: Record<string, unknown> = { role: m.role, content: m.content };
    if (m.name) out.name = m.name;
    if (m.tool_calls?.length) out.tool_calls = m.tool_calls;
    if (m.tool_call_id) out.tool_call_id = m.tool_call_id;
    return out;
  });
}

/** @see https://platform.openai.com/docs/api-reference/chat/object#chat/object-choices */
export function mapOpenAIFinishReason(reason: unknown): FinishReason {
  switch (reason) {
    case 'stop':
      return 'stop';
    case 'length':
      return 'length';
    case 'tool_calls':
    case 'function_call':
      return 'tool_calls';
    case 'content_filter':
      return 'content_filter';
    default:
      return 'other';
  }
}

export function convertOpenAIUsage(raw: any): Usage {
  if (!raw || typeof raw !== 'object') return emptyUsage();
  const usage: Usage = {
    prompt_tokens: Number(raw.prompt_tokens) || 0,
    completion_tokens: Number(raw.completion_tokens) || 0,
    total_tokens: Number(raw.total_tokens) || 0,
  };
  const cached = Number(raw.prompt_tokens_details?.cached_tokens) || 0;
  if (cached) usage.cached_prompt_tokens = cached;
  if (!usage.total_tokens) usage.total_tokens = usage.prompt_tokens + usage.completion_tokens;
  return usage;
}

export function buildOpenAIBody(
  request: ChatRequest,
  target: Target,
  dialect: 'openai' | 'mistral' = 'openai',
) {
  const body: Record<string, unknown> = {
    model: target.model,
    messages: convertToOpenAIMessages(request.messages),
  };
  if (request.max_tokens !== undefined) {
    const key =
      dialect === 'openai' && NEEDS_MAX_COMPLETION_TOKENS.test(target.model)
        ? 'max_completion_tokens'
        : 'max_tokens';
    body[key] = request.max_tokens;
  }
  if (request.temperature !== undefined) body.temperature = request.temperature;
  if (request.top_p !== undefined) body.top_p = request.top_p;
  if (request.stop !== undefined) body.stop = request.stop;
  // OpenAI refuses tool_choice without tools.
  if (request.tools?.length) {
    body.tools = request.tools;
    if (request.tool_choice !== undefined) body.tool_choice = request.tool_choice;
  }
  if (target.stream) body.stream = true;
  return body;
}

export interface OpenAIStreamState {
  toolCalls: Map<number, ToolCall>;
}

/** Parses one chunk of an OpenAI stream (Mistral has its own parser: its finish reasons and tool-call ids differ). */
export function parseOpenAIStyleChunk(event: UpstreamEvent, state: OpenAIStreamState): StreamPart[] {
  if (event.data === '[DONE]') return [];
  let chunk: any;
  try {
    chunk = JSON.parse(event.data);
  } catch {
    return [{ type: 'error', kind: 'server_error', message: 'Provider sent a malformed stream chunk.' }];
  }
  if (chunk?.error) {
    return [
      {
        type: 'error',
        kind: 'server_error',
        message: String(chunk.error.message ?? 'Provider stream failed.'),
      },
    ];
  }
  if (chunk?.object === 'error') {
    return [
      { type: 'error', kind: 'server_error', message: String(chunk.message ?? 'Provider stream failed.') },
    ];
  }
  const parts: StreamPart[] = [];
  const choice = chunk?.choices?.[0];
  const delta = choice?.delta;
  if (typeof delta?.content === 'string' && delta.content) parts.push({ type: 'delta', text: delta.content });
  if (Array.isArray(delta?.tool_calls)) {
    for (const [i, tc] of delta.tool_calls.entries()) {
      const index = typeof tc.index === 'number' ? tc.index : i;
      const existing = state.toolCalls.get(index);
      if (!existing) {
        state.toolCalls.set(index, {
          id: String(tc.id ?? `call_${index}`),
          type: 'function',
          function: {
            name: String(tc.function?.name ?? ''),
            arguments: String(tc.function?.arguments ?? ''),
          },
        });
      } else {
        if (tc.function?.name) existing.function.name += tc.function.name;
        if (tc.function?.arguments) existing.function.arguments += tc.function.arguments;
      }
    }
  }
  if (choice?.finish_reason)
    parts.push({ type: 'finish', finish_reason: mapOpenAIFinishReason(choice.finish_reason) });
  if (chunk?.usage) parts.push({ type: 'usage', usage: convertOpenAIUsage(chunk.usage) });
  return parts;
}

export function endOpenAIStyleStream(state: OpenAIStreamState): StreamPart[] {
  if (state.toolCalls.size === 0) return [];
  const calls = [...state.toolCalls.entries()].sort((a, b) => a[0] - b[0]).map(([, c]) => c);
  return [{ type: 'tool_calls', tool_calls: calls }];
}

export function parseOpenAIStyleResponse(body: any): AdapterResult {
  const choice = body?.choices?.[0];
  if (!choice) throw new GatewayError('server_error', 'Provider answered without any choice.');
  const message = choice.message ?? {};
  const result: AdapterResult = {
    content: typeof message.content === 'string' ? message.content : '',
    finish_reason: mapOpenAIFinishReason(choice.finish_reason),
    usage: convertOpenAIUsage(body.usage),
  };
  if (Array.isArray(message.tool_calls) && message.tool_calls.length) {
    result.tool_calls = message.tool_calls.map((tc: any) => ({
      id: String(tc.id),
      type: 'function' as const,
      function: {
        name: String(tc.function?.name ?? ''),
        arguments:
          typeof tc.function?.arguments === 'string'
            ? tc.function.arguments
            : JSON.stringify(tc.function?.arguments ?? {}),
      },
    }));
  }
  return result;
}

export const openai: ProviderAdapter<OpenAIStreamState> = {
  type: 'openai',
  streamFraming: 'sse',
  buildRequest(request, target) {
    const body = buildOpenAIBody(request, target);
    if (target.stream) body.stream_options = { include_usage: true };
    const headers: Record<string, string> = {
      'content-type': 'application/json',
      ...target.provider.headers,
    };
    if (target.apiKey) headers.authorization = `Bearer ${target.apiKey}`;
    return { url: joinUrl(target.provider.baseUrl, 'chat/completions'), headers, body };
  },
  parseResponse: parseOpenAIStyleResponse,
  createStreamState: () => ({ toolCalls: new Map() }),
  parseStreamEvent: parseOpenAIStyleChunk,
  endStream: endOpenAIStyleStream,
  parseError(status, body: any) {
    const message = typeof body?.error?.message === 'string' ? body.error.message : `HTTP ${status}`;
    return { message };
  },
};
