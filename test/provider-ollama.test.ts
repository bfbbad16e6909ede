/**
 * The Ollama adapter: request building for the native /api/chat, response and error parsing, NDJSON stream
 * parsing at every byte boundary of the fake's real bytes, and the whole gateway against the fake.
 */
import assert from 'node:assert/strict';
import request from 'supertest';
import type { ChatRequest, ResolvedProvider } from '../types/index.js';
import { silentLogger } from '../lib/logger.js';
import type { StreamPart, Target } from '../lib/providers/adapter.js';
import {
  convertOllamaToolCalls,
  convertOllamaUsage,
  convertToOllamaMessages,
  mapOllamaFinishReason,
  ollama,
  parseOllamaError,
} from '../lib/providers/ollama.js';
import { startFakeOllama } from '../lib/testing/fake-ollama.js';
import type { FakeProvider, FakeProviderOptions } from '../lib/testing/fake-server.js';
import { hostApp, itMapsUpstreamErrors, parseSse } from './helpers/setup.js';
import { assertEverySplit, streamPartsOf } from './helpers/stream-parts.js';

const MODEL = 'llama3.2';

function provider(overrides: Partial<ResolvedProvider> = {}): ResolvedProvider {
  return {
    name: 'ollama',
    type: 'ollama',
    apiKeys: [],
    baseUrl: 'http://127.0.0.1:11434',
    models: [MODEL],
    timeoutMs: 60_000,
    maxRetries: 0,
    priority: 0,
    enabled: true,
    defaultMaxTokens: 4096,
    headers: {},
    ...overrides,
  };
}

function target(stream = false, apiKey?: string): Target {
  return { provider: provider(), model: MODEL, apiKey, stream };
}

function chat(extra: Partial<ChatRequest> = {}): ChatRequest {
  return { model: MODEL, messages: [{ role: 'user', content: 'hello' }], ...extra };
}

const weatherTool = {
  type: 'function' as const,
  function: {
    name: 'get_weather',
    description: 'Weather for a city',
    parameters: { type: 'object', properties: { city: { type: 'string' } }, required: ['city'] },
  },
};

/** Parses a whole stream body fed to the frame parser in the pieces given. */
const partsOf = (pieces: (Uint8Array | string)[]): StreamPart[] => streamPartsOf(ollama, pieces);

/** The raw NDJSON bytes the fake streams for one request, fetched without the gateway. */
async function rawStream(options: FakeProviderOptions, body: Record<string, unknown>): Promise<Uint8Array> {
  const fake = await startFakeOllama(options);
  try {
    const res = await fetch(`${fake.baseUrl}/api/chat`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ model: MODEL, stream: true, ...body }),
    });
    assert.equal(res.status, 200);
    assert.match(res.headers.get('content-type') ?? '', /ndjson/);
    return new Uint8Array(await res.arrayBuffer());
  } finally {
    await fake.close();
  }
}

describe('ollama adapter: buildRequest', () => {
  it('posts to api/chat without a key, and with a Bearer key when one is configured', () => {
    const built = ollama.buildRequest(chat(), target());
    assert.equal(built.url, 'http://127.0.0.1:11434/api/chat');
    assert.equal(built.headers.authorization, undefined);
    assert.equal(
      ollama.buildRequest(chat(), target(false, 'proxy-key')).headers.authorization,
      'Bearer proxy-key',
    );
  });

  it('always sends stream explicitly, since Ollama streams by default', () => {
    assert.equal((ollama.buildRequest(chat(), target(false)).body as any).stream, false);
    assert.equal((ollama.buildRequest(chat(), target(true)).body as any).stream, true);
    assert.equal(ollama.streamFraming, 'ndjson');
  });

  it('moves the sampling fields into options, with stop as an array', () => {
    const body = ollama.buildRequest(
      chat({ max_tokens: 50, temperature: 0.2, top_p: 0.9, stop: 'END', user: 'u', metadata: { a: 1 } }),
      target(),
    ).body;
    assert.deepEqual(body, {
      model: MODEL,
      messages: [{ role: 'user', content: 'hello' }],
      stream: false,
      options: { num_predict: 50, temperature: 0.2, top_p: 0.9, stop: ['END'] },
    });
    const noOptions = ollama.buildRequest(chat(), target()).body as Record<string, unknown>;
    assert.equal('options' in noOptions, false);
    const stops = ollama.buildRequest(chat({ stop: ['a', 'b'] }), target()).body as any;
    assert.deepEqual(stops.options, { stop: ['a', 'b'] });
  });

  it('offers tools in the OpenAI function shape, narrowed by tool_choice', () => {
    assert.deepEqual((ollama.buildRequest(chat({ tools: [weatherTool] }), target()).body as any).tools, [
      weatherTool,
    ]);
    const none = ollama.buildRequest(chat({ tools: [weatherTool], tool_choice: 'none' }), target())
      .body as any;
    assert.equal('tools' in none, false);
    assert.equal('tool_choice' in none, false);
    const otherTool = { type: 'function' as const, function: { name: 'get_time' } };
    const forced = ollama.buildRequest(
      chat({
        tools: [otherTool, weatherTool],
        tool_choice: { type: 'function', function: { name: 'get_weather' } },
      }),
      target(),
    ).body as any;
    assert.deepEqual(forced.tools, [weatherTool]);
    const required = ollama.buildRequest(
      chat({ tools: [otherTool, weatherTool], tool_choice: 'required' }),
      target(),
    ).body as any;
    assert.deepEqual(required.tools, [otherTool, weatherTool]);
  });

  it('sends assistant tool calls with object arguments and tool results with tool_name', () => {
    const messages = convertToOllamaMessages([
      { role: 'system', content: 'be brief' },
      { role: 'user', content: 'weather?' },
      {
        role: 'assistant',
        content: null,
        tool_calls: [
          { id: 'c1', type: 'function', function: { name: 'get_weather', arguments: '{"city":"Paris"}' } },
          { id: 'c2', type: 'function', function: { name: 'broken', arguments: 'not json' } },
        ],
      },
      { role: 'tool', content: '{"temp":20}', tool_call_id: 'c1' },
      { role: 'tool', content: 'x', tool_call_id: 'unknown' },
    ]);
    assert.deepEqual(messages, [
      { role: 'system', content: 'be brief' },
      { role: 'user', content: 'weather?' },
      {
        role: 'assistant',
        content: '',
        tool_calls: [
          { function: { name: 'get_weather', arguments: { city: 'Paris' } } },
          { function: { name: 'broken', arguments: {} } },
        ],
      },
      { role: 'tool', content: '{"temp":20}', tool_name: 'get_weather' },
      { role: 'tool', content: 'x' },
    ]);
  });
});

describe('ollama adapter: parseResponse', () => {
  it('reads content, done_reason and the token counts', () => {
    const result = ollama.parseResponse(
      {
        model: MODEL,
        message: { role: 'assistant', content: 'hi' },
        done: true,
        done_reason: 'length',
        prompt_eval_count: 7,
        eval_count: 3,
      },
      target(),
    );
    assert.deepEqual(result, {
      content: 'hi',
      finish_reason: 'length',
      usage: { prompt_tokens: 7, completion_tokens: 3, total_tokens: 10 },
    });
  });

  it('turns object arguments into JSON strings, keeping ids and generating missing ones', () => {
    const result = ollama.parseResponse(
      {
        message: {
          role: 'assistant',
          content: '',
          tool_calls: [
            { id: 'call_1', function: { index: 0, name: 'f', arguments: { city: 'Paris' } } },
            { function: { name: 'g', arguments: {} } },
          ],
        },
        done: true,
        done_reason: 'stop',
        eval_count: 4,
      },
      target(),
    );
    assert.equal(result.finish_reason, 'tool_calls');
    assert.deepEqual(result.tool_calls![0], {
      id: 'call_1',
      type: 'function',
      function: { name: 'f', arguments: '{"city":"Paris"}' },
    });
    assert.match(result.tool_calls![1].id, /^call_[0-9a-f]{24}$/);
    assert.equal(result.tool_calls![1].function.arguments, '{}');
    const again = convertOllamaToolCalls([{ function: { name: 'g', arguments: {} } }]);
    assert.notEqual(again[0].id, result.tool_calls![1].id);
    assert.deepEqual(result.usage, { prompt_tokens: 0, completion_tokens: 4, total_tokens: 4 });
  });

  it('throws server_error for an error body or a body without a message', () => {
    assert.throws(() => ollama.parseResponse({ error: 'boom' }, target()), { kind: 'server_error' });
    assert.throws(() => ollama.parseResponse({ done: true }, target()), { kind: 'server_error' });
  });

  it('maps every done_reason and reads usage', () => {
    const table: [unknown, string][] = [
      ['stop', 'stop'],
      ['length', 'length'],
      ['load', 'other'],
      ['unload', 'other'],
      [undefined, 'other'],
    ];
    for (const [raw, unified] of table) assert.equal(mapOllamaFinishReason(raw), unified, String(raw));
    assert.deepEqual(convertOllamaUsage({ prompt_eval_count: 2, eval_count: 5 }), {
      prompt_tokens: 2,
      completion_tokens: 5,
      total_tokens: 7,
    });
    assert.deepEqual(convertOllamaUsage(undefined), {
      prompt_tokens: 0,
      completion_tokens: 0,
      total_tokens: 0,
    });
  });
});

describe('ollama adapter: parseError', () => {
  it('reads {"error"} bodies, text bodies, and falls back to the status', () => {
    assert.deepEqual(parseOllamaError(404, { error: "model 'x' not found" }), {
      message: "model 'x' not found",
    });
    assert.deepEqual(parseOllamaError(404, '404 page not found'), { message: '404 page not found' });
    assert.deepEqual(parseOllamaError(502, { error: { message: 'proxy failed' } }), {
      message: 'proxy failed',
    });
    assert.deepEqual(parseOllamaError(500, ''), { message: 'HTTP 500' });
    assert.deepEqual(parseOllamaError(500, {}), { message: 'HTTP 500' });
  });
});

describe('ollama adapter: stream parsing', () => {
  it('turns lines into deltas and the done line into finish and usage', () => {
    const state = ollama.createStreamState();
    const line = (v: unknown) => ({ data: JSON.stringify(v) });
    assert.deepEqual(ollama.parseStreamEvent(line({ message: { content: 'Hi' }, done: false }), state), [
      { type: 'delta', text: 'Hi' },
    ]);
    assert.deepEqual(
      ollama.parseStreamEvent(
        line({
          message: { content: '' },
          done: true,
          done_reason: 'length',
          prompt_eval_count: 4,
          eval_count: 1,
        }),
        state,
      ),
      [
        { type: 'finish', finish_reason: 'length' },
        { type: 'usage', usage: { prompt_tokens: 4, completion_tokens: 1, total_tokens: 5 } },
      ],
    );
  });

  it('reports an error line and a malformed line as server_error parts', () => {
    const state = ollama.createStreamState();
    assert.deepEqual(ollama.parseStreamEvent({ data: '{"error":"model runner crashed"}' }, state), [
      { type: 'error', kind: 'server_error', message: 'model runner crashed' },
    ]);
    assert.equal(ollama.parseStreamEvent({ data: '{"message":' }, state)[0].type, 'error');
  });

  for (const [label, options, body] of [
    ['text with multi-byte characters', { reply: () => 'héllo wörld 🌍 ünïcode' }, {}],
    [
      'a tool call',
      { toolCall: { name: 'get_weather', arguments: { city: 'Zürich' } } },
      { tools: [weatherTool] },
    ],
  ] as const) {
    it(`parses the fake's stream of ${label} the same at every byte boundary, LF and CRLF`, async () => {
      const bytes = await rawStream(options, { messages: [{ role: 'user', content: 'hi there' }], ...body });
      const expected = partsOf([bytes]);
      assert.ok(expected.some((p) => p.type === 'finish'));
      assert.ok(expected.some((p) => p.type === 'usage'));
      assertEverySplit(ollama, bytes, expected);
      const crlf = new TextEncoder().encode(new TextDecoder().decode(bytes).replace(/\n/g, '\r\n'));
      assertEverySplit(ollama, crlf, expected, 'CRLF split');
    });
  }

  it('yields the text, finish and usage of the fake stream, and a tool call before the finish', async () => {
    const text = partsOf([await rawStream({}, { messages: [{ role: 'user', content: 'hi there' }] })]);
    assert.equal(text.map((p) => (p.type === 'delta' ? p.text : '')).join(''), 'echo: hi there');
    assert.deepEqual(text.slice(-2), [
      { type: 'finish', finish_reason: 'stop' },
      { type: 'usage', usage: { prompt_tokens: 2, completion_tokens: 3, total_tokens: 5 } },
    ]);

    const tool = partsOf([
      await rawStream(
        { toolCall: { name: 'get_weather', arguments: { city: 'Paris' } } },
        { messages: [{ role: 'user', content: 'hi' }], tools: [weatherTool] },
      ),
    ]);
    assert.deepEqual(
      tool.map((p) => p.type),
      ['tool_calls', 'finish', 'usage'],
    );
    const calls = (tool[0] as Extract<StreamPart, { type: 'tool_calls' }>).tool_calls;
    assert.deepEqual(calls[0].function, { name: 'get_weather', arguments: '{"city":"Paris"}' });
    assert.deepEqual(tool[1], { type: 'finish', finish_reason: 'tool_calls' });
  });
});

describe('ollama adapter: through the gateway against the fake', () => {
  let fake: FakeProvider;
  let app: ReturnType<typeof hostApp>['app'];
  const config = (baseUrl: string, extra: Record<string, unknown> = {}) => ({
    providers: { ollama: { base_url: baseUrl, models: [MODEL], max_retries: 0, ...extra } },
    // The scenarios repeat prompts and fault single requests: the cache and retries would hide them.
    cache: { backend: 'disabled' as const },
    logger: silentLogger,
  });

  before(async () => {
    fake = await startFakeOllama();
    app = hostApp(config(fake.baseUrl)).app;
  });
  after(() => fake.close());
  beforeEach(() => fake.clearFaults());

  const messages = [
    { role: 'system', content: 'Be brief.' },
    { role: 'user', content: 'hello there friend' },
  ];

  it('answers POST /ai/chat with content, usage and zero cost', async () => {
    const res = await request(app)
      .post('/ai/chat')
      .send({ model: MODEL, messages, max_tokens: 100, stop: 'zzz' });
    assert.equal(res.status, 200, JSON.stringify(res.body));
    assert.equal(res.body.provider, 'ollama');
    assert.equal(res.body.content, 'echo: hello there friend');
    assert.equal(res.body.finish_reason, 'stop');
    assert.deepEqual(res.body.usage, { prompt_tokens: 5, completion_tokens: 4, total_tokens: 9 });
    assert.equal(res.body.cost, 0);
    const sent = fake.requests.at(-1)!;
    assert.equal(sent.path, '/api/chat');
    assert.equal(sent.headers.authorization, undefined);
    assert.equal(sent.body.stream, false);
    assert.deepEqual(sent.body.messages[0], { role: 'system', content: 'Be brief.' });
    assert.deepEqual(sent.body.options, { num_predict: 100, stop: ['zzz'] });
  });

  it('reports a num_predict cut as length, and a stop cut as stop', async () => {
    const cut = await request(app).post('/ai/chat').send({ model: MODEL, messages, max_tokens: 2 });
    assert.equal(cut.body.content, 'echo: hello');
    assert.equal(cut.body.finish_reason, 'length');
    const stopped = await request(app)
      .post('/ai/chat')
      .send({ model: MODEL, messages, stop: ['there'] });
    assert.equal(stopped.body.content, 'echo: hello ');
    assert.equal(stopped.body.finish_reason, 'stop');
  });

  it('streams POST /ai/chat/stream from NDJSON with usage from the done line', async () => {
    const res = await request(app).post('/ai/chat/stream').send({ model: MODEL, messages });
    assert.equal(res.status, 200);
    const events = parseSse(res.text);
    assert.equal(
      events
        .filter((e) => e.event === 'message')
        .map((e) => e.data.delta)
        .join(''),
      'echo: hello there friend',
    );
    const done = events.at(-1)!;
    assert.equal(done.event, 'done');
    assert.equal(done.data.finish_reason, 'stop');
    assert.deepEqual(done.data.usage, { prompt_tokens: 5, completion_tokens: 4, total_tokens: 9 });
    assert.equal(done.data.cost, 0);
    assert.equal(fake.requests.at(-1)!.body.stream, true);
  });

  it('sends the Bearer key when the provider has one (an authenticating proxy)', async () => {
    const guarded = await startFakeOllama({ apiKeys: ['proxy-key'] });
    try {
      const keyed = await request(hostApp(config(guarded.baseUrl, { api_key: 'proxy-key' })).app)
        .post('/ai/chat')
        .send({ model: MODEL, messages });
      assert.equal(keyed.status, 200);
      assert.equal(guarded.requests.at(-1)!.headers.authorization, 'Bearer proxy-key');
      const keyless = await request(hostApp(config(guarded.baseUrl)).app)
        .post('/ai/chat')
        .send({ model: MODEL, messages });
      assert.equal(keyless.status, 502);
      assert.equal(keyless.body.error.type, 'authentication');
      assert.match(keyless.body.error.message, /unauthorized/);
    } finally {
      await guarded.close();
    }
  });

  it('round-trips tool calls, streaming or not', async () => {
    const toolFake = await startFakeOllama({
      toolCall: { name: 'get_weather', arguments: { city: 'Paris' } },
    });
    try {
      const toolApp = hostApp(config(toolFake.baseUrl)).app;
      const res = await request(toolApp)
        .post('/ai/chat')
        .send({ model: MODEL, messages, tools: [weatherTool] });
      assert.equal(res.status, 200, JSON.stringify(res.body));
      assert.equal(res.body.finish_reason, 'tool_calls');
      assert.equal(res.body.content, '');
      assert.deepEqual(res.body.tool_calls[0].function, {
        name: 'get_weather',
        arguments: '{"city":"Paris"}',
      });
      assert.ok(res.body.tool_calls[0].id);
      assert.deepEqual(toolFake.requests.at(-1)!.body.tools, [weatherTool]);

      const stream = await request(toolApp)
        .post('/ai/chat/stream')
        .send({ model: MODEL, messages, tools: [weatherTool] });
      const done = parseSse(stream.text).at(-1)!;
      assert.equal(done.event, 'done');
      assert.equal(done.data.finish_reason, 'tool_calls');
      assert.deepEqual(done.data.tool_calls[0].function, {
        name: 'get_weather',
        arguments: '{"city":"Paris"}',
      });

      const followUp = await request(toolApp)
        .post('/ai/chat')
        .send({
          model: MODEL,
          tools: [weatherTool],
          messages: [
            { role: 'user', content: 'weather in Paris?' },
            { role: 'assistant', content: null, tool_calls: res.body.tool_calls },
            { role: 'tool', tool_call_id: res.body.tool_calls[0].id, content: '{"temp":20}' },
          ],
        });
      assert.equal(followUp.status, 200, JSON.stringify(followUp.body));
      const sent = toolFake.requests.at(-1)!.body.messages;
      assert.deepEqual(sent[1], {
        role: 'assistant',
        content: '',
        tool_calls: [{ function: { name: 'get_weather', arguments: { city: 'Paris' } } }],
      });
      assert.deepEqual(sent[2], { role: 'tool', content: '{"temp":20}', tool_name: 'get_weather' });
    } finally {
      await toolFake.close();
    }
  });

  itMapsUpstreamErrors(
    'ollama',
    [
      [400, 400, 'invalid_request'],
      [401, 502, 'authentication'],
      [429, 429, 'rate_limit'],
      [500, 502, 'server_error'],
      [503, 502, 'server_error'],
    ],
    () => ({ app, fake, body: { model: MODEL, messages } }),
  );

  it('reports an unknown model and a wrong base URL (text 404) as not_found', async () => {
    const unknown = await request(hostApp(config(fake.baseUrl, { models: ['does-not-exist'] })).app)
      .post('/ai/chat')
      .send({ model: 'does-not-exist', messages });
    assert.equal(unknown.status, 502);
    assert.equal(unknown.body.error.type, 'not_found');
    assert.match(unknown.body.error.message, /model 'does-not-exist' not found/);

    const wrongPath = await request(hostApp(config(`${fake.baseUrl}/v1`)).app)
      .post('/ai/chat')
      .send({ model: MODEL, messages });
    assert.equal(wrongPath.status, 502);
    assert.equal(wrongPath.body.error.type, 'not_found');
    assert.match(wrongPath.body.error.message, /404 page not found/);
  });

  it('times out a hanging upstream with 504', async () => {
    const slow = hostApp(config(fake.baseUrl, { timeout_seconds: 0.3 })).app;
    fake.fault({ hang: true, times: 2 });
    const res = await request(slow).post('/ai/chat').send({ model: MODEL, messages });
    assert.equal(res.status, 504);
    assert.equal(res.body.error.type, 'timeout');
    const stream = await request(slow).post('/ai/chat/stream').send({ model: MODEL, messages });
    assert.equal(stream.status, 504);
    assert.equal(stream.body.error.type, 'timeout');
  });

  it('ends a stream with an error event for an error line or a cut connection', async () => {
    fake.fault({ errorStreamAfter: 2, message: 'model runner crashed', times: 1 });
    const errored = parseSse(
      (await request(app).post('/ai/chat/stream').send({ model: MODEL, messages })).text,
    );
    assert.equal(errored.filter((e) => e.event === 'message').length, 2);
    assert.equal(errored.at(-1)!.event, 'error');
    assert.equal(errored.at(-1)!.data.error.type, 'server_error');
    assert.match(errored.at(-1)!.data.error.message, /model runner crashed/);

    fake.fault({ cutStreamAfter: 1, times: 1 });
    const cut = parseSse((await request(app).post('/ai/chat/stream').send({ model: MODEL, messages })).text);
    assert.equal(cut.at(-1)!.event, 'error');
    assert.equal(
      cut.some((e) => e.event === 'done'),
      false,
    );
  });

  it('answers an error before the first line (a JSON 500) with 502 server_error', async () => {
    fake.fault({ errorStreamAfter: 0, message: 'out of memory', times: 1 });
    const res = await request(app).post('/ai/chat/stream').send({ model: MODEL, messages });
    assert.equal(res.status, 502);
    assert.equal(res.body.error.type, 'server_error');
    assert.match(res.body.error.message, /out of memory/);
  });
});
