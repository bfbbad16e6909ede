/**
 * Google Gemini API (generativelanguage v1beta): generateContent and streamGenerateContent over SSE.
 * The request side lives in gemini-request.ts; this file reads answers, stream events and errors.
 * @see https://ai.google.dev/api/generate-content
 */
import type { ErrorKind, FinishReason, ToolCall, Usage } from '../../types/index.js';
import { GatewayError, kindOfStatus } from '../errors.js';
import type { AdapterResult, ProviderAdapter, StreamPart, UpstreamErrorInfo } from './adapter.js';
import { joinUrl } from './adapter.js';
import { buildGeminiBody } from './gemini-request.js';

/** The same ceiling lib/upstream.ts puts on Retry-After headers: a quota reset hours away is no retry hint. */
const MAX_RETRY_DELAY_MS = 60_000;

/** @see https://ai.google.dev/api/generate-content#FinishReason */
export function mapGeminiFinishReason(reason: unknown): FinishReason {
  switch (reason) {
    case 'STOP':
      return 'stop';
    case 'MAX_TOKENS':
      return 'length';
    case 'SAFETY':
    case 'RECITATION':
    case 'BLOCKLIST':
    case 'PROHIBITED_CONTENT':
    case 'SPII':
    case 'IMAGE_SAFETY':
    case 'IMAGE_PROHIBITED_CONTENT':
    case 'IMAGE_RECITATION':
      return 'content_filter';
    // The model tried to call a tool and produced something unusable: the turn failed, it did not just end.
    case 'MALFORMED_FUNCTION_CALL':
    case 'UNEXPECTED_TOOL_CALL':
    case 'TOO_MANY_TOOL_CALLS':
      return 'error';
    default:
      return 'other';
  }
}

function count(v: unknown): number | undefined {
  if (v === undefined || v === null) return undefined;
  const n = Number(v);
  return Number.isFinite(n) ? n : undefined;
}

/**
 * Only the fields Gemini actually sent: stream chunks before the last carry the prompt count alone, and
 * route merges usage parts field by field, so a missing field must stay missing rather than become 0.
 * @see https://ai.google.dev/api/generate-content#UsageMetadata
 */
export function convertGeminiUsageFields(raw: any): Partial<Usage> {
  if (!raw || typeof raw !== 'object') return {};
  const usage: Partial<Usage> = {};
  const prompt = count(raw.promptTokenCount);
  const candidates = count(raw.candidatesTokenCount);
  // Thinking tokens are billed as output but not included in candidatesTokenCount.
  const thoughts = count(raw.thoughtsTokenCount);
  const total = count(raw.totalTokenCount);
  const cached = count(raw.cachedContentTokenCount);
  if (prompt !== undefined) usage.prompt_tokens = prompt;
  if (candidates !== undefined || thoughts !== undefined)
    usage.completion_tokens = (candidates ?? 0) + (thoughts ?? 0);
  if (total !== undefined) usage.total_tokens = total;
  // cachedContentTokenCount is part of promptTokenCount, as Usage.cached_prompt_tokens expects.
  if (cached) usage.cached_prompt_tokens = cached;
  return usage;
}

export function convertGeminiUsage(raw: any): Usage {
  const fields = convertGeminiUsageFields(raw);
  const usage: Usage = {
    prompt_tokens: fields.prompt_tokens ?? 0,
    completion_tokens: fields.completion_tokens ?? 0,
    total_tokens: fields.total_tokens ?? 0,
  };
  if (fields.cached_prompt_tokens) usage.cached_prompt_tokens = fields.cached_prompt_tokens;
  if (usage.total_tokens < usage.prompt_tokens + usage.completion_tokens) {
    usage.total_tokens = usage.prompt_tokens + usage.completion_tokens;
  }
  return usage;
}

/** Thought summaries (`thought: true`) are the model's reasoning, not its answer. */
function answerParts(candidate: any): any[] {
  const parts = candidate?.content?.parts;
  return Array.isArray(parts) ? parts.filter((p) => p && typeof p === 'object' && !p.thought) : [];
}

function textOf(parts: any[]): string {
  return parts.map((p) => (typeof p.text === 'string' ? p.text : '')).join('');
}

/** Gemini gives function calls no id (our clients need one to answer them), so ids are generated in order. */
function toolCallsOf(parts: any[], firstIndex: number): ToolCall[] {
  return parts
    .filter((p) => p.functionCall && typeof p.functionCall === 'object')
    .map((p, i) => ({
      id: `call_${firstIndex + i}`,
      type: 'function' as const,
      function: {
        name: String(p.functionCall.name ?? ''),
        arguments: JSON.stringify(p.functionCall.args ?? {}),
      },
    }));
}

/** Gemini ends a function-call turn with STOP; agent loops look for `tool_calls`. */
function finishWithTools(reason: FinishReason, hasToolCalls: boolean): FinishReason {
  return hasToolCalls && (reason === 'stop' || reason === 'other') ? 'tool_calls' : reason;
}

/** A blocked prompt comes back as HTTP 200 with `promptFeedback.blockReason` and no candidates. */
function blockedPromptMessage(body: any): string | undefined {
  const reason = body?.promptFeedback?.blockReason;
  if (!reason || (Array.isArray(body.candidates) && body.candidates.length)) return undefined;
  const detail =
    typeof body.promptFeedback.blockReasonMessage === 'string'
      ? ` ${body.promptFeedback.blockReasonMessage}`
      : '';
  return `Gemini blocked the prompt (${String(reason)}).${detail}`;
}

export function parseGeminiResponse(body: any): AdapterResult {
  const blocked = blockedPromptMessage(body);
  if (blocked) throw new GatewayError('content_filter', blocked);
  const candidate = Array.isArray(body?.candidates) ? body.candidates[0] : undefined;
  if (!candidate) throw new GatewayError('server_error', 'Gemini answered without any candidate.');
  const parts = answerParts(candidate);
  const toolCalls = toolCallsOf(parts, 0);
  const result: AdapterResult = {
    content: textOf(parts),
    finish_reason: finishWithTools(mapGeminiFinishReason(candidate.finishReason), toolCalls.length > 0),
    usage: convertGeminiUsage(body.usageMetadata),
  };
  if (toolCalls.length) result.tool_calls = toolCalls;
  return result;
}

// ---------------------------------------------------------------------------------------------------------
// Errors

/** A protobuf Duration in JSON form: "2s", "1.5s", "0.250s". */
function parseRetryDelay(value: unknown): number | undefined {
  const m = typeof value === 'string' ? /^(\d+(?:\.\d+)?)s$/.exec(value.trim()) : null;
  return m ? Math.min(Math.round(Number(m[1]) * 1000), MAX_RETRY_DELAY_MS) : undefined;
}

/** Which kind a google.rpc error means, where its HTTP status alone would mislead. */
function kindOfGoogleError(status: number, error: any): ErrorKind | undefined {
  const details: any[] = Array.isArray(error?.details) ? error.details : [];
  // A wrong key is a 400 INVALID_ARGUMENT; only the ErrorInfo reason tells it from a bad request.
  if (details.some((d) => d?.reason === 'API_KEY_INVALID')) return 'authentication';
  switch (error?.status) {
    case 'RESOURCE_EXHAUSTED':
      return 'rate_limit';
    case 'UNAUTHENTICATED':
      return 'authentication';
    // FAILED_PRECONDITION is billing not enabled, or the free tier unavailable in the server's region:
    // like a permission problem, the operator's to fix, not the client's.
    case 'PERMISSION_DENIED':
    case 'FAILED_PRECONDITION':
      return 'permission';
  }
  if (status === 429) return 'rate_limit';
  if (status === 403) return 'permission';
  return undefined;
}

/** Gemini puts the retry delay in the body (a RetryInfo detail), never in a Retry-After header. */
function retryDelayOf(error: any): number | undefined {
  const details: any[] = Array.isArray(error?.details) ? error.details : [];
  const info = details.find((d) => String(d?.['@type'] ?? '').endsWith('google.rpc.RetryInfo'));
  return parseRetryDelay(info?.retryDelay);
}

/** @see https://ai.google.dev/gemini-api/docs/troubleshooting#error-codes */
export function parseGeminiError(status: number, body: unknown): UpstreamErrorInfo {
  const error = (body as any)?.error;
  if (!error || typeof error !== 'object') {
    // Google's front end answers unknown URLs and its own failures with an HTML page, not the JSON envelope.
    const hint = status === 404 ? ' (is base_url the API origin, without a path?)' : '';
    return { message: `HTTP ${status}: not a Gemini API answer${hint}.` };
  }
  const info: UpstreamErrorInfo = {
    message: typeof error.message === 'string' && error.message ? error.message : `HTTP ${status}`,
  };
  const kind = kindOfGoogleError(status, error);
  if (kind) info.kind = kind;
  const retryAfterMs = retryDelayOf(error);
  if (retryAfterMs !== undefined) info.retryAfterMs = retryAfterMs;
  return info;
}

// ---------------------------------------------------------------------------------------------------------
// Streams

export interface GeminiStreamState {
  /** Function calls seen so far; sent as one tool_calls part, since route keeps only the last such part. */
  toolCalls: ToolCall[];
  toolCallsSent: boolean;
}

function flushToolCalls(state: GeminiStreamState): StreamPart[] {
  if (!state.toolCalls.length || state.toolCallsSent) return [];
  state.toolCallsSent = true;
  return [{ type: 'tool_calls', tool_calls: state.toolCalls }];
}

/** Each SSE event is one whole GenerateContentResponse; there is no [DONE], the last one has finishReason. */
export function parseGeminiStreamEvent(data: string, state: GeminiStreamState): StreamPart[] {
  let chunk: any;
  try {
    chunk = JSON.parse(data);
  } catch {
    return [{ type: 'error', kind: 'server_error', message: 'Gemini sent a malformed stream chunk.' }];
  }
  if (chunk?.error) {
    const code = Number(chunk.error.code) || 500;
    const info = parseGeminiError(code, chunk);
    return [{ type: 'error', kind: info.kind ?? kindOfStatus(code), message: info.message }];
  }
  const blocked = blockedPromptMessage(chunk);
  if (blocked) return [{ type: 'error', kind: 'content_filter', message: blocked }];

  const parts: StreamPart[] = [];
  const candidate = Array.isArray(chunk?.candidates) ? chunk.candidates[0] : undefined;
  const answer = answerParts(candidate);
  const text = textOf(answer);
  if (text) parts.push({ type: 'delta', text });
  state.toolCalls.push(...toolCallsOf(answer, state.toolCalls.length));
  if (candidate?.finishReason) {
    parts.push(...flushToolCalls(state));
    const reason = finishWithTools(mapGeminiFinishReason(candidate.finishReason), state.toolCalls.length > 0);
    parts.push({ type: 'finish', finish_reason: reason });
  }
  const usage = convertGeminiUsageFields(chunk?.usageMetadata);
  if (Object.keys(usage).length) parts.push({ type: 'usage', usage });
  return parts;
}

export const gemini: ProviderAdapter<GeminiStreamState> = {
  type: 'gemini',
  streamFraming: 'sse',
  buildRequest(request, target) {
    // The SDK accepts "models/x" as well as "x"; the path must not hold the prefix twice.
    const model = encodeURIComponent(target.model.replace(/^models\//, ''));
    const method = target.stream ? 'streamGenerateContent?alt=sse' : 'generateContent';
    // The key goes in a header only: a URL (?key=) ends up in proxy and access logs.
    const headers: Record<string, string> = {
      'content-type': 'application/json',
      ...target.provider.headers,
    };
    if (target.apiKey) headers['x-goog-api-key'] = target.apiKey;
    return {
      url: joinUrl(target.provider.baseUrl, `v1beta/models/${model}:${method}`),
      headers,
      body: buildGeminiBody(request),
    };
  },
  parseResponse: (body) => parseGeminiResponse(body),
  createStreamState: () => ({ toolCalls: [], toolCallsSent: false }),
  parseStreamEvent: (event, state) => parseGeminiStreamEvent(event.data, state),
  endStream: flushToolCalls,
  parseError: parseGeminiError,
};
