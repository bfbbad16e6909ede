/**
 * The Mistral adapter: request building against Mistral's strict schema, response and error parsing, stream
 * parsing at every byte boundary of the fake's real bytes, and the whole gateway against the fake.
 */
import assert from 'node:assert/strict';
import request from 'supertest';
import type { ChatRequest, ResolvedProvider } from '../types/index.js';
import { silentLogger } from '../lib/logger.js';
import type { StreamPart, Target } from '../lib/providers/adapter.js';
import {
  convertToMistralMessages,
  mapMistralFinishReason,
  mistral,
  normalizeMistralArguments,
  parseMistralError,
  toMistralToolCallId,
} from '../lib/providers/mistral.js';
import { startFakeMistral } from '../lib/testing/fake-mistral.js';
import type { FakeProvider, FakeProviderOptions } from '../lib/testing/fake-server.js';
import { hostApp, itMapsUpstreamErrors, parseSse } from './helpers/setup.js';
import { assertEverySplit, streamPartsOf } from './helpers/stream-parts.js';

const MODEL = 'mistral-large-latest';

function provider(overrides: Partial<ResolvedProvider> = {}): ResolvedProvider {
  return {
    name: 'mistral',
    type: 'mistral',
    apiKeys: ['test-key'],
    baseUrl: 'https://api.mistral.ai',
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

function target(stream = false, overrides: Partial<ResolvedProvider> = {}): Target {
  return { provider: provider(overrides), model: MODEL, apiKey: 'test-key', stream };
}

function chat(extra: Partial<ChatRequest> = {}): ChatRequest {
  return { model: MODEL, messages: [{ role: 'user', content: 'hello' }], ...extra };
}

const weatherTool = {
  type: 'function' as const,
  function: {
    name: 'get_weather',
    description: 'Weather for a city',
    parameters: { type: 'object', properties: { city: { type: 'string' } } },
  },
};

/** Parses a whole stream body fed to the frame parser in the pieces given. */
const partsOf = (pieces: (Uint8Array | string)[]): StreamPart[] => streamPartsOf(mistral, pieces);

/** The raw bytes the fake streams for one request, fetched without the gateway. */
async function rawStream(options: FakeProviderOptions, body: Record<string, unknown>): Promise<Uint8Array> {
  const fake = await startFakeMistral(options);
  try {
    const res = await fetch(`${fake.baseUrl}/v1/chat/completions`, {
      method: 'POST',
      headers: { authorization: 'Bearer test-key', 'content-type': 'application/json' },
      body: JSON.stringify({ model: MODEL, stream: true, ...body }),
    });
    assert.equal(res.status, 200);
    return new Uint8Array(await res.arrayBuffer());
  } finally {
    await fake.close();
  }
}

describe('mistral adapter: buildRequest', () => {
  it('posts to v1/chat/completions under the base URL with a Bearer key', () => {
    const built = mistral.buildRequest(chat(), target(false, { baseUrl: 'https://api.mistral.ai/' }));
    assert.equal(built.url, 'https://api.mistral.ai/v1/chat/completions');
    assert.equal(built.headers.authorization, 'Bearer test-key');
    assert.equal(built.headers['content-type'], 'application/json');
  });

  it('maps the sampling fields and never sends fields Mistral rejects', () => {
    const built = mistral.buildRequest(
      chat({ max_tokens: 50, temperature: 0.2, top_p: 0.9, stop: ['END'], user: 'u1', metadata: { a: 1 } }),
      { ...target(true), model: 'o1-looking-name' },
    );
    const body = built.body as Record<string, unknown>;
    assert.deepEqual(body, {
      model: 'o1-looking-name',
      messages: [{ role: 'user', content: 'hello' }],
      max_tokens: 50,
      temperature: 0.2,
      top_p: 0.9,
      stop: ['END'],
      stream: true,
    });
    for (const forbidden of ['stream_options', 'max_completion_tokens', 'store', 'user', 'metadata']) {
      assert.equal(forbidden in body, false, forbidden);
    }
  });

  it('leaves stream out of a non-streaming request', () => {
    const body = mistral.buildRequest(chat(), target(false)).body as Record<string, unknown>;
    assert.equal('stream' in body, false);
  });

  it('passes tools and every tool_choice form Mistral accepts', () => {
    for (const choice of [
      'auto',
      'none',
      'required',
      { type: 'function', function: { name: 'get_weather' } },
    ] as const) {
      const body = mistral.buildRequest(chat({ tools: [weatherTool], tool_choice: choice }), target())
        .body as any;
      assert.deepEqual(body.tools, [weatherTool]);
      assert.deepEqual(body.tool_choice, choice);
    }
  });

  it('keeps names only on tool messages, filling them in from the call answered', () => {
    const messages = convertToMistralMessages([
      { role: 'system', content: 'be brief', name: 'sys' },
      { role: 'user', content: 'weather?', name: 'alice' },
      {
        role: 'assistant',
        content: null,
        name: 'bot',
        tool_calls: [
          {
            id: 'abcDEF123',
            type: 'function',
            function: { name: 'get_weather', arguments: '{"city":"Paris"}' },
          },
        ],
      },
      { role: 'tool', content: '{"temp":20}', tool_call_id: 'abcDEF123' },
    ]);
    assert.deepEqual(messages, [
      { role: 'system', content: 'be brief' },
      { role: 'user', content: 'weather?' },
      {
        role: 'assistant',
        content: null,
        tool_calls: [
          {
            id: 'abcDEF123',
            type: 'function',
            function: { name: 'get_weather', arguments: '{"city":"Paris"}' },
          },
        ],
      },
      { role: 'tool', content: '{"temp":20}', tool_call_id: 'abcDEF123', name: 'get_weather' },
    ]);
  });

  it('maps foreign tool call ids to 9 alphanumerics, the same on the call and its result', () => {
    assert.equal(toMistralToolCallId('abcDEF123'), 'abcDEF123');
    const mapped = toMistralToolCallId('call_Xy7_from_openai');
    assert.match(mapped, /^[a-zA-Z0-9]{9}$/);
    assert.equal(toMistralToolCallId('call_Xy7_from_openai'), mapped);
    assert.notEqual(toMistralToolCallId('call_other'), mapped);
    const messages = convertToMistralMessages([
      { role: 'user', content: 'hi' },
      {
        role: 'assistant',
        content: null,
        tool_calls: [
          { id: 'call_Xy7_from_openai', type: 'function', function: { name: 'f', arguments: '{}' } },
        ],
      },
      { role: 'tool', content: 'ok', tool_call_id: 'call_Xy7_from_openai', name: 'f' },
    ]);
    assert.equal((messages[1].tool_calls as any)[0].id, mapped);
    assert.equal(messages[2].tool_call_id, mapped);
  });
});

describe('mistral adapter: parseResponse', () => {
  it('reads content, finish reason and usage with cached tokens', () => {
    const result = mistral.parseResponse(
      {
        id: 'x',
        object: 'chat.completion',
        model: MODEL,
        usage: {
          prompt_tokens: 10,
          completion_tokens: 4,
          total_tokens: 14,
          prompt_tokens_details: { cached_tokens: 6 },
        },
        choices: [
          {
            index: 0,
            message: { role: 'assistant', tool_calls: null, content: 'hi' },
            finish_reason: 'stop',
          },
        ],
      },
      target(),
    );
    assert.deepEqual(result, {
      content: 'hi',
      finish_reason: 'stop',
      usage: { prompt_tokens: 10, completion_tokens: 4, total_tokens: 14, cached_prompt_tokens: 6 },
    });
  });

  it('normalises tool call arguments given as a string or an object', () => {
    const result = mistral.parseResponse(
      {
        usage: { prompt_tokens: 1, completion_tokens: 1, total_tokens: 2 },
        choices: [
          {
            message: {
              content: '',
              tool_calls: [
                { id: 'aaaaaaaaa', function: { name: 'f', arguments: '{"a":1}' } },
                { id: 'bbbbbbbbb', function: { name: 'g', arguments: { b: 2 } } },
              ],
            },
            finish_reason: 'tool_calls',
          },
        ],
      },
      target(),
    );
    assert.equal(result.finish_reason, 'tool_calls');
    assert.deepEqual(result.tool_calls, [
      { id: 'aaaaaaaaa', type: 'function', function: { name: 'f', arguments: '{"a":1}' } },
      { id: 'bbbbbbbbb', type: 'function', function: { name: 'g', arguments: '{"b":2}' } },
    ]);
    assert.equal(normalizeMistralArguments(undefined), '');
  });

  it('keeps only text chunks of list content (thinking is not the answer)', () => {
    const result = mistral.parseResponse(
      {
        choices: [
          {
            message: {
              content: [
                { type: 'thinking', thinking: [{ type: 'text', text: 'hmm' }] },
                { type: 'text', text: 'Paris' },
              ],
            },
            finish_reason: 'stop',
          },
        ],
      },
      target(),
    );
    assert.equal(result.content, 'Paris');
    assert.deepEqual(result.usage, { prompt_tokens: 0, completion_tokens: 0, total_tokens: 0 });
  });

  it('throws server_error for an answer without choices', () => {
    assert.throws(() => mistral.parseResponse({ choices: [] }, target()), { kind: 'server_error' });
  });

  it('maps every finish reason', () => {
    const table: [unknown, string][] = [
      ['stop', 'stop'],
      ['length', 'length'],
      ['model_length', 'length'],
      ['tool_calls', 'tool_calls'],
      ['error', 'error'],
      [null, 'other'],
      ['something_new', 'other'],
    ];
    for (const [raw, unified] of table) assert.equal(mapMistralFinishReason(raw), unified, String(raw));
  });
});

describe('mistral adapter: parseError', () => {
  it('reads Mistral error objects', () => {
    const info = parseMistralError(400, {
      object: 'error',
      message: 'Invalid model: nope',
      type: 'invalid_model',
      param: null,
      code: '1500',
    });
    assert.deepEqual(info, { message: 'Invalid model: nope' });
  });

  it('reads FastAPI string details', () => {
    assert.deepEqual(parseMistralError(401, { detail: 'Unauthorized' }), { message: 'Unauthorized' });
  });

  it('builds a 422 message from every location and message, as invalid_request', () => {
    const info = parseMistralError(422, {
      detail: [
        {
          type: 'extra_forbidden',
          loc: ['body', 'stream_options'],
          msg: 'Extra inputs are not permitted',
          input: {},
        },
        {
          type: 'less_than_equal',
          loc: ['body', 'temperature'],
          msg: 'Input should be less than or equal to 1.5',
        },
      ],
    });
    assert.equal(info.kind, 'invalid_request');
    assert.equal(
      info.message,
      'body.stream_options: Extra inputs are not permitted; body.temperature: Input should be less than or equal to 1.5',
    );
  });

  it('falls back to the text or the status', () => {
    assert.deepEqual(parseMistralError(502, '<html>Bad gateway</html>\n'), {
      message: '<html>Bad gateway</html>',
    });
    assert.deepEqual(parseMistralError(503, {}), { message: 'HTTP 503' });
    assert.deepEqual(parseMistralError(429, { message: 'Requests rate limit exceeded' }), {
      message: 'Requests rate limit exceeded',
    });
  });
});

describe('mistral adapter: stream parsing', () => {
  it('turns content chunks into deltas and the last chunk into finish and usage', () => {
    const state = mistral.createStreamState();
    const chunk = (delta: unknown, finish: string | null, usage?: unknown) => ({
      data: JSON.stringify({
        choices: [{ index: 0, delta, finish_reason: finish }],
        ...(usage ? { usage } : {}),
      }),
    });
    assert.deepEqual(mistral.parseStreamEvent(chunk({ role: 'assistant', content: '' }, null), state), []);
    assert.deepEqual(mistral.parseStreamEvent(chunk({ content: 'Hi' }, null), state), [
      { type: 'delta', text: 'Hi' },
    ]);
    assert.deepEqual(
      mistral.parseStreamEvent(
        chunk({ content: '!' }, 'model_length', { prompt_tokens: 3, completion_tokens: 2, total_tokens: 5 }),
        state,
      ),
      [
        { type: 'delta', text: '!' },
        { type: 'finish', finish_reason: 'length' },
        { type: 'usage', usage: { prompt_tokens: 3, completion_tokens: 2, total_tokens: 5 } },
      ],
    );
    assert.deepEqual(mistral.parseStreamEvent({ data: '[DONE]' }, state), []);
    assert.deepEqual(mistral.endStream!(state), []);
  });

  it('collects tool calls with object or string arguments and hands them over before the finish', () => {
    const state = mistral.createStreamState();
    const parts = mistral.parseStreamEvent(
      {
        data: JSON.stringify({
          choices: [
            {
              delta: {
                tool_calls: [
                  { id: 'aaaaaaaaa', index: 0, function: { name: 'f', arguments: { x: 1 } } },
                  { id: 'bbbbbbbbb', index: 0, function: { name: 'g', arguments: '{"y":2}' } },
                ],
              },
              finish_reason: 'tool_calls',
            },
          ],
        }),
      },
      state,
    );
    assert.deepEqual(parts, [
      {
        type: 'tool_calls',
        tool_calls: [
          { id: 'aaaaaaaaa', type: 'function', function: { name: 'f', arguments: '{"x":1}' } },
          { id: 'bbbbbbbbb', type: 'function', function: { name: 'g', arguments: '{"y":2}' } },
        ],
      },
      { type: 'finish', finish_reason: 'tool_calls' },
    ]);
    assert.deepEqual(mistral.endStream!(state), []);
  });

  it('reports error events and malformed chunks as server_error parts', () => {
    const state = mistral.createStreamState();
    assert.deepEqual(
      mistral.parseStreamEvent(
        {
          data: JSON.stringify({
            object: 'error',
            message: 'boom',
            type: 'internal_server_error',
            code: null,
          }),
        },
        state,
      ),
      [{ type: 'error', kind: 'server_error', message: 'boom' }],
    );
    assert.equal(mistral.parseStreamEvent({ data: '{not json' }, state)[0].type, 'error');
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
      assertEverySplit(mistral, bytes, expected);
      const crlf = new TextEncoder().encode(new TextDecoder().decode(bytes).replace(/\n/g, '\r\n'));
      assertEverySplit(mistral, crlf, expected, 'CRLF split');
    });
  }

  it('yields the text, finish and usage of the fake stream', async () => {
    const bytes = await rawStream({}, { messages: [{ role: 'user', content: 'hi there' }] });
    const parts = partsOf([bytes]);
    const text = parts.map((p) => (p.type === 'delta' ? p.text : '')).join('');
    assert.equal(text, 'echo: hi there');
    assert.deepEqual(parts.slice(-2), [
      { type: 'finish', finish_reason: 'stop' },
      { type: 'usage', usage: { prompt_tokens: 2, completion_tokens: 3, total_tokens: 5 } },
    ]);
  });
});

describe('mistral adapter: through the gateway against the fake', () => {
  let fake: FakeProvider;
  let app: ReturnType<typeof hostApp>['app'];
  const config = (baseUrl: string, extra: Record<string, unknown> = {}) => ({
    providers: {
      mistral: { api_key: 'test-key', base_url: baseUrl, models: [MODEL], max_retries: 0, ...extra },
    },
    // The scenarios repeat prompts and fault single requests: the cache and retries would hide them.
    cache: { backend: 'disabled' as const },
    logger: silentLogger,
  });

  before(async () => {
    fake = await startFakeMistral();
    app = hostApp(config(fake.baseUrl)).app;
  });
  after(() => fake.close());
  beforeEach(() => fake.clearFaults());

  const messages = [
    { role: 'system', content: 'Be brief.' },
    { role: 'user', content: 'hello there friend' },
  ];

  it('answers POST /ai/chat with content, usage and cost', async () => {
    const res = await request(app).post('/ai/chat').send({ model: MODEL, messages, max_tokens: 100 });
    assert.equal(res.status, 200, JSON.stringify(res.body));
    assert.equal(res.body.provider, 'mistral');
    assert.equal(res.body.content, 'echo: hello there friend');
    assert.equal(res.body.finish_reason, 'stop');
    assert.deepEqual(res.body.usage, { prompt_tokens: 5, completion_tokens: 4, total_tokens: 9 });
    assert.equal(res.body.cost, (5 * 2 + 4 * 6) / 1e6);
    const sent = fake.requests.at(-1)!;
    assert.equal(sent.path, '/v1/chat/completions');
    assert.equal(sent.headers.authorization, 'Bearer test-key');
    assert.deepEqual(sent.body.messages[0], { role: 'system', content: 'Be brief.' });
    assert.equal(sent.body.max_tokens, 100);
  });

  it('reports a max_tokens cut as length', async () => {
    const res = await request(app).post('/ai/chat').send({ model: MODEL, messages, max_tokens: 2 });
    assert.equal(res.status, 200);
    assert.equal(res.body.content, 'echo: hello');
    assert.equal(res.body.finish_reason, 'length');
  });

  it('streams POST /ai/chat/stream with usage from the last content chunk', async () => {
    const res = await request(app).post('/ai/chat/stream').send({ model: MODEL, messages });
    assert.equal(res.status, 200);
    const events = parseSse(res.text);
    const chunks = events.filter((e) => e.event === 'message');
    assert.equal(chunks.map((e) => e.data.delta).join(''), 'echo: hello there friend');
    const done = events.at(-1)!;
    assert.equal(done.event, 'done');
    assert.equal(done.data.finish_reason, 'stop');
    assert.deepEqual(done.data.usage, { prompt_tokens: 5, completion_tokens: 4, total_tokens: 9 });
    assert.equal(done.data.cost, (5 * 2 + 4 * 6) / 1e6);
    const sent = fake.requests.at(-1)!.body;
    assert.equal(sent.stream, true);
    assert.equal('stream_options' in sent, false);
    assert.deepEqual(sent.messages[0], { role: 'system', content: 'Be brief.' });
  });

  it('round-trips a tool call conversation, with foreign ids mapped for Mistral', async () => {
    const toolFake = await startFakeMistral({
      toolCall: { name: 'get_weather', arguments: { city: 'Paris' } },
    });
    try {
      const toolApp = hostApp(config(toolFake.baseUrl)).app;
      const res = await request(toolApp)
        .post('/ai/chat')
        .send({ model: MODEL, messages, tools: [weatherTool], tool_choice: 'required' });
      assert.equal(res.status, 200, JSON.stringify(res.body));
      assert.equal(res.body.finish_reason, 'tool_calls');
      assert.equal(res.body.tool_calls.length, 1);
      assert.match(res.body.tool_calls[0].id, /^[a-zA-Z0-9]{9}$/);
      assert.deepEqual(res.body.tool_calls[0].function, {
        name: 'get_weather',
        arguments: '{"city":"Paris"}',
      });
      assert.equal(toolFake.requests.at(-1)!.body.tool_choice, 'required');

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

      // A history from another provider, with OpenAI-style ids, must pass Mistral's id check.
      const followUp = await request(toolApp)
        .post('/ai/chat')
        .send({
          model: MODEL,
          tools: [weatherTool],
          messages: [
            { role: 'user', content: 'weather in Paris?' },
            {
              role: 'assistant',
              content: null,
              tool_calls: [
                { id: 'call_abc_123', type: 'function', function: { name: 'get_weather', arguments: '{}' } },
              ],
            },
            { role: 'tool', tool_call_id: 'call_abc_123', content: '{"temp":20}' },
          ],
        });
      assert.equal(followUp.status, 200, JSON.stringify(followUp.body));
      const sent = toolFake.requests.at(-1)!.body.messages;
      assert.match(sent[1].tool_calls[0].id, /^[a-zA-Z0-9]{9}$/);
      assert.equal(sent[2].tool_call_id, sent[1].tool_calls[0].id);
      assert.equal(sent[2].name, 'get_weather');
    } finally {
      await toolFake.close();
    }
  });

  itMapsUpstreamErrors(
    'mistral',
    [
      [400, 400, 'invalid_request'],
      [401, 502, 'authentication'],
      [422, 400, 'invalid_request'],
      [429, 429, 'rate_limit'],
      [500, 502, 'server_error'],
      [503, 502, 'server_error'],
    ],
    () => ({ app, fake, body: { model: MODEL, messages } }),
  );

  it('relays the real 401 body for a wrong key', async () => {
    const wrong = hostApp(config(fake.baseUrl, { api_key: 'wrong-key' })).app;
    const res = await request(wrong).post('/ai/chat').send({ model: MODEL, messages });
    assert.equal(res.status, 502);
    assert.equal(res.body.error.type, 'authentication');
    assert.match(res.body.error.message, /Unauthorized/);
    assert.doesNotMatch(res.body.error.message, /wrong-key/);
  });

  it('relays a 422 validation body as an invalid_request naming the field', async () => {
    const res = await request(app).post('/ai/chat').send({ model: MODEL, messages, temperature: 1.8 });
    assert.equal(res.status, 400);
    assert.equal(res.body.error.type, 'invalid_request');
    assert.match(res.body.error.message, /body\.temperature: Input should be less than or equal to 1\.5/);
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

  it('ends a stream with an error event for a mid-stream error or a cut connection', async () => {
    fake.fault({ errorStreamAfter: 2, message: 'model crashed', times: 1 });
    const errored = parseSse(
      (await request(app).post('/ai/chat/stream').send({ model: MODEL, messages })).text,
    );
    assert.equal(errored.at(-1)!.event, 'error');
    assert.equal(errored.at(-1)!.data.error.type, 'server_error');
    assert.match(errored.at(-1)!.data.error.message, /model crashed/);
    assert.equal(errored.filter((e) => e.event === 'message').length, 2);

    fake.fault({ cutStreamAfter: 2, times: 1 });
    const cut = parseSse((await request(app).post('/ai/chat/stream').send({ model: MODEL, messages })).text);
    assert.equal(cut.at(-1)!.event, 'error');
    assert.equal(
      cut.some((e) => e.event === 'done'),
      false,
    );
  });
});
