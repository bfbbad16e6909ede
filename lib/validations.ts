/**
 * Validation of the unified chat request. Hand-written rather than schema-driven because every message
 * must name the exact field (`messages[2].role`) and because this runs on every request: a few type checks
 * cost nothing, a schema library's allocation-heavy parse costs measurably.
 */
import type { ChatMessage, ChatRequest, Role } from '../types/index.js';
import { InvalidRequestError } from './errors.js';
import { jsonProblem } from './json-guard.js';

const ROLES = new Set<Role>(['system', 'user', 'assistant', 'tool']);
/** The request fields validation knows; others are kept, with a warning. */
export const KNOWN_FIELDS: ReadonlySet<string> = new Set([
  'model',
  'messages',
  'max_tokens',
  'temperature',
  'top_p',
  'stop',
  'tools',
  'tool_choice',
  'user',
  'metadata',
  'cache',
  'stream',
]);

export interface RequestLimits {
  maxMessages: number;
  maxContentChars: number;
}

export const DEFAULT_REQUEST_LIMITS: RequestLimits = { maxMessages: 1000, maxContentChars: 1_000_000 };

function fail(message: string, param: string): never {
  throw new InvalidRequestError(message, param);
}

function isPlainObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/** Text parts (`[{type: 'text', text}]`) are joined into one string: every provider accepts plain text. */
function contentOf(raw: unknown, param: string): string {
  if (typeof raw === 'string') return raw;
  if (Array.isArray(raw)) {
    let text = '';
    raw.forEach((part, i) => {
      if (!isPlainObject(part) || part.type !== 'text' || typeof part.text !== 'string') {
        fail(
          `${param}[${i}] must be a text part {"type": "text", "text": "..."}; other part types are not supported.`,
          `${param}[${i}]`,
        );
      }
      text += part.text;
    });
    return text;
  }
  return fail(`${param} must be a string.`, param);
}

function validateMessage(raw: unknown, i: number, limits: RequestLimits): ChatMessage {
  const at = `messages[${i}]`;
  if (!isPlainObject(raw)) fail(`${at} must be an object with "role" and "content".`, at);
  const role = raw.role;
  if (typeof role !== 'string' || !ROLES.has(role as Role)) {
    fail(
      `${at}.role must be one of system, user, assistant, tool; got ${JSON.stringify(role)?.slice(0, 40)}.`,
      `${at}.role`,
    );
  }
  const message: ChatMessage = { role: role as Role, content: null };
  const hasToolCalls = Array.isArray(raw.tool_calls) && raw.tool_calls.length > 0;
  if (raw.content === null || raw.content === undefined) {
    if (!(role === 'assistant' && hasToolCalls)) fail(`${at}.content is required.`, `${at}.content`);
  } else {
    message.content = contentOf(raw.content, `${at}.content`);
    if (message.content.length > limits.maxContentChars) {
      fail(`${at}.content is longer than ${limits.maxContentChars} characters.`, `${at}.content`);
    }
  }
  if (raw.name !== undefined) {
    if (typeof raw.name !== 'string') fail(`${at}.name must be a string.`, `${at}.name`);
    message.name = raw.name;
  }
  if (hasToolCalls) {
    if (role !== 'assistant')
      fail(`${at}.tool_calls is only allowed on assistant messages.`, `${at}.tool_calls`);
    message.tool_calls = (raw.tool_calls as unknown[]).map((tc, j) => {
      const p = `${at}.tool_calls[${j}]`;
      if (!isPlainObject(tc) || typeof tc.id !== 'string' || !isPlainObject(tc.function)) {
        fail(`${p} must be {"id", "type": "function", "function": {"name", "arguments"}}.`, p);
      }
      const fn = tc.function as Record<string, unknown>;
      if (typeof fn.name !== 'string' || !fn.name)
        fail(`${p}.function.name must be a non-empty string.`, `${p}.function.name`);
      const args = typeof fn.arguments === 'string' ? fn.arguments : JSON.stringify(fn.arguments ?? {});
      return { id: tc.id, type: 'function' as const, function: { name: fn.name, arguments: args } };
    });
  }
  if (role === 'tool') {
    if (typeof raw.tool_call_id !== 'string' || !raw.tool_call_id) {
      fail(`${at}.tool_call_id is required on tool messages.`, `${at}.tool_call_id`);
    }
    message.tool_call_id = raw.tool_call_id;
  }
  return message;
}

function optionalNumber(
  body: Record<string, unknown>,
  field: string,
  min: number,
  max: number,
  integer = false,
) {
  const v = body[field];
  if (v === undefined || v === null) return undefined;
  if (typeof v !== 'number' || !Number.isFinite(v) || (integer && !Number.isInteger(v))) {
    fail(`${field} must be ${integer ? 'an integer' : 'a number'}.`, field);
  }
  if (v < min || v > max) fail(`${field} must be between ${min} and ${max}; got ${v}.`, field);
  return v;
}

/**
 * Checks a parsed JSON body and returns the unified request. Unknown top-level fields are kept (hash
 * strategies and provider options may use them) and reported in `warnings`.
 */
export function validateChatRequest(
  body: unknown,
  warnings: string[] = [],
  limits: RequestLimits = DEFAULT_REQUEST_LIMITS,
  options: { structureChecked?: boolean } = {},
): ChatRequest {
  if (!isPlainObject(body)) {
    fail('Request body must be a JSON object; send it with Content-Type: application/json.', 'body');
  }
  // Depth and prototype keys anywhere in the body, before any code below walks or copies it. The HTTP
  // face has done this walk in jsonBody() already (`structureChecked`); programmatic callers have not.
  if (!options.structureChecked) {
    const problem = jsonProblem(body);
    if (problem) fail(problem.message, problem.param);
  }
  if (typeof body.model !== 'string' || body.model.trim() === '') {
    fail('model is required: a model name such as "gpt-4o-mini" or "openai/gpt-4o-mini".', 'model');
  }
  // eslint-disable-next-line no-control-regex -- control characters are exactly what this rejects
  if (body.model.length > 256 || /[\u0000-\u001f\u007f\s]/.test(body.model)) {
    fail('model must be a model name without spaces or control characters.', 'model');
  }
  if (!Array.isArray(body.messages) || body.messages.length === 0) {
    fail('messages must be a non-empty array of {role, content}.', 'messages');
  }
  if (body.messages.length > limits.maxMessages) {
    fail(`messages has more than ${limits.maxMessages} entries.`, 'messages');
  }
  const request: ChatRequest = {
    model: body.model,
    messages: body.messages.map((m, i) => validateMessage(m, i, limits)),
  };
  const maxTokens = optionalNumber(body, 'max_tokens', 1, 10_000_000, true);
  if (maxTokens !== undefined) request.max_tokens = maxTokens;
  const temperature = optionalNumber(body, 'temperature', 0, 2);
  if (temperature !== undefined) request.temperature = temperature;
  const topP = optionalNumber(body, 'top_p', 0, 1);
  if (topP !== undefined) request.top_p = topP;
  if (body.stop !== undefined && body.stop !== null) {
    const stop = body.stop;
    const ok =
      typeof stop === 'string' ||
      (Array.isArray(stop) && stop.length <= 16 && stop.every((s) => typeof s === 'string' && s.length > 0));
    if (!ok) fail('stop must be a string or an array of non-empty strings.', 'stop');
    request.stop = stop as string | string[];
  }
  if (body.user !== undefined) {
    if (typeof body.user !== 'string' || body.user.length > 256)
      fail('user must be a string of at most 256 characters.', 'user');
    request.user = body.user;
  }
  if (body.metadata !== undefined) {
    if (!isPlainObject(body.metadata)) fail('metadata must be an object.', 'metadata');
    request.metadata = body.metadata;
  }
  if (body.tools !== undefined) {
    if (!Array.isArray(body.tools)) fail('tools must be an array of function definitions.', 'tools');
    body.tools.forEach((t, i) => {
      if (
        !isPlainObject(t) ||
        t.type !== 'function' ||
        !isPlainObject(t.function) ||
        typeof t.function.name !== 'string'
      ) {
        fail(
          `tools[${i}] must be {"type": "function", "function": {"name", "description"?, "parameters"?}}.`,
          `tools[${i}]`,
        );
      }
    });
    request.tools = body.tools as ChatRequest['tools'];
  }
  if (body.tool_choice !== undefined) {
    const tc = body.tool_choice;
    const named =
      isPlainObject(tc) &&
      tc.type === 'function' &&
      isPlainObject(tc.function) &&
      typeof tc.function.name === 'string';
    if (!(tc === 'auto' || tc === 'none' || tc === 'required' || named)) {
      fail(
        'tool_choice must be "auto", "none", "required" or {"type": "function", "function": {"name": "..."}}.',
        'tool_choice',
      );
    }
    request.tool_choice = tc as ChatRequest['tool_choice'];
  }
  if (body.cache !== undefined) {
    if (!isPlainObject(body.cache))
      fail('cache must be an object like {"ttl": 60, "bypass": false}.', 'cache');
    request.cache = body.cache as ChatRequest['cache'];
  }
  for (const key of Object.keys(body)) {
    if (key === '__proto__' || key === 'constructor' || key === 'prototype') {
      fail(`"${key}" is not allowed as a field name.`, key);
    }
    if (!KNOWN_FIELDS.has(key)) {
      (request as unknown as Record<string, unknown>)[key] = body[key];
      warnings.push(`unknown field "${key.slice(0, 64)}" was ignored`);
    }
  }
  return request;
}
