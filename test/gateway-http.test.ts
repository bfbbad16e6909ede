/**
 * The HTTP contract of the router against the OpenAI fake: /chat, /chat/stream, /health, headers, usage and
 * cost, every bad input, and a client that leaves mid-stream.
 */
import assert from 'node:assert/strict';
import http from 'node:http';
import net, { type AddressInfo } from 'node:net';
import request from 'supertest';
import { timeOrderedUuid } from '../lib/context.js';
import { silentLogger } from '../lib/logger.js';
import type { FakeProvider } from '../lib/testing/fake-server.js';
import { startFakeOpenAI } from '../lib/testing/fake-openai.js';
import { assertCost, hostApp, parseSse } from './helpers/setup.js';

const user = (content: string) => [{ role: 'user', content }];

describe('HTTP contract: POST /chat and /chat/stream (OpenAI fake)', () => {
  let fake: FakeProvider;
  let app: ReturnType<typeof hostApp>['app'];

  before(async () => {
    fake = await startFakeOpenAI({ chunkDelayMs: 0 });
    ({ app } = hostApp({
      providers: {
        openai: { api_key: 'test-key', base_url: fake.baseUrl, models: ['gpt-4o-mini', 'gpt-4o'] },
      },
      logger: silentLogger,
    }));
  });
  after(() => fake.close());
  afterEach(() => fake.clearFaults());
  const fakePort = () => Number(new URL(fake.baseUrl).port);

  it('answers /chat with the unified shape, usage, cost and gateway headers', async () => {
    const r = await request(app)
      .post('/ai/chat')
      .set('X-Request-Id', 'client-id-1')
      .send({ model: 'gpt-4o', messages: user('hello there'), max_tokens: 50 })
      .expect(200);
    assert.equal(r.body.content, 'echo: hello there');
    assert.equal(r.body.provider, 'openai');
    assert.equal(r.body.model, 'gpt-4o');
    assert.equal(r.body.finish_reason, 'stop');
    assert.equal(r.body.cached, false);
    assert.equal(r.body.id, 'client-id-1');
    assert.deepEqual(r.body.usage, { prompt_tokens: 2, completion_tokens: 3, total_tokens: 5 });
    // gpt-4o: $2.50 in, $10 out per million tokens.
    assertCost(r.body.cost, (2 * 2.5 + 3 * 10) / 1e6);
    assert.equal(typeof r.body.latency_ms, 'number');
    assert.equal(r.headers['x-request-id'], 'client-id-1');
    assert.equal(r.headers['x-gateway-provider'], 'openai');
    assert.equal(r.headers['x-gateway-model'], 'gpt-4o');
    assert.equal(r.headers.etag, undefined);
    const sent = fake.requests.at(-1)!.body;
    assert.deepEqual(sent, {
      model: 'gpt-4o',
      messages: [{ role: 'user', content: 'hello there' }],
      max_tokens: 50,
    });
  });

  it('accepts a provider-qualified model and generates a request id when none is sent', async () => {
    const r = await request(app)
      .post('/ai/chat')
      .send({ model: 'openai/gpt-4o-mini', messages: user('hi') })
      .expect(200);
    assert.equal(r.body.model, 'gpt-4o-mini');
    // A UUIDv7: version 7, RFC 9562 variant, the arrival time in its first 48 bits.
    const id = r.headers['x-request-id']!;
    assert.match(id, /^req_[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
    const ms = parseInt(id.slice(4, 12) + id.slice(13, 17), 16);
    assert.ok(Math.abs(ms - Date.now()) < 60_000, `request id time ${ms} is not now`);
    assert.equal(fake.requests.at(-1)!.body.model, 'gpt-4o-mini');
  });

  it('sends the upstream exactly the headers a provider call needs', async () => {
    await request(app)
      .post('/ai/chat')
      .send({ model: 'gpt-4o-mini', messages: user('headers') })
      .expect(200);
    const headers = fake.requests.at(-1)!.headers;
    assert.deepEqual(Object.keys(headers).sort(), [
      'accept',
      'accept-encoding',
      'authorization',
      'connection',
      'content-length',
      'content-type',
      'host',
      'user-agent',
    ]);
    assert.equal(headers.accept, 'application/json, text/plain, */*');
    assert.equal(headers['content-type'], 'application/json');
    assert.equal(headers.connection, 'keep-alive');
    assert.match(String(headers.authorization), /^Bearer \S+$/);
  });

  it('sets TCP keep-alive on an upstream connection once, not on every request', async () => {
    // Counts the socket option changes Node really makes (the handle's calls), per connection to the fake.
    type Handle = { setKeepAlive?: (...args: unknown[]) => unknown };
    const changes = new Map<net.Socket, number>();
    const original = net.Socket.prototype.setKeepAlive;
    net.Socket.prototype.setKeepAlive = function (this: net.Socket, ...args) {
      const handle = (this as unknown as { _handle?: Handle })._handle;
      const native = handle?.setKeepAlive;
      if (handle && native && this.remotePort === fakePort() && !changes.has(this)) {
        changes.set(this, 0);
        handle.setKeepAlive = (...a: unknown[]) => {
          changes.set(this, changes.get(this)! + 1);
          return native.apply(handle, a);
        };
      }
      return original.apply(this, args);
    };
    try {
      for (let i = 0; i < 5; i++) {
        await request(app)
          .post('/ai/chat')
          .send({ model: 'gpt-4o-mini', messages: user(`keep-alive ${i}`) })
          .expect(200);
      }
    } finally {
      net.Socket.prototype.setKeepAlive = original;
    }
    // Sequential calls share one pooled connection; axios and the agent agree on its settings.
    assert.equal(changes.size, 1, 'one upstream connection');
    assert.ok([...changes.values()][0]! <= 1, `keep-alive changed ${[...changes.values()][0]} times`);
  });

  it('generates request ids that sort by time and do not repeat', () => {
    const ids = [1_000, 1_000, 2_000, 0xffff_ffff_ffff, 1_000].map((ms) => timeOrderedUuid(ms));
    assert.equal(new Set(ids).size, ids.length);
    assert.ok(ids[0]!.startsWith('00000000-03e8-7') && ids[1]!.startsWith('00000000-03e8-7'));
    assert.ok(ids[1]! < ids[2]! && ids[2]! < ids[3]!, ids.join(' '));
    assert.ok(ids[2]!.startsWith('00000000-07d0-7'));
    assert.ok(ids[3]!.startsWith('ffffffff-ffff-7'));
    // A clock that steps back gets its own time, not the last one formatted.
    assert.ok(ids[4]!.startsWith('00000000-03e8-7'));
  });

  it('streams unified delta events then a done event with usage and cost', async () => {
    const r = await request(app)
      .post('/ai/chat/stream')
      .send({ model: 'gpt-4o-mini', messages: user('one two three') })
      .expect(200)
      .expect('content-type', /text\/event-stream/);
    const events = parseSse(r.text);
    const deltas = events.filter((e) => e.event === 'message');
    assert.equal(deltas.map((e) => e.data.delta).join(''), 'echo: one two three');
    assert.ok(deltas.every((e) => e.data.provider === 'openai' && e.data.model === 'gpt-4o-mini'));
    const done = events.at(-1)!;
    assert.equal(done.event, 'done');
    assert.equal(done.data.finish_reason, 'stop');
    assert.deepEqual(done.data.usage, { prompt_tokens: 3, completion_tokens: 4, total_tokens: 7 });
    assertCost(done.data.cost, (3 * 0.15 + 4 * 0.6) / 1e6);
    // Usage in streams needs include_usage: the adapter must ask for it.
    assert.deepEqual(fake.requests.at(-1)!.body.stream_options, { include_usage: true });
  });

  it('answers an upstream error before the first byte as a JSON error with its status', async () => {
    fake.fault({ status: 400, message: 'Invalid value for messages.', times: 1 });
    const r = await request(app)
      .post('/ai/chat/stream')
      .send({ model: 'gpt-4o-mini', messages: user('x') });
    assert.equal(r.status, 400);
    assert.match(r.headers['content-type']!, /application\/json/);
    assert.equal(r.body.error.type, 'invalid_request');
    assert.equal(r.body.error.provider, 'openai');
    assert.match(r.body.error.request_id, /^req_/);
  });

  it('ends a stream that fails after its first chunk with an error event', async () => {
    fake.fault({ cutStreamAfter: 2, times: 1 });
    const r = await request(app)
      .post('/ai/chat/stream')
      .send({ model: 'gpt-4o-mini', messages: user('a b c d') });
    assert.equal(r.status, 200);
    const events = parseSse(r.text);
    assert.equal(events.at(-1)!.event, 'error');
    assert.ok(events.at(-1)!.data.error.type);
    assert.ok(!events.some((e) => e.event === 'done'));
  });

  it('serves /health with no secrets', async () => {
    const r = await request(app).get('/ai/health').expect(200);
    assert.equal(r.body.status, 'ok');
    assert.equal(r.body.providers[0].name, 'openai');
    assert.doesNotMatch(r.text, /test-key/);
  });

  describe('bad input is a 400/404/413 with the unified error JSON naming the field', () => {
    const cases: [string, unknown, number, string, RegExp][] = [
      ['missing messages', { model: 'gpt-4o' }, 400, 'invalid_request', /messages/],
      ['empty messages', { model: 'gpt-4o', messages: [] }, 400, 'invalid_request', /messages/],
      [
        'bad role',
        { model: 'gpt-4o', messages: [{ role: 'bot', content: 'x' }] },
        400,
        'invalid_request',
        /messages\[0\]\.role/,
      ],
      [
        'non-string content',
        { model: 'gpt-4o', messages: [{ role: 'user', content: 42 }] },
        400,
        'invalid_request',
        /messages\[0\]\.content/,
      ],
      [
        'negative max_tokens',
        { model: 'gpt-4o', messages: user('x'), max_tokens: -1 },
        400,
        'invalid_request',
        /max_tokens/,
      ],
      [
        'fractional max_tokens',
        { model: 'gpt-4o', messages: user('x'), max_tokens: 1.5 },
        400,
        'invalid_request',
        /max_tokens/,
      ],
      [
        'temperature out of range',
        { model: 'gpt-4o', messages: user('x'), temperature: 9 },
        400,
        'invalid_request',
        /temperature/,
      ],
      ['missing model', { messages: user('x') }, 400, 'invalid_request', /model/],
      ['array body', [1, 2], 400, 'invalid_request', /JSON object/],
      [
        'prototype key',
        JSON.parse(
          '{"model":"gpt-4o","messages":[{"role":"user","content":"x"}],"__proto__":{"admin":true}}',
        ),
        400,
        'invalid_request',
        /__proto__/,
      ],
      ['unknown model', { model: 'gpt-9', messages: user('x') }, 404, 'not_found', /gpt-9/],
      ['unknown provider model', { model: 'openai/gpt-9', messages: user('x') }, 404, 'not_found', /gpt-9/],
    ];
    for (const [name, body, status, type, field] of cases) {
      it(`${name} → ${status} ${type}`, async () => {
        const before = fake.requests.length;
        for (const path of ['/ai/chat', '/ai/chat/stream']) {
          const r = await request(app)
            .post(path)
            .send(body as object);
          assert.equal(r.status, status, `${path}: ${r.text}`);
          assert.equal(r.body.error.type, type);
          assert.match(r.body.error.message, field);
          assert.ok(r.body.error.request_id);
        }
        assert.equal(fake.requests.length, before, 'a refused request must not reach the provider');
      });
    }

    it('malformed JSON → 400 invalid_request', async () => {
      const r = await request(app)
        .post('/ai/chat')
        .set('content-type', 'application/json')
        .send('{"model": ');
      assert.equal(r.status, 400);
      assert.equal(r.body.error.type, 'invalid_request');
      assert.match(r.body.error.message, /JSON/);
      assert.ok(r.headers['x-request-id']);
    });

    it('a body over the limit → 413', async () => {
      const big = 'x'.repeat(1_100_000);
      const r = await request(app)
        .post('/ai/chat')
        .send({ model: 'gpt-4o', messages: user(big) });
      assert.equal(r.status, 413);
      assert.equal(r.body.error.type, 'payload_too_large');
    });

    it('a non-JSON content type → 400 asking for JSON', async () => {
      const r = await request(app).post('/ai/chat').set('content-type', 'text/plain').send('hello');
      assert.equal(r.status, 400);
      assert.match(r.body.error.message, /application\/json/);
    });
  });

  it('keeps unknown fields out of the upstream call and warns about them', async () => {
    const r = await request(app)
      .post('/ai/chat')
      .send({ model: 'gpt-4o', messages: user('x'), frobnicate: 1 })
      .expect(200);
    assert.match(r.headers['x-gateway-warnings']!, /frobnicate/);
    assert.equal(fake.requests.at(-1)!.body.frobnicate, undefined);
  });
});

describe('a client that disconnects mid-stream', () => {
  it('aborts the upstream request (the fake sees its socket close)', async () => {
    const fake = await startFakeOpenAI({ chunkDelayMs: 150 });
    const { app } = hostApp({
      providers: { openai: { api_key: 'test-key', base_url: fake.baseUrl, models: ['gpt-4o-mini'] } },
      logger: silentLogger,
    });
    const server = http.createServer(app);
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    const port = (server.address() as AddressInfo).port;
    try {
      await new Promise<void>((resolve, reject) => {
        const req = http.request(
          {
            port,
            host: '127.0.0.1',
            method: 'POST',
            path: '/ai/chat/stream',
            headers: { 'content-type': 'application/json' },
          },
          (res) => {
            res.once('data', () => {
              // First chunk received: leave.
              req.destroy();
              resolve();
            });
          },
        );
        req.on('error', () => {});
        req.end(JSON.stringify({ model: 'gpt-4o-mini', messages: user('a b c d e f g h i j') }));
        setTimeout(() => reject(new Error('no first chunk')), 5000).unref();
      });
      const upstream = fake.requests.at(-1)!;
      for (let i = 0; i < 100 && !upstream.clientClosed; i++) await new Promise((r) => setTimeout(r, 20));
      assert.equal(upstream.clientClosed, true, 'the upstream request should have been aborted');
    } finally {
      server.close();
      await fake.close();
    }
  });
});
