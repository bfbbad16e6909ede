import assert from 'node:assert/strict';
import request from 'supertest';
import type { GatewayContext, StreamEvent } from '../lib/context.js';
import { applyResponseHooks } from '../lib/context.js';
import { Gateway } from '../lib/gateway.js';
import { silentLogger } from '../lib/logger.js';
import { PIIScrubber } from '../lib/middlewares/pii-scrubber.js';
import { PII_TYPES, findPII, scrubPII } from '../lib/pii-detectors.js';
import type { Stage } from '../lib/stage.js';
import type { FakeProvider } from '../lib/testing/fake-server.js';
import { startFakeOpenAI } from '../lib/testing/fake-openai.js';
import type { ChatRequest, MiddlewareFileEntry } from '../types/index.js';
import { hostApp, parseSse, recordingLogger } from './helpers/setup.js';
import { measurePII } from './measure/evaluate.js';

const PII_TEXT =
  'I am ana@example.pt, call +44 20 7946 0958, card 4111 1111 1111 1111, SSN 123-45-6789, ' +
  'from 10.1.2.3 and 2001:db8::1, IBAN DE89370400440532013000, key sk-proj-abc123DEF456ghi789JKL. ' +
  'Again: ana@example.pt';
const ORIGINALS = [
  'ana@example.pt',
  '+44 20 7946 0958',
  '4111 1111 1111 1111',
  '123-45-6789',
  '10.1.2.3',
  '2001:db8::1',
  'DE89370400440532013000',
  'sk-proj-abc123DEF456ghi789JKL',
];

describe('PII scrubber', () => {
  describe('detectors on the labelled corpus', () => {
    const report = measurePII();
    for (const type of PII_TYPES) {
      it(`${type}: precision and recall >= 0.95`, () => {
        const s = report.perType[type];
        assert.ok(s.tp >= 10, `${type} needs at least 10 labelled positives, has ${s.tp + s.fn}`);
        assert.ok(
          s.precision >= 0.95,
          `${type} precision ${s.precision}: ${JSON.stringify(report.falsePositives)}`,
        );
        assert.ok(s.recall >= 0.95, `${type} recall ${s.recall}: ${JSON.stringify(report.misses)}`);
      });
    }

    it('leaves order numbers, dates, versions, prices and ISBNs alone', () => {
      for (const text of [
        'Order #4111111111111112 shipped',
        'Released 2024-03-15 as version 1.2.3.4',
        'It costs $1,299.99',
        'ISBN 978-3-16-148410-0',
        'Run at 12:30:45 with std::vector',
      ]) {
        assert.deepEqual(findPII(text), [], text);
      }
    });
  });

  describe('placeholders', () => {
    it('gives each value a typed placeholder, the same one every time within a request', async () => {
      const fake = await startFakeOpenAI();
      try {
        const gateway = new Gateway({
          providers: { openai: { api_key: 'test-key', base_url: fake.baseUrl, models: ['gpt-4o-mini'] } },
          middleware: ['pii_scrubber'],
          cache: { backend: 'disabled' },
          analytics: { enabled: false },
          logger: silentLogger,
        });
        await gateway.chat({
          model: 'gpt-4o-mini',
          messages: [
            { role: 'system', content: 'Support for bob@example.com' },
            { role: 'user', content: `${PII_TEXT}; also bob@example.com` },
          ],
        });
        const [system, user] = fake.requests[0]!.body.messages.map((m: { content: string }) => m.content);
        assert.equal(system, 'Support for [EMAIL_1]');
        assert.equal(
          user,
          'I am [EMAIL_2], call [PHONE_1], card [CARD_1], SSN [SSN_1], from [IPV4_1] and [IPV6_1], ' +
            'IBAN [IBAN_1], key [SECRET_1]. Again: [EMAIL_2]; also [EMAIL_1]',
        );
      } finally {
        await fake.close();
      }
    });

    it('never reuses a placeholder the user typed literally', () => {
      const scrubber = new PIIScrubber();
      const req = { model: 'm', messages: [{ role: 'user', content: 'see [EMAIL_1] and x@example.com' }] };
      scrubber.preRequest(req as ChatRequest, {} as GatewayContext);
      assert.equal(req.messages[0]!.content, 'see [EMAIL_1] and [EMAIL_2]');
    });

    it('validates its options with the fix in the message', () => {
      assert.throws(
        () => new PIIScrubber({ types: ['email', 'fax' as never] }),
        /types: unknown fax\. Use any of email/,
      );
      assert.throws(() => new PIIScrubber({ restore: 1 as never }), /restore: must be true or false/);
    });
  });

  describe('end to end', () => {
    let fake: FakeProvider;
    before(async () => {
      // Echo the scrubbed prompt back, so the answer carries the placeholders.
      fake = await startFakeOpenAI({ reply: (text) => `You said: ${text}` });
    });
    after(() => fake.close());
    beforeEach(() => {
      fake.requests.length = 0;
    });
    const config = (options: Record<string, unknown>, extra: Record<string, unknown> = {}) => ({
      providers: { openai: { api_key: 'test-key', base_url: fake.baseUrl, models: ['gpt-4o-mini'] } },
      middleware: [
        { pii_scrubber: options },
        { request_logger: { include_content: true } },
      ] as MiddlewareFileEntry[],
      cache: { backend: 'disabled' as const },
      analytics: { enabled: false },
      logger: silentLogger,
      ...extra,
    });
    const body = { model: 'gpt-4o-mini', messages: [{ role: 'user', content: PII_TEXT }] };

    function assertNoPII(text: string, where: string) {
      for (const value of ORIGINALS) assert.ok(!text.includes(value), `${value} reached ${where}`);
    }

    it('keeps PII away from the provider and the logs, and restores it for the client (JSON)', async () => {
      const logger = recordingLogger();
      const { app } = hostApp(config({ restore: true }, { logger }));
      const r = await request(app).post('/ai/chat').send(body).expect(200);
      assert.equal(fake.requests.length, 1);
      assertNoPII(fake.requests[0]!.rawBody, 'the provider');
      assert.equal(r.body.content, `You said: ${PII_TEXT}`);
      const line = logger.lines.find((l) => l.msg === 'gateway request');
      assert.ok(line, 'the request logger wrote its line');
      assert.equal((line.obj as { status: number }).status, 200);
      // Content was logged (include_content), scrubbed.
      assert.match(JSON.stringify((line.obj as { messages: unknown }).messages), /\[EMAIL(_1)?\]/);
      assertNoPII(logger.text(), 'the logs');
    });

    it("computes the cache key on the scrubbed request: a hit restores the new client's own values", async () => {
      const { app } = hostApp({ ...config({ restore: true }), cache: { backend: 'memory' as const } });
      const ask = (email: string) => ({
        model: 'gpt-4o-mini',
        temperature: 0,
        messages: [{ role: 'user', content: `mail ${email} the report` }],
      });
      const first = await request(app).post('/ai/chat').send(ask('ann@example.com')).expect(200);
      assert.equal(first.body.content, 'You said: mail ann@example.com the report');
      const second = await request(app).post('/ai/chat').send(ask('bob@example.org')).expect(200);
      assert.equal(second.headers['x-gateway-cache'], 'HIT');
      assert.equal(second.body.content, 'You said: mail bob@example.org the report');
      assert.equal(fake.requests.length, 1);
      assertNoPII(fake.requests[0]!.rawBody, 'the provider');
    });

    it('leaves placeholders in the answer without restore', async () => {
      const { app } = hostApp(config({}));
      const r = await request(app).post('/ai/chat').send(body).expect(200);
      assert.match(r.body.content, /You said: I am \[EMAIL_1\], call \[PHONE_1\]/);
      assertNoPII(r.text, 'the client');
    });

    it('restores placeholders in a stream (HTTP and chatStream)', async () => {
      const logger = recordingLogger();
      const { app, gateway } = hostApp(config({ restore: true }, { logger }));
      const r = await request(app).post('/ai/chat/stream').send(body).expect(200);
      const events = parseSse(r.text);
      const text = events
        .filter((e) => e.event === 'message')
        .map((e) => e.data.delta)
        .join('');
      assert.equal(text, `You said: ${PII_TEXT}`);
      assert.equal(events.at(-1)?.event, 'done');
      assertNoPII(fake.requests[0]!.rawBody, 'the provider');
      assertNoPII(logger.text(), 'the logs');
      let streamed = '';
      for await (const c of gateway.chatStream(body as ChatRequest)) streamed += c.delta;
      assert.equal(streamed, `You said: ${PII_TEXT}`);
    });
  });

  describe('stream restore across chunk boundaries', () => {
    // A stage standing in for routing: it streams fixed pieces, split wherever the test wants.
    const streamer = (pieces: string[]): Stage => ({
      name: 'streamer',
      run: async (ctx: GatewayContext) => {
        ctx.streamEvents = (async function* (): AsyncGenerator<StreamEvent> {
          for (const delta of pieces) yield { type: 'chunk', chunk: { delta, provider: 'p', model: 'm' } };
          yield {
            type: 'done',
            done: {
              finish_reason: 'stop',
              usage: { prompt_tokens: 0, completion_tokens: 0, total_tokens: 0 },
              cost: 0,
              provider: 'p',
              model: 'm',
              latency_ms: 0,
            },
          };
        })();
        await applyResponseHooks(ctx);
      },
    });
    async function run(pieces: string[]): Promise<string[]> {
      const gateway = new Gateway({
        providers: { openai: { api_key: 'test-key', models: ['gpt-4o-mini'] } },
        middleware: [{ pii_scrubber: { restore: true } }],
        analytics: { enabled: false },
        logger: silentLogger,
        pipeline: ['middleware', streamer(pieces)],
      });
      const out: string[] = [];
      const content = 'mail ann@example.com or bo@example.org, phone (415) 555-2671';
      for await (const c of gateway.chatStream({
        model: 'gpt-4o-mini',
        messages: [{ role: 'user', content }],
      })) {
        out.push(c.delta);
      }
      return out;
    }

    it('buffers a placeholder split over chunks until it is complete', async () => {
      const out = await run(['Hi [EMA', 'IL_1', '] and [', 'EMAIL_2] ', 'call [PHONE_1]', '!']);
      assert.equal(out.join(''), 'Hi ann@example.com and bo@example.org call (415) 555-2671!');
      for (const piece of out)
        assert.doesNotMatch(piece, /\[[A-Z_0-9]*$/, `partial placeholder sent: ${piece}`);
    });

    it('flushes a partial placeholder at the end and leaves other brackets alone', async () => {
      assert.equal(
        (await run(['a [link](x) [EMAIL_1] [EMAIL_', '9] [EMAI'])).join(''),
        'a [link](x) ann@example.com [EMAIL_9] [EMAI',
      );
    });
  });

  it('scrubPII() masks without numbering, for logs', () => {
    assert.equal(scrubPII('write to a@b.io or +1-202-555-0143'), 'write to [EMAIL] or [PHONE]');
  });
});
