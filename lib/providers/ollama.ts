/**
 * Ollama's native chat API. Sampling settings live under `options`, streams are NDJSON (one JSON object per
 * line, the last one `done: true` with the token counts), tool call arguments are JSON objects rather than
 * strings, and errors are `{"error": "..."}` (or gin's plain-text 404 for an unknown route).
 * @see https://github.com/ollama/ollama/blob/main/docs/api.md#generate-a-chat-completion
 */
import { randomUUID } from 'node:crypto';
import type { ChatMessage, ChatRequest, FinishReason, ToolCall, Usage } from '../../types/index.js';
import { GatewayError } from '../errors.js';
import type {
  AdapterResult,
  ProviderAdapter,
  StreamPart,
  UpstreamErrorInfo,
  UpstreamEvent,
} from './adapter.js';
import { joinUrl } from './adapter.js';

/** Ollama's Go server decodes `arguments` into a map, so a string (or an array) would fail the request. */
function argumentsObject(raw: string): Record<string, unknown> {
  try {
    const parsed: unknown = JSON.parse(raw);
    if (parsed !== null && typeof parsed === 'object' && !Array.isArray(parsed)) {
      return parsed as Record<string, unknown>;
    }
  } catch {
    // A model that produced broken JSON earlier: the call is still replayed, with no arguments.
  }
  return {};
}

export function convertToOllamaMessages(messages: ChatMessage[]): Record<string, unknown>[] {
  const callNames = new Map<string, string>();
  for (const m of messages) for (const tc of m.tool_calls ?? []) callNames.set(tc.id, tc.function.name);
  return messages.map((m) => {
    // Ollama's content is a plain string; an assistant turn that only called tools has none.
    const out: Record<string, unknown> = { role: m.role, content: m.content ?? '' };
    if (m.role === 'assistant' && m.tool_calls?.length) {
      out.tool_calls = m.tool_calls.map((tc) => ({
        function: { name: tc.function.name, arguments: argumentsObject(tc.function.arguments) },
      }));
    }
    if (m.role === 'tool') {
      // Ollama pairs a result with its call by function name, not by id.
      const name = m.name ?? (m.tool_call_id ? callNames.get(m.tool_call_id) : undefined);
      if (name) out.tool_name = name;
    }
    return out;
  });
}

/** The unified sampling fields, under the names Ollama's `options` map uses. */
export function convertToOllamaOptions(request: ChatRequest): Record<string, unknown> | undefined {
  const options: Record<string, unknown> = {};
  if (request.max_tokens !== undefined) options.num_predict = request.max_tokens;
  if (request.temperature !== undefined) options.temperature = request.temperature;
  if (request.top_p !== undefined) options.top_p = request.top_p;
  // Ollama's `stop` option must be an array of strings.
  if (request.stop !== undefined) options.stop = Array.isArray(request.stop) ? request.stop : [request.stop];
  return Object.keys(options).length ? options : undefined;
}

/**
 * Ollama has no tool_choice, so it is approximated by what is offered: `none` offers no tools, a named
 * function offers only that one (`required` cannot be enforced and offers them all).
 */
export function convertToOllamaTools(request: ChatRequest): ChatRequest['tools'] {
  const choice = request.tool_choice;
  if (!request.tools?.length || choice === 'none') return undefined;
  if (typeof choice === 'object') {
    const named = request.tools.filter((t) => t.function.name === choice.function?.name);
    if (named.length) return named;
  }
  return request.tools;
}

/** done_reason: `stop`, `length`; `load`/`unload` only answer requests without messages. */
export function mapOllamaFinishReason(reason: unknown): FinishReason {
  switch (reason) {
    case 'stop':
      return 'stop';
    case 'length':
      return 'length';
    default:
      return 'other';
  }
}

/** Ollama leaves a counter out when it is zero (e.g. a prompt served entirely from its KV cache). */
export function convertOllamaUsage(raw: any): Usage {
  const prompt = Number(raw?.prompt_eval_count) || 0;
  const completion = Number(raw?.eval_count) || 0;
  return { prompt_tokens: prompt, completion_tokens: completion, total_tokens: prompt + completion };
}

/** Newer Ollama versions send an id per call; older ones none, and clients need one to answer the call. */
export function convertOllamaToolCalls(raw: unknown): ToolCall[] {
  if (!Array.isArray(raw)) return [];
  return raw.map((tc: any) => {
    const args = tc?.function?.arguments;
    return {
      id:
        typeof tc?.id === 'string' && tc.id ? tc.id : `call_${randomUUID().replaceAll('-', '').slice(0, 24)}`,
      type: 'function' as const,
      function: {
        name: String(tc?.function?.name ?? ''),
        arguments: typeof args === 'string' ? args : JSON.stringify(args ?? {}),
      },
    };
  });
}

function finishOf(doneReason: unknown, toolCalls: ToolCall[]): FinishReason {
  // Ollama says `stop` after a tool call; clients' agent loops look for `tool_calls`.
  return toolCalls.length ? 'tool_calls' : mapOllamaFinishReason(doneReason);
}

export function parseOllamaResponse(body: any): AdapterResult {
  if (typeof body?.error === 'string') throw new GatewayError('server_error', `Ollama failed: ${body.error}`);
  if (!body || typeof body !== 'object' || !body.message) {
    throw new GatewayError('server_error', 'Ollama answered without a message.');
  }
  const toolCalls = convertOllamaToolCalls(body.message.tool_calls);
  const result: AdapterResult = {
    content: typeof body.message.content === 'string' ? body.message.content : '',
    finish_reason: finishOf(body.done_reason, toolCalls),
    usage: convertOllamaUsage(body),
  };
  if (toolCalls.length) result.tool_calls = toolCalls;
  return result;
}

export interface OllamaStreamState {
  /** Tool calls seen so far; handed over with the done line, as one list. */
  toolCalls: ToolCall[];
}

export function parseOllamaLine(event: UpstreamEvent, state: OllamaStreamState): StreamPart[] {
  let line: any;
  try {
    line = JSON.parse(event.data);
  } catch {
    return [{ type: 'error', kind: 'server_error', message: 'Ollama sent a malformed stream line.' }];
  }
  // A failure after the 200 (the model runner crashed, ran out of memory) arrives as its own line.
  if (typeof line?.error === 'string') return [{ type: 'error', kind: 'server_error', message: line.error }];
  const parts: StreamPart[] = [];
  const content = line?.message?.content;
  if (typeof content === 'string' && content) parts.push({ type: 'delta', text: content });
  state.toolCalls.push(...convertOllamaToolCalls(line?.message?.tool_calls));
  if (line?.done === true) {
    if (state.toolCalls.length) parts.push({ type: 'tool_calls', tool_calls: state.toolCalls });
    parts.push({ type: 'finish', finish_reason: finishOf(line.done_reason, state.toolCalls) });
    parts.push({ type: 'usage', usage: convertOllamaUsage(line) });
    state.toolCalls = [];
  }
  return parts;
}

/** `{"error": "..."}` from Ollama itself; text (gin's `404 page not found`, a proxy's page) otherwise. */
export function parseOllamaError(status: number, body: unknown): UpstreamErrorInfo {
  if (typeof body === 'string') return { message: body.trim().slice(0, 500) || `HTTP ${status}` };
  const error = (body as any)?.error;
  if (typeof error === 'string' && error) return { message: error };
  if (typeof error?.message === 'string') return { message: error.message };
  return { message: `HTTP ${status}` };
}

export const ollama: ProviderAdapter<OllamaStreamState> = {
  type: 'ollama',
  streamFraming: 'ndjson',
  buildRequest(request, target) {
    // `stream` is always explicit: Ollama streams when the field is absent.
    const body: Record<string, unknown> = {
      model: target.model,
      messages: convertToOllamaMessages(request.messages),
      stream: target.stream,
    };
    const options = convertToOllamaOptions(request);
    if (options) body.options = options;
    const tools = convertToOllamaTools(request);
    if (tools) body.tools = tools;
    const headers: Record<string, string> = {
      'content-type': 'application/json',
      ...target.provider.headers,
    };
    // A local Ollama needs no key; one behind an authenticating proxy (or ollama.com) takes a Bearer key.
    if (target.apiKey) headers.authorization = `Bearer ${target.apiKey}`;
    return { url: joinUrl(target.provider.baseUrl, 'api/chat'), headers, body };
  },
  parseResponse: parseOllamaResponse,
  createStreamState: () => ({ toolCalls: [] }),
  parseStreamEvent: parseOllamaLine,
  parseError: parseOllamaError,
};
