/**
 * A fake of Ollama's native API (`POST /api/chat`, `GET /api/tags`, `GET /api/version`, `GET /`), faithful
 * enough that the official `ollama` SDK parses every answer. Ollama is a Go (gin) server, so request
 * validation mimics Go's `encoding/json`: unknown fields are ignored, keys match case-insensitively, `null`
 * leaves the zero value, and syntax or type errors come back with Go's own wording.
 */
import { createHash } from 'node:crypto';
import { STATUS_CODES } from 'node:http';
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

/** The only model name the fake refuses; any other name is served, so tests can use whatever they like. */
const UNKNOWN_MODEL = 'does-not-exist';
const LISTED_MODEL = 'llama3.2:latest';
const OLLAMA_VERSION = '0.12.6';
// gin's c.JSON / c.String content types; the SDK only looks for `application/json` in error answers.
const JSON_TYPE = 'application/json; charset=utf-8';
const TEXT_TYPE = 'text/plain; charset=utf-8';

const DEFAULT_ERRORS: Record<number, string> = {
  401: 'unauthorized',
  429: 'rate limit exceeded',
  500: 'an error was encountered while running the model',
  503: 'server busy, please try again.  maximum pending requests exceeded',
};

// `api.Options.FromMap` type checks; a failure surfaces from the scheduler as a plain 500.
const OPTION_KINDS: Record<string, 'integer' | 'float32' | 'array'> = {
  num_predict: 'integer',
  top_k: 'integer',
  seed: 'integer',
  num_ctx: 'integer',
  temperature: 'float32',
  top_p: 'float32',
  stop: 'array',
};

export async function startFakeOllama(options: FakeProviderOptions = {}): Promise<FakeProvider> {
  // The harness defaults apiKeys to ['test-key'], but a local Ollama has no auth: only keys the caller
  // passed on purpose turn on the Bearer check that ollama.com or an authenticating proxy would do.
  const authRequired = (options.apiKeys?.length ?? 0) > 0;
  const seenModels = new Set<string>([LISTED_MODEL]);
  return startFakeServer(
    options,
    (origin) => origin,
    (x) => handle(x, authRequired, seenModels),
  );
}

async function handle(x: FakeExchange, authRequired: boolean, seenModels: Set<string>): Promise<void> {
  const { method, path } = x.record;
  if (x.fault?.status) return sendError(x, x.fault.status, faultMessage(x.fault, x.fault.status), x.fault);
  if (authRequired && path.startsWith('/api/') && !hasValidKey(x)) return sendError(x, 401, 'unauthorized');
  // gin answers HEAD on the same routes Ollama registers for GET; Node drops the body of a HEAD answer.
  const isGet = method === 'GET' || method === 'HEAD';
  if (isGet && path === '/') return sendText(x, 200, 'Ollama is running');
  if (isGet && path === '/api/version')
    return x.json(200, { version: OLLAMA_VERSION }, { 'content-type': JSON_TYPE });
  if (isGet && path === '/api/tags')
    return x.json(200, listModels(seenModels), { 'content-type': JSON_TYPE });
  if (method === 'POST' && path === '/api/chat') return chat(x, seenModels);
  // gin's default for unknown routes and for a wrong method on a known one (Ollama keeps 405s off).
  sendText(x, 404, '404 page not found');
}

function hasValidKey(x: FakeExchange): boolean {
  const match = /^Bearer\s+(.+)$/i.exec(x.req.headers.authorization ?? '');
  return match !== null && x.apiKeys.includes(match[1].trim());
}

function faultMessage(fault: FakeFault, status: number): string {
  return fault.message ?? DEFAULT_ERRORS[status] ?? (STATUS_CODES[status] ?? 'error').toLowerCase();
}

function sendError(x: FakeExchange, status: number, message: string, fault?: FakeFault): void {
  const headers: Record<string, string> = { 'content-type': JSON_TYPE };
  if (fault?.retryAfter !== undefined) headers['retry-after'] = String(fault.retryAfter);
  if (fault?.retryAfterMs !== undefined) headers['retry-after-ms'] = String(fault.retryAfterMs);
  x.json(status, { error: message }, headers);
}

function sendText(x: FakeExchange, status: number, text: string): void {
  x.res.writeHead(status, { 'content-type': TEXT_TYPE, 'content-length': Buffer.byteLength(text) });
  x.res.end(text);
}

function listModels(seenModels: Set<string>) {
  return {
    models: [...seenModels].map((name) => ({
      name,
      model: name,
      modified_at: '2025-10-01T12:00:00.513407191Z',
      size: 2019393189,
      digest: createHash('sha256').update(name).digest('hex'),
      details: {
        parent_model: '',
        format: 'gguf',
        family: 'llama',
        families: ['llama'],
        parameter_size: '3.2B',
        quantization_level: 'Q4_K_M',
      },
    })),
  };
}

interface ChatMessage {
  role: string;
  content: string;
}

interface ChatRequest {
  model: string;
  messages: ChatMessage[];
  stream: boolean | undefined;
  options: Record<string, unknown>;
  tools: unknown[];
}

async function chat(x: FakeExchange, seenModels: Set<string>): Promise<void> {
  const started = process.hrtime.bigint();
  const scanned = scanGoJson(x.record.rawBody);
  if (scanned.error === 'EOF') return sendError(x, 400, 'missing request body');
  if (scanned.error) return sendError(x, 400, scanned.error);
  // Go's json.Decoder stops after the first value, so trailing bytes are never looked at.
  const parsed: unknown = JSON.parse(x.record.rawBody.slice(0, scanned.end));
  const decoded = decodeChatRequest(parsed);
  if (typeof decoded === 'string') return sendError(x, 400, decoded);
  const req = decoded;
  if (!req.model) return sendError(x, 400, 'model is required');
  if (req.model === UNKNOWN_MODEL) return sendError(x, 404, `model '${req.model}' not found`);
  const optionError = checkOptions(req.options);
  if (optionError) return sendError(x, 500, optionError);
  seenModels.add(req.model.includes(':') ? req.model : `${req.model}:latest`);

  // Without messages Ollama only loads the model, and answers with plain JSON even when streaming.
  if (req.messages.length === 0) {
    const loaded = {
      model: req.model,
      created_at: goTimestamp(),
      message: { role: 'assistant', content: '' },
    };
    return x.json(200, { ...loaded, done_reason: 'load', done: true }, { 'content-type': JSON_TYPE });
  }

  const lastUser = [...req.messages].reverse().find((m) => m.role === 'user');
  const lastUserText = lastUser?.content ?? '';
  const promptTokens = req.messages.reduce((n, m) => n + countFakeTokens(m.content), 0);
  const answer = generate(x, req, lastUserText, parsed);
  const evalCount = countFakeTokens(answer.generated);
  const final = (): Record<string, unknown> => ({
    model: req.model,
    created_at: goTimestamp(),
    message: { role: 'assistant', content: '' },
    done_reason: answer.doneReason,
    done: true,
    ...metrics(started, promptTokens, evalCount),
  });

  const fault = x.fault;
  if (req.stream === false) {
    // A non-streaming request waits for the whole generation, so a stream fault fails the whole answer.
    if (fault?.cutStreamAfter !== undefined) return void x.req.socket.destroy();
    if (fault?.errorStreamAfter !== undefined) return sendError(x, 500, faultMessage(fault, 500));
    const body = final();
    body.message = { role: 'assistant', content: answer.content, ...toolCallsOf(answer) };
    return x.json(200, body, { 'content-type': JSON_TYPE });
  }
  await streamChat(x, req.model, answer, final);
}

interface Answer {
  content: string;
  toolCalls?: unknown[];
  /** What the model produced, counted as eval tokens. */
  generated: string;
  doneReason: 'stop' | 'length';
}

function toolCallsOf(answer: Answer) {
  return answer.toolCalls ? { tool_calls: answer.toolCalls } : {};
}

function generate(x: FakeExchange, req: ChatRequest, lastUserText: string, body: unknown): Answer {
  const { toolCall } = x.options;
  if (toolCall) {
    const generated = JSON.stringify({ name: toolCall.name, arguments: toolCall.arguments });
    // Ollama parses tool calls out of the model's text only when the request offered tools.
    if (req.tools.length === 0) return { content: generated, generated, doneReason: 'stop' };
    const id = `call_${createHash('sha256').update(generated).digest('hex').slice(0, 8)}`;
    const call = { id, function: { index: 0, name: toolCall.name, arguments: toolCall.arguments } };
    return { content: '', toolCalls: [call], generated, doneReason: 'stop' };
  }
  let text = x.options.reply?.(lastUserText, body) ?? defaultReply(lastUserText);
  let doneReason: Answer['doneReason'] = 'stop';
  const stops = (req.options.stop as string[] | undefined) ?? [];
  const cut = Math.min(
    ...stops.filter((s) => s !== '').map((s) => (text.includes(s) ? text.indexOf(s) : Infinity)),
  );
  if (cut !== Infinity) text = text.slice(0, cut);
  const limit = typeof req.options.num_predict === 'number' ? Math.trunc(req.options.num_predict) : -1;
  // num_predict counts generated tokens; -1 (and -2, "fill the context") mean no limit.
  if (limit > 0 && countFakeTokens(text) > limit) {
    text = splitIntoChunks(text).slice(0, limit).join('');
    doneReason = 'length';
  }
  return { content: text, generated: text, doneReason };
}

async function streamChat(
  x: FakeExchange,
  model: string,
  answer: Answer,
  final: () => Record<string, unknown>,
): Promise<void> {
  const { res, fault } = x;
  const pieces = answer.toolCalls ? [''] : splitIntoChunks(answer.content).filter((p) => p !== '');
  const cutAt = fault?.cutStreamAfter ?? -1;
  const errorAt = fault?.errorStreamAfter ?? -1;
  const errorMessage = fault ? faultMessage(fault, 500) : '';
  // Ollama only commits to 200 when the first line is written; an error before it is a plain JSON 500.
  if (errorAt === 0) return sendError(x, 500, errorMessage);
  res.writeHead(200, { 'content-type': 'application/x-ndjson' });
  // Waiting for each write to reach the socket keeps a later cut from swallowing lines already "sent".
  const send = (line: unknown) =>
    new Promise<void>((resolve) => {
      res.write(`${JSON.stringify(line)}\n`, () => resolve());
    });
  for (let i = 0; i <= pieces.length; i++) {
    if (res.destroyed) return;
    if (i === cutAt || (cutAt > pieces.length && i === pieces.length)) {
      // Headers are out (unlike a `reset` fault): the client sees a stream that dies mid-way.
      res.flushHeaders();
      await new Promise((resolve) => setImmediate(resolve));
      return void x.req.socket.destroy();
    }
    if (i === errorAt || (errorAt > pieces.length && i === pieces.length)) {
      await send({ error: errorMessage });
      return void res.end();
    }
    if (i === pieces.length) break;
    if (i > 0) await x.pause();
    const message = { role: 'assistant', content: pieces[i], ...toolCallsOf(answer) };
    await send({ model, created_at: goTimestamp(), message, done: false });
  }
  await x.pause();
  if (!res.destroyed) res.end(`${JSON.stringify(final())}\n`);
}

/** Go's `time.Duration` counters, in nanoseconds; gin drops zero ones (`omitempty`). */
function metrics(started: bigint, promptTokens: number, evalCount: number) {
  const load = Math.max(1, Number(process.hrtime.bigint() - started));
  const promptEval = Math.max(1, promptTokens) * 250_000;
  const evalDuration = Math.max(1, evalCount) * 20_000_000;
  const all = {
    total_duration: load + promptEval + evalDuration + 1_000_000,
    load_duration: load,
    prompt_eval_count: promptTokens,
    prompt_eval_duration: promptEval,
    eval_count: evalCount,
    eval_duration: evalDuration,
  };
  return Object.fromEntries(Object.entries(all).filter(([, v]) => v !== 0));
}

/** `time.Time` as Go marshals it: RFC 3339 with up to nine fraction digits, trailing zeros trimmed. */
function goTimestamp(): string {
  const now = new Date();
  const subMs = Number(process.hrtime.bigint() % 1_000_000n);
  const fraction = `${String(now.getUTCMilliseconds()).padStart(3, '0')}${String(subMs).padStart(6, '0')}`;
  const trimmed = fraction.replace(/0+$/, '');
  return `${now.toISOString().slice(0, 19)}${trimmed ? `.${trimmed}` : ''}Z`;
}

// ---- Go encoding/json emulation ------------------------------------------------------------------

function goKind(v: unknown): string {
  if (Array.isArray(v)) return 'array';
  if (typeof v === 'boolean') return 'bool';
  return typeof v; // string | number | object
}

/** Go matches JSON keys to struct fields case-insensitively, and a later duplicate overwrites an earlier one. */
function pick(obj: Record<string, unknown>, field: string): unknown {
  let found: unknown;
  for (const [key, value] of Object.entries(obj)) if (key.toLowerCase() === field) found = value;
  return found;
}

function typeError(kind: string, where: string, goType: string): string {
  return `json: cannot unmarshal ${kind} into Go ${where} of type ${goType}`;
}

/** Decodes like `json.Decoder.Decode(&api.ChatRequest{})`; returns Go's error text on a type mismatch. */
function decodeChatRequest(body: unknown): ChatRequest | string {
  const req: ChatRequest = { model: '', messages: [], stream: undefined, options: {}, tools: [] };
  if (body === null) return req;
  if (typeof body !== 'object' || Array.isArray(body)) {
    return typeError(goKind(body), 'value', 'api.ChatRequest');
  }
  const field = (name: string, goType: string, v: unknown) =>
    typeError(goKind(v), `struct field ChatRequest.${name}`, goType);
  const obj = body as Record<string, unknown>;
  for (const key of Object.keys(obj)) {
    const name = key.toLowerCase();
    const v = obj[key];
    if (v === null) continue;
    if (name === 'model' && typeof v !== 'string') return field('model', 'string', v);
    if (name === 'stream' && typeof v !== 'boolean') return field('stream', 'bool', v);
    if (name === 'options' && goKind(v) !== 'object') return field('options', 'map[string]interface {}', v);
    if (name === 'tools' && !Array.isArray(v)) return field('tools', 'api.Tools', v);
    if (name === 'messages') {
      if (!Array.isArray(v)) return field('messages', '[]api.Message', v);
      for (const m of v) {
        // api.Message has its own UnmarshalJSON (via an Alias type); gin adds the outer field path.
        if (m !== null && goKind(m) !== 'object') return field('messages', 'api.Alias', m);
        for (const [k, mv] of Object.entries((m ?? {}) as Record<string, unknown>)) {
          const inner = k.toLowerCase();
          if ((inner === 'role' || inner === 'content') && mv !== null && typeof mv !== 'string') {
            return field(`messages.${inner}`, 'string', mv);
          }
        }
      }
    }
  }
  req.model = (pick(obj, 'model') as string | null) ?? '';
  req.stream = (pick(obj, 'stream') as boolean | null) ?? undefined;
  req.options = (pick(obj, 'options') as Record<string, unknown> | null) ?? {};
  req.tools = (pick(obj, 'tools') as unknown[] | null) ?? [];
  const messages = (pick(obj, 'messages') as Record<string, unknown>[] | null) ?? [];
  req.messages = messages.map((m) => ({
    // Ollama lower-cases roles and does not reject unknown ones (the template just ignores them).
    role: String(pick(m ?? {}, 'role') ?? '').toLowerCase(),
    content: textOf(pick(m ?? {}, 'content')),
  }));
  return req;
}

/** `api.Options.FromMap`: numbers arrive as float64, so any JSON number passes an integer or float check. */
function checkOptions(options: Record<string, unknown>): string | undefined {
  for (const [key, value] of Object.entries(options)) {
    const kind = OPTION_KINDS[key];
    if (value === null || kind === undefined) continue;
    if (kind !== 'array' && typeof value !== 'number') return `option "${key}" must be of type ${kind}`;
    if (kind === 'array' && !Array.isArray(value)) return `option "${key}" must be of type array`;
    if (kind === 'array' && (value as unknown[]).some((s) => typeof s !== 'string')) {
      return `option "${key}" must be of an array of strings`;
    }
  }
  return undefined;
}

/**
 * Finds the end of the first JSON value the way Go's scanner does, and Go's message for the first
 * syntax error: `EOF` for a blank body, `unexpected EOF` for a truncated one.
 */
function scanGoJson(text: string): { end: number; error?: string } {
  let i = 0;
  const fail = (context: string): never => {
    throw new GoSyntaxError(
      i >= text.length ? 'unexpected EOF' : `invalid character ${quoteChar(text[i])} ${context}`,
    );
  };
  const skipSpace = () => {
    while (i < text.length && ' \t\r\n'.includes(text[i])) i++;
  };
  const digits = () => {
    while (i < text.length && text[i] >= '0' && text[i] <= '9') i++;
  };
  const isDigit = () => i < text.length && text[i] >= '0' && text[i] <= '9';
  const literal = (word: string) => {
    for (const expected of word.slice(1)) {
      i++;
      if (text[i] !== expected) fail(`in literal ${word} (expecting ${quoteChar(expected)})`);
    }
    i++;
  };
  const string = () => {
    for (i++; ; i++) {
      if (i >= text.length) fail('');
      const c = text[i];
      if (c === '"') return void i++;
      if (c < ' ') fail('in string literal');
      if (c !== '\\') continue;
      i++;
      if (text[i] === 'u') {
        for (let k = 0; k < 4; k++) {
          i++;
          if (!/[0-9a-fA-F]/.test(text[i] ?? '')) fail('in \\u hexadecimal character escape');
        }
      } else if (!'"\\/bfnrt'.includes(text[i] ?? '')) fail('in string escape code');
    }
  };
  const number = () => {
    if (text[i] === '-') {
      i++;
      if (!isDigit()) fail('in numeric literal');
    }
    if (text[i] === '0') i++;
    else digits();
    if (text[i] === '.') {
      i++;
      if (!isDigit()) fail('after decimal point in numeric literal');
      digits();
    }
    if (text[i] === 'e' || text[i] === 'E') {
      i++;
      if (text[i] === '+' || text[i] === '-') i++;
      if (!isDigit()) fail('in exponent of numeric literal');
      digits();
    }
  };
  const value = (): void => {
    skipSpace();
    const c = text[i];
    if (c === '{') return object();
    if (c === '[') return array();
    if (c === '"') return string();
    if (c === '-' || (c >= '0' && c <= '9')) return number();
    if (c === 't' || c === 'f' || c === 'n')
      return literal(c === 't' ? 'true' : c === 'f' ? 'false' : 'null');
    fail('looking for beginning of value');
  };
  const object = () => {
    i++;
    skipSpace();
    if (text[i] === '}') return void i++;
    for (;;) {
      skipSpace();
      if (text[i] !== '"') fail('looking for beginning of object key string');
      string();
      skipSpace();
      if (text[i] !== ':') fail('after object key');
      i++;
      value();
      skipSpace();
      if (text[i] === '}') return void i++;
      if (text[i] !== ',') fail('after object key:value pair');
      i++;
    }
  };
  const array = () => {
    i++;
    skipSpace();
    if (text[i] === ']') return void i++;
    for (;;) {
      value();
      skipSpace();
      if (text[i] === ']') return void i++;
      if (text[i] !== ',') fail('after array element');
      i++;
    }
  };
  skipSpace();
  if (i >= text.length) return { end: i, error: 'EOF' };
  try {
    value();
    return { end: i };
  } catch (err) {
    if (err instanceof GoSyntaxError) return { end: i, error: err.message };
    throw err;
  }
}

class GoSyntaxError extends Error {}

/** Go's `quoteChar`: the offending character in single quotes, escaped like a Go string literal. */
function quoteChar(c: string): string {
  if (c === "'") return `'\\''`;
  if (c === '"') return `'"'`;
  const quoted = JSON.stringify(c);
  return `'${quoted.slice(1, -1)}'`;
}
