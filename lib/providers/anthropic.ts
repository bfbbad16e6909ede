/**
 * Anthropic Messages API. The request conversion lives in anthropic-messages.ts; this file builds the call
 * and reads answers, streams and errors.
 * @see https://docs.anthropic.com/en/api/messages
 * @see https://docs.anthropic.com/en/docs/build-with-claude/streaming
 */
import type { ChatRequest, ErrorKind, FinishReason, ToolCall, Usage } from '../../types/index.js';
import { GatewayError } from '../errors.js';
import type { AdapterResult, ProviderAdapter, StreamPart, Target } from './adapter.js';
import { joinUrl } from './adapter.js';
import {
  convertToAnthropicMessages,
  convertToAnthropicToolChoice,
  convertToAnthropicTools,
} from './anthropic-messages.js';

/** The version raw HTTP clients pin; newer ones only add features this adapter does not use. */
export const ANTHROPIC_VERSION = '2023-06-01';

/** @see https://docs.anthropic.com/en/api/handling-stop-reasons */
export function mapAnthropicStopReason(reason: unknown): FinishReason {
  switch (reason) {
    case 'end_turn':
    case 'stop_sequence':
      return 'stop';
    // model_context_window_exceeded: the reply was cut because the context filled up, a length limit too.
    case 'max_tokens':
    case 'model_context_window_exceeded':
      return 'length';
    case 'tool_use':
      return 'tool_calls';
    case 'refusal':
      return 'content_filter';
    default:
      // pause_turn (a server tool's long turn, to be continued by the client) and anything newer.
      return 'other';
  }
}

/** @see https://docs.anthropic.com/en/api/errors */
export function mapAnthropicErrorType(type: unknown): ErrorKind | undefined {
  switch (type) {
    case 'invalid_request_error':
      return 'invalid_request';
    case 'authentication_error':
      return 'authentication';
    case 'permission_error':
    case 'billing_error':
      return 'permission';
    case 'not_found_error':
      return 'not_found';
    case 'request_too_large':
      return 'payload_too_large';
    case 'rate_limit_error':
      return 'rate_limit';
    case 'timeout_error':
      return 'timeout';
    // Overloaded (529) is temporary: a server error, so that routing falls back or retries.
    case 'overloaded_error':
    case 'api_error':
      return 'server_error';
    default:
      return undefined;
  }
}

/** The raw counters as Anthropic reports them; each may be absent or null. */
export interface AnthropicUsage {
  input_tokens?: number | null;
  output_tokens?: number | null;
  cache_read_input_tokens?: number | null;
  cache_creation_input_tokens?: number | null;
}

/**
 * Anthropic's `input_tokens` excludes cache reads and writes, while the unified `prompt_tokens` is the
 * whole prompt (pricing subtracts the cached parts to bill them at their own rates), so the three add up.
 */
export function convertAnthropicUsage(raw: AnthropicUsage | null | undefined): Usage {
  const input = Number(raw?.input_tokens) || 0;
  const cacheRead = Number(raw?.cache_read_input_tokens) || 0;
  const cacheWrite = Number(raw?.cache_creation_input_tokens) || 0;
  const completion = Number(raw?.output_tokens) || 0;
  const prompt = input + cacheRead + cacheWrite;
  const usage: Usage = {
    prompt_tokens: prompt,
    completion_tokens: completion,
    total_tokens: prompt + completion,
  };
  if (cacheRead) usage.cached_prompt_tokens = cacheRead;
  if (cacheWrite) usage.cache_creation_tokens = cacheWrite;
  return usage;
}

export function buildAnthropicBody(request: ChatRequest, target: Target) {
  const { system, messages } = convertToAnthropicMessages(request.messages);
  const body: Record<string, unknown> = {
    model: target.model,
    // Required by the API, unlike everywhere else.
    max_tokens: request.max_tokens ?? target.provider.defaultMaxTokens,
    messages,
  };
  if (system !== undefined) body.system = system;
  // Sent as-is even above Anthropic's maximum of 1: clamping would silently change the sampling the client
  // asked for, while the API's 400 names the field and reaches the client as an invalid_request.
  if (request.temperature !== undefined) body.temperature = request.temperature;
  if (request.top_p !== undefined) body.top_p = request.top_p;
  if (request.stop !== undefined)
    body.stop_sequences = typeof request.stop === 'string' ? [request.stop] : request.stop;
  if (request.tools?.length) {
    body.tools = convertToAnthropicTools(request.tools);
    // Without tools a choice means nothing, and the API may refuse it.
    if (request.tool_choice !== undefined)
      body.tool_choice = convertToAnthropicToolChoice(request.tool_choice);
  }
  if (target.stream) body.stream = true;
  return body;
}

function toolCallOf(id: unknown, name: unknown, args: string): ToolCall {
  return { id: String(id ?? ''), type: 'function', function: { name: String(name ?? ''), arguments: args } };
}

/** Unified arguments are a JSON string, and `{}` for a call without input so clients can always parse it. */
function argumentsOf(input: unknown): string {
  return JSON.stringify(input ?? {});
}

export function parseAnthropicResponse(body: any): AdapterResult {
  if (body?.type === 'error') {
    const kind = mapAnthropicErrorType(body.error?.type) ?? 'server_error';
    throw new GatewayError(kind, String(body.error?.message ?? 'Provider answered with an error.'));
  }
  if (!Array.isArray(body?.content)) {
    throw new GatewayError('server_error', 'Provider answered without a content list.');
  }
  let content = '';
  const toolCalls: ToolCall[] = [];
  for (const block of body.content) {
    // Thinking and server-tool blocks have no unified counterpart and are skipped.
    if (block?.type === 'text' && typeof block.text === 'string') content += block.text;
    else if (block?.type === 'tool_use')
      toolCalls.push(toolCallOf(block.id, block.name, argumentsOf(block.input)));
  }
  const result: AdapterResult = {
    content,
    finish_reason: mapAnthropicStopReason(body.stop_reason),
    usage: convertAnthropicUsage(body.usage),
  };
  if (toolCalls.length) result.tool_calls = toolCalls;
  return result;
}

export interface AnthropicStreamState {
  /** Tool calls by content block index, their input accumulated from `input_json_delta` pieces. */
  toolCalls: Map<number, { id: string; name: string; json: string; input: unknown }>;
  /** The latest value of each counter; message_start and message_delta each carry some of them. */
  usage: AnthropicUsage;
  finished: boolean;
  toolCallsSent: boolean;
}

function mergeAnthropicUsage(into: AnthropicUsage, raw: any): void {
  if (!raw || typeof raw !== 'object') return;
  for (const key of [
    'input_tokens',
    'output_tokens',
    'cache_read_input_tokens',
    'cache_creation_input_tokens',
  ] as const) {
    // message_delta may repeat the input counters, or send them as null: only real numbers count.
    if (typeof raw[key] === 'number') into[key] = raw[key];
  }
}

function flushToolCalls(state: AnthropicStreamState): StreamPart[] {
  if (state.toolCallsSent || state.toolCalls.size === 0) return [];
  state.toolCallsSent = true;
  const calls = [...state.toolCalls.entries()]
    .sort((a, b) => a[0] - b[0])
    .map(([, c]) => toolCallOf(c.id, c.name, c.json.trim() ? c.json : argumentsOf(c.input)));
  return [{ type: 'tool_calls', tool_calls: calls }];
}

export function parseAnthropicStreamEvent(
  event: { event?: string; data: string },
  state: AnthropicStreamState,
) {
  let data: any;
  try {
    data = JSON.parse(event.data);
  } catch {
    return [
      { type: 'error', kind: 'server_error', message: 'Provider sent a malformed stream event.' },
    ] as StreamPart[];
  }
  const parts: StreamPart[] = [];
  // The `event:` line and the data's `type` always agree; the data is what the SDKs read.
  switch (data?.type ?? event.event) {
    case 'message_start':
      // Kept rather than sent: the first part commits the stream to this provider, and an overloaded
      // error right after message_start should still be able to fall back.
      mergeAnthropicUsage(state.usage, data.message?.usage);
      break;
    case 'content_block_start': {
      const block = data.content_block;
      if (block?.type === 'text' && typeof block.text === 'string' && block.text) {
        parts.push({ type: 'delta', text: block.text });
      } else if (block?.type === 'tool_use' && typeof data.index === 'number') {
        state.toolCalls.set(data.index, {
          id: String(block.id),
          name: String(block.name),
          json: '',
          input: block.input,
        });
      }
      break;
    }
    case 'content_block_delta': {
      const delta = data.delta;
      if (delta?.type === 'text_delta' && typeof delta.text === 'string' && delta.text) {
        parts.push({ type: 'delta', text: delta.text });
      } else if (delta?.type === 'input_json_delta' && typeof delta.partial_json === 'string') {
        const call = state.toolCalls.get(data.index);
        if (call) call.json += delta.partial_json;
      }
      break;
    }
    case 'message_delta':
      mergeAnthropicUsage(state.usage, data.usage);
      if (data.delta?.stop_reason) {
        state.finished = true;
        parts.push({ type: 'finish', finish_reason: mapAnthropicStopReason(data.delta.stop_reason) });
      }
      parts.push({ type: 'usage', usage: convertAnthropicUsage(state.usage) });
      break;
    case 'message_stop':
      parts.push(...flushToolCalls(state));
      break;
    case 'error': {
      const kind = mapAnthropicErrorType(data.error?.type) ?? 'server_error';
      parts.push({ type: 'error', kind, message: String(data.error?.message ?? 'Provider stream failed.') });
      break;
    }
    default:
      // ping, content_block_stop, thinking and signature deltas: nothing unified to say.
      break;
  }
  return parts;
}

export const anthropic: ProviderAdapter<AnthropicStreamState> = {
  type: 'anthropic',
  streamFraming: 'sse',
  buildRequest(request, target) {
    const headers: Record<string, string> = {
      'content-type': 'application/json',
      'anthropic-version': ANTHROPIC_VERSION,
    };
    // Lower-cased so a configured `Anthropic-Version` or `anthropic-beta` replaces ours instead of being
    // sent twice; the key comes last so configuration can never replace it.
    for (const [k, v] of Object.entries(target.provider.headers)) headers[k.toLowerCase()] = v;
    if (target.apiKey) headers['x-api-key'] = target.apiKey;
    // The base URL is the origin, as for the official SDK, which adds `/v1` itself.
    return {
      url: joinUrl(target.provider.baseUrl, 'v1/messages'),
      headers,
      body: buildAnthropicBody(request, target),
    };
  },
  parseResponse: parseAnthropicResponse,
  createStreamState: () => ({ toolCalls: new Map(), usage: {}, finished: false, toolCallsSent: false }),
  parseStreamEvent: parseAnthropicStreamEvent,
  endStream(state) {
    // A stream cut after message_delta but before message_stop is complete; one cut earlier is not, and
    // half-received tool input must not reach the client.
    return state.finished ? flushToolCalls(state) : [];
  },
  parseError(status, body: any) {
    const error = body?.type === 'error' ? body.error : body?.error;
    const message = typeof error?.message === 'string' && error.message ? error.message : `HTTP ${status}`;
    // The error type is more precise than the status (529 is Anthropic's own "overloaded").
    const kind = mapAnthropicErrorType(error?.type);
    return kind ? { message, kind } : { message };
  },
};
