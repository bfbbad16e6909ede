/**
 * One table, five providers: the same scenarios through POST /chat, POST /chat/stream, Gateway.chat and
 * Gateway.chatStream must give the same response shape, usage, cost, finish reasons and error kinds,
 * whichever provider serves the model. This is the product's core promise.
 */
import assert from 'node:assert/strict';
import request from 'supertest';
import { Gateway } from '../lib/gateway.js';
import { silentLogger } from '../lib/logger.js';
import { PriceBook } from '../lib/pricing.js';
import { startFakeAnthropic } from '../lib/testing/fake-anthropic.js';
import { startFakeGemini } from '../lib/testing/fake-gemini.js';
import { startFakeMistral } from '../lib/testing/fake-mistral.js';
import { startFakeOllama } from '../lib/testing/fake-ollama.js';
import { startFakeOpenAI } from '../lib/testing/fake-openai.js';
import type { FakeProvider, FakeProviderOptions } from '../lib/testing/fake-server.js';
import type { ProviderType } from '../types/index.js';
import { assertCost, hostApp, parseSse } from './helpers/setup.js';

interface Row {
  type: ProviderType;
  model: string;
  start: (o: FakeProviderOptions) => Promise<FakeProvider>;
  /** Where the system prompt must land in the upstream body. */
  systemOf: (body: any) => unknown;
  /** The provider's own "overloaded" status. */
  overloaded: number;
}

const ROWS: Row[] = [
  {
    type: 'openai',
    model: 'gpt-4o-mini',
    start: startFakeOpenAI,
    systemOf: (b) => b.messages[0],
    overloaded: 503,
  },
  {
    type: 'anthropic',
    model: 'claude-sonnet-4-20250514',
    start: startFakeAnthropic,
    systemOf: (b) => b.system,
    overloaded: 529,
  },
  {
    type: 'gemini',
    model: 'gemini-2.5-flash',
    start: startFakeGemini,
    systemOf: (b) => b.systemInstruction,
    overloaded: 503,
  },
  {
    type: 'mistral',
    model: 'mistral-large-latest',
    start: startFakeMistral,
    systemOf: (b) => b.messages[0],
    overloaded: 503,
  },
  {
    type: 'ollama',
    model: 'llama3.2',
    start: startFakeOllama,
    systemOf: (b) => b.messages[0],
    overloaded: 503,
  },
];

const EXPECTED_SYSTEM: Record<ProviderType, unknown> = {
  openai: { role: 'system', content: 'be brief' },
  anthropic: 'be brief',
  gemini: { parts: [{ text: 'be brief' }] },
  mistral: { role: 'system', content: 'be brief' },
  ollama: { role: 'system', content: 'be brief' },
};

const MESSAGES = [
  { role: 'system' as const, content: 'be brief' },
  { role: 'user' as const, content: 'hello there' },
];
// The fakes count one token per word: 2 (system) + 2 (user) in, "echo: hello there" = 3 out.
const USAGE = { prompt_tokens: 4, completion_tokens: 3, total_tokens: 7 };
const prices = PriceBook.withOverrides({});

for (const row of ROWS) {
  describe(`provider matrix: ${row.type}`, () => {
    let fake: FakeProvider;
    let app: ReturnType<typeof hostApp>['app'];
    let gateway: Gateway;
    const expectedCost = prices.costOf(USAGE, row.type, row.type, row.model);

    before(async () => {
      fake = await row.start({ apiKeys: ['test-key'] });
      const config = {
        providers: {
          [row.type]: {
            api_key: 'test-key',
            base_url: fake.baseUrl,
            models: [row.model],
            timeout_seconds: 0.5,
            max_retries: 0,
          },
        },
        // Every scenario repeats the same prompt: the cache would answer them all.
        cache: { backend: 'disabled' as const },
        logger: silentLogger,
      };
      ({ app, gateway } = hostApp(config));
    });
    after(async () => {
      await gateway.close();
      await fake.close();
    });
    afterEach(() => fake.clearFaults());

    it('POST /chat: unified shape, usage, cost, system placement', async () => {
      const r = await request(app)
        .post('/ai/chat')
        .send({ model: row.model, messages: MESSAGES })
        .expect(200);
      assert.deepEqual(Object.keys(r.body).sort(), [
        'cached',
        'content',
        'cost',
        'finish_reason',
        'id',
        'latency_ms',
        'model',
        'provider',
        'usage',
      ]);
      assert.equal(r.body.content, 'echo: hello there');
      assert.equal(r.body.finish_reason, 'stop');
      assert.equal(r.body.provider, row.type);
      assert.deepEqual(
        { p: r.body.usage.prompt_tokens, c: r.body.usage.completion_tokens, t: r.body.usage.total_tokens },
        { p: USAGE.prompt_tokens, c: USAGE.completion_tokens, t: USAGE.total_tokens },
      );
      assertCost(r.body.cost, expectedCost);
      assert.deepEqual(row.systemOf(fake.requests.at(-1)!.body), EXPECTED_SYSTEM[row.type]);
    });

    it('POST /chat/stream: same text, usage and cost in the done event', async () => {
      const r = await request(app)
        .post('/ai/chat/stream')
        .send({ model: row.model, messages: MESSAGES })
        .expect(200);
      const events = parseSse(r.text);
      assert.equal(
        events
          .filter((e) => e.event === 'message')
          .map((e) => e.data.delta)
          .join(''),
        'echo: hello there',
      );
      const done = events.at(-1)!;
      assert.equal(done.event, 'done');
      assert.equal(done.data.finish_reason, 'stop');
      assert.equal(done.data.usage.prompt_tokens, USAGE.prompt_tokens);
      assert.equal(done.data.usage.completion_tokens, USAGE.completion_tokens);
      assertCost(done.data.cost, expectedCost);
    });

    it('Gateway.chat and Gateway.chatStream give the same answers', async () => {
      const r = await gateway.chat({ model: row.model, messages: MESSAGES });
      assert.equal(r.content, 'echo: hello there');
      assert.equal(r.usage.completion_tokens, USAGE.completion_tokens);
      const s = gateway.chatStream({ model: row.model, messages: MESSAGES });
      let text = '';
      for await (const c of s) text += c.delta;
      const done = await s.done;
      assert.equal(text, 'echo: hello there');
      assert.equal(done.usage.prompt_tokens, USAGE.prompt_tokens);
      assertCost(done.cost, expectedCost);
    });

    it('max_tokens cuts the answer with finish_reason length, in both faces', async () => {
      const body = { model: row.model, messages: [{ role: 'user', content: 'a b c d e f' }], max_tokens: 2 };
      const r = await request(app).post('/ai/chat').send(body).expect(200);
      assert.equal(r.body.finish_reason, 'length');
      assert.equal(r.body.usage.completion_tokens, 2);
      const s = await request(app).post('/ai/chat/stream').send(body).expect(200);
      assert.equal(parseSse(s.text).at(-1)!.data.finish_reason, 'length');
    });

    const errorCases: [string, () => void, number, string][] = [
      ['upstream 400', () => fake.fault({ status: 400, times: 1 }), 400, 'invalid_request'],
      ['upstream 429', () => fake.fault({ status: 429, retryAfter: 2, times: 1 }), 429, 'rate_limit'],
      ['upstream 500', () => fake.fault({ status: 500, times: 1 }), 502, 'server_error'],
      [
        `upstream ${row.overloaded}`,
        () => fake.fault({ status: row.overloaded, times: 1 }),
        502,
        'server_error',
      ],
      ['a hanging upstream', () => fake.fault({ hang: true, times: 1 }), 504, 'timeout'],
      ['a wrong provider key', () => (fake.apiKeys = ['another-key']), 502, 'authentication'],
    ];
    for (const [name, arrange, status, kind] of errorCases) {
      for (const path of ['/ai/chat', '/ai/chat/stream']) {
        it(`${name} → ${status} ${kind} (${path})`, async () => {
          arrange();
          try {
            const r = await request(app).post(path).send({ model: row.model, messages: MESSAGES });
            assert.equal(r.status, status, r.text);
            assert.equal(r.body.error.type, kind);
            assert.equal(r.body.error.provider, row.type);
            if (status === 429) assert.equal(r.headers['retry-after'], '2');
            assert.doesNotMatch(r.text, /test-key|another-key/);
          } finally {
            fake.apiKeys = ['test-key'];
          }
        });
      }
    }
  });
}
