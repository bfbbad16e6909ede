/**
 * A fake of the Anthropic Messages API (`POST /v1/messages`, plus `count_tokens`) that speaks the same wire
 * format as the real service: its auth and version headers, its validation messages, its response and
 * server-sent event shapes, and its error JSON. The official SDK is pointed at it in tests.
 */
import { randomBytes } from 'node:crypto';
import {
  countFakeTokens,
  defaultReply,
  splitIntoChunks,
  startFakeServer,
  textOf,
  type FakeExchange,
  type FakeProvider,
  type FakeProviderOptions,
} from './fake-server.js';

/** `2023-06-01` is what raw HTTP clients pin; SDK 1.x sends `2026-10-21`; `2023-01-01` is still accepted. */
const VALID_VERSIONS = new Set(['2023-01-01', '2023-06-01', '2026-10-21']);
/** The SDK 1.x version documents `max_tokens: 0` as a cache pre-warm; older versions require ≥ 1. */
const PREWARM_VERSIONS = new Set(['2026-10-21']);

/** Top-level fields of a Messages request: the SDK 1.x body params plus the sampling knobs older clients send. */
const CREATE_FIELDS = new Set([
  'model',
  'max_tokens',
  'messages',
  'system',
  'stop_sequences',
  'temperature',
  'top_p',
  'top_k',
  'stream',
  'metadata',
  'tools',
  'tool_choice',
  'thinking',
  'service_tier',
  'cache_control',
  'container',
  'diagnostics',
  'inference_geo',
  'output_config',
  'speed',
  'mcp_servers',
  'context_management',
]);
const COUNT_TOKENS_FIELDS = new Set([
  'model',
  'messages',
  'system',
  'tools',
  'tool_choice',
  'thinking',
  'cache_control',
  'output_config',
  'speed',
  'mcp_servers',
  'context_management',
]);

/** Allowed keys per input content block type; the real API rejects anything else as an extra input. */
const BLOCK_FIELDS: Record<string, string[]> = {
  text: ['type', 'text', 'cache_control', 'citations'],
  image: ['type', 'source', 'cache_control', 'transformations'],
  document: ['type', 'source', 'cache_control', 'citations', 'context', 'title'],
  tool_use: ['type', 'id', 'name', 'input', 'cache_control', 'caller', 'toolset_name'],
  tool_result: ['type', 'tool_use_id', 'content', 'is_error', 'cache_control', 'toolset_name'],
  thinking: ['type', 'thinking', 'signature'],
  redacted_thinking: ['type', 'data'],
  search_result: ['type', 'source', 'title', 'content', 'cache_control', 'citations'],
};

const ERROR_TYPES: Record<number, string> = {
  400: 'invalid_request_error',
  401: 'authentication_error',
  402: 'billing_error',
  403: 'permission_error',
  404: 'not_found_error',
  413: 'request_too_large',
  429: 'rate_limit_error',
  500: 'api_error',
  504: 'timeout_error',
  529: 'overloaded_error',
};

const DEFAULT_MESSAGES: Record<number, string> = {
  400: 'There was an issue with the format or content of your request.',
  401: 'invalid x-api-key',
  402: 'Your credit balance is too low to access the Anthropic API.',
  403: 'Your API key does not have permission to use the specified resource.',
  404: 'Not Found',
  413: 'Request exceeds the maximum allowed number of bytes.',
  429: 'This request would exceed the rate limit for your organization of 50 requests per minute. Please reduce the prompt length or the maximum tokens requested, or try again later.',
  500: 'Internal server error',
  504: 'Request timed out',
  529: 'Overloaded',
};

/** Anthropic only documents these types; other 4xx are reported as invalid requests and other 5xx as api errors. */
function errorTypeFor(status: number): string {
  return ERROR_TYPES[status] ?? (status >= 500 ? 'api_error' : 'invalid_request_error');
}

const ALPHABET = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789';
function randomId(prefix: string, length = 24): string {
  const bytes = randomBytes(length);
  let s = prefix;
  for (const b of bytes) s += ALPHABET[b % ALPHABET.length];
  return s;
}

class RequestError extends Error {
  constructor(
    readonly status: number,
    message: string,
  ) {
    super(message);
  }
}

function invalid(message: string): never {
  throw new RequestError(400, message);
}

const isObject = (v: unknown): v is Record<string, any> =>
  typeof v === 'object' && v !== null && !Array.isArray(v);
const isInt = (v: unknown): v is number => typeof v === 'number' && Number.isInteger(v);

function rejectExtras(obj: Record<string, unknown>, allowed: Iterable<string>, at: string): void {
  const ok = new Set(allowed);
  for (const key of Object.keys(obj)) {
    if (!ok.has(key)) invalid(`${at}${key}: Extra inputs are not permitted`);
  }
}

function checkNumber(body: Record<string, any>, field: string, min: number, max?: number): void {
  if (!(field in body)) return;
  const v = body[field];
  if (typeof v !== 'number' || !Number.isFinite(v)) invalid(`${field}: Input should be a valid number`);
  if (v < min) invalid(`${field}: Input should be greater than or equal to ${min}`);
  if (max !== undefined && v > max) invalid(`${field}: Input should be less than or equal to ${max}`);
}

function checkTextBlock(block: Record<string, any>, at: string, owner: string): void {
  if (!('text' in block)) invalid(`${at}.text: Field required`);
  if (typeof block.text !== 'string') invalid(`${at}.text: Input should be a valid string`);
  if (block.text === '') invalid(`${owner}: text content blocks must be non-empty`);
  if (!block.text.trim()) invalid(`${owner}: text content blocks must contain non-whitespace text`);
}

function checkBlock(block: unknown, at: string): void {
  if (!isObject(block)) invalid(`${at}: Input should be a valid dictionary or object to extract fields from`);
  const type = block.type;
  const fields = typeof type === 'string' ? BLOCK_FIELDS[type] : undefined;
  if (!fields) {
    const tags = Object.keys(BLOCK_FIELDS)
      .map((t) => `'${t}'`)
      .join(', ');
    if (type === undefined) invalid(`${at}: Unable to extract tag using discriminator 'type'`);
    invalid(
      `${at}: Input tag '${String(type)}' found using 'type' does not match any of the expected tags: ${tags}`,
    );
  }
  rejectExtras(block, fields, `${at}.${type}.`);
  switch (type) {
    case 'text':
      checkTextBlock(block, `${at}.text`, 'messages');
      break;
    case 'image':
    case 'document':
      if (!isObject(block.source)) invalid(`${at}.${type}.source: Field required`);
      break;
    case 'tool_use':
      if (typeof block.id !== 'string') invalid(`${at}.tool_use.id: Field required`);
      if (typeof block.name !== 'string') invalid(`${at}.tool_use.name: Field required`);
      if (!('input' in block)) invalid(`${at}.tool_use.input: Field required`);
      break;
    case 'tool_result':
      if (typeof block.tool_use_id !== 'string') invalid(`${at}.tool_result.tool_use_id: Field required`);
      if (Array.isArray(block.content)) {
        block.content.forEach((c: unknown, i: number) => checkBlock(c, `${at}.tool_result.content.${i}`));
      } else if ('content' in block && typeof block.content !== 'string') {
        invalid(`${at}.tool_result.content: Input should be a valid string`);
      }
      break;
  }
}

/** Pairs tool calls with their results the way the real API insists on, so gateway translation bugs surface. */
function checkToolPairing(messages: Record<string, any>[]): void {
  const blocksOf = (m: Record<string, any>) => (Array.isArray(m.content) ? m.content : []);
  messages.forEach((m, i) => {
    if (m.role !== 'user') return;
    const results = blocksOf(m).filter((b: any) => b.type === 'tool_result');
    if (!results.length) return;
    const prev = messages[i - 1];
    const ids = new Set(
      prev?.role === 'assistant'
        ? blocksOf(prev)
            .filter((b: any) => b.type === 'tool_use')
            .map((b: any) => b.id)
        : [],
    );
    const unexpected = results.map((b: any) => b.tool_use_id).filter((id: string) => !ids.has(id));
    if (unexpected.length) {
      const at = blocksOf(m).findIndex((b: any) => unexpected.includes(b.tool_use_id));
      invalid(
        `messages.${i}.content.${at}: unexpected \`tool_use_id\` found in \`tool_result\` blocks: ${unexpected.join(', ')}. Each \`tool_result\` block must have a corresponding \`tool_use\` block in the previous message.`,
      );
    }
  });
  messages.forEach((m, i) => {
    if (m.role !== 'assistant' || i === messages.length - 1) return;
    const uses = blocksOf(m)
      .filter((b: any) => b.type === 'tool_use')
      .map((b: any) => b.id);
    if (!uses.length) return;
    const next = messages[i + 1];
    const answered = new Set(
      next?.role === 'user'
        ? blocksOf(next)
            .filter((b: any) => b.type === 'tool_result')
            .map((b: any) => b.tool_use_id)
        : [],
    );
    const missing = uses.filter((id: string) => !answered.has(id));
    if (missing.length) {
      invalid(
        `messages.${i}: \`tool_use\` ids were found without \`tool_result\` blocks immediately after: ${missing.join(', ')}. Each \`tool_use\` block must have a corresponding \`tool_result\` block in the next message.`,
      );
    }
  });
}

function checkMessages(messages: unknown): asserts messages is Record<string, any>[] {
  if (messages === undefined) invalid('messages: Field required');
  if (!Array.isArray(messages)) invalid('messages: Input should be a valid list');
  if (messages.length === 0) invalid('messages: at least one message is required');
  messages.forEach((m: unknown, i: number) => {
    const at = `messages.${i}`;
    if (!isObject(m)) invalid(`${at}: Input should be a valid dictionary or object to extract fields from`);
    if (m.role === 'system') {
      invalid(
        'messages: Unexpected role "system". The Messages API accepts a top-level `system` parameter, not "system" as an input message role.',
      );
    }
    if (!('role' in m)) invalid(`${at}.role: Field required`);
    if (m.role !== 'user' && m.role !== 'assistant')
      invalid(`${at}.role: Input should be 'user' or 'assistant'`);
    rejectExtras(m, ['role', 'content'], `${at}.`);
    if (!('content' in m)) invalid(`${at}.content: Field required`);
    const isFinalAssistant = m.role === 'assistant' && i === messages.length - 1;
    const emptyMessage = `${at}: all messages must have non-empty content except for the optional final assistant message`;
    if (typeof m.content === 'string') {
      if (!m.content && !isFinalAssistant) invalid(emptyMessage);
    } else if (Array.isArray(m.content)) {
      if (!m.content.length && !isFinalAssistant) invalid(emptyMessage);
      m.content.forEach((b: unknown, j: number) => checkBlock(b, `${at}.content.${j}`));
    } else {
      invalid(`${at}.content: Input should be a valid string`);
    }
  });
  checkToolPairing(messages);
}

function checkSystem(system: unknown): void {
  if (system === undefined || typeof system === 'string') return;
  if (!Array.isArray(system)) invalid('system: Input should be a valid string');
  system.forEach((b: unknown, i: number) => {
    if (!isObject(b))
      invalid(`system.${i}: Input should be a valid dictionary or object to extract fields from`);
    if (b.type !== 'text') invalid(`system.${i}.type: Input should be 'text'`);
    rejectExtras(b, BLOCK_FIELDS.text!, `system.${i}.`);
    checkTextBlock(b, `system.${i}`, 'system');
  });
}

function checkTools(body: Record<string, any>): void {
  if ('tools' in body) {
    if (!Array.isArray(body.tools)) invalid('tools: Input should be a valid list');
    body.tools.forEach((t: unknown, i: number) => {
      if (!isObject(t))
        invalid(`tools.${i}: Input should be a valid dictionary or object to extract fields from`);
      if (typeof t.name !== 'string') invalid(`tools.${i}.name: Field required`);
    });
  }
  if ('tool_choice' in body) {
    const c = body.tool_choice;
    if (!isObject(c))
      invalid('tool_choice: Input should be a valid dictionary or object to extract fields from');
    if (!['auto', 'any', 'tool', 'none'].includes(c.type)) {
      invalid(
        `tool_choice: Input tag '${String(c.type)}' found using 'type' does not match any of the expected tags: 'auto', 'any', 'tool', 'none'`,
      );
    }
    if (c.type === 'tool' && typeof c.name !== 'string') invalid('tool_choice.tool.name: Field required');
  }
}

/** Validates in roughly the order the real API reports problems: required fields, then types, then extras. */
function validateCreate(body: Record<string, any>, version: string): void {
  if (!('model' in body)) invalid('model: Field required');
  if (typeof body.model !== 'string') invalid('model: Input should be a valid string');
  if (!body.model) invalid('model: String should have at least 1 character');
  if (!('max_tokens' in body)) invalid('max_tokens: Field required');
  if (!isInt(body.max_tokens)) invalid('max_tokens: Input should be a valid integer');
  const minTokens = PREWARM_VERSIONS.has(version) ? 0 : 1;
  if (body.max_tokens < minTokens)
    invalid(`max_tokens: Input should be greater than or equal to ${minTokens}`);
  checkMessages(body.messages);
  checkSystem(body.system);
  checkNumber(body, 'temperature', 0, 1);
  checkNumber(body, 'top_p', 0, 1);
  if ('top_k' in body) {
    if (!isInt(body.top_k)) invalid('top_k: Input should be a valid integer');
    if (body.top_k < 0) invalid('top_k: Input should be greater than or equal to 0');
  }
  if ('stop_sequences' in body) {
    if (!Array.isArray(body.stop_sequences)) invalid('stop_sequences: Input should be a valid list');
    body.stop_sequences.forEach((s: unknown, i: number) => {
      if (typeof s !== 'string') invalid(`stop_sequences.${i}: Input should be a valid string`);
    });
  }
  if ('stream' in body && typeof body.stream !== 'boolean')
    invalid('stream: Input should be a valid boolean');
  if ('metadata' in body) {
    if (!isObject(body.metadata)) {
      invalid('metadata: Input should be a valid dictionary or object to extract fields from');
    }
    rejectExtras(body.metadata, ['user_id'], 'metadata.');
  }
  checkTools(body);
  rejectExtras(body, CREATE_FIELDS, '');
}

function validateCountTokens(body: Record<string, any>): void {
  if (!('model' in body)) invalid('model: Field required');
  if (typeof body.model !== 'string') invalid('model: Input should be a valid string');
  checkMessages(body.messages);
  checkSystem(body.system);
  checkTools(body);
  rejectExtras(body, COUNT_TOKENS_FIELDS, '');
}

/** The real API answers with a Python `json` decoder message; this approximates its position format. */
function invalidJsonMessage(raw: string): string {
  let pos = 0;
  try {
    JSON.parse(raw);
  } catch (err) {
    const m = /position (\d+)/.exec(String((err as Error).message));
    pos = m ? Number(m[1]) : raw.length;
  }
  const before = raw.slice(0, pos);
  const line = before.split('\n').length;
  const column = pos - before.lastIndexOf('\n');
  return `The request body is not valid JSON: Expecting value: line ${line} column ${column} (char ${pos})`;
}

function promptTokens(body: Record<string, any>): number {
  const messages: Record<string, any>[] = body.messages;
  const fromMessages = messages.reduce((n, m) => n + countFakeTokens(textOf(m.content)), 0);
  return fromMessages + countFakeTokens(textOf(body.system));
}

function lastUserText(body: Record<string, any>): string {
  const messages: Record<string, any>[] = body.messages;
  const last = [...messages].reverse().find((m) => m.role === 'user');
  return last ? textOf(last.content) : '';
}

interface Outcome {
  /** Text deltas, or partial JSON for a tool call. */
  chunks: string[];
  block: Record<string, unknown>;
  stopReason: 'end_turn' | 'max_tokens' | 'stop_sequence' | 'tool_use';
  stopSequence: string | null;
  outputTokens: number;
}

/** Decides what the "model" says: tool call, or the reply cut by a stop sequence and then by max_tokens. */
function generate(x: FakeExchange, body: Record<string, any>): Outcome {
  const { toolCall } = x.options;
  if (toolCall) {
    const json = JSON.stringify(toolCall.arguments);
    // The real API streams tool input as an empty first piece followed by JSON fragments.
    const pieces = [''];
    for (let i = 0; i < json.length; i += 8) pieces.push(json.slice(i, i + 8));
    return {
      chunks: pieces,
      block: { type: 'tool_use', id: randomId('toolu_01'), name: toolCall.name, input: toolCall.arguments },
      stopReason: 'tool_use',
      stopSequence: null,
      outputTokens: Math.max(1, countFakeTokens(`${toolCall.name} ${json}`)),
    };
  }
  let text = x.options.reply?.(lastUserText(body), body) ?? defaultReply(lastUserText(body));
  let stopReason: Outcome['stopReason'] = 'end_turn';
  let stopSequence: string | null = null;
  let cutAt = Infinity;
  for (const seq of (body.stop_sequences as string[] | undefined) ?? []) {
    const at = seq ? text.indexOf(seq) : -1;
    if (at >= 0 && at < cutAt) {
      cutAt = at;
      stopSequence = seq;
    }
  }
  if (stopSequence !== null) {
    text = text.slice(0, cutAt);
    stopReason = 'stop_sequence';
  }
  let chunks = text ? splitIntoChunks(text) : [];
  if (countFakeTokens(text) > body.max_tokens) {
    chunks = chunks.slice(0, body.max_tokens);
    text = chunks.join('');
    stopReason = 'max_tokens';
    stopSequence = null;
  }
  return {
    chunks,
    block: { type: 'text', text },
    stopReason,
    stopSequence,
    outputTokens: countFakeTokens(text),
  };
}

function usageOf(x: FakeExchange, body: Record<string, any>, outputTokens: number) {
  const total = promptTokens(body);
  const cached = x.options.cachedPromptTokens ?? 0;
  return {
    // Anthropic's input_tokens excludes cache reads; the three input counters add up to the prompt.
    input_tokens: Math.max(0, total - cached),
    cache_creation_input_tokens: 0,
    cache_read_input_tokens: cached,
    output_tokens: outputTokens,
    service_tier: 'standard',
  };
}

function writeEvent(x: FakeExchange, data: { type: string } & Record<string, unknown>): Promise<void> {
  return new Promise((resolve) => {
    if (x.res.destroyed) return resolve();
    // Waiting for the flush lets a cut-stream fault destroy the socket after exactly the chunks sent.
    x.res.write(`event: ${data.type}\ndata: ${JSON.stringify(data)}\n\n`, () => resolve());
  });
}

async function stream(x: FakeExchange, body: Record<string, any>, requestId: string): Promise<void> {
  const out = generate(x, body);
  const usage = usageOf(x, body, out.outputTokens);
  const isTool = out.block.type === 'tool_use';
  x.res.writeHead(200, {
    'content-type': 'text/event-stream; charset=utf-8',
    'cache-control': 'no-cache',
    'request-id': requestId,
  });
  await writeEvent(x, {
    type: 'message_start',
    message: {
      id: randomId('msg_01'),
      type: 'message',
      role: 'assistant',
      model: body.model,
      content: [],
      stop_reason: null,
      stop_sequence: null,
      usage: { ...usage, output_tokens: 1 },
    },
  });
  await writeEvent(x, {
    type: 'content_block_start',
    index: 0,
    content_block: isTool ? { ...out.block, input: {} } : { type: 'text', text: '' },
  });
  await writeEvent(x, { type: 'ping' });
  const { cutStreamAfter, errorStreamAfter } = x.fault ?? {};
  for (let i = 0; i <= out.chunks.length; i++) {
    if (x.res.destroyed) return;
    if (cutStreamAfter === i) {
      x.res.destroy();
      return;
    }
    if (errorStreamAfter === i) {
      await writeEvent(x, {
        type: 'error',
        error: { type: 'overloaded_error', message: x.fault?.message ?? 'Overloaded' },
      });
      x.res.end();
      return;
    }
    if (i === out.chunks.length) break;
    if (i > 0) await x.pause();
    const delta = isTool
      ? { type: 'input_json_delta', partial_json: out.chunks[i] }
      : { type: 'text_delta', text: out.chunks[i] };
    await writeEvent(x, { type: 'content_block_delta', index: 0, delta });
  }
  await writeEvent(x, { type: 'content_block_stop', index: 0 });
  const { service_tier: _tier, ...deltaUsage } = usage;
  await writeEvent(x, {
    type: 'message_delta',
    delta: { stop_reason: out.stopReason, stop_sequence: out.stopSequence },
    usage: deltaUsage,
  });
  await writeEvent(x, { type: 'message_stop' });
  x.res.end();
}

function respond(x: FakeExchange, body: Record<string, any>, requestId: string): void {
  const prewarm = body.max_tokens === 0;
  const out = generate(x, body);
  x.json(
    200,
    {
      id: randomId('msg_01'),
      type: 'message',
      role: 'assistant',
      model: body.model,
      content: prewarm ? [] : [out.block],
      stop_reason: prewarm ? 'max_tokens' : out.stopReason,
      stop_sequence: prewarm ? null : out.stopSequence,
      usage: usageOf(x, body, prewarm ? 0 : out.outputTokens),
    },
    { 'request-id': requestId },
  );
}

function headerValue(v: string | string[] | undefined): string | undefined {
  return Array.isArray(v) ? v[0] : v;
}

async function handle(x: FakeExchange): Promise<void> {
  const requestId = randomId('req_011C');
  const fail = (status: number, message: string, headers: Record<string, string> = {}) =>
    x.json(
      status,
      { type: 'error', error: { type: errorTypeFor(status), message }, request_id: requestId },
      { 'request-id': requestId, ...headers },
    );

  // Faults answer before any checks so a queued fault is never silently used up by a rejected request.
  const fault = x.fault;
  if (fault?.status) {
    const headers: Record<string, string> = {};
    if (fault.retryAfter !== undefined) headers['retry-after'] = String(fault.retryAfter);
    if (fault.retryAfterMs !== undefined) headers['retry-after-ms'] = String(fault.retryAfterMs);
    fail(fault.status, fault.message ?? DEFAULT_MESSAGES[fault.status] ?? 'Error', headers);
    return;
  }

  const route =
    x.record.method === 'POST' && x.record.path === '/v1/messages'
      ? 'create'
      : x.record.method === 'POST' && x.record.path === '/v1/messages/count_tokens'
        ? 'count'
        : undefined;
  if (!route) return fail(404, 'Not Found');

  const apiKey = headerValue(x.req.headers['x-api-key']);
  const bearer = /^Bearer\s+(.+)$/i.exec(headerValue(x.req.headers.authorization) ?? '')?.[1];
  const key = apiKey ?? bearer;
  if (!key) return fail(401, 'x-api-key header is required');
  if (!x.apiKeys.includes(key)) return fail(401, 'invalid x-api-key');

  const version = headerValue(x.req.headers['anthropic-version']);
  if (!version) return fail(400, 'anthropic-version: header is required');
  if (!VALID_VERSIONS.has(version))
    return fail(400, `anthropic-version: "${version}" is not a valid version`);

  if (x.record.body === undefined) return fail(400, invalidJsonMessage(x.record.rawBody));
  const body = x.record.body;
  try {
    if (!isObject(body)) invalid('Input should be a valid dictionary or object to extract fields from');
    if (route === 'count') {
      validateCountTokens(body);
      x.json(200, { input_tokens: promptTokens(body) }, { 'request-id': requestId });
      return;
    }
    validateCreate(body, version);
  } catch (err) {
    if (err instanceof RequestError) return fail(err.status, err.message);
    throw err;
  }
  if (body.stream === true) await stream(x, body, requestId);
  else respond(x, body, requestId);
}

/** Starts the fake; point the SDK at `baseUrl` (the origin: the SDK adds `/v1` itself). */
export function startFakeAnthropic(options: FakeProviderOptions = {}): Promise<FakeProvider> {
  return startFakeServer(options, (origin) => origin, handle);
}
