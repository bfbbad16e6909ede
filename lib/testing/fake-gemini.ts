/**
 * A fake of the Google Gemini API (`generativelanguage`, v1beta and v1) that the official `@google/genai`
 * SDK can talk to: generateContent and streamGenerateContent (SSE and JSON-array), Google's error
 * envelopes, API-key auth, and proto3-JSON request checking strict enough to catch malformed adapters.
 */
import { randomBytes } from 'node:crypto';
import type http from 'node:http';
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

/** Prompt text that makes the fake block the prompt (HTTP 200, `promptFeedback.blockReason`, no candidates). */
export const GEMINI_BLOCK_PROMPT_TRIGGER = 'BLOCKME';
/** Prompt text that makes the fake stop its answer for safety (`finishReason: SAFETY`, no content). */
export const GEMINI_UNSAFE_ANSWER_TRIGGER = 'UNSAFE_ANSWER';
/** The one model name the fake treats as unknown. */
export const GEMINI_MISSING_MODEL = 'does-not-exist';

export function startFakeGemini(options: FakeProviderOptions = {}): Promise<FakeProvider> {
  // The SDK appends `/{apiVersion}/models/...` itself, so its baseUrl is the bare origin.
  return startFakeServer(options, (origin) => origin, handleGemini);
}

// ---------------------------------------------------------------------------------------------------------
// Errors

const CANONICAL: Record<number, string> = {
  400: 'INVALID_ARGUMENT',
  401: 'UNAUTHENTICATED',
  403: 'PERMISSION_DENIED',
  404: 'NOT_FOUND',
  409: 'ABORTED',
  429: 'RESOURCE_EXHAUSTED',
  499: 'CANCELLED',
  500: 'INTERNAL',
  501: 'UNIMPLEMENTED',
  503: 'UNAVAILABLE',
  504: 'DEADLINE_EXCEEDED',
};

const DEFAULT_MESSAGE: Record<number, string> = {
  400: 'Request contains an invalid argument.',
  401:
    'Request had invalid authentication credentials. Expected OAuth 2 access token, login cookie or other ' +
    'valid authentication credential. See https://developers.google.com/identity/sign-in/web/devconsole-project.',
  403: 'The caller does not have permission',
  404: 'Requested entity was not found.',
  409: 'The operation was aborted.',
  429:
    'You exceeded your current quota, please check your plan and billing details. For more information on ' +
    'this error, head to: https://ai.google.dev/gemini-api/docs/rate-limits.',
  499: 'The operation was cancelled.',
  500:
    'An internal error has occurred. Please retry or report in ' +
    'https://developers.generativeai.google/guide/troubleshooting',
  501: 'Operation is not implemented, or supported, or enabled.',
  503: 'The model is overloaded. Please try again later.',
  504: 'Deadline expired before operation could complete.',
};

const NO_KEY_MESSAGE =
  "Method doesn't allow unregistered callers (callers without established identity). Please use API Key " +
  'or other form of API consumer identity to call this API.';
const BAD_KEY_MESSAGE = 'API key not valid. Please pass a valid API key.';

/** Maps any HTTP status to the google.rpc canonical code the API would put in `error.status`. */
function canonicalStatus(status: number): string {
  return (
    CANONICAL[status] ??
    (status >= 500 ? 'UNKNOWN' : status === 408 ? 'DEADLINE_EXCEEDED' : 'FAILED_PRECONDITION')
  );
}

function errorBody(status: number, message?: string, details?: unknown[]) {
  return {
    error: {
      code: status,
      message: message ?? DEFAULT_MESSAGE[status] ?? 'Unknown error.',
      status: canonicalStatus(status),
      ...(details?.length ? { details } : {}),
    },
  };
}

/** Google's JSON APIs pretty-print their bodies (two-space indent, trailing newline); clients see exactly that. */
function sendJson(
  res: http.ServerResponse,
  status: number,
  body: unknown,
  headers: Record<string, string> = {},
) {
  if (res.destroyed || res.headersSent) return;
  const text = `${JSON.stringify(body, null, 2)}\n`;
  res.writeHead(status, {
    'content-type': 'application/json; charset=UTF-8',
    'content-length': String(Buffer.byteLength(text)),
    vary: 'Origin, X-Origin, Referer',
    'x-content-type-options': 'nosniff',
    server: 'scaffolding on HTTPServer2',
    ...headers,
  });
  res.end(text);
}

function sendError(res: http.ServerResponse, status: number, message?: string, details?: unknown[]) {
  sendJson(res, status, errorBody(status, message, details));
}

/** What Google's front end answers for a URL no API serves: an HTML page, not the JSON envelope. */
function sendHtmlError(res: http.ServerResponse, status: number, path: string) {
  if (res.destroyed || res.headersSent) return;
  const what =
    status === 404
      ? `The requested URL <code>${escapeHtml(path)}</code> was not found on this server.`
      : 'The server encountered a temporary error and could not complete your request.<p>Please try again in 30 seconds.';
  const title = status === 404 ? 'Not Found' : 'Server Error';
  const html =
    `<!DOCTYPE html>\n<html lang=en>\n  <meta charset=utf-8>\n` +
    `  <meta name=viewport content="initial-scale=1, minimum-scale=1, width=device-width">\n` +
    `  <title>Error ${status} (${title})!!1</title>\n` +
    `  <a href=//www.google.com/><span id=logo aria-label=Google></span></a>\n` +
    `  <p><b>${status}.</b> <ins>That\u2019s an error.</ins>\n` +
    `  <p>${what}  <ins>That\u2019s all we know.</ins>\n`;
  res.writeHead(status, {
    'content-type': 'text/html; charset=UTF-8',
    'content-length': String(Buffer.byteLength(html)),
  });
  res.end(html);
}

function escapeHtml(s: string): string {
  return s.replace(/[&<>"]/g, (c) => `&#${c.charCodeAt(0)};`);
}

/** Seconds as a protobuf Duration in JSON form ("2s", "1.500s"). */
function durationOf(seconds: number): string {
  return Number.isInteger(seconds) ? `${seconds}s` : `${seconds.toFixed(3)}s`;
}

function faultError(x: FakeExchange, status: number, model: string): void {
  const fault = x.fault!;
  const headers: Record<string, string> = {};
  const details: unknown[] = [];
  if (status === 429) {
    details.push(
      {
        '@type': 'type.googleapis.com/google.rpc.QuotaFailure',
        violations: [
          {
            quotaMetric: 'generativelanguage.googleapis.com/generate_content_free_tier_requests',
            quotaId: 'GenerateRequestsPerMinutePerProjectPerModel-FreeTier',
            quotaDimensions: { location: 'global', model },
            quotaValue: '10',
          },
        ],
      },
      {
        '@type': 'type.googleapis.com/google.rpc.Help',
        links: [
          {
            description: 'Learn more about Gemini API quotas',
            url: 'https://ai.google.dev/gemini-api/docs/rate-limits',
          },
        ],
      },
    );
    const delaySeconds =
      fault.retryAfter ?? (fault.retryAfterMs !== undefined ? fault.retryAfterMs / 1000 : undefined);
    // Real Gemini tells clients when to retry only here, in the body; some 429s carry no RetryInfo at all.
    if (delaySeconds !== undefined) {
      details.push({
        '@type': 'type.googleapis.com/google.rpc.RetryInfo',
        retryDelay: durationOf(delaySeconds),
      });
    }
  }
  // Real Gemini sends no retry-after headers; they appear only when a test asks for them explicitly.
  if (fault.retryAfter !== undefined) headers['retry-after'] = String(fault.retryAfter);
  if (fault.retryAfterMs !== undefined) headers['retry-after-ms'] = String(fault.retryAfterMs);
  // A 502 comes from Google's front end, which answers with HTML rather than the API's JSON envelope.
  if (status === 502 && fault.message === undefined) {
    sendHtmlError(x.res, 502, x.record.path);
    return;
  }
  sendJson(x.res, status, errorBody(status, fault.message, details), headers);
}

// ---------------------------------------------------------------------------------------------------------
// Request parsing: a small proto3-JSON reader for the GenerateContentRequest fields the API defines.

type Scalar = 'string' | 'int32' | 'float' | 'bool' | 'bytes' | 'enum';
type Field =
  | { kind: Scalar; repeated?: boolean }
  | { kind: 'message'; type: string; of: () => Schema; repeated?: boolean }
  /** Accepted without looking inside (Struct values, JSON schemas, tool definitions). */
  | { kind: 'opaque'; type: string; repeated?: boolean };
type Schema = Record<string, Field>;

const str: Field = { kind: 'string' };
const int32: Field = { kind: 'int32' };
const float: Field = { kind: 'float' };
const bool: Field = { kind: 'bool' };
const enumField: Field = { kind: 'enum' };
const opaque = (type: string, repeated = false): Field => ({ kind: 'opaque', type, repeated });
const msg = (type: string, of: () => Schema, repeated = false): Field => ({
  kind: 'message',
  type,
  of,
  repeated,
});

const BLOB: Schema = { mimeType: str, data: { kind: 'bytes' } };
const FILE_DATA: Schema = { mimeType: str, fileUri: str };
const FUNCTION_CALL: Schema = {
  id: str,
  name: str,
  args: opaque('google.protobuf.Struct'),
  partialArgs: opaque('PartialArg', true),
  willContinue: bool,
};
const FUNCTION_RESPONSE: Schema = {
  id: str,
  name: str,
  response: opaque('google.protobuf.Struct'),
  parts: opaque('FunctionResponsePart', true),
  willContinue: bool,
  scheduling: enumField,
};
const PART: Schema = {
  text: str,
  inlineData: msg('Blob', () => BLOB),
  fileData: msg('FileData', () => FILE_DATA),
  functionCall: msg('FunctionCall', () => FUNCTION_CALL),
  functionResponse: msg('FunctionResponse', () => FUNCTION_RESPONSE),
  executableCode: opaque('ExecutableCode'),
  codeExecutionResult: opaque('CodeExecutionResult'),
  toolCall: opaque('ToolCall'),
  toolResponse: opaque('ToolResponse'),
  thought: bool,
  thoughtSignature: { kind: 'bytes' },
  videoMetadata: opaque('VideoMetadata'),
  partMetadata: opaque('google.protobuf.Struct'),
  mediaResolution: opaque('MediaResolution'),
};
/** Part fields that fill the `data` oneof; a part needs exactly one of them. */
const PART_DATA = [
  'text',
  'inlineData',
  'fileData',
  'functionCall',
  'functionResponse',
  'executableCode',
  'codeExecutionResult',
  'toolCall',
  'toolResponse',
];
const CONTENT: Schema = { role: str, parts: msg('Part', () => PART, true) };
const GENERATION_CONFIG: Schema = {
  stopSequences: { kind: 'string', repeated: true },
  responseMimeType: str,
  responseSchema: opaque('Schema'),
  responseJsonSchema: opaque('google.protobuf.Value'),
  responseModalities: { kind: 'enum', repeated: true },
  candidateCount: int32,
  maxOutputTokens: int32,
  temperature: float,
  topP: float,
  topK: int32,
  seed: int32,
  presencePenalty: float,
  frequencyPenalty: float,
  responseLogprobs: bool,
  logprobs: int32,
  enableEnhancedCivicAnswers: bool,
  speechConfig: opaque('SpeechConfig'),
  thinkingConfig: opaque('ThinkingConfig'),
  imageConfig: opaque('ImageConfig'),
  mediaResolution: enumField,
  audioTranscriptionConfig: opaque('AudioTranscriptionConfig'),
};
const SAFETY_SETTING: Schema = { category: enumField, threshold: enumField };
const GENERATE_CONTENT_REQUEST: Schema = {
  model: str,
  contents: msg('Content', () => CONTENT, true),
  systemInstruction: msg('Content', () => CONTENT),
  generationConfig: msg('GenerationConfig', () => GENERATION_CONFIG),
  safetySettings: msg('SafetySetting', () => SAFETY_SETTING, true),
  tools: opaque('Tool', true),
  toolConfig: opaque('ToolConfig'),
  cachedContent: str,
  serviceTier: enumField,
  labels: opaque('google.protobuf.Struct'),
  continuationToken: str,
  store: bool,
};

const SCALAR_TYPE: Record<Scalar, string> = {
  string: 'TYPE_STRING',
  int32: 'TYPE_INT32',
  float: 'TYPE_FLOAT',
  bool: 'TYPE_BOOL',
  bytes: 'TYPE_BYTES',
  enum: 'TYPE_ENUM',
};

interface FieldViolation {
  field?: string;
  description: string;
}

class RequestError extends Error {
  constructor(
    message: string,
    readonly violations: FieldViolation[] = [],
  ) {
    super(message);
  }
}

const snakeOf = (name: string) => name.replace(/[A-Z]/g, (c) => `_${c.toLowerCase()}`);
const camelOf = (name: string) => name.replace(/_([a-z0-9])/g, (_m, c: string) => c.toUpperCase());
const at = (path: string, key: string) => (path ? `${path}.${key}` : key);

/** How the API quotes an offending value in "Invalid value at ..." messages. */
const quote = (v: unknown) => JSON.stringify(v);

class ProtoReader {
  readonly violations: FieldViolation[] = [];
  constructor(private readonly apiVersion: string) {}

  private typeUrl(type: string): string {
    return type.startsWith('google.protobuf.')
      ? `type.googleapis.com/${type}`
      : `type.googleapis.com/google.ai.generativelanguage.${this.apiVersion}.${type}`;
  }

  private unknown(key: string, path: string, why = 'Cannot find field.') {
    const description = `Invalid JSON payload received. Unknown name "${key}"${path ? ` at '${path}'` : ''}: ${why}`;
    this.violations.push(path ? { field: path, description } : { description });
  }

  private invalid(path: string, type: string, value: unknown) {
    const description = `Invalid value at '${path}' (${type}), ${quote(value)}`;
    this.violations.push({ field: path, description });
  }

  /** Reads one message; returns it with lowerCamelCase keys so the handler needs to know only one spelling. */
  message(value: Record<string, unknown>, schema: Schema, path: string): Record<string, any> {
    const out: Record<string, any> = {};
    for (const [key, raw] of Object.entries(value)) {
      const name = camelOf(key);
      const field = schema[name];
      // proto3 JSON accepts the json_name (lowerCamelCase) and the proto field name (snake_case), nothing else.
      if (!field || (key !== name && key !== snakeOf(name))) {
        this.unknown(key, path);
        continue;
      }
      if (raw === null) continue; // proto3 JSON: null means "use the default".
      const fieldPath = at(path, snakeOf(name));
      if (field.repeated) {
        if (!Array.isArray(raw)) {
          this.invalid(fieldPath, this.typeName(field), raw);
          continue;
        }
        out[name] = raw.map((item, i) => this.single(item, field, `${fieldPath}[${i}]`, key, path));
      } else {
        if (Array.isArray(raw)) {
          this.unknown(key, path, 'Proto field is not repeating, cannot start list.');
          continue;
        }
        out[name] = this.single(raw, field, fieldPath, key, path);
      }
    }
    return out;
  }

  private typeName(field: Field): string {
    return field.kind === 'message' || field.kind === 'opaque'
      ? this.typeUrl(field.type)
      : SCALAR_TYPE[field.kind];
  }

  private single(value: unknown, field: Field, path: string, key: string, parentPath: string): unknown {
    switch (field.kind) {
      case 'message':
        if (!isObject(value)) {
          this.invalid(path, this.typeUrl(field.type), value);
          return undefined;
        }
        return this.message(value, field.of(), path);
      case 'opaque':
        return value;
      default:
        if (Array.isArray(value)) {
          this.unknown(key, parentPath, 'Proto field is not repeating, cannot start list.');
          return undefined;
        }
        if (!scalarOk(field.kind, value)) {
          this.invalid(path, SCALAR_TYPE[field.kind], value);
          return undefined;
        }
        return field.kind === 'int32' || field.kind === 'float' ? Number(value) : value;
    }
  }
}

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function scalarOk(kind: Scalar, v: unknown): boolean {
  switch (kind) {
    case 'string':
      return typeof v === 'string';
    case 'bool':
      return typeof v === 'boolean';
    case 'int32': {
      // proto3 JSON also accepts integers written as strings.
      const n = typeof v === 'string' && /^-?\d+$/.test(v.trim()) ? Number(v) : v;
      return typeof n === 'number' && Number.isInteger(n) && n >= -(2 ** 31) && n < 2 ** 31;
    }
    case 'float':
      return (
        (typeof v === 'number' && Number.isFinite(v)) ||
        (typeof v === 'string' &&
          v.trim() !== '' &&
          (Number.isFinite(Number(v)) || /^-?(Infinity|NaN)$/.test(v)))
      );
    case 'bytes':
      return typeof v === 'string' && /^[A-Za-z0-9+/_-]*={0,2}$/.test(v);
    case 'enum':
      return typeof v === 'string' || (typeof v === 'number' && Number.isInteger(v));
  }
}

/** Where JSON.parse gave up, shown the way Google does: the offending line and a caret under the spot. */
function invalidJsonMessage(raw: string, err: unknown): string {
  const m = /position (\d+)/.exec(String((err as Error)?.message));
  const pos = m ? Number(m[1]) : 0;
  const lineStart = raw.lastIndexOf('\n', pos - 1) + 1;
  const lineEnd = raw.indexOf('\n', pos);
  const line = raw.slice(lineStart, lineEnd === -1 ? undefined : lineEnd);
  return `Invalid JSON payload received. Unexpected token.\n${line}\n${' '.repeat(pos - lineStart)}^`;
}

interface GeminiRequest {
  contents?: Array<{ role?: string; parts?: Array<Record<string, any>> }>;
  systemInstruction?: { parts?: Array<Record<string, any>> };
  generationConfig?: { maxOutputTokens?: number; stopSequences?: string[]; candidateCount?: number };
}

/** Parses the body as proto3 JSON; throws RequestError with the API's message for malformed JSON or fields. */
function parseRequest(raw: string, apiVersion: string): GeminiRequest {
  let json: unknown;
  try {
    // An empty body is an empty message, which then fails the "contents" check like the real API.
    json = raw.trim() ? JSON.parse(raw) : {};
  } catch (err) {
    const message = invalidJsonMessage(raw, err);
    throw new RequestError(message, [{ description: message }]);
  }
  if (!isObject(json)) {
    const message = 'Invalid JSON payload received. Unknown name "": Root element must be a message.';
    throw new RequestError(message, [{ description: message }]);
  }
  const reader = new ProtoReader(apiVersion);
  const request = reader.message(json, GENERATE_CONTENT_REQUEST, '') as GeminiRequest;
  if (reader.violations.length) {
    throw new RequestError(reader.violations.map((v) => v.description).join('\n'), reader.violations);
  }
  return request;
}

/** The checks the model service makes on a well-formed request. */
function checkRequest(request: GeminiRequest): void {
  // Field-level requirements are reported together, one "* Request.field: why" line each.
  if (!request.contents?.length) {
    throw new RequestError('* GenerateContentRequest.contents: contents is not specified\n');
  }
  const problems: string[] = [];
  request.contents.forEach((content, i) => {
    if (!content.parts?.length) {
      problems.push(`* GenerateContentRequest.contents[${i}].parts: contents.parts must not be empty.\n`);
      return;
    }
    content.parts.forEach((part, j) => {
      if (!PART_DATA.some((k) => part[k] !== undefined)) {
        problems.push(
          `* GenerateContentRequest.contents[${i}].parts[${j}].data: required oneof field 'data' must have one initialized field\n`,
        );
      }
    });
  });
  if (problems.length) throw new RequestError(problems.join(''));
  if (
    request.contents.some(
      (c) => c.role !== undefined && c.role !== '' && c.role !== 'user' && c.role !== 'model',
    )
  ) {
    throw new RequestError('Please use a valid role: user, model.');
  }
}

// ---------------------------------------------------------------------------------------------------------
// Answers

const TEXT_MODALITY = 'TEXT';

interface Plan {
  kind: 'text' | 'tool' | 'blocked' | 'unsafe';
  text: string;
  chunks: string[];
  finishReason: 'STOP' | 'MAX_TOKENS' | 'SAFETY';
  promptTokens: number;
  candidateTokens: number;
}

function textPartsOf(content: { parts?: Array<Record<string, any>> } | undefined): string[] {
  return (content?.parts ?? []).map((p) => p.text).filter((t): t is string => typeof t === 'string');
}

function planAnswer(x: FakeExchange, request: GeminiRequest): Plan {
  const contents = request.contents ?? [];
  const promptTokens = [...contents.flatMap(textPartsOf), ...textPartsOf(request.systemInstruction)].reduce(
    (n, t) => n + countFakeTokens(t),
    0,
  );
  const lastUser = [...contents].reverse().find((c) => (c.role || 'user') === 'user');
  const lastUserText = textOf(lastUser?.parts ?? []);
  const base = { promptTokens, candidateTokens: 0, text: '', chunks: [] as string[] };

  if (lastUserText.includes(GEMINI_BLOCK_PROMPT_TRIGGER))
    return { ...base, kind: 'blocked', finishReason: 'SAFETY' };
  if (lastUserText.includes(GEMINI_UNSAFE_ANSWER_TRIGGER))
    return { ...base, kind: 'unsafe', finishReason: 'SAFETY' };
  const { toolCall } = x.options;
  if (toolCall) {
    // Gemini ends a function-call turn with STOP; there is no tool-specific finish reason.
    const candidateTokens = countFakeTokens(`${toolCall.name} ${JSON.stringify(toolCall.arguments)}`);
    return { ...base, kind: 'tool', finishReason: 'STOP', candidateTokens };
  }

  let text = x.options.reply?.(lastUserText, x.record.body) ?? defaultReply(lastUserText);
  let finishReason: Plan['finishReason'] = 'STOP';
  const config = request.generationConfig ?? {};
  // A stop sequence ends the answer right before it and still reports STOP, as the real API does.
  const stops = (config.stopSequences ?? []).filter((s) => s !== '');
  const cut = Math.min(...stops.map((s) => text.indexOf(s)).filter((i) => i >= 0));
  if (Number.isFinite(cut)) text = text.slice(0, cut);
  let chunks = splitIntoChunks(text);
  const max = config.maxOutputTokens;
  if (max !== undefined && max > 0 && countFakeTokens(text) > max) {
    chunks = chunks.slice(0, max);
    text = chunks.join('');
    finishReason = 'MAX_TOKENS';
  }
  return { ...base, kind: 'text', text, chunks, finishReason, candidateTokens: countFakeTokens(text) };
}

function usageOf(plan: Plan, cached: number | undefined, final: boolean, candidates: number) {
  const candidateTokens = plan.candidateTokens * candidates;
  return {
    promptTokenCount: plan.promptTokens,
    // Streams report candidate tokens only once the answer is complete.
    ...(final && candidateTokens > 0 ? { candidatesTokenCount: candidateTokens } : {}),
    totalTokenCount: plan.promptTokens + (final ? candidateTokens : 0),
    ...(cached !== undefined ? { cachedContentTokenCount: cached } : {}),
    promptTokensDetails: [{ modality: TEXT_MODALITY, tokenCount: plan.promptTokens }],
    ...(cached !== undefined
      ? { cacheTokensDetails: [{ modality: TEXT_MODALITY, tokenCount: cached }] }
      : {}),
    ...(final && candidateTokens > 0
      ? { candidatesTokensDetails: [{ modality: TEXT_MODALITY, tokenCount: candidateTokens }] }
      : {}),
  };
}

const SAFETY_CATEGORIES = [
  'HARM_CATEGORY_SEXUALLY_EXPLICIT',
  'HARM_CATEGORY_HATE_SPEECH',
  'HARM_CATEGORY_HARASSMENT',
  'HARM_CATEGORY_DANGEROUS_CONTENT',
];

function safetyRatings() {
  return SAFETY_CATEGORIES.map((category) =>
    category === 'HARM_CATEGORY_DANGEROUS_CONTENT'
      ? { category, probability: 'HIGH', blocked: true }
      : { category, probability: 'NEGLIGIBLE' },
  );
}

interface Meta {
  model: string;
  responseId: string;
  candidates: number;
  cached: number | undefined;
}

/** One GenerateContentResponse: the whole answer, or one stream chunk carrying `piece`. */
function responseOf(plan: Plan, meta: Meta, piece: string | undefined, final: boolean, x: FakeExchange) {
  const tail = { modelVersion: meta.model, responseId: meta.responseId };
  if (plan.kind === 'blocked') {
    return {
      promptFeedback: { blockReason: 'SAFETY', safetyRatings: safetyRatings() },
      usageMetadata: usageOf(plan, meta.cached, true, meta.candidates),
      ...tail,
    };
  }
  const candidate = (index: number) => {
    if (plan.kind === 'unsafe') {
      return { finishReason: 'SAFETY', index, safetyRatings: safetyRatings() };
    }
    const parts =
      plan.kind === 'tool'
        ? [{ functionCall: { name: x.options.toolCall!.name, args: x.options.toolCall!.arguments } }]
        : [{ text: piece ?? plan.text }];
    return {
      content: { parts, role: 'model' },
      ...(final ? { finishReason: plan.finishReason } : {}),
      index,
    };
  };
  return {
    candidates: Array.from({ length: meta.candidates }, (_v, i) => candidate(i)),
    usageMetadata: usageOf(plan, meta.cached, final, meta.candidates),
    ...tail,
  };
}

function newResponseId(): string {
  return randomBytes(16).toString('base64url').slice(0, 22);
}

function writeAsync(res: http.ServerResponse, data: string): Promise<void> {
  return new Promise((resolve) => {
    if (res.destroyed) return resolve();
    res.write(data, () => resolve());
  });
}

async function stream(x: FakeExchange, plan: Plan, meta: Meta, sse: boolean): Promise<void> {
  const { res, fault } = x;
  res.writeHead(200, {
    'content-type': sse ? 'text/event-stream' : 'application/json; charset=UTF-8',
    'content-disposition': 'attachment',
    vary: 'Origin, X-Origin, Referer',
    'x-content-type-options': 'nosniff',
    server: 'scaffolding on HTTPServer2',
  });
  res.flushHeaders();

  // A blocked prompt, a safety stop or a function call arrives as a single event.
  const pieces = plan.kind === 'text' ? plan.chunks : [undefined];
  let sent = 0;
  // SSE events are "data: <json>\r\n\r\n"; without alt=sse the same objects form one JSON array.
  const frame = (obj: unknown) =>
    sse ? `data: ${JSON.stringify(obj)}\r\n\r\n` : `${sent === 0 ? '[' : ',\r\n'}${JSON.stringify(obj)}`;

  for (let i = 0; ; i++) {
    if (fault?.cutStreamAfter !== undefined && sent >= fault.cutStreamAfter) {
      res.destroy();
      return;
    }
    if (fault?.errorStreamAfter !== undefined && sent >= fault.errorStreamAfter) {
      // The fault's status (default 500) becomes the in-stream error: headers already said 200.
      const status = fault.status ?? 500;
      await writeAsync(res, frame(errorBody(status, fault.message)));
      res.end(sse ? undefined : ']');
      return;
    }
    if (i >= pieces.length) break;
    if (i > 0) await x.pause();
    if (res.destroyed) return;
    const final = i === pieces.length - 1;
    await writeAsync(res, frame(responseOf(plan, meta, pieces[i], final, x)));
    sent++;
  }
  res.end(sse ? undefined : ']');
}

// ---------------------------------------------------------------------------------------------------------
// Routing

const ROUTE = /^\/(v1beta|v1)\/((?:models|tunedModels)\/[^/:]+):(generateContent|streamGenerateContent)$/;

async function handleGemini(x: FakeExchange): Promise<void> {
  const { req, res, record, fault } = x;
  let path = record.path;
  try {
    path = decodeURIComponent(record.path);
  } catch {
    // keep the raw path; it will not match a route anyway
  }
  const route = ROUTE.exec(path);
  if (!route || req.method !== 'POST') {
    sendHtmlError(res, 404, record.path);
    return;
  }
  const [, apiVersion, resource, method] = route as unknown as [string, string, string, string];
  const model = resource.slice(resource.indexOf('/') + 1);
  const streaming = method === 'streamGenerateContent';

  const key = headerValue(req.headers['x-goog-api-key']) || record.query.get('key') || '';
  if (!key) {
    if (/^Bearer\s/i.test(headerValue(req.headers.authorization))) {
      // The fake knows no OAuth tokens, so every bearer token is a bad one.
      sendError(res, 401, DEFAULT_MESSAGE[401], [
        {
          '@type': 'type.googleapis.com/google.rpc.ErrorInfo',
          reason: 'ACCESS_TOKEN_TYPE_UNSUPPORTED',
          domain: 'googleapis.com',
          metadata: { service: 'generativelanguage.googleapis.com', method: methodName(apiVersion, method) },
        },
      ]);
    } else {
      sendError(res, 403, NO_KEY_MESSAGE);
    }
    return;
  }
  if (!x.apiKeys.includes(key)) {
    sendError(res, 400, BAD_KEY_MESSAGE, [
      {
        '@type': 'type.googleapis.com/google.rpc.ErrorInfo',
        reason: 'API_KEY_INVALID',
        domain: 'googleapis.com',
        metadata: { service: 'generativelanguage.googleapis.com' },
      },
      {
        '@type': 'type.googleapis.com/google.rpc.LocalizedMessage',
        locale: 'en-US',
        message: BAD_KEY_MESSAGE,
      },
    ]);
    return;
  }

  // An in-stream error fault on a streaming call uses its status inside the stream instead.
  const statusFault = fault?.status !== undefined && !(streaming && fault.errorStreamAfter !== undefined);
  if (statusFault && fault!.status! >= 400) {
    faultError(x, fault!.status!, model);
    return;
  }

  let request: GeminiRequest;
  try {
    // Malformed JSON is rejected before the model is looked up; semantic checks come after.
    request = parseRequest(record.rawBody, apiVersion);
    if (model !== GEMINI_MISSING_MODEL) checkRequest(request);
  } catch (err) {
    if (!(err instanceof RequestError)) throw err;
    const details = err.violations.length
      ? [{ '@type': 'type.googleapis.com/google.rpc.BadRequest', fieldViolations: err.violations }]
      : undefined;
    sendError(res, 400, err.message, details);
    return;
  }

  if (model === GEMINI_MISSING_MODEL) {
    // Streaming calls name their RPC with a capital S in this message.
    const rpc = streaming ? 'StreamGenerateContent' : 'generateContent';
    sendError(
      res,
      404,
      `models/${model} is not found for API version ${apiVersion}, or is not supported for ${rpc}. ` +
        'Call ListModels to see the list of available models and their supported methods.',
    );
    return;
  }

  const plan = planAnswer(x, request);
  const meta: Meta = {
    model,
    responseId: newResponseId(),
    candidates: Math.max(1, request.generationConfig?.candidateCount ?? 1),
    cached: x.options.cachedPromptTokens,
  };
  if (streaming) {
    await stream(x, plan, meta, record.query.get('alt') === 'sse');
    return;
  }
  sendJson(res, 200, responseOf(plan, meta, undefined, true, x));
}

function methodName(apiVersion: string, method: string): string {
  return `google.ai.generativelanguage.${apiVersion}.GenerativeService.${method[0]!.toUpperCase()}${method.slice(1)}`;
}

function headerValue(h: string | string[] | undefined): string {
  return (Array.isArray(h) ? h[0] : h)?.trim() ?? '';
}
