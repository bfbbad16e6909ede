import assert from 'node:assert/strict';
import Anthropic from '@anthropic-ai/sdk';
import { startFakeAnthropic } from '../lib/testing/fake-anthropic.js';
import type { FakeProvider } from '../lib/testing/fake-server.js';

const MODEL = 'claude-sonnet-4-6';

function clientFor(fake: FakeProvider, apiKey = 'test-key'): Anthropic {
  return new Anthropic({ apiKey, baseURL: fake.baseUrl, maxRetries: 0 });
}

/** Raw HTTP, for what the SDK would refuse to send or would hide. */
async function post(
  fake: FakeProvider,
  body: unknown,
  headers: Record<string, string> = {},
  path = '/v1/messages',
): Promise<{ status: number; headers: Headers; json: any }> {
  const res = await fetch(`${fake.origin}${path}`, {
    method: 'POST',
    headers: {
      'content-type': 'application/json',
      'x-api-key': 'test-key',
      'anthropic-version': '2023-06-01',
      ...headers,
    },
    body: typeof body === 'string' ? body : JSON.stringify(body),
  });
  return { status: res.status, headers: res.headers, json: await res.json() };
}

const hello: Anthropic.MessageCreateParamsNonStreaming = {
  model: MODEL,
  max_tokens: 64,
  messages: [{ role: 'user', content: 'hello there' }],
};

describe('fake Anthropic Messages API with the official SDK', () => {
  let fake: FakeProvider;
  let client: Anthropic;

  before(async () => {
    fake = await startFakeAnthropic();
    client = clientFor(fake);
  });
  after(() => fake.close());
  afterEach(() => fake.clearFaults());

  it('answers a non-streaming request with text, stop reason and usage', async () => {
    const { data: msg, response } = await client.messages
      .create({
        model: MODEL,
        max_tokens: 64,
        system: 'be brief',
        messages: [{ role: 'user', content: 'hello there' }],
      })
      .withResponse();
    assert.match(msg.id, /^msg_/);
    assert.equal(msg.type, 'message');
    assert.equal(msg.role, 'assistant');
    assert.equal(msg.model, MODEL);
    assert.deepEqual(msg.content, [{ type: 'text', text: 'echo: hello there' }]);
    assert.equal(msg.stop_reason, 'end_turn');
    assert.equal(msg.stop_sequence, null);
    assert.deepEqual(msg.usage, {
      input_tokens: 4,
      cache_creation_input_tokens: 0,
      cache_read_input_tokens: 0,
      output_tokens: 3,
      service_tier: 'standard',
    });
    assert.match(response.headers.get('request-id') ?? '', /^req_/);
  });

  it('streams the same text with usage and stop reason', async () => {
    const stream = client.messages.stream({
      ...hello,
      messages: [{ role: 'user', content: 'one two three' }],
    });
    const deltas: string[] = [];
    stream.on('text', (t) => deltas.push(t));
    const msg = await stream.finalMessage();
    assert.deepEqual(deltas, ['echo:', ' one', ' two', ' three']);
    assert.deepEqual(msg.content, [{ type: 'text', text: 'echo: one two three' }]);
    assert.equal(msg.stop_reason, 'end_turn');
    assert.equal(msg.usage.input_tokens, 3);
    assert.equal(msg.usage.output_tokens, 4);
  });

  it('sends the events in Anthropic order', async () => {
    const events = await client.messages.create({ ...hello, stream: true });
    const types: string[] = [];
    for await (const e of events) types.push(e.type);
    assert.deepEqual(types, [
      'message_start',
      'content_block_start',
      'content_block_delta',
      'content_block_delta',
      'content_block_delta',
      'content_block_stop',
      'message_delta',
      'message_stop',
    ]);
    const res = await fetch(`${fake.origin}/v1/messages`, {
      method: 'POST',
      headers: { 'x-api-key': 'test-key', 'anthropic-version': '2023-06-01' },
      body: JSON.stringify({ ...hello, stream: true }),
    });
    assert.equal(res.headers.get('content-type'), 'text/event-stream; charset=utf-8');
    const raw = await res.text();
    // The SDK hides pings, so check the raw framing for them.
    assert.match(
      raw,
      /^event: message_start\ndata: \{.*\}\n\nevent: content_block_start\n.*\n\nevent: ping\n/,
    );
    assert.ok(raw.endsWith('event: message_stop\ndata: {"type":"message_stop"}\n\n'));
  });

  it('cuts the reply at a stop sequence and at max_tokens', async () => {
    const stopped = await client.messages.create({
      ...hello,
      messages: [{ role: 'user', content: 'alpha beta gamma' }],
      stop_sequences: ['gamma'],
    });
    assert.deepEqual(stopped.content, [{ type: 'text', text: 'echo: alpha beta ' }]);
    assert.equal(stopped.stop_reason, 'stop_sequence');
    assert.equal(stopped.stop_sequence, 'gamma');

    const truncated = await client.messages.create({
      ...hello,
      max_tokens: 2,
      messages: [{ role: 'user', content: 'alpha beta gamma' }],
    });
    assert.deepEqual(truncated.content, [{ type: 'text', text: 'echo: alpha' }]);
    assert.equal(truncated.stop_reason, 'max_tokens');
    assert.equal(truncated.usage.output_tokens, 2);
  });

  it('surfaces a 429 fault as RateLimitError with its retry-after header', async () => {
    fake.fault({ status: 429, retryAfter: 7, times: 1 });
    await assert.rejects(client.messages.create(hello), (err: unknown) => {
      assert.ok(err instanceof Anthropic.RateLimitError);
      assert.equal(err.status, 429);
      assert.equal(err.headers?.get('retry-after'), '7');
      assert.equal((err.error as any).error.type, 'rate_limit_error');
      assert.match(err.requestID ?? '', /^req_/);
      return true;
    });
  });

  it('surfaces a 529 fault as OverloadedError, an InternalServerError', async () => {
    fake.fault({ status: 529, times: 1 });
    await assert.rejects(client.messages.create(hello), (err: unknown) => {
      assert.ok(err instanceof Anthropic.OverloadedError);
      assert.ok(err instanceof Anthropic.InternalServerError);
      assert.deepEqual((err.error as any).error, { type: 'overloaded_error', message: 'Overloaded' });
      return true;
    });
  });

  it('rejects a system role as BadRequestError with the real message', async () => {
    await assert.rejects(
      client.messages.create({
        model: MODEL,
        max_tokens: 16,
        messages: [
          { role: 'system', content: 'be brief' },
          { role: 'user', content: 'hi' },
        ],
      }),
      (err: unknown) => {
        assert.ok(err instanceof Anthropic.BadRequestError);
        assert.equal(
          err.apiMessage,
          'messages: Unexpected role "system". The Messages API accepts a top-level `system` parameter, not "system" as an input message role.',
        );
        return true;
      },
    );
  });

  it('rejects a wrong key as AuthenticationError', async () => {
    await assert.rejects(clientFor(fake, 'wrong-key').messages.create(hello), (err: unknown) => {
      assert.ok(err instanceof Anthropic.AuthenticationError);
      assert.deepEqual((err.error as any).error, {
        type: 'authentication_error',
        message: 'invalid x-api-key',
      });
      return true;
    });
  });

  it('fails the SDK stream when the connection is cut', async () => {
    for (const cutStreamAfter of [0, 1]) {
      fake.fault({ cutStreamAfter, times: 1 });
      const stream = client.messages.stream(hello);
      const deltas: string[] = [];
      stream.on('text', (t) => deltas.push(t));
      await assert.rejects(stream.finalMessage());
      assert.deepEqual(deltas, ['echo:'].slice(0, cutStreamAfter));
    }
  });

  it('fails the SDK stream on a mid-stream error event', async () => {
    fake.fault({ errorStreamAfter: 2, times: 1 });
    const stream = client.messages.stream(hello);
    await assert.rejects(stream.finalMessage(), (err: unknown) => {
      assert.ok(err instanceof Anthropic.APIError);
      assert.equal(err.type, 'overloaded_error');
      return true;
    });
  });

  it('records the request body and the headers the SDK sends', async () => {
    const before = fake.requests.length;
    await client.messages.create({ ...hello, stop_sequences: ['###'], metadata: { user_id: 'u1' } });
    const rec = fake.requests[before]!;
    assert.equal(rec.method, 'POST');
    assert.equal(rec.path, '/v1/messages');
    assert.deepEqual(rec.body, { ...hello, stop_sequences: ['###'], metadata: { user_id: 'u1' } });
    assert.equal(rec.headers.authorization, 'Bearer test-key');
    assert.ok(rec.headers['anthropic-version']);
    assert.match(String(rec.headers['user-agent']), /^Anthropic\/JS /);
  });

  it('counts tokens and treats max_tokens 0 as a cache pre-warm under the SDK version', async () => {
    const counted = await client.messages.countTokens({
      model: MODEL,
      system: 'be brief',
      messages: hello.messages,
    });
    assert.deepEqual(counted, { input_tokens: 4 });
    const warm = await client.messages.create({ ...hello, max_tokens: 0 });
    assert.deepEqual(warm.content, []);
    assert.equal(warm.stop_reason, 'max_tokens');
    assert.equal(warm.usage.output_tokens, 0);
  });

  it('reports cached prompt tokens apart from input tokens', async () => {
    const cachedFake = await startFakeAnthropic({ cachedPromptTokens: 3 });
    try {
      const msg = await clientFor(cachedFake).messages.create({
        ...hello,
        messages: [{ role: 'user', content: 'a b c d e' }],
      });
      assert.equal(msg.usage.cache_read_input_tokens, 3);
      assert.equal(msg.usage.input_tokens, 2);
    } finally {
      await cachedFake.close();
    }
  });
});

describe('fake Anthropic tool calls', () => {
  let fake: FakeProvider;
  let client: Anthropic;
  const toolCall = { name: 'get_weather', arguments: { city: 'Paris', unit: 'celsius' } };
  const tools = [
    {
      name: 'get_weather',
      input_schema: { type: 'object' as const, properties: { city: { type: 'string' } } },
    },
  ];

  before(async () => {
    fake = await startFakeAnthropic({ toolCall });
    client = clientFor(fake);
  });
  after(() => fake.close());

  it('answers with a tool_use block', async () => {
    const msg = await client.messages.create({ ...hello, tools });
    assert.equal(msg.stop_reason, 'tool_use');
    assert.equal(msg.content.length, 1);
    const block = msg.content[0]!;
    assert.equal(block.type, 'tool_use');
    if (block.type !== 'tool_use') return;
    assert.match(block.id, /^toolu_/);
    assert.equal(block.name, 'get_weather');
    assert.deepEqual(block.input, toolCall.arguments);
  });

  it('streams the tool input as JSON deltas', async () => {
    const stream = client.messages.stream({ ...hello, tools });
    const partials: string[] = [];
    stream.on('inputJson', (p) => partials.push(p));
    const msg = await stream.finalMessage();
    assert.ok(partials.length > 1);
    assert.equal(partials.join(''), JSON.stringify(toolCall.arguments));
    assert.equal(msg.stop_reason, 'tool_use');
    const block = msg.content[0]!;
    assert.equal(block.type, 'tool_use');
    if (block.type === 'tool_use') assert.deepEqual(block.input, toolCall.arguments);
  });
});

describe('fake Anthropic validation over raw HTTP', () => {
  let fake: FakeProvider;

  before(async () => {
    fake = await startFakeAnthropic();
  });
  after(() => fake.close());

  async function expectError(
    body: unknown,
    status: number,
    type: string,
    message: string,
    headers: Record<string, string> = {},
    path?: string,
  ): Promise<void> {
    const res = await post(fake, body, headers, path);
    assert.equal(res.status, status);
    assert.equal(res.json.type, 'error');
    assert.deepEqual(res.json.error, { type, message });
    assert.match(res.json.request_id, /^req_/);
    assert.equal(res.headers.get('request-id'), res.json.request_id);
  }

  it('accepts x-api-key with the classic version', async () => {
    const res = await post(fake, hello);
    assert.equal(res.status, 200);
    assert.equal(res.json.content[0].text, 'echo: hello there');
  });

  it('rejects missing auth and version headers', async () => {
    await expectError(hello, 401, 'authentication_error', 'x-api-key header is required', {
      'x-api-key': '',
    });
    await expectError(hello, 400, 'invalid_request_error', 'anthropic-version: header is required', {
      'anthropic-version': '',
    });
    await expectError(
      hello,
      400,
      'invalid_request_error',
      'anthropic-version: "2099-01-01" is not a valid version',
      {
        'anthropic-version': '2099-01-01',
      },
    );
  });

  it('rejects an unknown path', async () => {
    await expectError(hello, 404, 'not_found_error', 'Not Found', {}, '/v1/complete');
  });

  it('rejects malformed and incomplete bodies with Anthropic messages', async () => {
    const invalidJson = await post(fake, '{"model":');
    assert.equal(invalidJson.status, 400);
    assert.match(invalidJson.json.error.message, /^The request body is not valid JSON: /);

    const { max_tokens: _m, ...noMax } = hello;
    await expectError(noMax, 400, 'invalid_request_error', 'max_tokens: Field required');
    await expectError(
      { ...hello, max_tokens: 0 },
      400,
      'invalid_request_error',
      'max_tokens: Input should be greater than or equal to 1',
    );
    await expectError(
      { ...hello, max_tokens: 1.5 },
      400,
      'invalid_request_error',
      'max_tokens: Input should be a valid integer',
    );
    await expectError(
      { ...hello, messages: [] },
      400,
      'invalid_request_error',
      'messages: at least one message is required',
    );
    await expectError(
      { ...hello, temperature: 1.5 },
      400,
      'invalid_request_error',
      'temperature: Input should be less than or equal to 1',
    );
    await expectError({ ...hello, n: 2 }, 400, 'invalid_request_error', 'n: Extra inputs are not permitted');
    await expectError(
      { ...hello, messages: [{ role: 'user', content: [{ type: 'text', text: '' }] }] },
      400,
      'invalid_request_error',
      'messages: text content blocks must be non-empty',
    );
    await expectError(
      { ...hello, stop_sequences: 'END' },
      400,
      'invalid_request_error',
      'stop_sequences: Input should be a valid list',
    );
  });

  it('merges consecutive same-role turns instead of rejecting them', async () => {
    const res = await post(fake, {
      ...hello,
      messages: [
        { role: 'user', content: 'first' },
        { role: 'user', content: [{ type: 'text', text: 'second' }] },
      ],
    });
    assert.equal(res.status, 200);
    assert.equal(res.json.content[0].text, 'echo: second');
    assert.equal(res.json.usage.input_tokens, 2);
  });

  it('requires every tool_use to be answered by a tool_result', async () => {
    const res = await post(fake, {
      ...hello,
      messages: [
        { role: 'user', content: 'weather?' },
        { role: 'assistant', content: [{ type: 'tool_use', id: 'toolu_1', name: 'w', input: {} }] },
        { role: 'user', content: 'well?' },
      ],
    });
    assert.equal(res.status, 400);
    assert.match(
      res.json.error.message,
      /^messages\.1: `tool_use` ids were found without `tool_result` blocks/,
    );
  });
});
