/**
 * How an abort travels without an AbortController per hop: the context's flag and callbacks next to its
 * lazily made `signal`, the request deadline, the abortable backoff sleep, and an upstream stream's idle
 * timeout measured from its latest chunk.
 */
import assert from 'node:assert/strict';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import type { AbortSource } from '../lib/context.js';
import { abortSourceOf, createContext } from '../lib/context.js';
import { GatewayError } from '../lib/errors.js';
import { Gateway } from '../lib/gateway.js';
import { silentLogger } from '../lib/logger.js';
import { Deadline, sleep } from '../lib/retry.js';
import type { GatewayRuntime } from '../lib/runtime.js';
import type { ChatRequest } from '../types/index.js';

const runtime = {} as GatewayRuntime;
const chat: ChatRequest = { model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'hi' }] };
const tick = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe('the context abort', () => {
  it('aborts a signal read before the abort', () => {
    const ctx = createContext(runtime, chat, { stream: false });
    const signal = ctx.signal;
    assert.equal(signal.aborted, false);
    assert.equal(ctx.aborted, false);
    ctx.abort();
    assert.equal(signal.aborted, true);
    assert.equal(ctx.aborted, true);
    assert.equal(ctx.signal, signal, 'one signal per context');
  });

  it('hands out an aborted signal when it is first read after the abort', () => {
    const ctx = createContext(runtime, chat, { stream: false });
    ctx.abort();
    assert.equal(ctx.signal.aborted, true);
  });

  it('runs abort callbacks once, in order; a removed one not at all; a late one at once', () => {
    const ctx = createContext(runtime, chat, { stream: false });
    const calls: string[] = [];
    ctx.onAbort!(() => calls.push('first'));
    const remove = ctx.onAbort!(() => calls.push('removed'));
    ctx.onAbort!(() => calls.push('second'));
    remove();
    ctx.abort();
    ctx.abort();
    assert.deepEqual(calls, ['first', 'second']);
    ctx.onAbort!(() => calls.push('late'));
    assert.deepEqual(calls, ['first', 'second', 'late']);
  });

  it('tells signal listeners and callbacks alike, and both see the context aborted', () => {
    const ctx = createContext(runtime, chat, { stream: false });
    const seen: string[] = [];
    ctx.signal.addEventListener('abort', () => seen.push(`signal:${ctx.aborted}`));
    ctx.onAbort!(() => seen.push(`callback:${ctx.signal.aborted}`));
    ctx.abort();
    assert.deepEqual(seen.sort(), ['callback:true', 'signal:true']);
  });

  it('follows a caller signal that aborts later, or already has', () => {
    const caller = new AbortController();
    const ctx = createContext(runtime, chat, { stream: false, signal: caller.signal });
    let called = 0;
    ctx.onAbort!(() => (called += 1));
    assert.equal(ctx.aborted, false);
    caller.abort();
    assert.equal(ctx.aborted, true);
    assert.equal(ctx.signal.aborted, true);
    assert.equal(called, 1);

    const early = createContext(runtime, chat, { stream: false, signal: AbortSignal.abort() });
    assert.equal(early.aborted, true);
    assert.equal(early.signal.aborted, true);
  });
});

describe('the request deadline and the backoff sleep', () => {
  /** An abort source that counts its listeners. */
  class CountingSource implements AbortSource {
    aborted = false;
    private readonly listeners = new Set<() => void>();
    get listening() {
      return this.listeners.size;
    }
    onAbort(listener: () => void) {
      this.listeners.add(listener);
      return () => void this.listeners.delete(listener);
    }
  }

  it('sleep resolves true after its time and stops listening', async () => {
    const client = new CountingSource();
    assert.equal(await sleep(20, client), true);
    assert.equal(client.listening, 0);
  });

  it('sleep resolves false at once when the client leaves during the wait', async () => {
    const ctx = createContext(runtime, chat, { stream: false });
    const deadline = new Deadline(abortSourceOf(ctx), 5_000);
    const started = Date.now();
    const slept = sleep(2_000, deadline);
    setTimeout(() => ctx.abort(), 30);
    assert.equal(await slept, false);
    assert.ok(Date.now() - started < 1_000, `took ${Date.now() - started} ms`);
    assert.equal(deadline.aborted, true);
    assert.equal(deadline.expired, false, 'the client left; the time was not up');
    deadline.stop();
  });

  it('sleep resolves false when the deadline passes during the wait', async () => {
    const ctx = createContext(runtime, chat, { stream: false });
    const deadline = new Deadline(abortSourceOf(ctx), 60);
    const started = Date.now();
    assert.equal(await sleep(2_000, deadline), false);
    const took = Date.now() - started;
    assert.ok(took >= 50 && took < 1_000, `took ${took} ms`);
    assert.equal(deadline.expired, true);
    assert.equal(ctx.aborted, false, 'the deadline does not abort the client side');
  });

  it('sleep still takes an AbortSignal', async () => {
    assert.equal(await sleep(10, new AbortController().signal), true);
    assert.equal(await sleep(10_000, AbortSignal.abort()), false);
    const controller = new AbortController();
    const slept = sleep(10_000, controller.signal);
    controller.abort();
    assert.equal(await slept, false);
  });

  it('a stopped deadline no longer times out but still passes on a client abort', async () => {
    const ctx = createContext(runtime, chat, { stream: true });
    const deadline = new Deadline(abortSourceOf(ctx), 30);
    let aborted = 0;
    deadline.onAbort(() => (aborted += 1));
    deadline.stop();
    await tick(80);
    assert.equal(aborted, 0);
    assert.equal(deadline.expired, false);
    ctx.abort();
    assert.equal(aborted, 1);
  });
});

/** An OpenAI-style stream that sends a chunk at each of `at` (ms after the request), then stalls. */
async function stallingUpstream(at: number[]) {
  const frame = (content: string) =>
    `data: ${JSON.stringify({
      id: 'c1',
      object: 'chat.completion.chunk',
      created: 1,
      model: 'gpt-4o-mini',
      choices: [{ index: 0, delta: { content }, finish_reason: null }],
    })}\n\n`;
  let closed = false;
  const server = http.createServer((req, res) => {
    req.resume();
    res.writeHead(200, { 'content-type': 'text/event-stream' });
    const timers = at.map((ms, i) => setTimeout(() => res.write(frame(`w${i} `)), ms));
    res.on('close', () => {
      closed = true;
      for (const t of timers) clearTimeout(t);
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return {
    baseUrl: `http://127.0.0.1:${(server.address() as AddressInfo).port}/v1`,
    get closed() {
      return closed;
    },
    close: () => {
      server.closeAllConnections();
      return new Promise((r) => server.close(r));
    },
  };
}

describe('an upstream stream that stalls after it started', () => {
  it('ends with a timeout once a gap between chunks reaches timeout_seconds, and not before', async () => {
    // Gaps of 150 ms stay under the 300 ms timeout; the stall after the last chunk does not.
    const upstream = await stallingUpstream([0, 150, 300, 450]);
    const gateway = new Gateway({
      providers: {
        openai: {
          api_key: 'sk-test-123456',
          base_url: upstream.baseUrl,
          models: ['gpt-4o-mini'],
          timeout_seconds: 0.3,
          max_retries: 0,
        },
      },
      analytics: { enabled: false },
      cache: { backend: 'disabled' },
      logger: silentLogger,
    });
    try {
      const deltas: string[] = [];
      let lastChunkAt = 0;
      let failure: unknown;
      try {
        for await (const chunk of gateway.chatStream(chat)) {
          deltas.push(chunk.delta);
          lastChunkAt = Date.now();
        }
      } catch (err) {
        failure = err;
      }
      const stalledFor = Date.now() - lastChunkAt;
      assert.deepEqual(deltas, ['w0 ', 'w1 ', 'w2 ', 'w3 ']);
      assert.ok(failure instanceof GatewayError, String(failure));
      assert.equal(failure.kind, 'timeout');
      assert.ok(stalledFor >= 250 && stalledFor < 1_000, `ended ${stalledFor} ms after the last chunk`);
      for (let i = 0; i < 50 && !upstream.closed; i++) await tick(10);
      assert.equal(upstream.closed, true, 'the upstream request was ended');
    } finally {
      await gateway.close();
      await upstream.close();
    }
  });
});
