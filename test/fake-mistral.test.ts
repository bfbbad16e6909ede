/**
 * Proves the Mistral fake against the official SDK: if the SDK accepts the fake's answers and raises its
 * own error classes for the fake's errors, the gateway's Mistral adapter can be tested against the fake.
 * Raw `fetch` tests pin down what the SDK hides: validation bodies, stream framing, field order.
 */
import assert from 'node:assert/strict';
import { HTTPClient, Mistral } from '@mistralai/mistralai';
import { HTTPValidationError, MistralError, SDKError } from '@mistralai/mistralai/models/errors';
import { startFakeMistral } from '../lib/testing/fake-mistral.js';
import type { FakeProvider } from '../lib/testing/fake-server.js';

const MODEL = 'mistral-small-latest';
const ALLOWED_FIELDS = new Set([
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

function client(fake: FakeProvider, apiKey = 'test-key', httpClient?: HTTPClient): Mistral {
  return new Mistral({ apiKey, serverURL: fake.baseUrl, httpClient });
}

/** Runs `fn`, expecting it to throw, and returns what it threw. */
async function thrown(fn: () => Promise<unknown>): Promise<any> {
  try {
    await fn();
  } catch (err) {
    return err;
  }
  assert.fail('expected an error');
}

async function drain(stream: AsyncIterable<unknown>): Promise<unknown[]> {
  const events: unknown[] = [];
  for await (const e of stream) events.push(e);
  return events;
}

/** Response bodies in these tests are asserted field by field, so loose typing is the honest type. */
function bodyOf(res: Response): Promise<any> {
  return res.json();
}

/** Splits an SSE body into its `data:` payloads. */
function sseData(text: string): string[] {
  return text
    .split('\n\n')
    .filter((block) => block.startsWith('data: '))
    .map((block) => block.slice('data: '.length));
}

describe('fake Mistral with the official SDK', () => {
  let fake: FakeProvider;
  before(async () => {
    fake = await startFakeMistral();
  });
  after(() => fake.close());
  beforeEach(() => fake.clearFaults());

  it('uses the bare origin as serverURL (the SDK adds /v1 itself)', () => {
    assert.equal(fake.baseUrl, fake.origin);
  });

  it('chat.complete returns the reply, finish reason and usage', async () => {
    const res = await client(fake).chat.complete({
      model: MODEL,
      messages: [
        { role: 'system', content: 'be brief' },
        { role: 'user', content: 'hello there' },
      ],
    });
    assert.match(res.id, /^[0-9a-f]{32}$/);
    assert.equal(res.object, 'chat.completion');
    assert.equal(res.model, MODEL);
    const choice = res.choices[0];
    assert.equal(choice.message?.content, 'echo: hello there');
    assert.equal(choice.message?.toolCalls, null);
    assert.equal(choice.finishReason, 'stop');
    assert.deepEqual(
      { p: res.usage.promptTokens, c: res.usage.completionTokens, t: res.usage.totalTokens },
      { p: 4, c: 3, t: 7 },
    );
  });

  it('sends only fields Mistral accepts, with a Bearer key', async () => {
    await client(fake).chat.complete({
      model: MODEL,
      messages: [{ role: 'user', content: 'check the body' }],
      temperature: 0.2,
      maxTokens: 50,
      safePrompt: false,
    });
    const rec = fake.requests.at(-1)!;
    assert.equal(rec.path, '/v1/chat/completions');
    assert.equal(rec.headers.authorization, 'Bearer test-key');
    for (const key of Object.keys(rec.body)) assert.ok(ALLOWED_FIELDS.has(key), `unexpected field ${key}`);
    assert.equal(rec.body.stream, false);
    assert.equal(rec.body.max_tokens, 50);
  });

  it('chat.stream reassembles to the same text, with usage on the last content chunk', async () => {
    const stream = await client(fake).chat.stream({
      model: MODEL,
      messages: [{ role: 'user', content: 'stream me please' }],
    });
    const events = (await drain(stream)) as any[];
    const chunks = events.map((e) => e.data);
    assert.equal(chunks[0].choices[0].delta.role, 'assistant');
    const text = chunks.map((c) => c.choices[0].delta.content ?? '').join('');
    assert.equal(text, 'echo: stream me please');
    const last = chunks.at(-1);
    assert.equal(last.choices[0].finishReason, 'stop');
    assert.ok(last.choices[0].delta.content, 'usage must ride on a content chunk, not a separate one');
    assert.deepEqual(
      { p: last.usage.promptTokens, c: last.usage.completionTokens, t: last.usage.totalTokens },
      { p: 3, c: 4, t: 7 },
    );
    assert.ok(chunks.slice(0, -1).every((c) => c.usage === undefined));
  });

  it('max_tokens truncates with finish_reason length; stop cuts before the stop string', async () => {
    const short = await client(fake).chat.complete({
      model: MODEL,
      messages: [{ role: 'user', content: 'one two three four' }],
      maxTokens: 2,
    });
    assert.equal(short.choices[0].message?.content, 'echo: one');
    assert.equal(short.choices[0].finishReason, 'length');
    assert.equal(short.usage.completionTokens, 2);

    const stopped = await client(fake).chat.complete({
      model: MODEL,
      messages: [{ role: 'user', content: 'alpha beta gamma' }],
      stop: ['gamma', ' beta'],
    });
    assert.equal(stopped.choices[0].message?.content, 'echo: alpha');
    assert.equal(stopped.choices[0].finishReason, 'stop');
  });

  it('a 429 fault reaches the SDK as SDKError with statusCode 429 and the retry headers', async () => {
    fake.fault({ status: 429, retryAfter: 2, retryAfterMs: 1500, times: 1 });
    const err = await thrown(() =>
      client(fake).chat.complete({ model: MODEL, messages: [{ role: 'user', content: 'hi' }] }),
    );
    assert.ok(err instanceof SDKError);
    assert.ok(err instanceof MistralError);
    assert.equal(err.statusCode, 429);
    assert.equal(err.headers.get('retry-after'), '2');
    assert.equal(err.headers.get('retry-after-ms'), '1500');
    assert.deepEqual(JSON.parse(err.body), {
      object: 'error',
      message: 'Rate limit exceeded',
      type: 'rate_limited',
      param: null,
      code: '1300',
    });
  });

  it('a 503 fault on a stream request is an SDKError with Mistral’s error JSON', async () => {
    fake.fault({ status: 503, times: 1 });
    const err = await thrown(() =>
      client(fake).chat.stream({ model: MODEL, messages: [{ role: 'user', content: 'hi' }] }),
    );
    assert.ok(err instanceof SDKError);
    assert.equal(err.statusCode, 503);
    const body = JSON.parse(err.body);
    assert.equal(body.object, 'error');
    assert.equal(body.code, null);
  });

  it('an unknown field (stream_options) is a 422 HTTPValidationError', async () => {
    // The SDK strips unknown fields itself, so add one the way an OpenAI-shaped caller would send it.
    const http = new HTTPClient().addHook('beforeRequest', async (req) => {
      const body: any = await req.clone().json();
      body.stream_options = { include_usage: true };
      return new Request(req.url, { method: req.method, headers: req.headers, body: JSON.stringify(body) });
    });
    const err = await thrown(() =>
      client(fake, 'test-key', http).chat.complete({
        model: MODEL,
        messages: [{ role: 'user', content: 'hi' }],
      }),
    );
    assert.ok(err instanceof HTTPValidationError);
    assert.equal(err.statusCode, 422);
    assert.equal(err.detail?.length, 1);
    assert.equal(err.detail?.[0].type, 'extra_forbidden');
    assert.deepEqual(err.detail?.[0].loc, ['body', 'stream_options']);
    assert.equal(err.detail?.[0].msg, 'Extra inputs are not permitted');
  });

  it('an out-of-range temperature is a 422 HTTPValidationError', async () => {
    const err = await thrown(() =>
      client(fake).chat.complete({
        model: MODEL,
        messages: [{ role: 'user', content: 'hi' }],
        temperature: 2,
      }),
    );
    assert.ok(err instanceof HTTPValidationError);
    assert.equal(err.detail?.[0].type, 'less_than_equal');
    assert.deepEqual(err.detail?.[0].loc, ['body', 'temperature']);
  });

  it('a conversation ending with an assistant turn is a 400 SDKError', async () => {
    const err = await thrown(() =>
      client(fake).chat.complete({
        model: MODEL,
        messages: [
          { role: 'user', content: 'hi' },
          { role: 'assistant', content: 'hello' },
        ],
      }),
    );
    assert.ok(err instanceof SDKError);
    assert.equal(err.statusCode, 400);
    assert.deepEqual(JSON.parse(err.body), {
      object: 'error',
      message:
        'Expected last role User or Tool (or Assistant with prefix True) for serving but got assistant',
      type: 'invalid_request_error',
      param: null,
      code: null,
    });
  });

  it('an assistant prefix is continued, not rejected', async () => {
    const res = await client(fake).chat.complete({
      model: MODEL,
      messages: [
        { role: 'user', content: 'hi' },
        { role: 'assistant', content: 'Sure: ', prefix: true },
      ],
    });
    assert.equal(res.choices[0].message?.content, 'Sure: echo: hi');
  });

  it('an unknown model is a 400 invalid_model with code 1500', async () => {
    const err = await thrown(() =>
      client(fake).chat.complete({ model: 'does-not-exist', messages: [{ role: 'user', content: 'hi' }] }),
    );
    assert.ok(err instanceof SDKError);
    assert.equal(err.statusCode, 400);
    const body = JSON.parse(err.body);
    assert.equal(body.message, 'Invalid model: does-not-exist');
    assert.equal(body.type, 'invalid_model');
    assert.equal(body.code, '1500');
  });

  it('a wrong key is a 401 SDKError with {"detail":"Unauthorized"}', async () => {
    const err = await thrown(() =>
      client(fake, 'wrong-key').chat.complete({ model: MODEL, messages: [{ role: 'user', content: 'hi' }] }),
    );
    assert.ok(err instanceof SDKError);
    assert.equal(err.statusCode, 401);
    assert.deepEqual(JSON.parse(err.body), { detail: 'Unauthorized' });
  });

  it('cutStreamAfter makes the SDK stream fail after the chunks already sent', async () => {
    fake.fault({ cutStreamAfter: 1, times: 1 });
    const stream = await client(fake).chat.stream({
      model: MODEL,
      messages: [{ role: 'user', content: 'a long enough answer' }],
    });
    const seen: string[] = [];
    const err = await thrown(async () => {
      for await (const e of stream) seen.push(String(e.data.choices[0].delta.content ?? ''));
    });
    assert.ok(err instanceof Error);
    assert.equal(seen.join(''), 'echo:');
  });

  it('errorStreamAfter sends an error event that the SDK cannot parse as a chunk', async () => {
    fake.fault({ errorStreamAfter: 2, times: 1 });
    const stream = await client(fake).chat.stream({
      model: MODEL,
      messages: [{ role: 'user', content: 'a long enough answer' }],
    });
    const seen: string[] = [];
    const err = await thrown(async () => {
      for await (const e of stream) seen.push(String(e.data.choices[0].delta.content ?? ''));
    });
    assert.ok(err instanceof Error);
    assert.equal(seen.join(''), 'echo: a');
  });

  it('models.list parses with the SDK’s model card schema', async () => {
    const list = await client(fake).models.list();
    assert.ok(list.data?.some((m) => 'id' in m && m.id === MODEL));
  });
});

describe('fake Mistral tool calls with the official SDK', () => {
  let fake: FakeProvider;
  before(async () => {
    fake = await startFakeMistral({ toolCall: { name: 'get_weather', arguments: { city: 'Paris' } } });
  });
  after(() => fake.close());

  const request = {
    model: MODEL,
    messages: [{ role: 'user' as const, content: 'weather in Paris?' }],
    tools: [
      {
        type: 'function' as const,
        function: {
          name: 'get_weather',
          parameters: { type: 'object', properties: { city: { type: 'string' } } },
        },
      },
    ],
  };

  it('chat.complete returns a tool call with a 9-character id and finish_reason tool_calls', async () => {
    const res = await client(fake).chat.complete(request);
    const choice = res.choices[0];
    assert.equal(choice.finishReason, 'tool_calls');
    const call = choice.message?.toolCalls?.[0];
    assert.match(call?.id ?? '', /^[A-Za-z0-9]{9}$/);
    assert.equal(call?.type, 'function');
    assert.equal(call?.function.name, 'get_weather');
    assert.deepEqual(JSON.parse(call?.function.arguments as string), { city: 'Paris' });
  });

  it('chat.stream delivers the tool call whole in one delta, with usage', async () => {
    const events = (await drain(await client(fake).chat.stream(request))) as any[];
    const withCalls = events.filter((e) => e.data.choices[0].delta.toolCalls);
    assert.equal(withCalls.length, 1);
    const last = events.at(-1).data;
    assert.equal(last, withCalls[0].data);
    assert.equal(last.choices[0].finishReason, 'tool_calls');
    assert.equal(last.choices[0].delta.toolCalls[0].function.name, 'get_weather');
    assert.ok(last.usage.totalTokens > 0);
  });
});

describe('fake Mistral over raw HTTP', () => {
  let fake: FakeProvider;
  before(async () => {
    fake = await startFakeMistral({ cachedPromptTokens: 1 });
  });
  after(() => fake.close());
  beforeEach(() => fake.clearFaults());

  function post(body: unknown, headers: Record<string, string> = {}) {
    return fetch(`${fake.origin}/v1/chat/completions`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', authorization: 'Bearer test-key', ...headers },
      body: typeof body === 'string' ? body : JSON.stringify(body),
    });
  }
  const user = [{ role: 'user', content: 'hi' }];

  it('serves the response fields in Mistral’s order', async () => {
    const res = await post({ model: MODEL, messages: user });
    assert.equal(res.status, 200);
    const json = await bodyOf(res);
    assert.deepEqual(Object.keys(json), ['id', 'object', 'model', 'usage', 'created', 'choices']);
    assert.deepEqual(Object.keys(json.choices[0]), ['index', 'message', 'finish_reason']);
    assert.deepEqual(Object.keys(json.choices[0].message), ['role', 'tool_calls', 'content']);
    assert.deepEqual(json.usage, {
      prompt_tokens: 1,
      completion_tokens: 2,
      total_tokens: 3,
      prompt_tokens_details: { cached_tokens: 1 },
    });
  });

  it('rejects OpenAI-only fields with one extra_forbidden entry each', async () => {
    const res = await post({
      model: MODEL,
      messages: user,
      stream_options: { include_usage: true },
      max_completion_tokens: 5,
      store: true,
    });
    assert.equal(res.status, 422);
    const { detail } = await bodyOf(res);
    assert.deepEqual(
      detail.map((d: any) => [d.type, d.loc.join('.'), d.msg, d.input]),
      [
        ['extra_forbidden', 'body.stream_options', 'Extra inputs are not permitted', { include_usage: true }],
        ['extra_forbidden', 'body.max_completion_tokens', 'Extra inputs are not permitted', 5],
        ['extra_forbidden', 'body.store', 'Extra inputs are not permitted', true],
      ],
    );
  });

  it('rejects extra fields inside a message, located under its role tag', async () => {
    const res = await post({ model: MODEL, messages: [{ role: 'user', content: 'hi', name: 'bob' }] });
    assert.equal(res.status, 422);
    const { detail } = await bodyOf(res);
    assert.deepEqual(detail[0].loc, ['body', 'messages', 0, 'user', 'name']);
  });

  it('answers invalid JSON with json_invalid', async () => {
    const res = await post('{"model": ');
    assert.equal(res.status, 422);
    const { detail } = await bodyOf(res);
    assert.equal(detail[0].type, 'json_invalid');
    assert.equal(detail[0].msg, 'JSON decode error');
    assert.equal(detail[0].loc[0], 'body');
  });

  it('reports missing model and messages together', async () => {
    const res = await post({});
    assert.equal(res.status, 422);
    const { detail } = await bodyOf(res);
    assert.deepEqual(
      detail.map((d: any) => [d.type, d.loc.join('.'), d.msg]),
      [
        ['missing', 'body.model', 'Field required'],
        ['missing', 'body.messages', 'Field required'],
      ],
    );
  });

  it('checks ranges and integer types the way pydantic words them', async () => {
    const res = await post({
      model: MODEL,
      messages: user,
      temperature: 1.6,
      top_p: 1.5,
      max_tokens: -1,
      n: 0,
    });
    assert.equal(res.status, 422);
    const { detail } = await bodyOf(res);
    assert.deepEqual(
      detail.map((d: any) => [d.type, d.loc[1], d.msg]),
      [
        ['less_than_equal', 'temperature', 'Input should be less than or equal to 1.5'],
        ['less_than_equal', 'top_p', 'Input should be less than or equal to 1'],
        ['greater_than_equal', 'max_tokens', 'Input should be greater than or equal to 0'],
        ['greater_than_equal', 'n', 'Input should be greater than or equal to 1'],
      ],
    );
    const frac = await post({ model: MODEL, messages: user, max_tokens: 1.5 });
    assert.equal((await bodyOf(frac)).detail[0].type, 'int_from_float');
  });

  it('rejects an unknown role as union_tag_invalid', async () => {
    const res = await post({ model: MODEL, messages: [{ role: 'developer', content: 'hi' }] });
    assert.equal(res.status, 422);
    const [d] = (await bodyOf(res)).detail;
    assert.equal(d.type, 'union_tag_invalid');
    assert.deepEqual(d.loc, ['body', 'messages', 0]);
    assert.equal(
      d.msg,
      "Input tag 'developer' found using 'role' does not match any of the expected tags: 'assistant', 'system', 'tool', 'user'",
    );
  });

  it('answers unknown paths with 404 and missing keys with 401', async () => {
    const notFound = await fetch(`${fake.origin}/v1/responses`, { method: 'POST' });
    assert.equal(notFound.status, 404);
    assert.deepEqual(await bodyOf(notFound), { detail: 'Not Found' });
    const noKey = await post({ model: MODEL, messages: user }, { authorization: '' });
    assert.equal(noKey.status, 401);
    assert.deepEqual(await bodyOf(noKey), { detail: 'Unauthorized' });
  });

  it('frames the stream as data events, usage with finish_reason on the last content chunk, then [DONE]', async () => {
    const res = await post({
      model: MODEL,
      messages: [{ role: 'user', content: 'two words' }],
      stream: true,
    });
    assert.match(res.headers.get('content-type') ?? '', /^text\/event-stream/);
    const data = sseData(await res.text());
    assert.equal(data.at(-1), '[DONE]');
    const chunks = data.slice(0, -1).map((d) => JSON.parse(d));
    assert.deepEqual(chunks[0].choices[0].delta, { role: 'assistant', content: '' });
    assert.deepEqual(
      chunks.slice(1).map((c) => c.choices[0].delta.content),
      ['echo:', ' two', ' words'],
    );
    const last = chunks.at(-1);
    assert.equal(last.choices[0].finish_reason, 'stop');
    assert.deepEqual(Object.keys(last), ['id', 'object', 'created', 'model', 'choices', 'usage']);
    assert.equal(last.usage.completion_tokens, 3);
    assert.equal(chunks.filter((c) => c.usage).length, 1);
    assert.ok(chunks.every((c) => c.id === chunks[0].id && c.object === 'chat.completion.chunk'));
  });

  it('sends the in-stream error event after N chunks and no [DONE]', async () => {
    fake.fault({ errorStreamAfter: 1, message: 'boom', times: 1 });
    const res = await post({
      model: MODEL,
      messages: [{ role: 'user', content: 'two words' }],
      stream: true,
    });
    const data = sseData(await res.text());
    assert.equal(data.length, 3);
    assert.deepEqual(JSON.parse(data[2]), {
      object: 'error',
      message: 'boom',
      type: 'internal_server_error',
      param: null,
      code: null,
    });
  });

  it('cutStreamAfter 0 drops the connection before any content', async () => {
    fake.fault({ cutStreamAfter: 0, times: 1 });
    const res = await post({ model: MODEL, messages: user, stream: true });
    assert.equal(res.status, 200);
    await assert.rejects(res.text());
  });

  it('records the request that a fault answered', async () => {
    fake.fault({ status: 500, times: 1 });
    const res = await post({ model: MODEL, messages: user });
    assert.equal(res.status, 500);
    assert.equal((await bodyOf(res)).type, 'internal_server_error');
    assert.equal(fake.requests.at(-1)?.faulted, true);
    assert.equal((await post({ model: MODEL, messages: user })).status, 200);
  });
});
