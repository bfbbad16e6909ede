import assert from 'node:assert/strict';
import request from 'supertest';
import { silentLogger } from '../lib/logger.js';
import type { StreamPart, Target } from '../lib/providers/adapter.js';
import { anthropic, convertAnthropicUsage, mapAnthropicStopReason } from '../lib/providers/anthropic.js';
import { convertToAnthropicMessages } from '../lib/providers/anthropic-messages.js';
import { startFakeAnthropic } from '../lib/testing/fake-anthropic.js';
import type { FakeProvider, FakeProviderOptions } from '../lib/testing/fake-server.js';
import type { ChatRequest, ResolvedProvider } from '../types/index.js';
import { hostApp, itMapsUpstreamErrors, parseSse } from './helpers/setup.js';
import { assertEverySplit } from './helpers/stream-parts.js';

const MODEL = 'claude-sonnet-4-20250514';
/** pricing.yaml, anthropic/claude-sonnet-4-20250514, dollars per million tokens. */
const PRICE = { input: 3, output: 15, cacheRead: 0.3 };

function costOf(prompt: number, completion: number, cacheRead = 0): number {
  const micro = (prompt - cacheRead) * PRICE.input + cacheRead * PRICE.cacheRead + completion * PRICE.output;
  return Math.round((micro / 1_000_000) * 1e9) / 1e9;
}

const provider: ResolvedProvider = {
  name: 'anthropic',
  type: 'anthropic',
  apiKeys: ['sk-ant-test'],
  baseUrl: 'https://api.anthropic.com',
  models: [MODEL],
  timeoutMs: 60_000,
  maxRetries: 0,
  priority: 0,
  enabled: true,
  defaultMaxTokens: 4096,
  headers: {},
};

function target(overrides: Partial<Target> = {}): Target {
  return { provider, model: MODEL, apiKey: 'sk-ant-test', stream: false, ...overrides };
}

function build(req: Omit<ChatRequest, 'model'>, t: Target = target()) {
  return anthropic.buildRequest({ model: MODEL, ...req }, t) as {
    url: string;
    headers: Record<string, string>;
    body: Record<string, any>;
  };
}

const weatherCall = {
  id: 'toolu_01',
  type: 'function' as const,
  function: { name: 'get_weather', arguments: '{"city":"Paris"}' },
};

describe('anthropic adapter: buildRequest', () => {
  it('sends the key, the version and configured headers to the origin plus v1/messages', () => {
    const t = target({
      provider: {
        ...provider,
        baseUrl: 'https://proxy.example/anthropic/',
        headers: { 'anthropic-beta': 'x', 'X-Api-Key': 'nope' },
      },
    });
    const built = build({ messages: [{ role: 'user', content: 'hi' }] }, t);
    assert.equal(built.url, 'https://proxy.example/anthropic/v1/messages');
    assert.equal(built.headers['x-api-key'], 'sk-ant-test');
    assert.equal(built.headers['anthropic-version'], '2023-06-01');
    assert.equal(built.headers['anthropic-beta'], 'x');
    assert.equal(built.headers['X-Api-Key'], undefined);
    assert.equal(built.headers.authorization, undefined);
  });

  it('hoists every system message into one top-level system field', () => {
    const { body } = build({
      messages: [
        { role: 'system', content: 'be brief' },
        { role: 'user', content: 'hi' },
        { role: 'system', content: 'answer in French' },
      ],
    });
    assert.equal(body.system, 'be brief\n\nanswer in French');
    assert.deepEqual(body.messages, [{ role: 'user', content: 'hi' }]);
  });

  it('leaves system out when there is none', () => {
    const { body } = build({ messages: [{ role: 'user', content: 'hi' }] });
    assert.equal('system' in body, false);
  });

  it('merges consecutive same-role turns and skips empty ones', () => {
    const { messages } = convertToAnthropicMessages([
      { role: 'user', content: 'one' },
      { role: 'user', content: 'two' },
      { role: 'assistant', content: '' },
      { role: 'user', content: '   ' },
      { role: 'user', content: 'three' },
      { role: 'assistant', content: 'four' },
    ]);
    assert.deepEqual(messages, [
      {
        role: 'user',
        content: [
          { type: 'text', text: 'one' },
          { type: 'text', text: 'two' },
          { type: 'text', text: 'three' },
        ],
      },
      { role: 'assistant', content: 'four' },
    ]);
  });

  it('always sends max_tokens, the configured default when the client gave none', () => {
    assert.equal(build({ messages: [{ role: 'user', content: 'hi' }] }).body.max_tokens, 4096);
    assert.equal(build({ messages: [{ role: 'user', content: 'hi' }], max_tokens: 12 }).body.max_tokens, 12);
  });

  it('maps stop to stop_sequences and passes sampling through unchanged', () => {
    const one = build({
      messages: [{ role: 'user', content: 'hi' }],
      stop: 'END',
      temperature: 1.5,
      top_p: 0.9,
    });
    assert.deepEqual(one.body.stop_sequences, ['END']);
    // Above Anthropic's maximum on purpose: the API's own 400 tells the client, nothing is changed silently.
    assert.equal(one.body.temperature, 1.5);
    assert.equal(one.body.top_p, 0.9);
    const many = build({ messages: [{ role: 'user', content: 'hi' }], stop: ['a', 'b'] });
    assert.deepEqual(many.body.stop_sequences, ['a', 'b']);
    assert.equal('stop' in many.body, false);
    assert.equal('temperature' in many.body, false);
  });

  it('sets stream only for streaming targets', () => {
    const messages = [{ role: 'user' as const, content: 'hi' }];
    assert.equal(build({ messages }, target({ stream: true })).body.stream, true);
    assert.equal('stream' in build({ messages }).body, false);
  });

  it('converts tools and every tool_choice form', () => {
    const tools: ChatRequest['tools'] = [
      {
        type: 'function',
        function: {
          name: 'get_weather',
          description: 'Weather now',
          parameters: { type: 'object', properties: { city: { type: 'string' } } },
        },
      },
      { type: 'function', function: { name: 'ping' } },
    ];
    const messages = [{ role: 'user' as const, content: 'hi' }];
    const { body } = build({ messages, tools });
    assert.deepEqual(body.tools, [
      {
        name: 'get_weather',
        description: 'Weather now',
        input_schema: { type: 'object', properties: { city: { type: 'string' } } },
      },
      { name: 'ping', input_schema: { type: 'object', properties: {} } },
    ]);
    const choices: [ChatRequest['tool_choice'], unknown][] = [
      ['auto', { type: 'auto' }],
      ['required', { type: 'any' }],
      ['none', { type: 'none' }],
      [
        { type: 'function', function: { name: 'ping' } },
        { type: 'tool', name: 'ping' },
      ],
    ];
    for (const [choice, expected] of choices) {
      assert.deepEqual(build({ messages, tools, tool_choice: choice }).body.tool_choice, expected);
    }
    assert.equal('tool_choice' in build({ messages, tool_choice: 'auto' }).body, false);
    assert.throws(
      () => build({ messages, tools, tool_choice: 'sometimes' as never }),
      (err: any) => err.kind === 'invalid_request' && err.param === 'tool_choice',
    );
  });

  it('turns tool calls into tool_use blocks and tool results into user tool_result turns', () => {
    const { messages } = convertToAnthropicMessages([
      { role: 'user', content: 'weather in Paris and Rome?' },
      {
        role: 'assistant',
        content: 'Let me check.',
        tool_calls: [
          weatherCall,
          {
            id: 'toolu_02',
            type: 'function',
            function: { name: 'get_weather', arguments: '{"city":"Rome"}' },
          },
        ],
      },
      { role: 'tool', content: '18C', tool_call_id: 'toolu_01' },
      { role: 'tool', content: '', tool_call_id: 'toolu_02' },
      { role: 'user', content: 'thanks' },
    ]);
    assert.deepEqual(messages, [
      { role: 'user', content: 'weather in Paris and Rome?' },
      {
        role: 'assistant',
        content: [
          { type: 'text', text: 'Let me check.' },
          { type: 'tool_use', id: 'toolu_01', name: 'get_weather', input: { city: 'Paris' } },
          { type: 'tool_use', id: 'toolu_02', name: 'get_weather', input: { city: 'Rome' } },
        ],
      },
      {
        role: 'user',
        content: [
          { type: 'tool_result', tool_use_id: 'toolu_01', content: '18C' },
          { type: 'tool_result', tool_use_id: 'toolu_02' },
          { type: 'text', text: 'thanks' },
        ],
      },
    ]);
  });

  it('puts tool results first in their user turn, as the API requires', () => {
    const { messages } = convertToAnthropicMessages([
      { role: 'assistant', content: null, tool_calls: [weatherCall] },
      { role: 'user', content: 'here you go' },
      { role: 'tool', content: '18C', tool_call_id: 'toolu_01' },
    ]);
    assert.deepEqual(messages[0], {
      role: 'assistant',
      content: [{ type: 'tool_use', id: 'toolu_01', name: 'get_weather', input: { city: 'Paris' } }],
    });
    assert.deepEqual(messages[1]!.content, [
      { type: 'tool_result', tool_use_id: 'toolu_01', content: '18C' },
      { type: 'text', text: 'here you go' },
    ]);
  });

  it('treats empty arguments as no input and refuses arguments that are not a JSON object', () => {
    const call = (args: string) => [
      {
        role: 'assistant' as const,
        content: null,
        tool_calls: [{ ...weatherCall, function: { name: 'w', arguments: args } }],
      },
    ];
    assert.deepEqual((convertToAnthropicMessages(call('')).messages[0]!.content as any)[0].input, {});
    for (const bad of ['{oops', '[1]', '"x"']) {
      assert.throws(
        () => convertToAnthropicMessages(call(bad)),
        (err: any) =>
          err.kind === 'invalid_request' && err.param === 'messages[0].tool_calls[0].function.arguments',
      );
    }
  });
});

describe('anthropic adapter: parseResponse, stop reasons, usage', () => {
  it('joins text blocks and converts tool_use blocks', () => {
    const result = anthropic.parseResponse(
      {
        type: 'message',
        content: [
          { type: 'thinking', thinking: 'hmm', signature: 's' },
          { type: 'text', text: 'Checking ' },
          { type: 'text', text: 'now.' },
          { type: 'tool_use', id: 'toolu_9', name: 'get_weather', input: { city: 'Paris' } },
          { type: 'tool_use', id: 'toolu_10', name: 'ping', input: {} },
        ],
        stop_reason: 'tool_use',
        usage: { input_tokens: 10, output_tokens: 5 },
      },
      target(),
    );
    assert.deepEqual(result, {
      content: 'Checking now.',
      finish_reason: 'tool_calls',
      usage: { prompt_tokens: 10, completion_tokens: 5, total_tokens: 15 },
      tool_calls: [
        { id: 'toolu_9', type: 'function', function: { name: 'get_weather', arguments: '{"city":"Paris"}' } },
        { id: 'toolu_10', type: 'function', function: { name: 'ping', arguments: '{}' } },
      ],
    });
  });

  it('answers an empty content list with empty text and refuses a body without one', () => {
    const empty = anthropic.parseResponse({ content: [], stop_reason: 'max_tokens', usage: {} }, target());
    assert.equal(empty.content, '');
    assert.equal(empty.finish_reason, 'length');
    assert.equal('tool_calls' in empty, false);
    assert.throws(() => anthropic.parseResponse({ id: 'x' }, target()), /content/);
    assert.throws(
      () =>
        anthropic.parseResponse(
          { type: 'error', error: { type: 'overloaded_error', message: 'Overloaded' } },
          target(),
        ),
      (err: any) => err.kind === 'server_error' && err.message === 'Overloaded',
    );
  });

  it('maps every stop reason', () => {
    const table: [unknown, string][] = [
      ['end_turn', 'stop'],
      ['stop_sequence', 'stop'],
      ['max_tokens', 'length'],
      ['model_context_window_exceeded', 'length'],
      ['tool_use', 'tool_calls'],
      ['refusal', 'content_filter'],
      ['pause_turn', 'other'],
      ['something_new', 'other'],
      [null, 'other'],
    ];
    for (const [reason, expected] of table)
      assert.equal(mapAnthropicStopReason(reason), expected, String(reason));
  });

  it('counts cache reads and writes into the prompt, since input_tokens excludes them', () => {
    assert.deepEqual(
      convertAnthropicUsage({
        input_tokens: 10,
        cache_read_input_tokens: 100,
        cache_creation_input_tokens: 20,
        output_tokens: 7,
      }),
      {
        prompt_tokens: 130,
        completion_tokens: 7,
        total_tokens: 137,
        cached_prompt_tokens: 100,
        cache_creation_tokens: 20,
      },
    );
    assert.deepEqual(
      convertAnthropicUsage({ input_tokens: 3, cache_read_input_tokens: null, output_tokens: 2 }),
      { prompt_tokens: 3, completion_tokens: 2, total_tokens: 5 },
    );
    assert.deepEqual(convertAnthropicUsage(undefined), {
      prompt_tokens: 0,
      completion_tokens: 0,
      total_tokens: 0,
    });
  });

  it('reads error bodies: message, and a kind from the error type', () => {
    const body = (type: string, message: string) => ({
      type: 'error',
      error: { type, message },
      request_id: 'req_1',
    });
    assert.deepEqual(anthropic.parseError(529, body('overloaded_error', 'Overloaded')), {
      message: 'Overloaded',
      kind: 'server_error',
    });
    assert.deepEqual(anthropic.parseError(429, body('rate_limit_error', 'slow down')), {
      message: 'slow down',
      kind: 'rate_limit',
    });
    assert.deepEqual(anthropic.parseError(401, body('authentication_error', 'invalid x-api-key')), {
      message: 'invalid x-api-key',
      kind: 'authentication',
    });
    assert.deepEqual(anthropic.parseError(400, body('invalid_request_error', 'max_tokens: Field required')), {
      message: 'max_tokens: Field required',
      kind: 'invalid_request',
    });
    assert.deepEqual(anthropic.parseError(502, '<html>Bad Gateway</html>'), { message: 'HTTP 502' });
    assert.deepEqual(anthropic.parseError(418, body('teapot_error', 'short and stout')), {
      message: 'short and stout',
    });
  });
});

function assertEveryBoundary(raw: string, expected: StreamPart[]): void {
  assertEverySplit(anthropic, new TextEncoder().encode(raw), expected);
}

async function rawStream(options: FakeProviderOptions, content: string): Promise<string> {
  const fake = await startFakeAnthropic(options);
  try {
    const res = await fetch(`${fake.origin}/v1/messages`, {
      method: 'POST',
      headers: {
        'content-type': 'application/json',
        'x-api-key': 'test-key',
        'anthropic-version': '2023-06-01',
      },
      body: JSON.stringify({
        model: MODEL,
        max_tokens: 64,
        stream: true,
        messages: [{ role: 'user', content }],
      }),
    });
    assert.equal(res.status, 200);
    return await res.text();
  } finally {
    await fake.close();
  }
}

describe('anthropic adapter: stream parsing', () => {
  // A multi-byte character makes some splits fall inside a UTF-8 sequence.
  const textParts: StreamPart[] = [
    { type: 'delta', text: 'echo:' },
    { type: 'delta', text: ' héllo' },
    { type: 'delta', text: ' wörld' },
    { type: 'finish', finish_reason: 'stop' },
    {
      type: 'usage',
      usage: { prompt_tokens: 2, completion_tokens: 3, total_tokens: 5, cached_prompt_tokens: 1 },
    },
  ];
  let text: string;
  let tool: string;

  before(async () => {
    text = await rawStream({ cachedPromptTokens: 1 }, 'héllo wörld');
    tool = await rawStream(
      { toolCall: { name: 'get_weather', arguments: { city: 'Paris', unit: 'celsius' } } },
      'hi',
    );
  });

  it('gives the same parts at every byte boundary of a text stream', () => {
    assert.match(text, /event: ping\n/);
    assertEveryBoundary(text, textParts);
  });

  it('gives the same parts with CRLF line endings and comment lines', () => {
    const crlf = `: keep-alive\r\n\r\n${text.replace(/\n/g, '\r\n').replace(/\r\n\r\nevent: ping/, '\r\n\r\n: a comment\r\nevent: ping')}`;
    assert.match(crlf, /: a comment\r\n/);
    assertEveryBoundary(crlf, textParts);
  });

  it('accumulates tool input JSON and emits one tool_calls part at the end', () => {
    const id = /"id":"(toolu_[^"]+)"/.exec(tool)?.[1];
    assert.ok(id);
    assert.ok((tool.match(/input_json_delta/g) ?? []).length > 1);
    assertEveryBoundary(tool, [
      { type: 'finish', finish_reason: 'tool_calls' },
      { type: 'usage', usage: { prompt_tokens: 1, completion_tokens: 2, total_tokens: 3 } },
      {
        type: 'tool_calls',
        tool_calls: [
          {
            id,
            type: 'function',
            function: { name: 'get_weather', arguments: '{"city":"Paris","unit":"celsius"}' },
          },
        ],
      },
    ]);
  });

  it('keeps message_start usage until message_delta, so an early error can still fall back', () => {
    const state = anthropic.createStreamState();
    const ev = (data: unknown) => anthropic.parseStreamEvent({ data: JSON.stringify(data) }, state);
    assert.deepEqual(
      ev({
        type: 'message_start',
        message: {
          usage: {
            input_tokens: 5,
            cache_creation_input_tokens: 7,
            cache_read_input_tokens: 0,
            output_tokens: 1,
          },
        },
      }),
      [],
    );
    assert.deepEqual(ev({ type: 'ping' }), []);
    assert.deepEqual(ev({ type: 'error', error: { type: 'overloaded_error', message: 'Overloaded' } }), [
      { type: 'error', kind: 'server_error', message: 'Overloaded' },
    ]);
    assert.deepEqual(ev({ type: 'error', error: { type: 'rate_limit_error', message: 'slow' } }), [
      { type: 'error', kind: 'rate_limit', message: 'slow' },
    ]);
    assert.deepEqual(ev({ type: 'error', error: { type: 'api_error', message: 'boom' } }), [
      { type: 'error', kind: 'server_error', message: 'boom' },
    ]);
    // Only output_tokens in the delta: the prompt counters from message_start still count.
    assert.deepEqual(
      ev({ type: 'message_delta', delta: { stop_reason: 'max_tokens' }, usage: { output_tokens: 9 } }),
      [
        { type: 'finish', finish_reason: 'length' },
        {
          type: 'usage',
          usage: { prompt_tokens: 12, completion_tokens: 9, total_tokens: 21, cache_creation_tokens: 7 },
        },
      ],
    );
    assert.deepEqual(anthropic.parseStreamEvent({ data: '{not json' }, state), [
      { type: 'error', kind: 'server_error', message: 'Provider sent a malformed stream event.' },
    ]);
  });

  it('never flushes half-received tool input when the stream ends before message_delta', () => {
    const state = anthropic.createStreamState();
    const ev = (data: unknown) => anthropic.parseStreamEvent({ data: JSON.stringify(data) }, state);
    ev({
      type: 'content_block_start',
      index: 0,
      content_block: { type: 'tool_use', id: 't', name: 'w', input: {} },
    });
    ev({ type: 'content_block_delta', index: 0, delta: { type: 'input_json_delta', partial_json: '{"ci' } });
    assert.deepEqual(anthropic.endStream!(state), []);
  });
});

describe('anthropic adapter end to end through the gateway', () => {
  let fake: FakeProvider;
  let app: ReturnType<typeof hostApp>['app'];

  function appFor(f: FakeProvider, extra: Record<string, unknown> = {}) {
    return hostApp({
      providers: {
        anthropic: { api_key: 'test-key', base_url: f.baseUrl, models: [MODEL], max_retries: 0, ...extra },
      },
      // The scenarios repeat prompts and fault single requests: the cache and retries would hide them.
      cache: { backend: 'disabled' },
      logger: silentLogger,
    }).app;
  }

  before(async () => {
    fake = await startFakeAnthropic();
    app = appFor(fake);
  });
  after(() => fake.close());
  afterEach(() => fake.clearFaults());

  const hello = {
    model: MODEL,
    messages: [
      { role: 'system', content: 'be brief' },
      { role: 'user', content: 'hello there' },
    ],
  };

  it('answers /chat with content, finish reason, usage and cost, system at the top level', async () => {
    const before = fake.requests.length;
    const res = await request(app).post('/ai/chat').send(hello).expect(200);
    assert.equal(res.body.provider, 'anthropic');
    assert.equal(res.body.model, MODEL);
    assert.equal(res.body.content, 'echo: hello there');
    assert.equal(res.body.finish_reason, 'stop');
    // "be brief" + "hello there": the fake counts one token per word, system included.
    assert.deepEqual(res.body.usage, { prompt_tokens: 4, completion_tokens: 3, total_tokens: 7 });
    assert.equal(res.body.cost, costOf(4, 3));
    const rec = fake.requests[before]!;
    assert.equal(rec.path, '/v1/messages');
    assert.equal(rec.headers['x-api-key'], 'test-key');
    assert.equal(rec.headers['anthropic-version'], '2023-06-01');
    assert.deepEqual(rec.body, {
      model: MODEL,
      max_tokens: 4096,
      system: 'be brief',
      messages: [{ role: 'user', content: 'hello there' }],
    });
  });

  it('streams /chat/stream with deltas and a done event carrying usage and cost', async () => {
    const res = await request(app).post('/ai/chat/stream').send(hello).expect(200);
    const events = parseSse(res.text);
    const chunks = events.filter((e) => e.event === 'message');
    assert.deepEqual(
      chunks.map((e) => e.data.delta),
      ['echo:', ' hello', ' there'],
    );
    const done = events.at(-1)!;
    assert.equal(done.event, 'done');
    assert.equal(done.data.finish_reason, 'stop');
    assert.deepEqual(done.data.usage, { prompt_tokens: 4, completion_tokens: 3, total_tokens: 7 });
    assert.equal(done.data.cost, costOf(4, 3));
    assert.equal(fake.requests.at(-1)!.body.stream, true);
    assert.equal(fake.requests.at(-1)!.body.system, 'be brief');
  });

  it('prices cached prompt tokens at the cache-read rate, streamed or not', async () => {
    const cached = await startFakeAnthropic({ cachedPromptTokens: 3 });
    try {
      const body = { model: MODEL, messages: [{ role: 'user', content: 'a b c d e' }] };
      const usage = { prompt_tokens: 5, completion_tokens: 6, total_tokens: 11, cached_prompt_tokens: 3 };
      const json = await request(appFor(cached)).post('/ai/chat').send(body).expect(200);
      assert.deepEqual(json.body.usage, usage);
      assert.equal(json.body.cost, costOf(5, 6, 3));
      const sse = await request(appFor(cached)).post('/ai/chat/stream').send(body).expect(200);
      const done = parseSse(sse.text).at(-1)!;
      assert.deepEqual(done.data.usage, usage);
      assert.equal(done.data.cost, costOf(5, 6, 3));
    } finally {
      await cached.close();
    }
  });

  it('relays a max_tokens cut and a stop sequence', async () => {
    const body = { model: MODEL, messages: [{ role: 'user', content: 'alpha beta gamma' }] };
    const cut = await request(app)
      .post('/ai/chat')
      .send({ ...body, max_tokens: 2 })
      .expect(200);
    assert.equal(cut.body.content, 'echo: alpha');
    assert.equal(cut.body.finish_reason, 'length');
    const stopped = await request(app)
      .post('/ai/chat')
      .send({ ...body, stop: 'gamma' })
      .expect(200);
    assert.equal(stopped.body.content, 'echo: alpha beta ');
    assert.equal(stopped.body.finish_reason, 'stop');
    assert.deepEqual(fake.requests.at(-1)!.body.stop_sequences, ['gamma']);
  });

  it('carries a whole tool round trip past the fake, which checks tool_use/tool_result pairing', async () => {
    const res = await request(app)
      .post('/ai/chat')
      .send({
        model: MODEL,
        messages: [
          { role: 'user', content: 'weather?' },
          { role: 'assistant', content: null, tool_calls: [weatherCall] },
          { role: 'tool', tool_call_id: 'toolu_01', content: '18C' },
          { role: 'user', content: 'and tomorrow' },
        ],
        tools: [{ type: 'function', function: { name: 'get_weather', parameters: { type: 'object' } } }],
      })
      .expect(200);
    // The fake echoes text blocks only, so the tool result is not part of the reply.
    assert.equal(res.body.content, 'echo: and tomorrow');
    assert.deepEqual(fake.requests.at(-1)!.body.messages.at(-1), {
      role: 'user',
      content: [
        { type: 'tool_result', tool_use_id: 'toolu_01', content: '18C' },
        { type: 'text', text: 'and tomorrow' },
      ],
    });
  });

  it('returns tool calls from a tool_use answer, streamed or not', async () => {
    const toolFake = await startFakeAnthropic({
      toolCall: { name: 'get_weather', arguments: { city: 'Paris' } },
    });
    try {
      const body = {
        model: MODEL,
        messages: [{ role: 'user', content: 'weather?' }],
        tools: [{ type: 'function', function: { name: 'get_weather' } }],
        tool_choice: 'required',
      };
      const json = await request(appFor(toolFake)).post('/ai/chat').send(body).expect(200);
      assert.equal(json.body.finish_reason, 'tool_calls');
      assert.equal(json.body.tool_calls.length, 1);
      assert.equal(json.body.tool_calls[0].function.name, 'get_weather');
      assert.equal(json.body.tool_calls[0].function.arguments, '{"city":"Paris"}');
      assert.match(json.body.tool_calls[0].id, /^toolu_/);
      assert.deepEqual(toolFake.requests[0]!.body.tool_choice, { type: 'any' });

      const sse = await request(appFor(toolFake)).post('/ai/chat/stream').send(body).expect(200);
      const events = parseSse(sse.text);
      const done = events.at(-1)!;
      assert.equal(done.event, 'done');
      assert.equal(done.data.finish_reason, 'tool_calls');
      assert.equal(done.data.tool_calls[0].function.arguments, '{"city":"Paris"}');
      assert.ok(events.some((e) => e.event === 'message' && e.data.tool_calls?.length === 1));
    } finally {
      await toolFake.close();
    }
  });

  itMapsUpstreamErrors(
    'anthropic',
    [
      [400, 400, 'invalid_request'],
      [401, 502, 'authentication'],
      [429, 429, 'rate_limit'],
      [500, 502, 'server_error'],
      [529, 502, 'server_error'],
    ],
    () => ({ app, fake, body: hello }),
  );

  it('falls back to the next provider on a 529 and on an overloaded error before the first text', async () => {
    const backup = await startFakeAnthropic({ reply: () => 'from backup' });
    try {
      const twoApp = hostApp({
        providers: {
          primary: {
            type: 'anthropic',
            api_key: 'test-key',
            base_url: fake.baseUrl,
            models: [MODEL],
            max_retries: 0,
          },
          backup: { type: 'anthropic', api_key: 'test-key', base_url: backup.baseUrl, models: [MODEL] },
        },
        cache: { backend: 'disabled' },
        logger: silentLogger,
      }).app;
      fake.fault({ status: 529, times: 1 });
      const json = await request(twoApp).post('/ai/chat').send(hello).expect(200);
      assert.equal(json.body.provider, 'backup');
      assert.equal(json.body.content, 'from backup');
      assert.deepEqual(
        json.body.attempts.map((a: any) => [a.provider, a.error_kind ?? null]),
        [
          ['primary', 'server_error'],
          ['backup', null],
        ],
      );
      fake.fault({ errorStreamAfter: 0, times: 1 });
      const sse = await request(twoApp).post('/ai/chat/stream').send(hello).expect(200);
      const events = parseSse(sse.text);
      assert.deepEqual(
        events.filter((e) => e.event === 'message').map((e) => e.data.delta),
        ['from', ' backup'],
      );
      assert.equal(events.at(-1)!.data.provider, 'backup');
    } finally {
      await backup.close();
    }
  });

  it('relays the API message of a real validation error', async () => {
    const res = await request(app)
      .post('/ai/chat')
      .send({ ...hello, temperature: 1.5 })
      .expect(400);
    assert.equal(res.body.error.type, 'invalid_request');
    assert.match(res.body.error.message, /temperature: Input should be less than or equal to 1/);
  });

  it('ends the stream with an error event when Anthropic fails mid-stream', async () => {
    fake.fault({ errorStreamAfter: 2, times: 1 });
    const res = await request(app).post('/ai/chat/stream').send(hello).expect(200);
    const events = parseSse(res.text);
    assert.deepEqual(
      events.filter((e) => e.event === 'message').map((e) => e.data.delta),
      ['echo:', ' hello'],
    );
    const last = events.at(-1)!;
    assert.equal(last.event, 'error');
    assert.equal(last.data.error.type, 'server_error');
  });

  it('answers a hang with 504 timeout', async () => {
    const slowApp = appFor(fake, { timeout_seconds: 0.3 });
    for (const path of ['/ai/chat', '/ai/chat/stream']) {
      fake.fault({ hang: true, times: 1 });
      const res = await request(slowApp).post(path).send(hello).expect(504);
      assert.equal(res.body.error.type, 'timeout', path);
    }
  });
});
