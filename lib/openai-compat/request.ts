/**
 * Translates an OpenAI Chat Completions body into the gateway's unified request body, which then goes
 * through the one validator (`validateChatRequest`). Every OpenAI field is accounted for: mapped, refused
 * with a 400 when ignoring it would change what the client gets back, or ignored with a warning that
 * reaches the client as `X-Gateway-Warnings`. Nothing is dropped silently.
 */
import { InvalidRequestError } from '../errors.js';

export interface TranslatedRequest {
  /** The unified body, ready for `validateChatRequest`. */
  body: Record<string, unknown>;
  stream: boolean;
  /** `stream_options.include_usage`: the stream ends with a usage chunk. */
  includeUsage: boolean;
  warnings: string[];
}

/** Fields copied unchanged: the unified request uses OpenAI's names and shapes for them. */
const SAME_FIELDS = [
  'model',
  'temperature',
  'top_p',
  'stop',
  'tools',
  'tool_choice',
  'user',
  'metadata',
] as const;

/** Accepted but without effect here; the client is told through a warning. */
const IGNORED_FIELDS = new Set([
  'seed',
  'frequency_penalty',
  'presence_penalty',
  'logit_bias',
  'top_logprobs',
  'store',
  'service_tier',
  'reasoning_effort',
  'verbosity',
  'prediction',
  'web_search_options',
  'prompt_cache_key',
  'prompt_cache_retention',
]);

/**
 * Message fields an SDK echoes back from a previous assistant answer. They carry nothing when empty, so
 * they are dropped quietly then; a non-empty value is warned about.
 */
const ECHOED_MESSAGE_FIELDS = new Set(['refusal', 'annotations', 'audio', 'reasoning_content']);
const MESSAGE_FIELDS = new Set(['role', 'content', 'name', 'tool_calls', 'tool_call_id']);

function isPlainObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function isEmpty(v: unknown): boolean {
  return v === null || v === undefined || v === '' || (Array.isArray(v) && v.length === 0);
}

function fail(message: string, param: string): never {
  throw new InvalidRequestError(message, param);
}

function translateMessage(raw: unknown, i: number, warnings: string[]): unknown {
  // Anything malformed is left for the unified validator, whose messages name the field.
  if (!isPlainObject(raw)) return raw;
  const at = `messages[${i}]`;
  if (raw.role === 'function' || raw.function_call !== undefined) {
    fail(
      `${at}: the legacy "function" role and function_call are not supported; use tools and tool_calls.`,
      at,
    );
  }
  const out: Record<string, unknown> = {};
  for (const [key, value] of Object.entries(raw)) {
    if (MESSAGE_FIELDS.has(key)) out[key] = value;
    else if (!(ECHOED_MESSAGE_FIELDS.has(key) && isEmpty(value)))
      warnings.push(`${at}.${key.slice(0, 64)} was ignored`);
  }
  // "developer" is OpenAI's newer name for system instructions; every provider knows them as system.
  if (raw.role === 'developer') out.role = 'system';
  return out;
}

function maxTokensOf(body: Record<string, unknown>): number | undefined {
  const completion = body.max_completion_tokens;
  const legacy = body.max_tokens;
  if (completion === undefined || completion === null) return legacy as number | undefined;
  if (typeof completion !== 'number' || !Number.isInteger(completion) || completion < 1) {
    fail('max_completion_tokens must be a positive integer.', 'max_completion_tokens');
  }
  if (legacy !== undefined && legacy !== null && legacy !== completion) {
    fail('Send either max_tokens or max_completion_tokens, not both with different values.', 'max_tokens');
  }
  return completion;
}

/** Fields whose effect a client relies on: pretending to honour them would return something else. */
function refuseUnsupported(body: Record<string, unknown>): void {
  if (body.n !== undefined && body.n !== null && body.n !== 1) {
    fail('n must be 1: the gateway returns a single choice.', 'n');
  }
  if (body.functions !== undefined || body.function_call !== undefined) {
    fail(
      'functions and function_call are deprecated and not supported; use tools and tool_choice.',
      'functions',
    );
  }
  const format = body.response_format;
  if (format !== undefined && format !== null && !(isPlainObject(format) && format.type === 'text')) {
    fail('response_format other than {"type": "text"} is not supported by the gateway.', 'response_format');
  }
  if (body.logprobs === true) fail('logprobs are not supported by the gateway.', 'logprobs');
  const modalities = body.modalities;
  if (Array.isArray(modalities) && modalities.some((m) => m !== 'text')) {
    fail('Only the "text" modality is supported by the gateway.', 'modalities');
  }
  if (body.audio !== undefined && body.audio !== null)
    fail('audio output is not supported by the gateway.', 'audio');
}

function streamOptionsOf(body: Record<string, unknown>, stream: boolean): boolean {
  const options = body.stream_options;
  if (options === undefined || options === null) return false;
  // OpenAI itself refuses stream_options on a request that does not stream.
  if (!stream) fail('stream_options is only allowed when stream is true.', 'stream_options');
  if (!isPlainObject(options)) fail('stream_options must be an object.', 'stream_options');
  if (options.include_usage !== undefined && typeof options.include_usage !== 'boolean') {
    fail('stream_options.include_usage must be a boolean.', 'stream_options.include_usage');
  }
  return options.include_usage === true;
}

const HANDLED_FIELDS = new Set<string>([
  ...SAME_FIELDS,
  'messages',
  'max_tokens',
  'max_completion_tokens',
  'n',
  'stream',
  'stream_options',
  'functions',
  'function_call',
  'response_format',
  'logprobs',
  'modalities',
  'audio',
  'parallel_tool_calls',
  'safety_identifier',
  // The gateway's own extension (per-request cache control), sent by SDKs as an extra body field.
  'cache',
]);

export function translateOpenAIRequest(raw: unknown): TranslatedRequest {
  if (!isPlainObject(raw)) {
    fail('Request body must be a JSON object; send it with Content-Type: application/json.', 'body');
  }
  const warnings: string[] = [];
  refuseUnsupported(raw);
  if (raw.stream !== undefined && raw.stream !== null && typeof raw.stream !== 'boolean') {
    fail('stream must be a boolean.', 'stream');
  }
  const stream = raw.stream === true;
  const includeUsage = streamOptionsOf(raw, stream);

  const body: Record<string, unknown> = {};
  for (const field of SAME_FIELDS) {
    if (raw[field] !== undefined && raw[field] !== null) body[field] = raw[field];
  }
  body.messages = Array.isArray(raw.messages)
    ? raw.messages.map((m, i) => translateMessage(m, i, warnings))
    : raw.messages;
  const maxTokens = maxTokensOf(raw);
  if (maxTokens !== undefined && maxTokens !== null) body.max_tokens = maxTokens;
  // safety_identifier is OpenAI's successor to `user`: both name the end user.
  if (body.user === undefined && typeof raw.safety_identifier === 'string') body.user = raw.safety_identifier;
  if (raw.cache !== undefined) body.cache = raw.cache;
  // Providers call tools one after another or together as they see fit; false cannot be enforced.
  if (raw.parallel_tool_calls === false) warnings.push('parallel_tool_calls=false was ignored');

  for (const key of Object.keys(raw)) {
    if (HANDLED_FIELDS.has(key)) continue;
    const name = key.slice(0, 64);
    warnings.push(
      IGNORED_FIELDS.has(key)
        ? `${name} is not supported and was ignored`
        : `unknown field "${name}" was ignored`,
    );
  }
  return { body, stream, includeUsage, warnings };
}
