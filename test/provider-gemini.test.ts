import assert from 'node:assert/strict';
import request from 'supertest';
import { GatewayError } from '../lib/errors.js';
import { silentLogger } from '../lib/logger.js';
import type { StreamPart, Target } from '../lib/providers/adapter.js';
import { convertGeminiUsage, gemini, mapGeminiFinishReason } from '../lib/providers/gemini.js';
import {
  GEMINI_BLOCK_PROMPT_TRIGGER,
  GEMINI_UNSAFE_ANSWER_TRIGGER,
  startFakeGemini,
} from '../lib/testing/fake-gemini.js';
import type { FakeProvider } from '../lib/testing/fake-server.js';
import type { ChatRequest, ResolvedProvider } from '../types/index.js';
import { hostApp, parseSse } from './helpers/setup.js';
import { assertEverySplit, streamPartsOf } from './helpers/stream-parts.js';

const MODEL = 'gemini-2.5-flash';

function target(stream = false, overrides: Partial<ResolvedProvider> = {}): Target {
  const provider: ResolvedProvider = {
    name: 'gemini',
    type: 'gemini',
    apiKeys: ['secret-key'],
    baseUrl: 'https://generativelanguage.googleapis.com',
    models: [MODEL],
    timeoutMs: 60_000,
    maxRetries: 0,
    priority: 0,
    enabled: true,
    defaultMaxTokens: 4096,
    headers: {},
    ...overrides,
  };
  return { provider, model: MODEL, apiKey: 'secret-key', stream };
}

function body(req: ChatRequest, stream = false): any {
  return gemini.buildRequest(req, target(stream)).body;
}

function thrown(fn: () => unknown): GatewayError {
  try {
    fn();
  } catch (err) {
    assert.ok(err instanceof GatewayError, `expected a GatewayError, got ${String(err)}`);
    return err;
  }
  assert.fail('expected a throw');
}

/** Runs one stream's events through the adapter, as lib/upstream.ts does. */
function streamParts(events: string[]): StreamPart[] {
  const state = gemini.createStreamState();
  const parts = events.flatMap((data) => gemini.parseStreamEvent({ data }, state));
  return [...parts, ...(gemini.endStream?.(state) ?? [])];
}

describe('gemini adapter: buildRequest', () => {
  it('puts the key in x-goog-api-key only, plus the configured headers', () => {
    const built = gemini.buildRequest(
      { model: MODEL, messages: [{ role: 'user', content: 'hi' }] },
      target(false, { headers: { 'x-team': 'ml' } }),
    );
    assert.equal(
      built.url,
      `https://generativelanguage.googleapis.com/v1beta/models/${MODEL}:generateContent`,
    );
    assert.equal(built.headers['x-goog-api-key'], 'secret-key');
    assert.equal(built.headers['x-team'], 'ml');
    assert.ok(!built.url.includes('secret-key'));
    assert.ok(!built.url.includes('key='));
  });

  it('uses streamGenerateContent with alt=sse for streams, and encodes the model', () => {
    const t = { ...target(true), model: 'tuned/odd name' };
    const built = gemini.buildRequest({ model: 'x', messages: [{ role: 'user', content: 'hi' }] }, t);
    assert.equal(
      built.url,
      'https://generativelanguage.googleapis.com/v1beta/models/tuned%2Fodd%20name:streamGenerateContent?alt=sse',
    );
    const slash = gemini.buildRequest(
      { model: 'x', messages: [{ role: 'user', content: 'hi' }] },
      { ...target(false, { baseUrl: 'http://127.0.0.1:9/' }), model: `models/${MODEL}` },
    );
    assert.equal(slash.url, `http://127.0.0.1:9/v1beta/models/${MODEL}:generateContent`);
  });

  it('maps roles, lifts system messages into systemInstruction and merges consecutive turns', () => {
    const b = body({
      model: MODEL,
      messages: [
        { role: 'system', content: 'be brief' },
        { role: 'user', content: 'one' },
        { role: 'user', content: 'two' },
        { role: 'assistant', content: 'three' },
        { role: 'system', content: 'and polite' },
        { role: 'user', content: 'four' },
      ],
    });
    assert.deepEqual(b.systemInstruction, { parts: [{ text: 'be brief\n\nand polite' }] });
    assert.deepEqual(b.contents, [
      { role: 'user', parts: [{ text: 'one' }, { text: 'two' }] },
      { role: 'model', parts: [{ text: 'three' }] },
      { role: 'user', parts: [{ text: 'four' }] },
    ]);
    assert.equal(b.generationConfig, undefined);
    assert.equal(b.tools, undefined);
  });

  it('maps sampling options into generationConfig', () => {
    const b = body({
      model: MODEL,
      messages: [{ role: 'user', content: 'hi' }],
      max_tokens: 50,
      temperature: 0.2,
      top_p: 0.9,
      stop: 'END',
    });
    assert.deepEqual(b.generationConfig, {
      maxOutputTokens: 50,
      temperature: 0.2,
      topP: 0.9,
      stopSequences: ['END'],
    });
    const many = body({ model: MODEL, messages: [{ role: 'user', content: 'hi' }], stop: ['a', 'b'] });
    assert.deepEqual(many.generationConfig, { stopSequences: ['a', 'b'] });
  });

  it('declares tools and maps every tool_choice', () => {
    const tools = [
      {
        type: 'function' as const,
        function: {
          name: 'get_weather',
          description: 'Weather for a city',
          parameters: { type: 'object', properties: { city: { type: 'string' } } },
        },
      },
      { type: 'function' as const, function: { name: 'noop' } },
    ];
    const base = { model: MODEL, messages: [{ role: 'user' as const, content: 'hi' }], tools };
    assert.deepEqual(body(base).tools, [
      {
        functionDeclarations: [
          {
            name: 'get_weather',
            description: 'Weather for a city',
            parameters: { type: 'object', properties: { city: { type: 'string' } } },
          },
          { name: 'noop' },
        ],
      },
    ]);
    assert.equal(body(base).toolConfig, undefined);
    const mode = (tool_choice: ChatRequest['tool_choice']) => body({ ...base, tool_choice }).toolConfig;
    assert.deepEqual(mode('auto'), { functionCallingConfig: { mode: 'AUTO' } });
    assert.deepEqual(mode('none'), { functionCallingConfig: { mode: 'NONE' } });
    assert.deepEqual(mode('required'), { functionCallingConfig: { mode: 'ANY' } });
    assert.deepEqual(mode({ type: 'function', function: { name: 'get_weather' } }), {
      functionCallingConfig: { mode: 'ANY', allowedFunctionNames: ['get_weather'] },
    });
  });

  it('sends tool calls as functionCall parts and results as functionResponse parts named after the call', () => {
    const b = body({
      model: MODEL,
      messages: [
        { role: 'user', content: 'weather in Paris and Rome?' },
        {
          role: 'assistant',
          content: null,
          tool_calls: [
            {
              id: 'call_a',
              type: 'function',
              function: { name: 'get_weather', arguments: '{"city":"Paris"}' },
            },
            { id: 'call_b', type: 'function', function: { name: 'get_time', arguments: '' } },
          ],
        },
        { role: 'tool', tool_call_id: 'call_a', content: '{"temp":21}' },
        { role: 'tool', tool_call_id: 'call_b', content: 'noon' },
      ],
    });
    assert.deepEqual(b.contents, [
      { role: 'user', parts: [{ text: 'weather in Paris and Rome?' }] },
      {
        role: 'model',
        parts: [
          { functionCall: { name: 'get_weather', args: { city: 'Paris' } } },
          { functionCall: { name: 'get_time', args: {} } },
        ],
      },
      {
        role: 'user',
        parts: [
          { functionResponse: { name: 'get_weather', response: { content: { temp: 21 } } } },
          { functionResponse: { name: 'get_time', response: { content: 'noon' } } },
        ],
      },
    ]);
  });

  it('refuses tool messages it cannot name and arguments that are not a JSON object', () => {
    const orphan = thrown(() =>
      body({
        model: MODEL,
        messages: [
          { role: 'user', content: 'hi' },
          { role: 'tool', tool_call_id: 'call_x', content: 'r' },
        ],
      }),
    );
    assert.equal(orphan.kind, 'invalid_request');
    assert.equal(orphan.param, 'messages[1].tool_call_id');

    const badArgs = thrown(() =>
      body({
        model: MODEL,
        messages: [
          {
            role: 'assistant',
            content: null,
            tool_calls: [{ id: 'c', type: 'function', function: { name: 'f', arguments: '[1,2]' } }],
          },
        ],
      }),
    );
    assert.equal(badArgs.kind, 'invalid_request');
    assert.equal(badArgs.param, 'messages[0].tool_calls[0].function.arguments');
  });
});

describe('gemini adapter: parseResponse, finish reasons, usage, errors', () => {
  it('reads text (skipping thought parts), finish reason and usage', () => {
    const result = gemini.parseResponse(
      {
        candidates: [
          {
            content: {
              role: 'model',
              parts: [{ text: 'thinking...', thought: true }, { text: 'Hello' }, { text: ' world' }],
            },
            finishReason: 'STOP',
            index: 0,
          },
        ],
        usageMetadata: { promptTokenCount: 4, candidatesTokenCount: 2, totalTokenCount: 6 },
      },
      target(),
    );
    assert.deepEqual(result, {
      content: 'Hello world',
      finish_reason: 'stop',
      usage: { prompt_tokens: 4, completion_tokens: 2, total_tokens: 6 },
    });
  });

  it('turns functionCall parts into tool_calls with finish_reason tool_calls despite STOP', () => {
    const result = gemini.parseResponse(
      {
        candidates: [
          {
            content: {
              role: 'model',
              parts: [
                { functionCall: { name: 'get_weather', args: { city: 'Paris' } } },
                { functionCall: { name: 'get_time' } },
              ],
            },
            finishReason: 'STOP',
          },
        ],
      },
      target(),
    );
    assert.equal(result.finish_reason, 'tool_calls');
    assert.equal(result.content, '');
    assert.deepEqual(result.tool_calls, [
      { id: 'call_0', type: 'function', function: { name: 'get_weather', arguments: '{"city":"Paris"}' } },
      { id: 'call_1', type: 'function', function: { name: 'get_time', arguments: '{}' } },
    ]);
  });

  it('throws content_filter for a blocked prompt instead of an empty success', () => {
    const err = thrown(() =>
      gemini.parseResponse(
        { promptFeedback: { blockReason: 'SAFETY' }, usageMetadata: { promptTokenCount: 3 } },
        target(),
      ),
    );
    assert.equal(err.kind, 'content_filter');
    assert.equal(err.status, 400);
    assert.match(err.message, /SAFETY/);
    assert.equal(thrown(() => gemini.parseResponse({ candidates: [] }, target())).kind, 'server_error');
  });

  it('maps every finish reason', () => {
    const table: Record<string, string> = {
      STOP: 'stop',
      MAX_TOKENS: 'length',
      SAFETY: 'content_filter',
      RECITATION: 'content_filter',
      BLOCKLIST: 'content_filter',
      PROHIBITED_CONTENT: 'content_filter',
      SPII: 'content_filter',
      IMAGE_SAFETY: 'content_filter',
      MALFORMED_FUNCTION_CALL: 'error',
      LANGUAGE: 'other',
      OTHER: 'other',
      FINISH_REASON_UNSPECIFIED: 'other',
      SOMETHING_NEW: 'other',
    };
    for (const [gem, unified] of Object.entries(table))
      assert.equal(mapGeminiFinishReason(gem), unified, gem);
    assert.equal(mapGeminiFinishReason(undefined), 'other');
  });

  it('converts usage: cached prompt tokens, thinking tokens billed as output, missing total', () => {
    assert.deepEqual(
      convertGeminiUsage({
        promptTokenCount: 100,
        candidatesTokenCount: 20,
        thoughtsTokenCount: 30,
        totalTokenCount: 150,
        cachedContentTokenCount: 60,
      }),
      { prompt_tokens: 100, completion_tokens: 50, total_tokens: 150, cached_prompt_tokens: 60 },
    );
    assert.deepEqual(convertGeminiUsage({ promptTokenCount: 5, candidatesTokenCount: 2 }), {
      prompt_tokens: 5,
      completion_tokens: 2,
      total_tokens: 7,
    });
    assert.deepEqual(convertGeminiUsage(undefined), {
      prompt_tokens: 0,
      completion_tokens: 0,
      total_tokens: 0,
    });
  });

  it('parses Google error envelopes into kinds and a retry delay from RetryInfo', () => {
    const rateLimited = (retryDelay?: string) => ({
      error: {
        code: 429,
        message: 'You exceeded your current quota.',
        status: 'RESOURCE_EXHAUSTED',
        details: [
          { '@type': 'type.googleapis.com/google.rpc.QuotaFailure', violations: [] },
          ...(retryDelay ? [{ '@type': 'type.googleapis.com/google.rpc.RetryInfo', retryDelay }] : []),
        ],
      },
    });
    assert.deepEqual(gemini.parseError(429, rateLimited('2s')), {
      message: 'You exceeded your current quota.',
      kind: 'rate_limit',
      retryAfterMs: 2000,
    });
    assert.equal(gemini.parseError(429, rateLimited('1.5s')).retryAfterMs, 1500);
    assert.equal(gemini.parseError(429, rateLimited('3600s')).retryAfterMs, 60_000);
    assert.equal(gemini.parseError(429, rateLimited()).retryAfterMs, undefined);

    const badKey = gemini.parseError(400, {
      error: {
        code: 400,
        message: 'API key not valid. Please pass a valid API key.',
        status: 'INVALID_ARGUMENT',
        details: [{ '@type': 'type.googleapis.com/google.rpc.ErrorInfo', reason: 'API_KEY_INVALID' }],
      },
    });
    assert.equal(badKey.kind, 'authentication');
    assert.equal(
      gemini.parseError(403, { error: { code: 403, message: 'no', status: 'PERMISSION_DENIED' } }).kind,
      'permission',
    );
    const plain400 = gemini.parseError(400, {
      error: { code: 400, message: 'bad', status: 'INVALID_ARGUMENT' },
    });
    assert.deepEqual(plain400, { message: 'bad' });
    assert.equal(gemini.parseError(503, { error: { code: 503, status: 'UNAVAILABLE' } }).kind, undefined);

    const html = gemini.parseError(
      404,
      '<!DOCTYPE html>\n<html lang=en><title>Error 404 (Not Found)!!1</title>',
    );
    assert.ok(html.message.length < 100);
    assert.match(html.message, /^HTTP 404: not a Gemini API answer/);
  });
});

describe('gemini adapter: stream events', () => {
  const chunk = (obj: unknown) => JSON.stringify(obj);

  it('emits usage parts with only the fields present, and finish on the last chunk', () => {
    const parts = streamParts([
      chunk({
        candidates: [{ content: { role: 'model', parts: [{ text: 'Hi' }] } }],
        usageMetadata: { promptTokenCount: 2, totalTokenCount: 2 },
      }),
      chunk({
        candidates: [{ content: { role: 'model', parts: [{ text: '!' }] }, finishReason: 'MAX_TOKENS' }],
        usageMetadata: { promptTokenCount: 2, candidatesTokenCount: 2, totalTokenCount: 4 },
      }),
    ]);
    assert.deepEqual(parts, [
      { type: 'delta', text: 'Hi' },
      { type: 'usage', usage: { prompt_tokens: 2, total_tokens: 2 } },
      { type: 'delta', text: '!' },
      { type: 'finish', finish_reason: 'length' },
      { type: 'usage', usage: { prompt_tokens: 2, completion_tokens: 2, total_tokens: 4 } },
    ]);
  });

  it('gathers function calls into one tool_calls part and finishes with tool_calls', () => {
    const call = (name: string, finishReason?: string) =>
      chunk({
        candidates: [
          { content: { role: 'model', parts: [{ functionCall: { name, args: { n: 1 } } }] }, finishReason },
        ],
      });
    const parts = streamParts([call('a'), call('b', 'STOP')]);
    assert.deepEqual(parts, [
      {
        type: 'tool_calls',
        tool_calls: [
          { id: 'call_0', type: 'function', function: { name: 'a', arguments: '{"n":1}' } },
          { id: 'call_1', type: 'function', function: { name: 'b', arguments: '{"n":1}' } },
        ],
      },
      { type: 'finish', finish_reason: 'tool_calls' },
    ]);
  });

  it('turns error events, blocked prompts and malformed chunks into error parts', () => {
    const errorEvent = (code: number, status: string) =>
      streamParts([chunk({ error: { code, message: `${status} happened`, status } })]);
    assert.deepEqual(errorEvent(429, 'RESOURCE_EXHAUSTED'), [
      { type: 'error', kind: 'rate_limit', message: 'RESOURCE_EXHAUSTED happened' },
    ]);
    assert.equal((errorEvent(503, 'UNAVAILABLE')[0] as any).kind, 'server_error');
    assert.equal((errorEvent(500, 'INTERNAL')[0] as any).kind, 'server_error');
    const blocked = streamParts([chunk({ promptFeedback: { blockReason: 'PROHIBITED_CONTENT' } })]);
    assert.equal(blocked[0]!.type, 'error');
    assert.equal((blocked[0] as any).kind, 'content_filter');
    assert.equal((streamParts(['{oops'])[0] as any).kind, 'server_error');
  });
});

describe('gemini adapter: stream bytes split at every boundary', () => {
  let fake: FakeProvider;
  let toolFake: FakeProvider;

  before(async () => {
    fake = await startFakeGemini({ cachedPromptTokens: 1 });
    toolFake = await startFakeGemini({ toolCall: { name: 'get_weather', arguments: { city: 'Paris' } } });
  });
  after(async () => {
    await fake.close();
    await toolFake.close();
  });

  async function rawStream(server: FakeProvider, text: string): Promise<Uint8Array> {
    const res = await fetch(`${server.origin}/v1beta/models/${MODEL}:streamGenerateContent?alt=sse`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', 'x-goog-api-key': 'test-key' },
      body: JSON.stringify({ contents: [{ role: 'user', parts: [{ text }] }] }),
    });
    assert.equal(res.status, 200);
    return new Uint8Array(await res.arrayBuffer());
  }

  const partsOf = (pieces: Uint8Array[]): StreamPart[] => streamPartsOf(gemini, pieces);

  it('parses a text stream (with multi-byte characters and \\r\\n\\r\\n framing) identically', async () => {
    const bytes = await rawStream(fake, 'héllo wörld ✓');
    assert.ok(new TextDecoder().decode(bytes).includes('\r\n\r\n'));
    const whole = partsOf([bytes]);
    const deltas = whole.flatMap((p) => (p.type === 'delta' ? [p.text] : []));
    assert.equal(deltas.join(''), 'echo: héllo wörld ✓');
    assert.deepEqual(
      whole.filter((p) => p.type === 'finish'),
      [{ type: 'finish', finish_reason: 'stop' }],
    );
    assert.deepEqual(whole.at(-1), {
      type: 'usage',
      usage: { prompt_tokens: 3, completion_tokens: 4, total_tokens: 7, cached_prompt_tokens: 1 },
    });
    // Intermediate chunks carry the prompt count only: no completion_tokens may be invented as 0.
    assert.deepEqual(whole[1], {
      type: 'usage',
      usage: { prompt_tokens: 3, total_tokens: 3, cached_prompt_tokens: 1 },
    });
    assertEverySplit(gemini, bytes, whole);
  });

  it('parses a function-call stream identically', async () => {
    const bytes = await rawStream(toolFake, 'weather?');
    const whole = partsOf([bytes]);
    assert.deepEqual(whole.slice(0, 2), [
      {
        type: 'tool_calls',
        tool_calls: [
          {
            id: 'call_0',
            type: 'function',
            function: { name: 'get_weather', arguments: '{"city":"Paris"}' },
          },
        ],
      },
      { type: 'finish', finish_reason: 'tool_calls' },
    ]);
    assertEverySplit(gemini, bytes, whole);
  });
});

describe('gemini through the gateway (fake Gemini)', () => {
  let fake: FakeProvider;
  let toolFake: FakeProvider;
  const hosts: ReturnType<typeof hostApp>[] = [];

  const configFor = (server: FakeProvider, extra: Record<string, unknown> = {}) => ({
    providers: {
      gemini: { api_key: 'test-key', base_url: server.baseUrl, models: [MODEL], max_retries: 0, ...extra },
    },
    // The scenarios repeat prompts and fault single requests: the cache and retries would hide them.
    cache: { backend: 'disabled' as const },
    logger: silentLogger,
  });
  function appFor(server: FakeProvider, extra: Record<string, unknown> = {}) {
    const host = hostApp(configFor(server, extra));
    hosts.push(host);
    return host.app;
  }

  /** Reads an SSE answer as text whatever its content type. */
  const asText = (res: any, cb: (err: Error | null, body: string) => void) => {
    let data = '';
    res.setEncoding('utf8');
    res.on('data', (c: string) => (data += c));
    res.on('end', () => cb(null, data));
  };

  const hello = { model: MODEL, messages: [{ role: 'user', content: 'hello there' }] };

  before(async () => {
    fake = await startFakeGemini({ cachedPromptTokens: 1 });
    toolFake = await startFakeGemini({ toolCall: { name: 'get_weather', arguments: { city: 'Paris' } } });
  });
  afterEach(() => fake.clearFaults());
  after(async () => {
    for (const h of hosts) await h.gateway.close();
    await fake.close();
    await toolFake.close();
  });

  // gemini/gemini-2.5-flash: 0.30 in, 2.50 out, 0.075 cached, per million tokens.
  const costOf = (prompt: number, cached: number, completion: number) =>
    ((prompt - cached) * 0.3 + cached * 0.075 + completion * 2.5) / 1e6;

  it('answers POST /ai/chat with content, usage, cost; system instruction and key sent the Gemini way', async () => {
    const res = await request(appFor(fake))
      .post('/ai/chat')
      .send({ ...hello, messages: [{ role: 'system', content: 'be brief' }, ...hello.messages] })
      .expect(200);
    assert.equal(res.body.content, 'echo: hello there');
    assert.equal(res.body.finish_reason, 'stop');
    assert.equal(res.body.provider, 'gemini');
    // "be brief" + "hello there": 4 prompt tokens, 1 of them cached; "echo: hello there": 3.
    assert.deepEqual(res.body.usage, {
      prompt_tokens: 4,
      completion_tokens: 3,
      total_tokens: 7,
      cached_prompt_tokens: 1,
    });
    assert.ok(Math.abs(res.body.cost - costOf(4, 1, 3)) < 1e-12, `cost ${res.body.cost}`);

    const rec = fake.requests.at(-1)!;
    assert.equal(rec.path, `/v1beta/models/${MODEL}:generateContent`);
    assert.deepEqual(rec.body.systemInstruction, { parts: [{ text: 'be brief' }] });
    assert.deepEqual(rec.body.contents, [{ role: 'user', parts: [{ text: 'hello there' }] }]);
    assert.equal(rec.headers['x-goog-api-key'], 'test-key');
    assert.equal(rec.query.has('key'), false);
    assert.ok(!rec.path.includes('test-key'));
    assert.ok(![...rec.query.values()].some((v) => v.includes('test-key')));
  });

  it('streams POST /ai/chat/stream with deltas, then done with usage and cost', async () => {
    const res = await request(appFor(fake))
      .post('/ai/chat/stream')
      .send(hello)
      .buffer(true)
      .parse(asText)
      .expect(200);
    const events = parseSse(res.body);
    const chunks = events.filter((e) => e.event === 'message');
    assert.equal(chunks.map((e) => e.data.delta).join(''), 'echo: hello there');
    const done = events.find((e) => e.event === 'done')!.data;
    assert.equal(done.finish_reason, 'stop');
    assert.deepEqual(done.usage, {
      prompt_tokens: 2,
      completion_tokens: 3,
      total_tokens: 5,
      cached_prompt_tokens: 1,
    });
    assert.ok(Math.abs(done.cost - costOf(2, 1, 3)) < 1e-12, `cost ${done.cost}`);
    const rec = fake.requests.at(-1)!;
    assert.equal(rec.path, `/v1beta/models/${MODEL}:streamGenerateContent`);
    assert.equal(rec.query.get('alt'), 'sse');
    assert.equal(rec.query.has('key'), false);
    assert.equal(rec.headers['x-goog-api-key'], 'test-key');
  });

  it('passes generationConfig the fake honours (max_tokens → MAX_TOKENS → length)', async () => {
    const res = await request(appFor(fake))
      .post('/ai/chat')
      .send({ ...hello, max_tokens: 2, temperature: 0.5, stop: 'zzz' })
      .expect(200);
    assert.equal(res.body.content, 'echo: hello');
    assert.equal(res.body.finish_reason, 'length');
    assert.deepEqual(fake.requests.at(-1)!.body.generationConfig, {
      maxOutputTokens: 2,
      temperature: 0.5,
      stopSequences: ['zzz'],
    });
  });

  for (const [status, clientStatus, kind] of [
    [400, 400, 'invalid_request'],
    [401, 502, 'authentication'],
    [403, 502, 'permission'],
    [429, 429, 'rate_limit'],
    [500, 502, 'server_error'],
    [503, 502, 'server_error'],
  ] as const) {
    it(`reports an upstream ${status} as ${clientStatus} ${kind}`, async () => {
      const app = appFor(fake);
      fake.fault({ status, times: 1 });
      const res = await request(app).post('/ai/chat').send(hello).expect(clientStatus);
      assert.equal(res.body.error.type, kind);
      assert.equal(res.body.error.provider, 'gemini');
      fake.fault({ status, times: 1 });
      const streamed = await request(app).post('/ai/chat/stream').send(hello).expect(clientStatus);
      assert.equal(streamed.body.error.type, kind);
    });
  }

  it('relays the quota retry delay as Retry-After', async () => {
    fake.fault({ status: 429, retryAfter: 2, times: 1 });
    const res = await request(appFor(fake)).post('/ai/chat').send(hello).expect(429);
    assert.equal(res.headers['retry-after'], '2');
  });

  it('reports a wrong key (400 API_KEY_INVALID) as 502 authentication', async () => {
    const host = hostApp({
      providers: { gemini: { api_key: 'wrong-key', base_url: fake.baseUrl, models: [MODEL] } },
      cache: { backend: 'disabled' },
      logger: silentLogger,
    });
    hosts.push(host);
    const res = await request(host.app).post('/ai/chat').send(hello).expect(502);
    assert.equal(res.body.error.type, 'authentication');
    assert.ok(!JSON.stringify(res.body).includes('wrong-key'));
  });

  it('times out a hanging upstream with 504 timeout', async () => {
    fake.fault({ hang: true, times: 1 });
    const res = await request(appFor(fake, { timeout_seconds: 0.3 }))
      .post('/ai/chat')
      .send(hello)
      .expect(504);
    assert.equal(res.body.error.type, 'timeout');
  });

  it('reports a blocked prompt as 400 content_filter, streamed or not', async () => {
    const app = appFor(fake);
    const blocked = {
      model: MODEL,
      messages: [{ role: 'user', content: `please ${GEMINI_BLOCK_PROMPT_TRIGGER}` }],
    };
    const res = await request(app).post('/ai/chat').send(blocked).expect(400);
    assert.equal(res.body.error.type, 'content_filter');
    const streamed = await request(app).post('/ai/chat/stream').send(blocked).expect(400);
    assert.equal(streamed.body.error.type, 'content_filter');
  });

  it('reports an answer stopped for safety as finish_reason content_filter, streamed or not', async () => {
    const app = appFor(fake);
    const unsafe = {
      model: MODEL,
      messages: [{ role: 'user', content: `say ${GEMINI_UNSAFE_ANSWER_TRIGGER}` }],
    };
    const res = await request(app).post('/ai/chat').send(unsafe).expect(200);
    assert.equal(res.body.content, '');
    assert.equal(res.body.finish_reason, 'content_filter');
    const streamed = await request(app)
      .post('/ai/chat/stream')
      .send(unsafe)
      .buffer(true)
      .parse(asText)
      .expect(200);
    const done = parseSse(streamed.body).find((e) => e.event === 'done')!.data;
    assert.equal(done.finish_reason, 'content_filter');
  });

  it('ends a stream with an error event when Gemini sends one mid-stream', async () => {
    fake.fault({ errorStreamAfter: 1, status: 503, times: 1 });
    const res = await request(appFor(fake))
      .post('/ai/chat/stream')
      .send(hello)
      .buffer(true)
      .parse(asText)
      .expect(200);
    const events = parseSse(res.body);
    assert.equal(events[0]!.data.delta, 'echo:');
    const error = events.find((e) => e.event === 'error');
    assert.equal(error?.data.error.type, 'server_error');
    assert.equal(
      events.some((e) => e.event === 'done'),
      false,
    );
  });

  it('answers a function call with tool_calls and finish_reason tool_calls, and accepts the result turn', async () => {
    const app = appFor(toolFake);
    const tools = [{ type: 'function', function: { name: 'get_weather', parameters: { type: 'object' } } }];
    const ask = { model: MODEL, messages: [{ role: 'user', content: 'weather in Paris?' }], tools };
    const res = await request(app).post('/ai/chat').send(ask).expect(200);
    assert.equal(res.body.finish_reason, 'tool_calls');
    assert.deepEqual(res.body.tool_calls, [
      { id: 'call_0', type: 'function', function: { name: 'get_weather', arguments: '{"city":"Paris"}' } },
    ]);
    assert.deepEqual(toolFake.requests.at(-1)!.body.tools, [
      { functionDeclarations: [{ name: 'get_weather', parameters: { type: 'object' } }] },
    ]);

    const streamed = await request(app)
      .post('/ai/chat/stream')
      .send(ask)
      .buffer(true)
      .parse(asText)
      .expect(200);
    const done = parseSse(streamed.body).find((e) => e.event === 'done')!.data;
    assert.equal(done.finish_reason, 'tool_calls');
    assert.equal(done.tool_calls[0].function.name, 'get_weather');

    // The agent loop's next turn: the fake's strict request checks accept the functionCall/functionResponse.
    const followUp = {
      ...ask,
      messages: [
        ...ask.messages,
        { role: 'assistant', content: null, tool_calls: res.body.tool_calls },
        { role: 'tool', tool_call_id: 'call_0', content: '{"temp":21}' },
      ],
    };
    await request(app).post('/ai/chat').send(followUp).expect(200);
    assert.deepEqual(toolFake.requests.at(-1)!.body.contents.slice(1), [
      { role: 'model', parts: [{ functionCall: { name: 'get_weather', args: { city: 'Paris' } } }] },
      {
        role: 'user',
        parts: [{ functionResponse: { name: 'get_weather', response: { content: { temp: 21 } } } }],
      },
    ]);
  });
});
