/**
 * The programmatic face: Gateway.chat / chatStream run the same stages as the router, pricing decides cost,
 * and a model without a price costs 0 with one warning.
 */
import assert from 'node:assert/strict';
import { getEventListeners } from 'node:events';
import { GatewayError } from '../lib/errors.js';
import { Gateway } from '../lib/gateway.js';
import { silentLogger } from '../lib/logger.js';
import { PriceBook, loadPricingFile } from '../lib/pricing.js';
import { Provider } from '../lib/provider.js';
import type { FakeProvider } from '../lib/testing/fake-server.js';
import { startFakeOpenAI } from '../lib/testing/fake-openai.js';
import { assertCost, recordingLogger } from './helpers/setup.js';

describe('Gateway.chat and Gateway.chatStream (OpenAI fake)', () => {
  let fake: FakeProvider;
  let gateway: Gateway;
  const logger = recordingLogger();

  before(async () => {
    fake = await startFakeOpenAI();
    gateway = new Gateway({
      providers: [
        new Provider({
          name: 'openai',
          apiKey: 'test-key',
          baseUrl: fake.baseUrl,
          models: ['gpt-4o-mini', 'my-finetune'],
          maxRetries: 0,
        }),
      ],
      cache: { backend: 'disabled' },
      logger,
    });
  });
  after(async () => {
    await gateway.close();
    await fake.close();
  });

  it('chat() returns the same unified response as POST /chat', async () => {
    const r = await gateway.chat({
      model: 'gpt-4o-mini',
      messages: [{ role: 'user', content: 'Hi' }],
      max_tokens: 200,
    });
    assert.equal(r.content, 'echo: Hi');
    assert.equal(r.provider, 'openai');
    assertCost(r.cost, (1 * 0.15 + 2 * 0.6) / 1e6);
    assert.deepEqual(r.usage, { prompt_tokens: 1, completion_tokens: 2, total_tokens: 3 });
  });

  it('chatStream() yields deltas and resolves done with usage and cost', async () => {
    const stream = gateway.chatStream({ model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'a b' }] });
    let text = '';
    for await (const c of stream) text += c.delta;
    const done = await stream.done;
    assert.equal(text, 'echo: a b');
    assert.equal(done.finish_reason, 'stop');
    assert.equal(done.usage.completion_tokens, 3);
    assertCost(done.cost, (2 * 0.15 + 3 * 0.6) / 1e6);
  });

  it('throws typed errors with a kind', async () => {
    await assert.rejects(
      gateway.chat({ model: 'nope', messages: [{ role: 'user', content: 'x' }] }),
      (err: unknown) => {
        assert.ok(err instanceof GatewayError);
        assert.equal(err.kind, 'not_found');
        assert.equal(err.status, 404);
        return true;
      },
    );
    await assert.rejects(gateway.chat({ model: 'gpt-4o-mini', messages: [] }), { kind: 'invalid_request' });
    fake.fault({ status: 429, retryAfter: 3, times: 1 });
    const stream = gateway.chatStream({ model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'x' }] });
    await assert.rejects(
      (async () => {
        for await (const _ of stream) void _;
      })(),
      (err: unknown) => err instanceof GatewayError && err.kind === 'rate_limit' && err.retryAfterMs === 3000,
    );
  });

  it('a model without a price costs 0 and is warned about once, naming pricing.yaml', async () => {
    const before = logger.lines.length;
    const r1 = await gateway.chat({ model: 'my-finetune', messages: [{ role: 'user', content: 'x' }] });
    const r2 = await gateway.chat({ model: 'my-finetune', messages: [{ role: 'user', content: 'y' }] });
    assertCost(r1.cost, 0);
    assertCost(r2.cost, 0);
    const warnings = logger.lines
      .slice(before)
      .filter((l) => l.level === 'warn' && /pricing\.yaml/.test(l.msg ?? ''));
    assert.equal(warnings.length, 1);
    assert.match(warnings[0]!.msg!, /my-finetune/);
  });

  it('a consumer that stops reading a stream early aborts the upstream call', async () => {
    const slow = await startFakeOpenAI({ chunkDelayMs: 100 });
    const gw = new Gateway({
      providers: { openai: { api_key: 'test-key', base_url: slow.baseUrl, models: ['gpt-4o-mini'] } },
      logger: silentLogger,
    });
    try {
      for await (const _ of gw.chatStream({
        model: 'gpt-4o-mini',
        messages: [{ role: 'user', content: 'a b c d e f g' }],
      })) {
        break;
      }
      const rec = slow.requests.at(-1)!;
      for (let i = 0; i < 50 && !rec.clientClosed; i++) await new Promise((r) => setTimeout(r, 20));
      assert.equal(rec.clientClosed, true);
    } finally {
      await gw.close();
      await slow.close();
    }
  });

  it('leaves no listener on a caller signal that outlives its calls, answered, failed or streamed', async () => {
    const fake = await startFakeOpenAI();
    const gw = new Gateway({
      providers: {
        openai: { api_key: 'test-key', base_url: fake.baseUrl, models: ['gpt-4o-mini'], max_retries: 0 },
      },
      cache: { backend: 'disabled' },
      analytics: { enabled: false },
      logger: silentLogger,
    });
    const shutdown = new AbortController();
    const chat = { model: 'gpt-4o-mini', messages: [{ role: 'user' as const, content: 'hi' }] };
    try {
      for (let i = 0; i < 20; i++) await gw.chat(chat, { signal: shutdown.signal });
      fake.fault({ status: 500 });
      await assert.rejects(gw.chat(chat, { signal: shutdown.signal }));
      fake.clearFaults();
      for await (const _ of gw.chatStream(chat, { signal: shutdown.signal })) void _;
      assert.equal(getEventListeners(shutdown.signal, 'abort').length, 0);
    } finally {
      await gw.close();
      await fake.close();
    }
  });

  it('a caller signal that aborts mid-call ends the upstream request; one aborted before never reaches it', async () => {
    const hanging = await startFakeOpenAI();
    hanging.fault({ hang: true });
    const gw = new Gateway({
      providers: { openai: { api_key: 'test-key', base_url: hanging.baseUrl, models: ['gpt-4o-mini'] } },
      cache: { backend: 'disabled' },
      analytics: { enabled: false },
      logger: silentLogger,
    });
    const chat = { model: 'gpt-4o-mini', messages: [{ role: 'user' as const, content: 'hi' }] };
    try {
      const caller = new AbortController();
      const call = gw.chat(chat, { signal: caller.signal });
      call.catch(() => {});
      while (hanging.requests.length === 0) await new Promise((r) => setTimeout(r, 10));
      caller.abort();
      await assert.rejects(call, (err: GatewayError) => err.status === 499);
      const rec = hanging.requests[0]!;
      for (let i = 0; i < 50 && !rec.clientClosed; i++) await new Promise((r) => setTimeout(r, 20));
      assert.equal(rec.clientClosed, true);

      await assert.rejects(
        gw.chat(chat, { signal: AbortSignal.abort() }),
        (err: GatewayError) => err.status === 499,
      );
      assert.equal(hanging.requests.length, 1);
    } finally {
      await gw.close();
      await hanging.close();
    }
  });
});

describe('pricing', () => {
  it('ships prices for the models of all five providers, local Ollama free', () => {
    const prices = loadPricingFile();
    for (const key of [
      'openai/gpt-4o',
      'anthropic/claude-sonnet-4-20250514',
      'gemini/gemini-2.5-flash',
      'mistral/mistral-large-latest',
      'ollama/*',
    ]) {
      assert.ok(prices[key], `${key} has a price`);
    }
    assert.equal(prices['ollama/*']!.input_per_mtok, 0);
  });

  it('cost = prompt x input + completion x output, cached tokens at their own rate', () => {
    const book = PriceBook.withOverrides({});
    assert.equal(
      book.costOf(
        { prompt_tokens: 1_000_000, completion_tokens: 1_000_000, total_tokens: 0 },
        'openai',
        'openai',
        'gpt-4o',
      ),
      12.5,
    );
    // 1M prompt tokens of which 400k cached at $1.25 instead of $2.50.
    assert.equal(
      book.costOf(
        { prompt_tokens: 1_000_000, completion_tokens: 0, total_tokens: 0, cached_prompt_tokens: 400_000 },
        'openai',
        'openai',
        'gpt-4o',
      ),
      0.6 * 2.5 + 0.4 * 1.25,
    );
    // Anthropic: cache reads at $0.30, cache writes at $3.75 (Sonnet 4).
    assert.equal(
      book.costOf(
        {
          prompt_tokens: 1_000_000,
          completion_tokens: 0,
          total_tokens: 0,
          cached_prompt_tokens: 500_000,
          cache_creation_tokens: 500_000,
        },
        'anthropic',
        'anthropic',
        'claude-sonnet-4-20250514',
      ),
      0.5 * 0.3 + 0.5 * 3.75,
    );
    assert.equal(
      book.costOf(
        { prompt_tokens: 999, completion_tokens: 999, total_tokens: 0 },
        'local',
        'ollama',
        'llama3.2',
      ),
      0,
    );
  });

  it('config overrides win, by provider name or bare model', () => {
    const book = PriceBook.withOverrides({
      'openai-eu/gpt-4o': { input_per_mtok: 5, output_per_mtok: 20 },
      'my-model': { input_per_mtok: 1, output_per_mtok: 1 },
    });
    const usage = { prompt_tokens: 1_000_000, completion_tokens: 0, total_tokens: 0 };
    assert.equal(book.costOf(usage, 'openai-eu', 'openai', 'gpt-4o'), 5);
    assert.equal(book.costOf(usage, 'openai', 'openai', 'gpt-4o'), 2.5);
    assert.equal(book.costOf(usage, 'x', 'openai', 'my-model'), 1);
  });
});
