/**
 * A fake of Mistral's chat completions API (`POST /v1/chat/completions`, `GET /v1/models`), faithful
 * enough that the official `@mistralai/mistralai` SDK parses every answer with its own response schemas.
 * Request validation mirrors the FastAPI/pydantic service behind the real API: unknown fields are
 * rejected (`additionalProperties: false`), which is what catches OpenAI-shaped requests in tests.
 */
import { randomBytes, randomUUID } from 'node:crypto';
import {
  countFakeTokens,
  defaultReply,
  splitIntoChunks,
  startFakeServer,
  textOf,
  type FakeExchange,
  type FakeFault,
  type FakeProvider,
  type FakeProviderOptions,
} from './fake-server.js';

const CHAT_PATH = '/v1/chat/completions';
const MODELS_PATH = '/v1/models';

/** The only model name the fake refuses; any other name is served, so tests can use whatever they like. */
const UNKNOWN_MODEL = 'does-not-exist';

const REQUEST_FIELDS = new Set([
  'model',
  'messages',
  'temperature',
  'top_p',
  'max_tokens',
  'stream',
  'stop',
  'random_seed',
  'n',
  'presence_penalty',
  'frequency_penalty',
  'response_format',
  'tools',
  'tool_choice',
  'parallel_tool_calls',
  'prediction',
  'safe_prompt',
  'prompt_mode',
  'reasoning_effort',
  'guardrails',
  'prompt_cache_key',
  'metadata',
  'service_tier',
]);

/** Fields each message variant accepts; the role is the discriminator of pydantic's tagged union. */
const MESSAGE_FIELDS: Record<string, Set<string>> = {
  assistant: new Set(['role', 'content', 'tool_calls', 'prefix']),
  system: new Set(['role', 'content']),
  tool: new Set(['role', 'content', 'tool_call_id', 'name']),
  user: new Set(['role', 'content']),
};
const EXPECTED_TAGS = "'assistant', 'system', 'tool', 'user'";

const MODEL_CARDS = [
  { id: 'mistral-small-latest', name: 'mistral-small-2506', maxContext: 131072, vision: true },
  { id: 'mistral-large-latest', name: 'mistral-large-2411', maxContext: 131072, vision: false },
  { id: 'ministral-8b-latest', name: 'ministral-8b-2410', maxContext: 131072, vision: false },
];

// The real API reports per-minute budgets on every answer; a gateway may read them for its own limiter.
const RATE_LIMIT_HEADERS: Record<string, string> = {
  'x-ratelimit-limit-tokens-minute': '500000',
  'x-ratelimit-remaining-tokens-minute': '499000',
  'x-ratelimit-limit-req-minute': '60',
  'x-ratelimit-remaining-req-minute': '59',
};

/** One pydantic error entry as FastAPI serialises it in a 422 `detail` list. */
interface PydanticError {
  type: string;
  loc: (string | number)[];
  msg: string;
  input: unknown;
  ctx?: Record<string, unknown>;
}

type FinishReason = 'stop' | 'length' | 'tool_calls';

interface Usage {
  prompt_tokens: number;
  completion_tokens: number;
  total_tokens: number;
  prompt_tokens_details?: { cached_tokens: number };
}

export function startFakeMistral(options: FakeProviderOptions = {}): Promise<FakeProvider> {
  // The SDK appends `/v1/chat/completions` itself, so its `serverURL` is the bare origin.
  return startFakeServer(options, (origin) => origin, handle);
}

async function handle(x: FakeExchange): Promise<void> {
  const { record, fault } = x;
  if (fault?.status) {
    answerFault(x, fault.status, fault);
    return;
  }
  const isChat = record.path === CHAT_PATH;
  if (!isChat && record.path !== MODELS_PATH) {
    x.json(404, { detail: 'Not Found' });
    return;
  }
  if ((isChat && record.method !== 'POST') || (!isChat && record.method !== 'GET')) {
    x.json(405, { detail: 'Method Not Allowed' });
    return;
  }
  if (!isAuthorized(x)) {
    x.json(401, { detail: 'Unauthorized' });
    return;
  }
  if (!isChat) {
    x.json(200, modelList(), RATE_LIMIT_HEADERS);
    return;
  }

  const parsed = parseBody(record.rawBody);
  if ('errors' in parsed) {
    x.json(422, { detail: parsed.errors });
    return;
  }
  const body = parsed.body;
  const errors = validateRequest(body);
  if (errors.length > 0) {
    x.json(422, { detail: errors });
    return;
  }
  if (body.model === UNKNOWN_MODEL) {
    x.json(400, mistralError(`Invalid model: ${body.model}`, 'invalid_model', '1500'));
    return;
  }
  const last = body.messages[body.messages.length - 1];
  if (!(
    last.role === 'user' ||
    last.role === 'tool' ||
    (last.role === 'assistant' && last.prefix === true)
  )) {
    x.json(
      400,
      mistralError(
        `Expected last role User or Tool (or Assistant with prefix True) for serving but got ${last.role}`,
        'invalid_request_error',
        null,
      ),
    );
    return;
  }

  if (body.stream === true) await streamReply(x, body);
  else x.json(200, completion(x, body), RATE_LIMIT_HEADERS);
}

function isAuthorized(x: FakeExchange): boolean {
  const header = x.req.headers.authorization ?? '';
  const match = /^Bearer\s+(.+)$/i.exec(header);
  return match !== null && x.apiKeys.includes(match[1].trim());
}

function mistralError(message: string, type: string, code: string | null) {
  return { object: 'error', message, type, param: null, code };
}

/** Injected `fault.status`: Mistral's own body for that status, with the retry headers the fault asks for. */
function answerFault(x: FakeExchange, status: number, fault: FakeFault): void {
  const headers: Record<string, string> = {};
  if (fault.retryAfter !== undefined) headers['retry-after'] = String(fault.retryAfter);
  if (fault.retryAfterMs !== undefined) headers['retry-after-ms'] = String(fault.retryAfterMs);
  let body: unknown;
  if (status === 401) body = { detail: fault.message ?? 'Unauthorized' };
  else if (status === 403) body = { detail: fault.message ?? 'Forbidden' };
  else if (status === 404) body = { detail: fault.message ?? 'Not Found' };
  else if (status === 422) {
    body = {
      detail: [
        {
          type: 'value_error',
          loc: ['body'],
          msg: fault.message ?? 'Value error',
          input: x.record.body ?? null,
        },
      ],
    };
  } else if (status === 429)
    body = mistralError(fault.message ?? 'Rate limit exceeded', 'rate_limited', '1300');
  else if (status >= 500)
    body = mistralError(fault.message ?? serverErrorText(status), 'internal_server_error', null);
  else body = mistralError(fault.message ?? 'Bad request', 'invalid_request_error', null);
  x.json(status, body, headers);
}

function serverErrorText(status: number): string {
  if (status === 502) return 'Bad gateway';
  if (status === 503) return 'Service unavailable';
  if (status === 504) return 'Gateway timeout';
  return 'Internal server error';
}

function modelList() {
  const created = Math.floor(Date.now() / 1000);
  return {
    object: 'list',
    data: MODEL_CARDS.map((m) => ({
      id: m.id,
      object: 'model',
      created,
      owned_by: 'mistralai',
      capabilities: {
        completion_chat: true,
        function_calling: true,
        completion_fim: false,
        fine_tuning: false,
        vision: m.vision,
        classification: false,
      },
      name: m.name,
      description: `Fake ${m.id}`,
      max_context_length: m.maxContext,
      aliases: [m.name],
      deprecation: null,
      default_model_temperature: 0.3,
      type: 'base',
    })),
  };
}

/** FastAPI parses the body before validating it; these are its answers for unparseable or absent bodies. */
function parseBody(rawBody: string): { body: any } | { errors: PydanticError[] } {
  if (rawBody.trim() === '') {
    return { errors: [{ type: 'missing', loc: ['body'], msg: 'Field required', input: null }] };
  }
  try {
    return { body: JSON.parse(rawBody) };
  } catch (err) {
    const position = /position (\d+)/.exec(String(err));
    return {
      errors: [
        {
          type: 'json_invalid',
          loc: ['body', position ? Number(position[1]) : 0],
          msg: 'JSON decode error',
          input: {},
          ctx: { error: 'Expecting value' },
        },
      ],
    };
  }
}

/** Collects every pydantic error at once, as the real service does, rather than stopping at the first. */
function validateRequest(body: unknown): PydanticError[] {
  if (body === null || typeof body !== 'object' || Array.isArray(body)) {
    return [
      {
        type: 'model_attributes_type',
        loc: ['body'],
        msg: 'Input should be a valid dictionary or object to extract fields from',
        input: body,
      },
    ];
  }
  const b = body as Record<string, unknown>;
  const errors: PydanticError[] = [];
  const at = (field: string) => ['body', field];

  if (!('model' in b)) errors.push({ type: 'missing', loc: at('model'), msg: 'Field required', input: b });
  else if (typeof b.model !== 'string') {
    errors.push({
      type: 'string_type',
      loc: at('model'),
      msg: 'Input should be a valid string',
      input: b.model,
    });
  }
  if (!('messages' in b))
    errors.push({ type: 'missing', loc: at('messages'), msg: 'Field required', input: b });
  else errors.push(...validateMessages(b.messages));

  checkNumber(errors, b, 'temperature', { ge: 0, le: 1.5 });
  checkNumber(errors, b, 'top_p', { ge: 0, le: 1 });
  checkNumber(errors, b, 'presence_penalty', { ge: -2, le: 2 });
  checkNumber(errors, b, 'frequency_penalty', { ge: -2, le: 2 });
  checkNumber(errors, b, 'max_tokens', { ge: 0, integer: true });
  checkNumber(errors, b, 'random_seed', { ge: 0, integer: true });
  checkNumber(errors, b, 'n', { ge: 1, integer: true });
  checkBoolean(errors, b, 'stream', false);
  checkBoolean(errors, b, 'safe_prompt', false);
  checkBoolean(errors, b, 'parallel_tool_calls', false);
  if ('stop' in b && b.stop !== null && !isStop(b.stop)) {
    errors.push({
      type: 'string_type',
      loc: at('stop'),
      msg: 'Input should be a valid string',
      input: b.stop,
    });
  }

  for (const [key, value] of Object.entries(b)) {
    if (!REQUEST_FIELDS.has(key)) {
      errors.push({
        type: 'extra_forbidden',
        loc: at(key),
        msg: 'Extra inputs are not permitted',
        input: value,
      });
    }
  }
  return errors;
}

function isStop(value: unknown): boolean {
  return typeof value === 'string' || (Array.isArray(value) && value.every((s) => typeof s === 'string'));
}

function checkNumber(
  errors: PydanticError[],
  b: Record<string, unknown>,
  field: string,
  rule: { ge: number; le?: number; integer?: boolean },
): void {
  if (!(field in b) || b[field] === null) return;
  const value = b[field];
  const loc = ['body', field];
  if (typeof value !== 'number') {
    errors.push(
      rule.integer
        ? { type: 'int_type', loc, msg: 'Input should be a valid integer', input: value }
        : { type: 'float_type', loc, msg: 'Input should be a valid number', input: value },
    );
    return;
  }
  if (rule.integer && !Number.isInteger(value)) {
    errors.push({
      type: 'int_from_float',
      loc,
      msg: 'Input should be a valid integer, got a number with a fractional part',
      input: value,
    });
    return;
  }
  if (value < rule.ge) {
    errors.push({
      type: 'greater_than_equal',
      loc,
      msg: `Input should be greater than or equal to ${rule.ge}`,
      input: value,
      ctx: { ge: rule.ge },
    });
  } else if (rule.le !== undefined && value > rule.le) {
    errors.push({
      type: 'less_than_equal',
      loc,
      msg: `Input should be less than or equal to ${rule.le}`,
      input: value,
      ctx: { le: rule.le },
    });
  }
}

function checkBoolean(
  errors: PydanticError[],
  b: Record<string, unknown>,
  field: string,
  nullable: boolean,
): void {
  if (!(field in b) || (nullable && b[field] === null)) return;
  if (typeof b[field] !== 'boolean') {
    errors.push({
      type: 'bool_type',
      loc: ['body', field],
      msg: 'Input should be a valid boolean',
      input: b[field],
    });
  }
}

function validateMessages(messages: unknown): PydanticError[] {
  if (!Array.isArray(messages)) {
    return [
      { type: 'list_type', loc: ['body', 'messages'], msg: 'Input should be a valid list', input: messages },
    ];
  }
  // Not confirmed against the real API: an empty list is assumed to fail pydantic's min_length=1.
  if (messages.length === 0) {
    return [
      {
        type: 'too_short',
        loc: ['body', 'messages'],
        msg: 'List should have at least 1 item after validation, not 0',
        input: [],
        ctx: { field_type: 'List', min_length: 1, actual_length: 0 },
      },
    ];
  }
  const errors: PydanticError[] = [];
  messages.forEach((m: unknown, i: number) => {
    const loc = ['body', 'messages', i];
    if (m === null || typeof m !== 'object' || Array.isArray(m)) {
      errors.push({
        type: 'model_attributes_type',
        loc,
        msg: 'Input should be a valid dictionary or object to extract fields from',
        input: m,
      });
      return;
    }
    const msg = m as Record<string, unknown>;
    if (!('role' in msg)) {
      errors.push({
        type: 'union_tag_not_found',
        loc,
        msg: "Unable to extract tag using discriminator 'role'",
        input: msg,
        ctx: { discriminator: "'role'" },
      });
      return;
    }
    const role = String(msg.role);
    const allowed = MESSAGE_FIELDS[role];
    if (typeof msg.role !== 'string' || !allowed) {
      errors.push({
        type: 'union_tag_invalid',
        loc,
        msg: `Input tag '${role}' found using 'role' does not match any of the expected tags: ${EXPECTED_TAGS}`,
        input: msg,
        ctx: { discriminator: "'role'", tag: role, expected_tags: EXPECTED_TAGS },
      });
      return;
    }
    // pydantic puts the union tag into the location of errors inside a tagged-union member.
    const inner = (field: string) => [...loc, role, field];
    if (role !== 'assistant' && !('content' in msg)) {
      errors.push({ type: 'missing', loc: inner('content'), msg: 'Field required', input: msg });
    }
    if (role === 'assistant' && 'prefix' in msg && typeof msg.prefix !== 'boolean') {
      errors.push({
        type: 'bool_type',
        loc: inner('prefix'),
        msg: 'Input should be a valid boolean',
        input: msg.prefix,
      });
    }
    for (const [key, value] of Object.entries(msg)) {
      if (!allowed.has(key)) {
        errors.push({
          type: 'extra_forbidden',
          loc: inner(key),
          msg: 'Extra inputs are not permitted',
          input: value,
        });
      }
    }
  });
  return errors;
}

/** What the fake "generates" for a validated request: text or a tool call, already cut by stop/max_tokens. */
interface Generation {
  content: string;
  toolCalls: { id: string; type: 'function'; function: { name: string; arguments: string } }[] | null;
  finishReason: FinishReason;
  usage: Usage;
}

function generate(x: FakeExchange, body: any): Generation {
  const messages: any[] = body.messages;
  const promptTokens = messages.reduce((sum, m) => sum + countFakeTokens(textOf(m.content)), 0);
  const usageFor = (completionTokens: number): Usage => {
    const usage: Usage = {
      prompt_tokens: promptTokens,
      completion_tokens: completionTokens,
      total_tokens: promptTokens + completionTokens,
    };
    // Mistral reports prompt-cache hits the OpenAI way, under `prompt_tokens_details.cached_tokens`.
    if (x.options.cachedPromptTokens !== undefined) {
      usage.prompt_tokens_details = { cached_tokens: Math.min(x.options.cachedPromptTokens, promptTokens) };
    }
    return usage;
  };

  const tool = x.options.toolCall;
  if (tool) {
    const args = JSON.stringify(tool.arguments);
    return {
      content: '',
      toolCalls: [{ id: toolCallId(), type: 'function', function: { name: tool.name, arguments: args } }],
      finishReason: 'tool_calls',
      usage: usageFor(countFakeTokens(`${tool.name} ${args}`)),
    };
  }

  const lastUser = [...messages].reverse().find((m) => m.role === 'user');
  const lastUserText = lastUser ? textOf(lastUser.content) : '';
  let text = x.options.reply?.(lastUserText, body) ?? defaultReply(lastUserText);
  // With `prefix: true` the model continues the assistant's text, and the answer starts with that prefix.
  const last = messages[messages.length - 1];
  if (last.role === 'assistant' && last.prefix === true) text = textOf(last.content) + text;

  let finishReason: FinishReason = 'stop';
  const stops: string[] = body.stop == null ? [] : typeof body.stop === 'string' ? [body.stop] : body.stop;
  const cut = Math.min(
    ...stops
      .filter((s) => s !== '')
      .map((s) => text.indexOf(s))
      .filter((i) => i >= 0),
  );
  if (Number.isFinite(cut)) text = text.slice(0, cut);
  if (typeof body.max_tokens === 'number' && countFakeTokens(text) > body.max_tokens) {
    text = splitIntoChunks(text).slice(0, body.max_tokens).join('');
    finishReason = 'length';
  }
  return { content: text, toolCalls: null, finishReason, usage: usageFor(countFakeTokens(text)) };
}

/** Mistral's tool call ids are 9 alphanumeric characters, unlike OpenAI's `call_…`. */
function toolCallId(): string {
  const alphabet = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789';
  return Array.from(randomBytes(9), (byte) => alphabet[byte % alphabet.length]).join('');
}

function completionId(): string {
  return randomUUID().replaceAll('-', '');
}

function completion(x: FakeExchange, body: any) {
  const g = generate(x, body);
  const n = typeof body.n === 'number' ? body.n : 1;
  // Every one of the n identical choices is billed.
  const completionTokens = g.usage.completion_tokens * n;
  const usage = {
    ...g.usage,
    completion_tokens: completionTokens,
    total_tokens: g.usage.prompt_tokens + completionTokens,
  };
  // Field order as the real service serialises it: usage before created, tool_calls before content.
  return {
    id: completionId(),
    object: 'chat.completion',
    model: body.model,
    usage,
    created: Math.floor(Date.now() / 1000),
    choices: Array.from({ length: n }, (_, index) => ({
      index,
      message: { role: 'assistant', tool_calls: g.toolCalls, content: g.content },
      finish_reason: g.finishReason,
    })),
  };
}

async function streamReply(x: FakeExchange, body: any): Promise<void> {
  const { res, fault } = x;
  const g = generate(x, body);
  const id = completionId();
  const created = Math.floor(Date.now() / 1000);
  const chunk = (delta: Record<string, unknown>, finishReason: FinishReason | null, usage?: Usage) => ({
    id,
    object: 'chat.completion.chunk',
    created,
    model: body.model,
    choices: [{ index: 0, delta, finish_reason: finishReason }],
    ...(usage ? { usage } : {}),
  });
  let flushed: Promise<unknown> = Promise.resolve();
  const send = (payload: unknown) => {
    flushed = new Promise((resolve) => res.write(`data: ${JSON.stringify(payload)}\n\n`, resolve));
  };

  res.writeHead(200, {
    'content-type': 'text/event-stream; charset=utf-8',
    'cache-control': 'no-cache',
    connection: 'keep-alive',
    ...RATE_LIMIT_HEADERS,
  });
  send(chunk({ role: 'assistant', content: '' }, null));

  // A tool call arrives whole in a single delta; text arrives word by word. Either way the final piece
  // carries finish_reason and usage together: Mistral has no separate usage chunk.
  const pieces: Record<string, unknown>[] = g.toolCalls
    ? [{ tool_calls: g.toolCalls }]
    : splitIntoChunks(g.content)
        .filter((s) => s !== '')
        .map((content) => ({ content }));
  if (pieces.length === 0) pieces.push({ content: '' });

  // Counts past the end still fault, just after the last content chunk (before `[DONE]`).
  const cutAt = fault?.cutStreamAfter === undefined ? -1 : Math.min(fault.cutStreamAfter, pieces.length);
  const errorAt =
    fault?.errorStreamAfter === undefined ? -1 : Math.min(fault.errorStreamAfter, pieces.length);
  for (let i = 0; i <= pieces.length; i += 1) {
    if (res.destroyed) return;
    if (i === cutAt) {
      // Destroying drops unflushed writes, so let the chunks already sent reach the client first.
      await flushed;
      res.destroy();
      return;
    }
    if (i === errorAt) {
      // Shape not confirmed by the SDK or docs: Mistral's error JSON sent as an ordinary data event.
      send(mistralError(fault?.message ?? 'Internal server error', 'internal_server_error', null));
      res.end();
      return;
    }
    if (i === pieces.length) break;
    await x.pause();
    if (res.destroyed) return;
    const isLast = i === pieces.length - 1;
    send(chunk(pieces[i], isLast ? g.finishReason : null, isLast ? g.usage : undefined));
  }
  res.end('data: [DONE]\n\n');
}
