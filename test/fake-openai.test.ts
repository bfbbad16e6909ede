/**
 * Proves the OpenAI fake with the official `openai` SDK: if the SDK accepts the fake's answers, streams and
 * errors as its own, the gateway's tests against the fake say something about the real API.
 */
import assert from 'node:assert/strict';
import OpenAI from 'openai';
import type { FakeProvider } from '../lib/testing/fake-server.js';
import { startFakeOpenAI } from '../lib/testing/fake-openai.js';

describe('OpenAI fake, proven by the official openai SDK', () => {
  let fake: FakeProvider;
  let client: OpenAI;

  before(async () => {
    fake = await startFakeOpenAI({ toolCall: { name: 'get_weather', arguments: { city: 'Paris' } } });
    client = new OpenAI({ apiKey: 'test-key', baseURL: fake.baseUrl, maxRetries: 0 });
  });
  after(() => fake.close());
  afterEach(() => fake.clearFaults());

  it('answers a chat completion with text, finish reason and usage', async () => {
    const r = await client.chat.completions.create({
      model: 'gpt-4o-mini',
      messages: [
        { role: 'system', content: 'be brief' },
        { role: 'user', content: 'hello there' },
      ],
    });
    assert.equal(r.object, 'chat.completion');
    assert.equal(r.choices[0]!.message.content, 'echo: hello there');
    assert.equal(r.choices[0]!.finish_reason, 'stop');
    assert.deepEqual(
      { p: r.usage!.prompt_tokens, c: r.usage!.completion_tokens, t: r.usage!.total_tokens },
      { p: 4, c: 3, t: 7 },
    );
    const rec = fake.requests.at(-1)!;
    assert.equal(rec.headers.authorization, 'Bearer test-key');
    assert.match(String(rec.headers['user-agent']), /^OpenAI\/JS/);
  });

  it('streams chunks that reassemble to the same text, with usage when include_usage is set', async () => {
    const stream = await client.chat.completions.create({
      model: 'gpt-4o-mini',
      messages: [{ role: 'user', content: 'one two three' }],
      stream: true,
      stream_options: { include_usage: true },
    });
    let text = '';
    let finish: string | null = null;
    let usage: OpenAI.CompletionUsage | undefined;
    for await (const chunk of stream) {
      text += chunk.choices[0]?.delta?.content ?? '';
      finish = chunk.choices[0]?.finish_reason ?? finish;
      if (chunk.usage) usage = chunk.usage;
    }
    assert.equal(text, 'echo: one two three');
    assert.equal(finish, 'stop');
    assert.equal(usage?.completion_tokens, 4);
    assert.equal(usage?.prompt_tokens, 3);
  });

  it('sends no usage chunk without include_usage', async () => {
    const stream = await client.chat.completions.create({
      model: 'gpt-4o-mini',
      messages: [{ role: 'user', content: 'hi' }],
      stream: true,
    });
    let sawUsage = false;
    for await (const chunk of stream) if (chunk.usage) sawUsage = true;
    assert.equal(sawUsage, false);
  });

  it('truncates at max_tokens with finish_reason length, and honours stop', async () => {
    const r = await client.chat.completions.create({
      model: 'gpt-4o-mini',
      messages: [{ role: 'user', content: 'a b c d e' }],
      max_tokens: 2,
    });
    assert.equal(r.choices[0]!.message.content, 'echo: a');
    assert.equal(r.choices[0]!.finish_reason, 'length');
    const s = await client.chat.completions.create({
      model: 'gpt-4o-mini',
      messages: [{ role: 'user', content: 'a b STOP c' }],
      stop: ['STOP'],
    });
    assert.equal(s.choices[0]!.message.content, 'echo: a b ');
  });

  it('answers a tool call when tools are offered', async () => {
    const r = await client.chat.completions.create({
      model: 'gpt-4o-mini',
      messages: [{ role: 'user', content: 'weather?' }],
      tools: [{ type: 'function', function: { name: 'get_weather', parameters: { type: 'object' } } }],
    });
    assert.equal(r.choices[0]!.finish_reason, 'tool_calls');
    const call = r.choices[0]!.message.tool_calls![0]! as OpenAI.ChatCompletionMessageFunctionToolCall;
    assert.equal(call.function.name, 'get_weather');
    assert.deepEqual(JSON.parse(call.function.arguments), { city: 'Paris' });
  });

  it('a 429 reaches the SDK as RateLimitError with retry-after', async () => {
    fake.fault({ status: 429, retryAfter: 7, times: 1 });
    await assert.rejects(
      client.chat.completions.create({ model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'x' }] }),
      (err: unknown) => {
        assert.ok(err instanceof OpenAI.RateLimitError);
        assert.equal(err.status, 429);
        assert.equal(err.headers?.get('retry-after'), '7');
        assert.equal((err.error as { code?: string }).code, 'rate_limit_exceeded');
        return true;
      },
    );
  });

  it('a 400 reaches the SDK as BadRequestError with param and code', async () => {
    await assert.rejects(
      client.chat.completions.create({
        model: 'gpt-4o-mini',
        messages: [{ role: 'bot' as 'user', content: 'x' }],
      }),
      (err: unknown) => {
        assert.ok(err instanceof OpenAI.BadRequestError);
        assert.equal(err.param, 'messages[0].role');
        assert.equal(err.code, 'invalid_value');
        return true;
      },
    );
  });

  it('rejects a wrong key with AuthenticationError and masks the key', async () => {
    const bad = new OpenAI({ apiKey: 'sk-wrong-key-123456', baseURL: fake.baseUrl, maxRetries: 0 });
    await assert.rejects(
      bad.chat.completions.create({ model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'x' }] }),
      (err: unknown) => {
        assert.ok(err instanceof OpenAI.AuthenticationError);
        assert.doesNotMatch(err.message, /sk-wrong-key-123456/);
        return true;
      },
    );
  });

  it('a 500 is InternalServerError; an unknown model is NotFoundError', async () => {
    fake.fault({ status: 500, times: 1 });
    await assert.rejects(
      client.chat.completions.create({ model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'x' }] }),
      OpenAI.InternalServerError,
    );
    await assert.rejects(
      client.chat.completions.create({ model: 'does-not-exist', messages: [{ role: 'user', content: 'x' }] }),
      OpenAI.NotFoundError,
    );
  });

  it('a stream cut before the end makes the SDK stream fail', async () => {
    fake.fault({ cutStreamAfter: 1, times: 1 });
    const stream = await client.chat.completions.create({
      model: 'gpt-4o-mini',
      messages: [{ role: 'user', content: 'one two three' }],
      stream: true,
    });
    let text = '';
    await assert.rejects(async () => {
      for await (const chunk of stream) text += chunk.choices[0]?.delta?.content ?? '';
    });
    assert.equal(text, 'echo:');
  });

  it('rejects unknown fields and stream_options without stream, as OpenAI does', async () => {
    const post = (body: unknown) =>
      fetch(`${fake.baseUrl}/chat/completions`, {
        method: 'POST',
        headers: { authorization: 'Bearer test-key', 'content-type': 'application/json' },
        body: JSON.stringify(body),
      });
    const unknown = await post({ model: 'm', messages: [{ role: 'user', content: 'x' }], foo: 1 });
    assert.equal(unknown.status, 400);
    assert.equal(
      ((await unknown.json()) as any).error.message,
      'Unrecognized request argument supplied: foo',
    );
    const so = await post({
      model: 'm',
      messages: [{ role: 'user', content: 'x' }],
      stream_options: { include_usage: true },
    });
    assert.equal(so.status, 400);
    const temp = await post({ model: 'm', messages: [{ role: 'user', content: 'x' }], temperature: 3 });
    assert.equal(((await temp.json()) as any).error.code, 'decimal_above_max_value');
  });
});
