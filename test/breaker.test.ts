/**
 * Circuit breakers: the state machine on a manual clock, then through the gateway: an open circuit skips
 * its provider, a probe after the cooldown closes it, every-target-open still makes one call, /health shows
 * the state, and a config reload keeps it.
 */
import assert from 'node:assert/strict';
import request from 'supertest';
import { BreakerRegistry, CircuitBreaker } from '../lib/breaker.js';
import { silentLogger } from '../lib/logger.js';
import type { FakeProvider } from '../lib/testing/fake-server.js';
import { startFakeOpenAI } from '../lib/testing/fake-openai.js';
import type { GatewayFileConfig } from '../types/index.js';
import { hostApp } from './helpers/setup.js';

const settings = { failureThreshold: 3, windowMs: 1_000, cooldownMs: 5_000 };

describe('CircuitBreaker', () => {
  let now = 0;
  const clock = () => now;
  beforeEach(() => {
    now = 1_000_000;
  });

  it('opens after N failures in a row within the window', () => {
    const br = new CircuitBreaker(clock);
    assert.equal(br.onFailure(settings), undefined);
    assert.equal(br.onFailure(settings), undefined);
    assert.equal(br.state(settings), 'closed');
    assert.equal(br.onFailure(settings), 'opened');
    assert.equal(br.state(settings), 'open');
    assert.equal(br.tryAcquire(settings), false);
    assert.equal(br.snapshot(settings).retry_in_ms, 5_000);
  });

  it('does not open on failures spread beyond the window or broken by a success', () => {
    const br = new CircuitBreaker(clock);
    br.onFailure(settings);
    br.onFailure(settings);
    now += 1_500;
    br.onFailure(settings);
    assert.equal(br.state(settings), 'closed');
    br.onFailure(settings);
    br.onSuccess();
    br.onFailure(settings);
    assert.equal(br.state(settings), 'closed');
    assert.equal(br.snapshot(settings).recent_failures, 1);
  });

  it('lets exactly one probe through after the cooldown; a failed probe restarts the cooldown', () => {
    const br = new CircuitBreaker(clock);
    for (let i = 0; i < 3; i++) br.onFailure(settings);
    now += 4_999;
    assert.equal(br.tryAcquire(settings), false);
    now += 1;
    assert.equal(br.state(settings), 'half_open');
    assert.equal(br.tryAcquire(settings), true);
    assert.equal(br.tryAcquire(settings), false, 'a second caller waits for the probe');
    br.onFailure(settings);
    assert.equal(br.state(settings), 'open');
    now += 5_000;
    assert.equal(br.tryAcquire(settings), true);
    assert.equal(br.onSuccess(), 'closed');
    assert.equal(br.state(settings), 'closed');
    assert.equal(br.tryAcquire(settings), true);
  });

  it('frees the probe when its call ends without a verdict', () => {
    const br = new CircuitBreaker(clock);
    for (let i = 0; i < 3; i++) br.onFailure(settings);
    now += 5_000;
    assert.equal(br.tryAcquire(settings), true);
    br.release();
    assert.equal(br.tryAcquire(settings), true);
  });

  it('rejects a clock that is not a function', () => {
    assert.throws(() => new BreakerRegistry({ clock: 5 as unknown as () => number }), /clock/);
  });
});

describe('Circuit breakers in the gateway', function () {
  this.timeout(10_000);
  let a: FakeProvider;
  let b: FakeProvider;
  let now = 0;
  const clock = () => now;

  before(async () => {
    [a, b] = await Promise.all([startFakeOpenAI(), startFakeOpenAI()]);
  });
  after(() => Promise.all([a.close(), b.close()]));
  beforeEach(() => {
    now = 1_000_000;
    for (const f of [a, b]) {
      f.clearFaults();
      f.requests.length = 0;
    }
  });

  const config = (): GatewayFileConfig => ({
    providers: {
      primary: {
        type: 'openai',
        api_key: 'test-key',
        base_url: a.baseUrl,
        models: ['gpt-4o'],
        priority: 1,
        max_retries: 0,
      },
      backup: {
        type: 'openai',
        api_key: 'test-key',
        base_url: b.baseUrl,
        models: ['gpt-4o'],
        priority: 2,
        max_retries: 0,
      },
    },
    routing: { circuit_breaker: { failure_threshold: 2, window_seconds: 60, cooldown_seconds: 10 } },
    analytics: { enabled: false },
    cache: { backend: 'disabled' },
  });

  const chat = (app: Parameters<typeof request>[0]) =>
    request(app)
      .post('/ai/chat')
      .send({ model: 'gpt-4o', messages: [{ role: 'user', content: 'hi' }] });

  const circuitOf = async (app: Parameters<typeof request>[0], name: string) => {
    const r = await request(app).get('/ai/health').expect(200);
    return r.body.providers.find((p: { name: string }) => p.name === name).circuit;
  };

  it('skips an open provider, then probes it after the cooldown and closes on success', async () => {
    a.fault({ status: 500 });
    const { app } = hostApp({ ...config(), logger: silentLogger, breakers: new BreakerRegistry({ clock }) });
    for (let i = 0; i < 2; i++) assert.equal((await chat(app).expect(200)).body.provider, 'backup');
    assert.equal(a.requests.length, 2);
    assert.equal((await circuitOf(app, 'primary')).state, 'open');

    const skipped = await chat(app).expect(200);
    assert.equal(a.requests.length, 2, 'the open provider was not called');
    assert.equal(skipped.headers['x-gateway-fallback-count'], '0');
    assert.equal(skipped.body.attempts, undefined);

    a.clearFaults();
    now += 10_000;
    assert.equal((await circuitOf(app, 'primary')).state, 'half_open');
    assert.equal((await chat(app).expect(200)).body.provider, 'primary');
    assert.deepEqual(await circuitOf(app, 'primary'), { state: 'closed', recent_failures: 0 });
  });

  it('does not count non-retryable errors against a provider', async () => {
    a.fault({ status: 400 });
    const { app } = hostApp({ ...config(), logger: silentLogger, breakers: new BreakerRegistry({ clock }) });
    for (let i = 0; i < 3; i++) await chat(app).expect(400);
    assert.equal((await circuitOf(app, 'primary')).state, 'closed');
    assert.equal(a.requests.length, 3);
  });

  it('when every target is open, calls the one that recovers first instead of failing unheard', async () => {
    const { app } = hostApp({ ...config(), logger: silentLogger, breakers: new BreakerRegistry({ clock }) });
    // The backup opens first (pinned requests reach only it), the primary one second later.
    b.fault({ status: 500, times: 2 });
    for (let i = 0; i < 2; i++) {
      await request(app)
        .post('/ai/chat')
        .send({ model: 'backup/gpt-4o', messages: [{ role: 'user', content: 'hi' }] })
        .expect(502);
    }
    now += 1_000;
    a.fault({ status: 500, times: 2 });
    await chat(app).expect(502);
    await chat(app).expect(502);
    assert.equal((await circuitOf(app, 'primary')).state, 'open');
    assert.equal((await circuitOf(app, 'backup')).state, 'open');
    const before = a.requests.length + b.requests.length;
    const r = await chat(app).expect(200);
    assert.equal(r.body.provider, 'backup', 'the backup reopens first, whatever the priorities');
    assert.equal(a.requests.length + b.requests.length, before + 1, 'exactly one call');
    assert.equal((await circuitOf(app, 'backup')).state, 'closed');
  });

  it('keeps breaker state across a config reload', async () => {
    a.fault({ status: 503 });
    const { app, gateway } = hostApp({
      ...config(),
      logger: silentLogger,
      breakers: new BreakerRegistry({ clock }),
    });
    await chat(app).expect(200);
    await chat(app).expect(200);
    gateway.reload({ ...config(), logger: silentLogger });
    assert.equal((await circuitOf(app, 'primary')).state, 'open');
    a.clearFaults();
    await chat(app).expect(200);
    assert.equal(a.requests.length, 2, 'still skipped after the reload');
  });
});
