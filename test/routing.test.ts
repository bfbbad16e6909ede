/**
 * Fallback routing and resilience against fault-injected fakes: which failures move on and which are
 * returned, retries and Retry-After, the retry budget, the request deadline, the cost ceiling, explicit
 * policies and aliases, client disconnects, and a long run with a flaky primary.
 */
import assert from 'node:assert/strict';
import { mkdtempSync } from 'node:fs';
import http from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { AddressInfo } from 'node:net';
import request from 'supertest';
import { ConfigError, type GatewayError } from '../lib/errors.js';
import { Gateway } from '../lib/gateway.js';
import { silentLogger } from '../lib/logger.js';
import { RoutingPolicy } from '../lib/routing-policy.js';
import type { FakeFault, FakeProvider } from '../lib/testing/fake-server.js';
import { startFakeOpenAI } from '../lib/testing/fake-openai.js';
import type { GatewayFileConfig, ProviderFileConfig, RoutingFileConfig } from '../types/index.js';
import { hostApp, parseSse, recordingLogger } from './helpers/setup.js';

const messages = [{ role: 'user', content: 'hello there' }];

describe('Fallback routing and resilience', function () {
  this.timeout(10_000);
  let a: FakeProvider;
  let b: FakeProvider;

  before(async () => {
    [a, b] = await Promise.all([startFakeOpenAI(), startFakeOpenAI()]);
  });
  after(() => Promise.all([a.close(), b.close()]));
  afterEach(() => {
    for (const f of [a, b]) {
      f.clearFaults();
      f.requests.length = 0;
    }
  });

  function provider(
    fake: FakeProvider,
    priority: number,
    extra: Partial<ProviderFileConfig> = {},
  ): ProviderFileConfig {
    return {
      type: 'openai',
      api_key: 'test-key',
      base_url: fake.baseUrl,
      models: ['gpt-4o'],
      priority,
      max_retries: 0,
      ...extra,
    };
  }

  function config(
    options: {
      primary?: Partial<ProviderFileConfig>;
      backup?: Partial<ProviderFileConfig>;
      routing?: RoutingFileConfig;
    } = {},
  ): GatewayFileConfig & { logger: typeof silentLogger } {
    return {
      providers: { primary: provider(a, 1, options.primary), backup: provider(b, 2, options.backup) },
      ...(options.routing ? { routing: options.routing } : {}),
      analytics: { enabled: false },
      cache: { backend: 'disabled' },
      logger: silentLogger,
    };
  }

  const faults: { name: string; fault: FakeFault; kinds: string[]; primary?: Partial<ProviderFileConfig> }[] =
    [
      { name: '429', fault: { status: 429 }, kinds: ['rate_limit'] },
      { name: '500', fault: { status: 500 }, kinds: ['server_error'] },
      { name: '503', fault: { status: 503 }, kinds: ['server_error'] },
      { name: '529 (overloaded)', fault: { status: 529 }, kinds: ['server_error'] },
      {
        name: 'a hanging upstream',
        fault: { hang: true },
        kinds: ['timeout'],
        primary: { timeout_seconds: 0.3 },
      },
      { name: 'a connection reset', fault: { reset: true }, kinds: ['connection'] },
      {
        name: 'a cut before the first chunk',
        fault: { cutStreamAfter: 0 },
        kinds: ['connection', 'server_error'],
      },
    ];

  for (const { name, fault, kinds, primary } of faults) {
    it(`falls back on ${name} (non-stream)`, async () => {
      a.fault(fault);
      const { app } = hostApp(config({ primary }));
      const r = await request(app).post('/ai/chat').send({ model: 'gpt-4o', messages }).expect(200);
      assert.equal(r.body.provider, 'backup');
      assert.equal(r.body.content, 'echo: hello there');
      assert.equal(r.headers['x-gateway-fallback-count'], '1');
      assert.equal(r.body.attempts.length, 2);
      assert.equal(r.body.attempts[0].provider, 'primary');
      assert.ok(kinds.includes(r.body.attempts[0].error_kind), `got ${r.body.attempts[0].error_kind}`);
      assert.equal(r.body.attempts[1].provider, 'backup');
      assert.equal(typeof r.body.attempts[0].latency_ms, 'number');
      assert.equal(a.requests.length, 1);
    });

    it(`falls back on ${name} (stream)`, async () => {
      a.fault(fault);
      const { app } = hostApp(config({ primary }));
      const r = await request(app).post('/ai/chat/stream').send({ model: 'gpt-4o', messages }).expect(200);
      const events = parseSse(r.text);
      assert.equal(r.headers['x-gateway-provider'], 'backup');
      assert.equal(r.headers['x-gateway-fallback-count'], '1');
      const text = events
        .filter((e) => e.event === 'message')
        .map((e) => e.data.delta)
        .join('');
      assert.equal(text, 'echo: hello there');
      assert.equal(events.at(-1)!.event, 'done');
      assert.equal(events.at(-1)!.data.provider, 'backup');
      assert.equal(a.requests.length, 1);
      assert.equal(b.requests.length, 1);
    });
  }

  for (const stream of [false, true]) {
    it(`returns a 400 at once without falling back (${stream ? 'stream' : 'non-stream'})`, async () => {
      a.fault({ status: 400, message: 'Bad field.' });
      const { app } = hostApp(config({ primary: { max_retries: 3 } }));
      const r = await request(app)
        .post(stream ? '/ai/chat/stream' : '/ai/chat')
        .send({ model: 'gpt-4o', messages })
        .expect(400);
      assert.equal(r.body.error.type, 'invalid_request');
      assert.equal(a.requests.length, 1, 'a 400 is not retried');
      assert.equal(b.requests.length, 0, 'a 400 does not fall back');
    });
  }

  it('does not fall back on kinds missing from fallback_on', async () => {
    a.fault({ status: 500 });
    const { app } = hostApp(config({ routing: { fallback_on: ['rate_limit'] } }));
    const r = await request(app).post('/ai/chat').send({ model: 'gpt-4o', messages }).expect(502);
    assert.equal(r.body.error.type, 'server_error');
    assert.equal(b.requests.length, 0);
  });

  it('honours retry-after-ms on the same provider, then succeeds there', async () => {
    a.fault({ status: 429, retryAfterMs: 300, times: 1 });
    const { app } = hostApp(config({ primary: { max_retries: 1 } }));
    const r = await request(app).post('/ai/chat').send({ model: 'gpt-4o', messages }).expect(200);
    assert.equal(r.body.provider, 'primary');
    assert.equal(r.headers['x-gateway-fallback-count'], '0');
    assert.deepEqual(
      r.body.attempts.map((x: { error_kind?: string }) => x.error_kind),
      ['rate_limit', undefined],
    );
    assert.equal(a.requests.length, 2);
    const gap = a.requests[1]!.receivedAt - a.requests[0]!.receivedAt;
    assert.ok(gap >= 300, `retried after ${gap} ms`);
    assert.equal(b.requests.length, 0);
  });

  it('falls back at once when Retry-After exceeds the cap', async () => {
    a.fault({ status: 429, retryAfter: 30 });
    const { app } = hostApp(config({ primary: { max_retries: 3 }, routing: { max_retry_wait_seconds: 1 } }));
    const started = Date.now();
    const r = await request(app).post('/ai/chat').send({ model: 'gpt-4o', messages }).expect(200);
    assert.ok(Date.now() - started < 1000);
    assert.equal(r.body.provider, 'backup');
    assert.equal(a.requests.length, 1);
  });

  it('answers 429 with Retry-After when the last provider was rate limited', async () => {
    a.fault({ status: 429, retryAfter: 30 });
    b.fault({ status: 429, retryAfter: 7 });
    const { app } = hostApp(config({ routing: { max_retry_wait_seconds: 1 } }));
    const r = await request(app).post('/ai/chat').send({ model: 'gpt-4o', messages }).expect(429);
    assert.equal(r.headers['retry-after'], '7');
    assert.equal(r.body.error.attempts.length, 2);
  });

  it('retries server errors with backoff on the same provider before falling back', async () => {
    a.fault({ status: 500, times: 2 });
    const { app } = hostApp(config({ primary: { max_retries: 2 } }));
    const r = await request(app).post('/ai/chat').send({ model: 'gpt-4o', messages }).expect(200);
    assert.equal(r.body.provider, 'primary');
    assert.equal(r.body.attempts.length, 3);
    assert.equal(r.headers['x-gateway-fallback-count'], '0');
  });

  it('bounds the time a dead provider costs with the retry budget', async () => {
    a.fault({ status: 500 });
    const { app } = hostApp(config({ primary: { max_retries: 10 }, routing: { retry_budget_seconds: 0 } }));
    const r = await request(app).post('/ai/chat').send({ model: 'gpt-4o', messages }).expect(200);
    assert.equal(r.body.provider, 'backup');
    assert.equal(a.requests.length, 1, 'no retry fits a zero budget');
  });

  it('reports every attempt, without secrets, when all providers fail', async () => {
    a.fault({ status: 500 });
    b.fault({ reset: true });
    const logger = recordingLogger();
    const { app } = hostApp({ ...config(), logger });
    const r = await request(app).post('/ai/chat').send({ model: 'gpt-4o', messages }).expect(502);
    assert.equal(r.body.error.type, 'all_providers_failed');
    assert.deepEqual(
      r.body.error.attempts.map((x: { provider: string; error_kind: string }) => [x.provider, x.error_kind]),
      [
        ['primary', 'server_error'],
        ['backup', 'connection'],
      ],
    );
    assert.doesNotMatch(r.text, /test-key/);
    assert.doesNotMatch(logger.text(), /test-key/);
    assert.match(logger.text(), /trying the next target/);
  });

  for (const stream of [false, true]) {
    it(`never runs past routing.request_timeout_seconds (${stream ? 'stream' : 'non-stream'})`, async () => {
      a.fault({ hang: true });
      b.fault({ hang: true });
      const { app } = hostApp(
        config({
          primary: { timeout_seconds: 5 },
          backup: { timeout_seconds: 5 },
          routing: { request_timeout_seconds: 0.4 },
        }),
      );
      const started = Date.now();
      const r = await request(app)
        .post(stream ? '/ai/chat/stream' : '/ai/chat')
        .send({ model: 'gpt-4o', messages })
        .expect(504);
      const took = Date.now() - started;
      assert.ok(took >= 380 && took < 1500, `took ${took} ms`);
      assert.equal(r.body.error.type, 'timeout');
      assert.match(r.body.error.message, /request_timeout_seconds/);
      assert.equal(b.requests.length, 0, 'one hanging provider used the whole deadline');
    });
  }

  /** Sends a chat request over a real socket; the returned request can be destroyed to leave. */
  async function openClient(path: string) {
    const { app } = hostApp(config({ primary: { timeout_seconds: 0.3, max_retries: 1 } }));
    const server = app.listen(0, '127.0.0.1');
    await new Promise((r) => server.once('listening', r));
    const port = (server.address() as AddressInfo).port;
    const req = http.request({
      port,
      host: '127.0.0.1',
      path,
      method: 'POST',
      headers: { 'content-type': 'application/json' },
    });
    req.on('error', () => {});
    req.end(JSON.stringify({ model: 'gpt-4o', messages }));
    return { req, close: () => new Promise((r) => server.close(r)) };
  }

  for (const path of ['/ai/chat/stream', '/ai/chat']) {
    it(`a client that leaves mid-routing aborts the upstream and starts no fallback (${path})`, async () => {
      a.fault({ hang: true });
      const client = await openClient(path);
      try {
        while (a.requests.length === 0) await new Promise((r) => setTimeout(r, 10));
        client.req.destroy();
        // Past the primary's timeout: a fallback, had one started, would have reached the backup by now.
        await new Promise((r) => setTimeout(r, 500));
        assert.equal(a.requests[0]!.clientClosed, true);
        assert.equal(a.requests.length, 1, 'no retry');
        assert.equal(b.requests.length, 0);
      } finally {
        await client.close();
      }
    });
  }

  it('a caller that aborts during a backoff wait ends the wait at once: no retry, no fallback', async () => {
    a.fault({ status: 429, retryAfterMs: 800, times: 1 });
    const gateway = new Gateway(config({ primary: { max_retries: 1 } }));
    try {
      const caller = new AbortController();
      const call = gateway.chat(
        { model: 'gpt-4o', messages: [{ role: 'user', content: 'hello there' }] },
        { signal: caller.signal },
      );
      call.catch(() => {});
      while (a.requests.length === 0) await new Promise((r) => setTimeout(r, 10));
      // The 429 is answered at once: by now the route stage waits out the Retry-After.
      await new Promise((r) => setTimeout(r, 150));
      const abortedAt = Date.now();
      caller.abort();
      await assert.rejects(call, (err: GatewayError) => err.kind === 'rate_limit');
      const took = Date.now() - abortedAt;
      assert.ok(took < 300, `the call ended ${took} ms after the abort`);
      assert.equal(a.requests.length, 1);
      assert.equal(b.requests.length, 0);
    } finally {
      await gateway.close();
    }
  });

  it('bounds a stream by its idle gap, not its total length', async () => {
    const slow = await startFakeOpenAI({ chunkDelayMs: 150, reply: () => 'one two three four' });
    try {
      const { app } = hostApp({
        providers: { only: { ...provider(slow, 1), timeout_seconds: 0.3 } },
        analytics: { enabled: false },
        cache: { backend: 'disabled' },
        logger: silentLogger,
      });
      // Four chunks 150 ms apart take longer than the 300 ms timeout in total, but no gap reaches it.
      const ok = await request(app).post('/ai/chat/stream').send({ model: 'gpt-4o', messages }).expect(200);
      assert.equal(parseSse(ok.text).at(-1)!.event, 'done');
    } finally {
      await slow.close();
    }
    const stalled = await startFakeOpenAI({ chunkDelayMs: 800 });
    try {
      const { app } = hostApp({
        providers: { only: { ...provider(stalled, 1), timeout_seconds: 0.3 } },
        analytics: { enabled: false },
        cache: { backend: 'disabled' },
        logger: silentLogger,
      });
      const started = Date.now();
      const r = await request(app).post('/ai/chat/stream').send({ model: 'gpt-4o', messages });
      assert.ok(Date.now() - started < 700, 'a stalled stream ends at its idle timeout');
      const failed =
        r.status === 504 ||
        parseSse(r.text).some((e) => e.event === 'error' && e.data.error.type === 'timeout');
      assert.ok(failed, `status ${r.status}: ${r.text.slice(0, 200)}`);
    } finally {
      await stalled.close();
    }
  });

  describe('cost ceiling', () => {
    it('skips a target whose worst case exceeds max_cost_per_request', async () => {
      const { app } = hostApp(
        config({ backup: { models: ['gpt-4o-mini'] }, routing: { max_cost_per_request: 0.005 } }),
      );
      // gpt-4o: 1000 output tokens × $10/M = $0.01 > $0.005; gpt-4o-mini: $0.0006.
      const r = await request(app)
        .post('/ai/chat')
        .send({ model: 'gpt-4o', messages, max_tokens: 1000 })
        .expect(200);
      assert.equal(r.body.provider, 'backup');
      assert.equal(r.body.model, 'gpt-4o-mini');
      assert.equal(a.requests.length, 0);
    });

    it('answers 402 budget_exceeded when no target fits', async () => {
      const { app } = hostApp(
        config({ backup: { models: ['gpt-4o-mini'] }, routing: { max_cost_per_request: 0.005 } }),
      );
      const r = await request(app)
        .post('/ai/chat')
        .send({ model: 'gpt-4o', messages, max_tokens: 100_000 })
        .expect(402);
      assert.equal(r.body.error.type, 'budget_exceeded');
      assert.match(r.body.error.message, /max_tokens/);
      assert.equal(a.requests.length + b.requests.length, 0);
    });
  });

  describe('policies', () => {
    it('follows an explicit primary and fallbacks instead of priorities', async () => {
      a.fault({ status: 503 });
      const { app } = hostApp(
        config({
          routing: { primary: 'primary/gpt-4o', fallbacks: ['backup/gpt-4o'] },
          primary: { priority: 9 },
        }),
      );
      const r = await request(app).post('/ai/chat').send({ model: 'gpt-4o', messages }).expect(200);
      assert.deepEqual(
        r.body.attempts.map((x: { provider: string }) => x.provider),
        ['primary', 'backup'],
      );
    });

    it('accepts new RoutingPolicy({...}) in code and routes by it', async () => {
      const gateway = new Gateway({
        ...config(),
        routing: new RoutingPolicy({
          primary: 'backup/gpt-4o',
          fallbacks: ['primary/gpt-4o'],
          fallbackOn: ['server_error'],
        }),
      });
      const r = await gateway.chat({ model: 'gpt-4o', messages: [{ role: 'user', content: 'hi' }] });
      assert.equal(r.provider, 'backup');
      assert.equal(a.requests.length, 0);
      await gateway.close();
    });

    it('routes a model alias by its own policy', async () => {
      const { app } = hostApp(
        config({
          backup: { models: ['gpt-4o', 'gpt-4o-mini'] },
          routing: { aliases: { fast: { primary: 'backup/gpt-4o-mini', fallbacks: ['primary/gpt-4o'] } } },
        }),
      );
      const r = await request(app).post('/ai/chat').send({ model: 'fast', messages }).expect(200);
      assert.equal(r.body.provider, 'backup');
      assert.equal(r.body.model, 'gpt-4o-mini');
      assert.equal(b.requests[0]!.body.model, 'gpt-4o-mini');
    });

    it('falls back to a provider that maps the model through model_map', async () => {
      a.fault({ status: 500 });
      const { app } = hostApp(
        config({ backup: { models: ['gpt-4o-mini'], model_map: { 'gpt-4o': 'gpt-4o-mini' } } }),
      );
      const r = await request(app).post('/ai/chat').send({ model: 'gpt-4o', messages }).expect(200);
      assert.equal(r.body.provider, 'backup');
      assert.equal(r.body.model, 'gpt-4o-mini');
    });

    it('rejects policies naming unknown providers or models, saying what to fix', () => {
      assert.throws(
        () => new Gateway(config({ routing: { primary: 'nope/gpt-4o' } })),
        (e: Error) =>
          e instanceof ConfigError && /routing\.primary.*provider "nope".*not configured/.test(e.message),
      );
      assert.throws(
        () => new Gateway(config({ routing: { aliases: { fast: { primary: 'backup/gpt-5' } } } })),
        (e: Error) => /routing\.aliases\.fast\.primary.*providers\.backup\.models/.test(e.message),
      );
      assert.throws(
        () => new Gateway(config({ backup: { model_map: { 'gpt-4o': 'claude' } } })),
        /providers\.backup\.model_map\.gpt-4o/,
      );
      assert.throws(() => new RoutingPolicy({ primary: 'gpt-4o' }), /"provider\/model"/);
      assert.throws(() => new RoutingPolicy({ primary: 'a/b', maxCostPerRequest: -1 }), /maxCostPerRequest/);
    });
  });

  it('answers 200 requests with a primary failing 30% of the time', async function () {
    this.timeout(15_000);
    // Every primary request takes the next fault: three 500s in each ten, never five in a row.
    const pattern = [true, false, false, true, false, false, true, false, false, false];
    for (let i = 0; i < 200; i++) a.fault(pattern[i % 10] ? { status: 500, times: 1 } : { times: 1 });
    // Analytics on: every attempt, failed ones included, must be counted.
    const db = join(mkdtempSync(join(tmpdir(), 'aigw-routing-')), 'analytics.db');
    const { app, gateway } = hostApp({
      ...config(),
      analytics: { enabled: true, storage: 'sqlite', sqlite_path: db, flush_interval_ms: 50 },
    });
    const statuses: number[] = [];
    let fallbacks = 0;
    for (let batch = 0; batch < 10; batch++) {
      const rs = await Promise.all(
        Array.from({ length: 20 }, () => request(app).post('/ai/chat').send({ model: 'gpt-4o', messages })),
      );
      for (const r of rs) {
        statuses.push(r.status);
        if (r.headers['x-gateway-fallback-count'] === '1') fallbacks += 1;
      }
    }
    assert.equal(statuses.length, 200);
    assert.ok(
      statuses.every((s) => s === 200),
      `non-200: ${statuses.filter((s) => s !== 200).join(',')}`,
    );
    assert.equal(fallbacks, 60);
    assert.equal(b.requests.length, 60);
    const summary = await gateway.analytics.summary({ period: '1h' });
    assert.ok('total_requests' in summary);
    assert.equal(summary.total_requests, 200);
    const attempts = Object.fromEntries(
      summary.upstream_by_provider.map((p) => [p.name, { attempts: p.attempts, errors: p.errors }]),
    );
    assert.deepEqual(attempts, {
      primary: { attempts: 200, errors: 60 },
      backup: { attempts: 60, errors: 0 },
    });
    await gateway.close();
  });
});
