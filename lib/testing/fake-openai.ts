/**
 * A faithful fake of OpenAI's Chat Completions API: its paths, bearer auth, strict request validation (unknown
 * fields rejected), response and chunk JSON, `data: [DONE]` framing, usage only with
 * `stream_options.include_usage`, and its error JSON `{"error": {message, type, param, code}}`.
 */
import { randomBytes } from 'node:crypto';
import type { FakeExchange, FakeFault, FakeProvider, FakeProviderOptions } from './fake-server.js';
import { countFakeTokens, defaultReply, splitIntoChunks, startFakeServer, textOf } from './fake-server.js';

const ALLOWED_FIELDS = new Set([
  'model',
  'messages',
  'max_tokens',
  'max_completion_tokens',
  'temperature',
  'top_p',
  'n',
  'stop',
  'stream',
  'stream_options',
  'seed',
  'user',
  'tools',
  'tool_choice',
  'parallel_tool_calls',
  'response_format',
  'frequency_penalty',
  'presence_penalty',
  'logit_bias',
  'logprobs',
  'top_logprobs',
  'store',
  'metadata',
  'reasoning_effort',
  'service_tier',
  'modalities',
  'audio',
  'prediction',
  'web_search_options',
  'prompt_cache_key',
  'safety_identifier',
  'verbosity',
  'functions',
  'function_call',
]);
const ROLES = new Set(['system', 'developer', 'user', 'assistant', 'tool', 'function']);

class OpenAIError extends Error {
  constructor(
    readonly status: number,
    message: string,
    readonly type: string,
    readonly param: string | null = null,
    readonly code: string | null = null,
  ) {
    super(message);
  }
}

const DEFAULTS: Record<number, [string, string, string | null]> = {
  400: ['invalid_request_error', 'Bad request.', null],
  401: ['invalid_request_error', 'Incorrect API key provided.', 'invalid_api_key'],
  403: ['invalid_request_error', 'You are not allowed to sample from this model.', null],
  404: [
    'invalid_request_error',
    'The model does not exist or you do not have access to it.',
    'model_not_found',
  ],
  429: [
    'requests',
    'Rate limit reached for gpt-4o-mini in organization org-fake on requests per min (RPM): Limit 3, Used 3, Requested 1. Please try again in 20s.',
    'rate_limit_exceeded',
  ],
  500: ['server_error', 'The server had an error processing your request. Sorry about that!', null],
  502: ['server_error', 'Bad gateway.', null],
  503: ['server_error', 'The engine is currently overloaded, please try again later.', null],
};

function faultError(f: FakeFault): OpenAIError {
  const status = f.status!;
  const [type, message, code] = DEFAULTS[status] ?? [
    status >= 500 ? 'server_error' : 'invalid_request_error',
    `HTTP ${status}`,
    null,
  ];
  return new OpenAIError(status, f.message ?? message, type, null, code);
}

function send(x: FakeExchange, err: OpenAIError, headers: Record<string, string> = {}) {
  x.json(
    err.status,
    { error: { message: err.message, type: err.type, param: err.param, code: err.code } },
    {
      'x-request-id': `req_${randomBytes(12).toString('hex')}`,
      ...headers,
    },
  );
}

function maskKey(key: string): string {
  return key.length > 8 ? `${key.slice(0, 3)}*********${key.slice(-4)}` : '********';
}

function checkNumber(body: any, field: string, min: number, max: number, integer = false) {
  const v = body[field];
  if (v === undefined || v === null) return;
  if (typeof v !== 'number' || (integer && !Number.isInteger(v))) {
    throw new OpenAIError(
      400,
      `Invalid type for '${field}': expected ${integer ? 'an integer' : 'a decimal'}, but got ${typeof v} instead.`,
      'invalid_request_error',
      field,
      integer ? 'invalid_type' : 'invalid_type',
    );
  }
  if (v < min) {
    throw new OpenAIError(
      400,
      `Invalid '${field}': ${integer ? 'integer' : 'decimal'} below minimum value. Expected a value >= ${min}, but got ${v} instead.`,
      'invalid_request_error',
      field,
      integer ? 'integer_below_min_value' : 'decimal_below_min_value',
    );
  }
  if (v > max) {
    throw new OpenAIError(
      400,
      `Invalid '${field}': ${integer ? 'integer' : 'decimal'} above maximum value. Expected a value <= ${max}, but got ${v} instead.`,
      'invalid_request_error',
      field,
      integer ? 'integer_above_max_value' : 'decimal_above_max_value',
    );
  }
}

function validate(body: any): void {
  if (!body || typeof body !== 'object' || Array.isArray(body)) {
    throw new OpenAIError(
      400,
      "We could not parse the JSON body of your request. (HINT: This likely means you aren't using your HTTP library correctly. The OpenAI API expects a JSON payload, but what was sent was not valid JSON.)",
      'invalid_request_error',
    );
  }
  for (const key of Object.keys(body)) {
    if (!ALLOWED_FIELDS.has(key)) {
      throw new OpenAIError(400, `Unrecognized request argument supplied: ${key}`, 'invalid_request_error');
    }
  }
  if (typeof body.model !== 'string' || !body.model) {
    throw new OpenAIError(400, 'you must provide a model parameter', 'invalid_request_error');
  }
  if (body.messages === undefined) {
    throw new OpenAIError(
      400,
      "Missing required parameter: 'messages'.",
      'invalid_request_error',
      'messages',
      'missing_required_parameter',
    );
  }
  if (!Array.isArray(body.messages) || body.messages.length === 0) {
    throw new OpenAIError(
      400,
      "Invalid 'messages': empty array. Expected an array with minimum length 1, but got an empty array instead.",
      'invalid_request_error',
      'messages',
      'empty_array',
    );
  }
  body.messages.forEach((m: any, i: number) => {
    if (!ROLES.has(m?.role)) {
      throw new OpenAIError(
        400,
        `Invalid value: '${m?.role}'. Supported values are: 'system', 'assistant', 'user', 'function', 'tool', and 'developer'.`,
        'invalid_request_error',
        `messages[${i}].role`,
        'invalid_value',
      );
    }
    const c = m.content;
    const okContent = typeof c === 'string' || Array.isArray(c) || (c === null && m.role === 'assistant');
    if (!okContent) {
      throw new OpenAIError(
        400,
        `Invalid type for 'messages[${i}].content': expected one of a string or array of objects, but got ${c === null ? 'null' : typeof c} instead.`,
        'invalid_request_error',
        `messages[${i}].content`,
        'invalid_type',
      );
    }
    if (m.role === 'tool' && typeof m.tool_call_id !== 'string') {
      throw new OpenAIError(
        400,
        `Missing parameter 'tool_call_id': messages with role 'tool' must have a 'tool_call_id'.`,
        'invalid_request_error',
        `messages[${i}].tool_call_id`,
        null,
      );
    }
  });
  checkNumber(body, 'temperature', 0, 2);
  checkNumber(body, 'top_p', 0, 1);
  checkNumber(body, 'max_tokens', 1, 1_000_000, true);
  checkNumber(body, 'max_completion_tokens', 1, 1_000_000, true);
  checkNumber(body, 'n', 1, 128, true);
  if (body.stop !== undefined && body.stop !== null) {
    const ok =
      typeof body.stop === 'string' ||
      (Array.isArray(body.stop) &&
        body.stop.length <= 4 &&
        body.stop.every((s: unknown) => typeof s === 'string'));
    if (!ok)
      throw new OpenAIError(
        400,
        "Invalid 'stop': expected a string or an array of at most 4 strings.",
        'invalid_request_error',
        'stop',
        'invalid_type',
      );
  }
  if (body.stream_options !== undefined && body.stream_options !== null && body.stream !== true) {
    throw new OpenAIError(
      400,
      "The 'stream_options' parameter is only allowed when 'stream' is enabled.",
      'invalid_request_error',
      'stream_options',
      null,
    );
  }
  if (body.stream !== undefined && typeof body.stream !== 'boolean' && body.stream !== null) {
    throw new OpenAIError(
      400,
      "Invalid type for 'stream': expected a boolean.",
      'invalid_request_error',
      'stream',
      'invalid_type',
    );
  }
}

interface Generated {
  content: string;
  finishReason: 'stop' | 'length' | 'tool_calls';
  toolCalls?: { id: string; type: 'function'; function: { name: string; arguments: string } }[];
  usage: Record<string, unknown>;
}

function generate(x: FakeExchange, body: any): Generated {
  const messages: any[] = body.messages;
  const lastUser = [...messages].reverse().find((m) => m.role === 'user');
  const lastText = textOf(lastUser?.content);
  const promptTokens = messages.reduce((n, m) => n + countFakeTokens(textOf(m.content)), 0);
  const cached = Math.min(x.options.cachedPromptTokens ?? 0, promptTokens);
  const usageOf = (completion: number) => ({
    prompt_tokens: promptTokens,
    completion_tokens: completion,
    total_tokens: promptTokens + completion,
    prompt_tokens_details: { cached_tokens: cached, audio_tokens: 0 },
    completion_tokens_details: {
      reasoning_tokens: 0,
      audio_tokens: 0,
      accepted_prediction_tokens: 0,
      rejected_prediction_tokens: 0,
    },
  });
  if (x.options.toolCall && Array.isArray(body.tools) && body.tools.length) {
    const args = JSON.stringify(x.options.toolCall.arguments);
    return {
      content: '',
      finishReason: 'tool_calls',
      toolCalls: [
        {
          id: `call_${randomBytes(12).toString('hex')}`,
          type: 'function',
          function: { name: x.options.toolCall.name, arguments: args },
        },
      ],
      usage: usageOf(countFakeTokens(args) + 1),
    };
  }
  let content = x.options.reply?.(lastText, body) ?? defaultReply(lastText);
  let finishReason: Generated['finishReason'] = 'stop';
  const stops: string[] = body.stop === undefined || body.stop === null ? [] : [body.stop].flat();
  for (const s of stops) {
    const at = content.indexOf(s);
    if (at >= 0) content = content.slice(0, at);
  }
  const limit = body.max_completion_tokens ?? body.max_tokens;
  const words = splitIntoChunks(content);
  if (typeof limit === 'number' && countFakeTokens(content) > limit) {
    content = words.slice(0, limit).join('');
    finishReason = 'length';
  }
  return { content, finishReason, usage: usageOf(countFakeTokens(content)) };
}

function completionId() {
  return `chatcmpl-${randomBytes(15).toString('base64url')}`;
}

async function streamReply(x: FakeExchange, body: any, g: Generated) {
  const { res, fault } = x;
  const id = completionId();
  const created = Math.floor(Date.now() / 1000);
  const includeUsage = body.stream_options?.include_usage === true;
  const chunk = (delta: Record<string, unknown>, finish: string | null) => ({
    id,
    object: 'chat.completion.chunk',
    created,
    model: body.model,
    service_tier: 'default',
    system_fingerprint: 'fp_fake',
    choices: [{ index: 0, delta, logprobs: null, finish_reason: finish }],
    ...(includeUsage ? { usage: null } : {}),
  });
  let flushed: Promise<unknown> = Promise.resolve();
  const write = (text: string) => {
    flushed = new Promise((resolve) => res.write(text, resolve));
  };
  const event = (payload: unknown) => write(`data: ${JSON.stringify(payload)}\n\n`);

  res.writeHead(200, {
    'content-type': 'text/event-stream; charset=utf-8',
    'cache-control': 'no-cache, must-revalidate',
    'x-request-id': `req_${randomBytes(12).toString('hex')}`,
  });
  const pieces: Record<string, unknown>[] = g.toolCalls
    ? [
        {
          tool_calls: [
            {
              index: 0,
              id: g.toolCalls[0]!.id,
              type: 'function',
              function: { name: g.toolCalls[0]!.function.name, arguments: '' },
            },
          ],
        },
        ...splitIntoChunks(g.toolCalls[0]!.function.arguments).map((a) => ({
          tool_calls: [{ index: 0, function: { arguments: a } }],
        })),
      ]
    : splitIntoChunks(g.content)
        .filter(Boolean)
        .map((content) => ({ content }));
  const cutAt = fault?.cutStreamAfter ?? -1;
  const errorAt = fault?.errorStreamAfter ?? -1;
  if (cutAt === 0) {
    await flushed;
    res.destroy();
    return;
  }
  event(chunk({ role: 'assistant', content: g.toolCalls ? null : '', refusal: null }, null));
  for (let i = 0; i < pieces.length; i++) {
    if (i === cutAt) {
      await flushed;
      res.destroy();
      return;
    }
    if (i === errorAt) {
      event({
        error: {
          message:
            fault?.message ?? 'The server had an error while processing your request. Sorry about that!',
          type: 'server_error',
          param: null,
          code: null,
        },
      });
      res.end();
      return;
    }
    await x.pause();
    if (res.destroyed) return;
    event(chunk(pieces[i]!, null));
  }
  if (cutAt >= pieces.length) {
    await flushed;
    res.destroy();
    return;
  }
  event(chunk({}, g.finishReason));
  if (includeUsage) event({ ...chunk({}, null), choices: [], usage: g.usage });
  res.end('data: [DONE]\n\n');
}

async function handle(x: FakeExchange): Promise<void> {
  const { record, fault } = x;
  if (fault?.status) {
    const headers: Record<string, string> = {};
    if (fault.retryAfter !== undefined) headers['retry-after'] = String(fault.retryAfter);
    if (fault.retryAfterMs !== undefined) headers['retry-after-ms'] = String(fault.retryAfterMs);
    send(x, faultError(fault), headers);
    return;
  }
  const known =
    record.path === '/v1/chat/completions' ||
    record.path === '/v1/models' ||
    record.path.startsWith('/v1/models/');
  if (!known) {
    send(x, new OpenAIError(404, `Invalid URL (${record.method} ${record.path})`, 'invalid_request_error'));
    return;
  }
  const auth = record.headers.authorization;
  if (!auth || !auth.startsWith('Bearer ')) {
    send(
      x,
      new OpenAIError(
        401,
        "You didn't provide an API key. You need to provide your API key in an Authorization header using Bearer auth (i.e. Authorization: Bearer YOUR_KEY), or as the password field (with blank username) if you're accessing the API from your browser and are prompted for a username and password. You can obtain an API key from https://platform.openai.com/account/api-keys.",
        'invalid_request_error',
      ),
    );
    return;
  }
  const key = auth.slice('Bearer '.length);
  if (!x.apiKeys.includes(key)) {
    send(
      x,
      new OpenAIError(
        401,
        `Incorrect API key provided: ${maskKey(key)}. You can find your API key at https://platform.openai.com/account/api-keys.`,
        'invalid_request_error',
        null,
        'invalid_api_key',
      ),
    );
    return;
  }
  if (record.path.startsWith('/v1/models')) {
    if (record.method !== 'GET') {
      send(x, new OpenAIError(404, `Invalid URL (${record.method} ${record.path})`, 'invalid_request_error'));
      return;
    }
    x.json(200, {
      object: 'list',
      data: [{ id: 'gpt-4o-mini', object: 'model', created: 1721172741, owned_by: 'system' }],
    });
    return;
  }
  if (record.method !== 'POST') {
    send(x, new OpenAIError(404, `Invalid URL (${record.method} ${record.path})`, 'invalid_request_error'));
    return;
  }
  try {
    if (record.body === undefined && record.rawBody !== '')
      throw new OpenAIError(
        400,
        "We could not parse the JSON body of your request. (HINT: This likely means you aren't using your HTTP library correctly. The OpenAI API expects a JSON payload, but what was sent was not valid JSON.)",
        'invalid_request_error',
      );
    validate(record.body);
    if (record.body.model === 'does-not-exist') {
      throw new OpenAIError(
        404,
        'The model `does-not-exist` does not exist or you do not have access to it.',
        'invalid_request_error',
        null,
        'model_not_found',
      );
    }
  } catch (err) {
    if (err instanceof OpenAIError) return send(x, err);
    throw err;
  }
  const body = record.body;
  const g = generate(x, body);
  if (body.stream === true) return streamReply(x, body, g);
  if (fault?.cutStreamAfter !== undefined) {
    x.req.socket.destroy();
    return;
  }
  x.json(
    200,
    {
      id: completionId(),
      object: 'chat.completion',
      created: Math.floor(Date.now() / 1000),
      model: body.model,
      choices: [
        {
          index: 0,
          message: {
            role: 'assistant',
            content: g.toolCalls ? null : g.content,
            refusal: null,
            annotations: [],
            ...(g.toolCalls ? { tool_calls: g.toolCalls } : {}),
          },
          logprobs: null,
          finish_reason: g.finishReason,
        },
      ],
      usage: g.usage,
      service_tier: 'default',
      system_fingerprint: 'fp_fake',
    },
    { 'x-request-id': `req_${randomBytes(12).toString('hex')}` },
  );
}

export function startFakeOpenAI(options: FakeProviderOptions = {}): Promise<FakeProvider> {
  return startFakeServer(options, (origin) => `${origin}/v1`, handle);
}
