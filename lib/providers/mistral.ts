/**
 * Mistral Chat Completions. The wire format looks like OpenAI's, but the service validates requests with a
 * strict schema (unknown fields are a 422), has its own finish reasons and error bodies, and sends usage on
 * the last content chunk of a stream rather than in a chunk of its own.
 * @see https://docs.mistral.ai/api/#tag/chat/operation/chat_completion_v1_chat_completions_post
 */
import { createHash } from 'node:crypto';
import type { ChatMessage, FinishReason, ToolCall } from '../../types/index.js';
import { GatewayError } from '../errors.js';
import type {
  AdapterResult,
  ProviderAdapter,
  StreamPart,
  Target,
  UpstreamErrorInfo,
  UpstreamEvent,
} from './adapter.js';
import { joinUrl } from './adapter.js';
import { buildOpenAIBody, convertOpenAIUsage } from './openai.js';

/** Mistral rejects any other tool call id: "must be a-z, A-Z, 0-9, with a length of 9". */
const MISTRAL_TOOL_CALL_ID = /^[a-zA-Z0-9]{9}$/;
const ID_ALPHABET = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789';

/**
 * Maps a tool call id from another provider (OpenAI's `call_…`, a client's own) to one Mistral accepts.
 * Deterministic, so an assistant's call and the tool message answering it still match after the mapping.
 */
export function toMistralToolCallId(id: string): string {
  if (MISTRAL_TOOL_CALL_ID.test(id)) return id;
  const digest = createHash('sha256').update(id).digest();
  return Array.from(digest.subarray(0, 9), (byte) => ID_ALPHABET[byte % ID_ALPHABET.length]).join('');
}

/**
 * Each message role has its own closed schema at Mistral: only tool messages may carry `name` (the function
 * name), and a tool message without it is answered worse by some models, so it is filled in from the call
 * it answers when the client did not give it.
 */
export function convertToMistralMessages(messages: ChatMessage[]): Record<string, unknown>[] {
  const callNames = new Map<string, string>();
  for (const m of messages) for (const tc of m.tool_calls ?? []) callNames.set(tc.id, tc.function.name);
  return messages.map((m) => {
    const out: Record<string, unknown> = { role: m.role, content: m.content };
    if (m.role === 'assistant' && m.tool_calls?.length) {
      out.tool_calls = m.tool_calls.map((tc) => ({
        id: toMistralToolCallId(tc.id),
        type: 'function',
        function: { name: tc.function.name, arguments: tc.function.arguments },
      }));
    }
    if (m.role === 'tool') {
      if (m.tool_call_id) out.tool_call_id = toMistralToolCallId(m.tool_call_id);
      const name = m.name ?? (m.tool_call_id ? callNames.get(m.tool_call_id) : undefined);
      if (name) out.name = name;
    }
    return out;
  });
}

/** @see https://docs.mistral.ai/api/#tag/chat (finish_reason: stop, length, model_length, error, tool_calls) */
export function mapMistralFinishReason(reason: unknown): FinishReason {
  switch (reason) {
    case 'stop':
      return 'stop';
    case 'length':
    case 'model_length':
      return 'length';
    case 'tool_calls':
      return 'tool_calls';
    case 'error':
      return 'error';
    default:
      return 'other';
  }
}

/** Mistral's schema allows arguments as a JSON string or an already parsed object; clients get a string. */
export function normalizeMistralArguments(raw: unknown): string {
  if (typeof raw === 'string') return raw;
  if (raw === undefined || raw === null) return '';
  return JSON.stringify(raw);
}

/**
 * Content is a string, or (reasoning models, documents) a list of chunks; only text chunks are the answer,
 * `thinking` chunks are the model's scratchpad and are not relayed.
 */
export function mistralContentText(content: unknown): string {
  if (typeof content === 'string') return content;
  if (!Array.isArray(content)) return '';
  return content
    .map((chunk: any) => (chunk?.type === 'text' && typeof chunk.text === 'string' ? chunk.text : ''))
    .join('');
}

function convertMistralToolCall(tc: any, index: number): ToolCall {
  return {
    id: String(tc?.id ?? `call_${index}`),
    type: 'function',
    function: {
      name: String(tc?.function?.name ?? ''),
      arguments: normalizeMistralArguments(tc?.function?.arguments),
    },
  };
}

export function parseMistralResponse(body: any): AdapterResult {
  const choice = body?.choices?.[0];
  if (!choice) throw new GatewayError('server_error', 'Mistral answered without any choice.');
  const message = choice.message ?? {};
  const result: AdapterResult = {
    content: mistralContentText(message.content),
    finish_reason: mapMistralFinishReason(choice.finish_reason),
    usage: convertOpenAIUsage(body.usage),
  };
  if (Array.isArray(message.tool_calls) && message.tool_calls.length) {
    result.tool_calls = message.tool_calls.map(convertMistralToolCall);
  }
  return result;
}

export interface MistralStreamState {
  /** Calls in arrival order; Mistral sends each whole, but a continuation without an id is appended. */
  toolCalls: ToolCall[];
}

function addStreamToolCall(state: MistralStreamState, tc: any): void {
  const last = state.toolCalls.at(-1);
  // Mistral's schema defaults `index` to 0, so the index cannot tell parallel calls apart; the id can.
  if (last && (tc?.id === undefined || tc.id === null || tc.id === last.id)) {
    if (tc?.function?.name && !last.function.name) last.function.name = String(tc.function.name);
    last.function.arguments += normalizeMistralArguments(tc?.function?.arguments);
    return;
  }
  state.toolCalls.push(convertMistralToolCall(tc, state.toolCalls.length));
}

export function parseMistralChunk(event: UpstreamEvent, state: MistralStreamState): StreamPart[] {
  if (event.data === '[DONE]') return [];
  let chunk: any;
  try {
    chunk = JSON.parse(event.data);
  } catch {
    return [{ type: 'error', kind: 'server_error', message: 'Mistral sent a malformed stream chunk.' }];
  }
  // A failure after the 200 arrives as Mistral's error JSON in an ordinary data event.
  if (chunk?.object === 'error' || chunk?.error) {
    const message = chunk.error?.message ?? chunk.message ?? 'Mistral stream failed.';
    return [{ type: 'error', kind: 'server_error', message: String(message) }];
  }
  const parts: StreamPart[] = [];
  const choice = chunk?.choices?.[0];
  const delta = choice?.delta;
  const text = mistralContentText(delta?.content);
  if (text) parts.push({ type: 'delta', text });
  if (Array.isArray(delta?.tool_calls)) for (const tc of delta.tool_calls) addStreamToolCall(state, tc);
  if (choice?.finish_reason) {
    // The calls are complete once the choice finishes; sending them with the finish keeps the order
    // deltas → tool_calls → finish that clients expect.
    parts.push(...takeToolCalls(state));
    parts.push({ type: 'finish', finish_reason: mapMistralFinishReason(choice.finish_reason) });
  }
  if (chunk?.usage) parts.push({ type: 'usage', usage: convertOpenAIUsage(chunk.usage) });
  return parts;
}

function takeToolCalls(state: MistralStreamState): StreamPart[] {
  if (state.toolCalls.length === 0) return [];
  const calls = state.toolCalls;
  state.toolCalls = [];
  return [{ type: 'tool_calls', tool_calls: calls }];
}

/** One pydantic entry of a 422 `detail` list: `{"type", "loc": ["body", "temperature"], "msg"}`. */
function validationMessage(detail: unknown[]): string {
  return detail
    .map((d: any) => {
      const loc = Array.isArray(d?.loc) ? d.loc.join('.') : '';
      const msg = typeof d?.msg === 'string' ? d.msg : JSON.stringify(d);
      return loc ? `${loc}: ${msg}` : msg;
    })
    .join('; ');
}

/**
 * Mistral answers errors in three shapes: its own `{"object": "error", "message", "type", "code"}`, FastAPI's
 * `{"detail": "Unauthorized"}`, and pydantic's `{"detail": [{"loc", "msg"}]}` for a request that fails
 * validation. Text bodies come from proxies in front of the service.
 */
export function parseMistralError(status: number, body: unknown): UpstreamErrorInfo {
  const b = body as any;
  if (typeof body === 'string') return { message: body.trim().slice(0, 500) || `HTTP ${status}` };
  if (Array.isArray(b?.detail)) {
    return { message: validationMessage(b.detail) || `HTTP ${status}`, kind: 'invalid_request' };
  }
  if (typeof b?.detail === 'string') return { message: b.detail };
  if (b?.message !== undefined && b.message !== null) {
    return { message: typeof b.message === 'string' ? b.message : JSON.stringify(b.message) };
  }
  if (typeof b?.error?.message === 'string') return { message: b.error.message };
  return { message: `HTTP ${status}` };
}

export const mistral: ProviderAdapter<MistralStreamState> = {
  type: 'mistral',
  streamFraming: 'sse',
  buildRequest(request, target: Target) {
    // The shared builder already speaks Mistral's field names (max_tokens, never max_completion_tokens) and
    // never adds stream_options; only the messages need Mistral's stricter per-role schema.
    const body = buildOpenAIBody(request, target, 'mistral');
    body.messages = convertToMistralMessages(request.messages);
    const headers: Record<string, string> = {
      'content-type': 'application/json',
      ...target.provider.headers,
    };
    if (target.stream) headers.accept = 'text/event-stream';
    if (target.apiKey) headers.authorization = `Bearer ${target.apiKey}`;
    return { url: joinUrl(target.provider.baseUrl, 'v1/chat/completions'), headers, body };
  },
  parseResponse: parseMistralResponse,
  createStreamState: () => ({ toolCalls: [] }),
  parseStreamEvent: parseMistralChunk,
  // A stream cut after a tool call but before its finish still hands the calls over; the missing finish
  // makes the gateway report the stream as incomplete anyway.
  endStream: takeToolCalls,
  parseError: parseMistralError,
};
