/**
 * The OpenAI-compatible endpoints, driven by unmodified clients: the official `openai` SDK and the Vercel
 * AI SDK's OpenAI-compatible provider, pointed at a real listening host app whose only change is the base
 * URL. Every provider's fake sits behind the gateway; the SDKs must read content, finish reasons, usage and
 * typed errors exactly as they would from OpenAI. Tool calls: openai-compat-tools.test.ts.
 */
import assert from 'node:assert/strict';
import { createOpenAICompatible } from '@ai-sdk/openai-compatible';
import { generateText, streamText } from 'ai';
import OpenAI from 'openai';
import { silentLogger } from '../lib/logger.js';
import { completionId } from '../lib/openai-compat/response.js';
import { startFakeOpenAI } from '../lib/testing/fake-openai.js';
import type { FakeProvider } from '../lib/testing/fake-server.js';
import type { ProviderType } from '../types/index.js';
import type { Served } from './helpers/openai-compat.js';
import {
  CLIENT_TOKEN,
  MODELS,
  PROVIDERS,
  configFor,
  say,
  serve,
  startFakes,
} from './helpers/openai-compat.js';

describe('OpenAI-compatible endpoints (/v1) behind unmodified SDKs', function () {
  this.timeout(20_000);
  let fakes: Record<ProviderType, FakeProvider>;
  let gw: Served;
  let client: OpenAI;

  before(async () => {
    fakes = await startFakes();
    gw = await serve(configFor(fakes));
    client = new OpenAI({ baseURL: gw.url, apiKey: CLIENT_TOKEN, maxRetries: 0 });
  });
  after(async () => {
    await gw.close();
    await Promise.all(Object.values(fakes).map((f) => f.close()));
  });
  afterEach(() => Object.values(fakes).forEach((f) => f.clearFaults()));

  it("gives every completion its own id in OpenAI's format, across refills of the id entropy", () => {
    const ids = Array.from({ length: 500 }, () => completionId());
    for (const id of ids) assert.match(id, /^chatcmpl-[A-Za-z0-9]{29}$/);
    assert.equal(new Set(ids).size, ids.length);
    // Every position draws from the whole alphabet: ids are not a counter or a repeated pool.
    const letters = new Set(ids.map((id) => id[20]));
    assert.ok(letters.size > 40, `position 20 took only ${letters.size} values`);
  });

  for (const provider of PROVIDERS) {
    describe(`${provider} behind the gateway`, () => {
      it('answers chat.completions.create with a chat.completion the SDK reads', async () => {
        const { data, response } = await client.chat.completions
          .create({ model: MODELS[provider], messages: say('hello there') })
          .withResponse();
        assert.equal(data.object, 'chat.completion');
        assert.match(data.id, /^chatcmpl-[A-Za-z0-9]{29}$/);
        assert.equal(data.model, MODELS[provider]);
        assert.equal(typeof data.created, 'number');
        assert.equal(data.choices.length, 1);
        assert.equal(data.choices[0]!.message.role, 'assistant');
        assert.equal(data.choices[0]!.message.content, 'echo: hello there');
        assert.equal(data.choices[0]!.finish_reason, 'stop');
        assert.equal(data.usage!.completion_tokens, 3);
        assert.ok(data.usage!.prompt_tokens > 0);
        assert.equal(data.usage!.total_tokens, data.usage!.prompt_tokens + data.usage!.completion_tokens);
        // Gateway extras travel in headers only.
        assert.equal(response.headers.get('x-gateway-provider'), provider);
        assert.match(response.headers.get('x-request-id')!, /^req_/);
        assert.equal(Object.hasOwn(data, 'provider') || Object.hasOwn(data, 'cost'), false);
        // The client's bearer token is not a provider key and is never forwarded.
        const upstream = fakes[provider].requests.at(-1)!;
        assert.equal(JSON.stringify(upstream.headers).includes(CLIENT_TOKEN), false);
        if (provider === 'openai') assert.equal(upstream.headers.authorization, 'Bearer test-key');
      });

      it('streams chat.completion.chunk events with role, content, finish reason and a usage chunk', async () => {
        const stream = await client.chat.completions.create({
          model: MODELS[provider],
          messages: say('one two three'),
          stream: true,
          stream_options: { include_usage: true },
        });
        const chunks: OpenAI.Chat.Completions.ChatCompletionChunk[] = [];
        for await (const chunk of stream) chunks.push(chunk);
        assert.ok(chunks.every((c) => c.object === 'chat.completion.chunk' && c.id === chunks[0]!.id));
        assert.match(chunks[0]!.id, /^chatcmpl-/);
        assert.equal(chunks[0]!.choices[0]!.delta.role, 'assistant');
        const text = chunks.map((c) => c.choices[0]?.delta.content ?? '').join('');
        assert.equal(text, 'echo: one two three');
        const last = chunks.at(-1)!;
        assert.deepEqual(last.choices, []);
        assert.equal(last.usage!.completion_tokens, 4);
        assert.equal(last.usage!.total_tokens, last.usage!.prompt_tokens + 4);
        const finishing = chunks.at(-2)!;
        assert.equal(finishing.choices[0]!.finish_reason, 'stop');
        assert.deepEqual(finishing.choices[0]!.delta, {});
        assert.ok(chunks.slice(0, -2).every((c) => c.choices[0]!.finish_reason === null && c.usage === null));
        assert.ok(chunks.every((c) => c.model === MODELS[provider]));
      });
    });
  }

  it('frames the stream exactly like OpenAI: data-only events, no usage unless asked, then [DONE]', async () => {
    const res = await fetch(`${gw.url}/chat/completions`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', authorization: `Bearer ${CLIENT_TOKEN}` },
      body: JSON.stringify({ model: 'gpt-4o-mini', messages: say('hi'), stream: true }),
    });
    assert.equal(res.status, 200);
    assert.match(res.headers.get('content-type')!, /^text\/event-stream/);
    assert.equal(res.headers.get('x-gateway-provider'), 'openai');
    const text = await res.text();
    assert.ok(text.endsWith('data: [DONE]\n\n'));
    assert.equal(/^event:/m.test(text), false);
    const events = text
      .split('\n\n')
      .filter((b) => b && b !== 'data: [DONE]')
      .map((b) => JSON.parse(b.replace(/^data: /, '')));
    assert.ok(events.every((e) => !('usage' in e) && e.choices.length === 1));
    assert.equal(events.at(-1).choices[0].finish_reason, 'stop');
  });

  it('translates max_completion_tokens, the developer role and stop; reports ignored fields in a header', async () => {
    const { data, response } = await client.chat.completions
      .create({
        model: 'gpt-4o-mini',
        messages: [
          { role: 'developer', content: 'be brief' },
          { role: 'user', content: [{ type: 'text', text: 'alpha beta gamma delta' }] },
        ],
        max_completion_tokens: 2,
        seed: 7,
      })
      .withResponse();
    assert.equal(data.choices[0]!.finish_reason, 'length');
    assert.equal(data.choices[0]!.message.content, 'echo: alpha');
    const sent = fakes.openai.requests.at(-1)!.body;
    assert.deepEqual(sent.messages, [
      { role: 'system', content: 'be brief' },
      { role: 'user', content: 'alpha beta gamma delta' },
    ]);
    assert.equal(sent.max_tokens, 2);
    assert.equal(sent.seed, undefined);
    assert.match(response.headers.get('x-gateway-warnings')!, /seed is not supported and was ignored/);
  });

  it('serves models.list() in OpenAI list shape with bare and provider/model ids', async () => {
    const ids: string[] = [];
    for await (const m of client.models.list()) {
      assert.equal(m.object, 'model');
      assert.equal(typeof m.created, 'number');
      ids.push(m.id);
    }
    for (const p of PROVIDERS) {
      assert.ok(ids.includes(MODELS[p]), `missing ${MODELS[p]}`);
      assert.ok(ids.includes(`${p}/${MODELS[p]}`), `missing ${p}/${MODELS[p]}`);
    }
    assert.equal(ids.length, 10);
    const one = await client.models.retrieve('anthropic/claude-sonnet-4-20250514');
    assert.equal(one.owned_by, 'anthropic');
    await assert.rejects(client.models.retrieve('nope'), OpenAI.NotFoundError);
  });

  it('reaches any provider through the OpenAI format with a provider/model id', async () => {
    const { data, response } = await client.chat.completions
      .create({ model: 'mistral/mistral-large-latest', messages: say('pinned') })
      .withResponse();
    assert.equal(data.model, 'mistral-large-latest');
    assert.equal(response.headers.get('x-gateway-provider'), 'mistral');
  });

  describe('errors as OpenAI SDK typed errors', () => {
    it('an upstream 429 on the only target is an OpenAI.RateLimitError with OpenAI fields', async () => {
      fakes.openai.fault({ status: 429, retryAfter: 3, times: 1 });
      const err = await client.chat.completions
        .create({ model: 'openai/gpt-4o-mini', messages: say('hi') })
        .then(
          () => assert.fail('expected a rate limit error'),
          (e: unknown) => e,
        );
      assert.ok(err instanceof OpenAI.RateLimitError, String(err));
      assert.equal(err.status, 429);
      assert.equal(err.type, 'requests');
      assert.equal(err.code, 'rate_limit_exceeded');
      assert.equal(err.headers.get('retry-after'), '3');
      assert.match(err.headers.get('x-request-id')!, /^req_/);
    });

    it('a 429 before the first chunk of a stream is a RateLimitError too', async () => {
      fakes.openai.fault({ status: 429, times: 1 });
      await assert.rejects(
        client.chat.completions.create({ model: 'openai/gpt-4o-mini', messages: say('hi'), stream: true }),
        OpenAI.RateLimitError,
      );
    });

    it('n other than 1 is a BadRequestError naming the param', async () => {
      const err = await client.chat.completions
        .create({ model: 'gpt-4o-mini', messages: say('hi'), n: 2 })
        .then(
          () => assert.fail('expected a bad request'),
          (e: unknown) => e,
        );
      assert.ok(err instanceof OpenAI.BadRequestError, String(err));
      assert.equal(err.param, 'n');
      assert.equal(err.type, 'invalid_request_error');
      assert.equal(
        fakes.openai.requests.some((r) => r.body?.n === 2),
        false,
      );
    });

    it('a malformed message is a BadRequestError naming the field, in the OpenAI error shape', async () => {
      const res = await fetch(`${gw.url}/chat/completions`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ model: 'gpt-4o-mini', messages: [{ role: 'user' }] }),
      });
      assert.equal(res.status, 400);
      const body = (await res.json()) as { error: Record<string, unknown> };
      assert.deepEqual(Object.keys(body.error).sort(), ['code', 'message', 'param', 'type']);
      assert.equal(body.error.param, 'messages[0].content');
    });

    it('invalid JSON and stream_options without stream are 400s in the OpenAI shape', async () => {
      const bad = await fetch(`${gw.url}/chat/completions`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: '{"model": ',
      });
      assert.equal(bad.status, 400);
      assert.equal(((await bad.json()) as { error: { type: string } }).error.type, 'invalid_request_error');
      await assert.rejects(
        client.chat.completions.create({
          model: 'gpt-4o-mini',
          messages: say('hi'),
          stream_options: { include_usage: true },
        }),
        (e: unknown) => e instanceof OpenAI.BadRequestError && e.param === 'stream_options',
      );
    });

    it('an unknown model is an OpenAI.NotFoundError with code model_not_found', async () => {
      const err = await client.chat.completions.create({ model: 'no-such-model', messages: say('hi') }).then(
        () => assert.fail('expected not found'),
        (e: unknown) => e,
      );
      assert.ok(err instanceof OpenAI.NotFoundError, String(err));
      assert.equal(err.code, 'model_not_found');
    });

    it('a failure mid-stream reaches the SDK as an error while iterating', async () => {
      fakes.openai.fault({ errorStreamAfter: 1, times: 1 });
      const stream = await client.chat.completions.create({
        model: 'openai/gpt-4o-mini',
        messages: say('a b c d e f'),
        stream: true,
      });
      const seen: string[] = [];
      await assert.rejects(async () => {
        for await (const chunk of stream) seen.push(chunk.choices[0]?.delta.content ?? '');
      }, OpenAI.APIError);
      assert.ok(seen.join('').length > 0, 'some content arrived before the error');
    });
  });

  describe('the Vercel AI SDK (OpenAI-compatible provider)', () => {
    const gateway = () =>
      createOpenAICompatible({ name: 'gw', baseURL: gw.url, apiKey: CLIENT_TOKEN, includeUsage: true });

    for (const provider of ['openai', 'anthropic'] as const) {
      it(`generateText and streamText work against ${provider} through the gateway`, async () => {
        const generated = await generateText({ model: gateway()(MODELS[provider]), prompt: 'hello there' });
        assert.equal(generated.text, 'echo: hello there');
        assert.equal(generated.finishReason, 'stop');
        assert.equal(generated.usage.outputTokens, 3);
        assert.ok((generated.usage.inputTokens ?? 0) > 0);

        const streamed = streamText({ model: gateway()(MODELS[provider]), prompt: 'one two three' });
        let text = '';
        for await (const part of streamed.textStream) text += part;
        assert.equal(text, 'echo: one two three');
        const usage = await streamed.usage;
        assert.equal(usage.outputTokens, 4);
        assert.equal(usage.totalTokens, (usage.inputTokens ?? 0) + 4);
        assert.equal(await streamed.finishReason, 'stop');
      });
    }
  });
});

describe('OpenAI-compatible endpoints: fallback behind an unmodified SDK client', function () {
  this.timeout(20_000);
  let primary: FakeProvider;
  let backup: FakeProvider;
  let gw: Served;
  let client: OpenAI;

  before(async () => {
    primary = await startFakeOpenAI({ chunkDelayMs: 0 });
    backup = await startFakeOpenAI({ chunkDelayMs: 0 });
    gw = await serve({
      providers: {
        openai: { api_key: 'test-key', base_url: primary.baseUrl, models: ['gpt-4o-mini'], max_retries: 0 },
        backup: {
          type: 'openai',
          api_key: 'test-key',
          base_url: backup.baseUrl,
          models: ['gpt-4o-mini'],
          max_retries: 0,
        },
      },
      logger: silentLogger,
    });
    client = new OpenAI({ baseURL: gw.url, apiKey: CLIENT_TOKEN, maxRetries: 0 });
  });
  after(async () => {
    await gw.close();
    await primary.close();
    await backup.close();
  });

  it('a 500 from the first provider is invisible to the SDK; the header names the backup', async () => {
    primary.fault({ status: 500, times: 1 });
    const { data, response } = await client.chat.completions
      .create({ model: 'gpt-4o-mini', messages: say('still there?') })
      .withResponse();
    assert.equal(data.choices[0]!.message.content, 'echo: still there?');
    assert.equal(response.headers.get('x-gateway-provider'), 'backup');
    assert.equal(response.headers.get('x-gateway-fallback-count'), '1');
    assert.equal(primary.requests.at(-1)!.faulted, true);
    assert.equal(backup.requests.length, 1);
  });

  it('falls back for a stream before its first chunk, too', async () => {
    primary.fault({ status: 500, times: 1 });
    const { data: stream, response } = await client.chat.completions
      .create({ model: 'gpt-4o-mini', messages: say('streamed'), stream: true })
      .withResponse();
    let text = '';
    for await (const chunk of stream) text += chunk.choices[0]?.delta.content ?? '';
    assert.equal(text, 'echo: streamed');
    assert.equal(response.headers.get('x-gateway-provider'), 'backup');
  });
});
