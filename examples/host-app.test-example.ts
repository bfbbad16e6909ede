/**
 * How a host app tests its AI routes: the package's fakes (`express-ai-gateway/testing`) stand in for the
 * providers, speaking their exact wire formats on loopback, so the test needs no key and no network and
 * can inject failures. Copy this into your own test folder and change the imports to:
 *
 *   import { startFakeOpenAI, startFakeAnthropic } from 'express-ai-gateway/testing';
 */
import assert from 'node:assert/strict';
import request from 'supertest';
import { silentLogger } from '../lib/index.js';
import type { FakeProvider } from '../lib/testing/index.js';
import { startFakeAnthropic, startFakeOpenAI } from '../lib/testing/index.js';
import { createApp } from './host-app.js';

describe('host app: /ai routes against fake providers', () => {
  let openai: FakeProvider;
  let anthropic: FakeProvider;
  let host: ReturnType<typeof createApp>;

  before(async () => {
    openai = await startFakeOpenAI();
    anthropic = await startFakeAnthropic();
    host = createApp({
      providers: {
        openai: { api_key: 'test-key', base_url: openai.baseUrl, models: ['gpt-4o-mini'], max_retries: 0 },
        anthropic: {
          api_key: 'test-key',
          base_url: anthropic.baseUrl,
          models: ['claude-3-5-haiku-20241022'],
        },
      },
      routing: {
        aliases: {
          chat: { primary: 'openai/gpt-4o-mini', fallbacks: ['anthropic/claude-3-5-haiku-20241022'] },
        },
      },
      analytics: { enabled: false },
      logger: silentLogger, // the fallback test would log its failed attempt
    });
  });
  after(async () => {
    await host.gateway.close();
    await openai.close();
    await anthropic.close();
  });
  afterEach(() => openai.clearFaults());

  it('answers a chat and sends the provider what it expects', async () => {
    const r = await request(host.app)
      .post('/ai/chat')
      .send({ model: 'chat', messages: [{ role: 'user', content: 'hello' }] })
      .expect(200);
    assert.equal(r.body.content, 'echo: hello');
    assert.equal(r.body.provider, 'openai');
    // The fake recorded the upstream call: the host can check what left the building.
    assert.deepEqual(openai.requests.at(-1)!.body.messages, [{ role: 'user', content: 'hello' }]);
  });

  it('falls back to the second provider when the first fails', async () => {
    openai.fault({ status: 500, times: 1 });
    const r = await request(host.app)
      .post('/ai/chat')
      .send({ model: 'chat', messages: [{ role: 'user', content: 'are you there?' }] })
      .expect(200);
    assert.equal(r.body.provider, 'anthropic');
    assert.equal(r.body.content, 'echo: are you there?');
  });

  it('reports an unreachable provider as a unified error', async () => {
    openai.fault({ reset: true, times: 1 });
    const r = await request(host.app)
      .post('/ai/chat')
      .send({ model: 'openai/gpt-4o-mini', messages: [{ role: 'user', content: 'hi' }] });
    assert.ok(r.status >= 500, `status ${r.status}`);
    assert.equal(typeof r.body.error.type, 'string');
    assert.ok(r.body.error.request_id);
  });

  it('keeps its own routes working', async () => {
    const r = await request(host.app).get('/').expect(200);
    assert.match(r.text, /mounted at \/ai/);
  });
});
