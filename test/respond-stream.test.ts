/**
 * respond() writing a stream. A client that reads slowly must slow the upstream down: respond() stops
 * pulling events while the socket's buffer is full, instead of buffering the whole answer in memory. The
 * headers leave with the first event when it is ready, and on their own when it is not; the first event
 * leaves at once, before the events that arrived with it are written. The same for the OpenAI-compatible
 * stream writer.
 */
import assert from 'node:assert/strict';
import { EventEmitter } from 'node:events';
import http from 'node:http';
import request from 'supertest';
import type { GatewayContext, StreamEvent } from '../lib/context.js';
import { respond } from '../lib/middlewares/respond.js';
import { writeOpenAIStream } from '../lib/openai-compat/stream.js';

/** Records what respond() does to the response, in order: `flush` for flushHeaders(), then each write. */
class RecordingResponse extends EventEmitter {
  destroyed = false;
  writes: string[] = [];
  calls: string[] = [];
  locals: Record<string, unknown> = {};
  /** False: a socket whose buffer is full after every write, as one to a client that stopped reading. */
  constructor(readonly writeReturns = true) {
    super();
  }
  writeHead() {
    return this;
  }
  flushHeaders() {
    this.calls.push('flush');
  }
  write(text: string) {
    this.writes.push(text);
    this.calls.push('write');
    return this.writeReturns;
  }
  end() {
    this.calls.push('end');
    this.emit('finish');
  }
}

/** What a stream writer reads of the context: the events, and no extra headers or warnings. */
function contextWith(events: AsyncGenerator<StreamEvent>): GatewayContext {
  return {
    requestId: 'req_1',
    streamEvents: events,
    responseHeaders: {},
    warnings: [],
  } as unknown as GatewayContext;
}

function respondWith(
  res: EventEmitter & { locals: Record<string, unknown> },
  events: AsyncGenerator<StreamEvent>,
): Promise<unknown> {
  res.locals.gateway = contextWith(events);
  const finished = new Promise((r) => res.once('finish', r));
  respond()({} as never, res as never, (err?: unknown) => {
    if (err) throw err;
  });
  return finished;
}

const chunk = (delta: string): StreamEvent => ({
  type: 'chunk',
  chunk: { delta, provider: 'p', model: 'm' },
});

describe('respond(): stream backpressure', () => {
  it('pulls the next event only after the socket drained', async () => {
    let pulled = 0;
    async function* events(): AsyncGenerator<StreamEvent> {
      for (let i = 0; i < 3; i++) {
        pulled += 1;
        yield chunk(`c${i}`);
      }
    }
    const res = new RecordingResponse(false);
    const finished = respondWith(res, events());
    await new Promise((r) => setTimeout(r, 20));
    assert.equal(pulled, 1, 'no second event while the first is unsent');
    assert.equal(res.writes.length, 1);
    res.emit('drain');
    await new Promise((r) => setTimeout(r, 20));
    assert.equal(pulled, 2);
    res.emit('drain');
    await new Promise((r) => setTimeout(r, 5));
    res.emit('drain');
    await finished;
    assert.equal(pulled, 3);
    assert.deepEqual(
      res.writes.map((w) => JSON.parse(w.slice('data: '.length)).delta),
      ['c0', 'c1', 'c2'],
    );
  });
});

describe('respond(): when the stream headers leave', () => {
  it('sends them with the first event when it is already there: no separate flush', async () => {
    async function* events(): AsyncGenerator<StreamEvent> {
      yield chunk('a');
      yield chunk('b');
    }
    const res = new RecordingResponse();
    await respondWith(res, events());
    assert.deepEqual(res.calls, ['write', 'write', 'end']);
  });

  it('flushes them at once when the first event is slow, so the client sees the stream open', async () => {
    let release!: () => void;
    const firstEvent = new Promise<void>((r) => (release = r));
    async function* events(): AsyncGenerator<StreamEvent> {
      await firstEvent;
      yield chunk('a');
    }
    const res = new RecordingResponse();
    const finished = respondWith(res, events());
    await new Promise((r) => setTimeout(r, 20));
    assert.deepEqual(res.calls, ['flush'], 'headers flushed while the first event is still awaited');
    release();
    await finished;
    assert.deepEqual(res.calls, ['flush', 'write', 'end']);
  });

  it('never flushes after the stream already ended', async () => {
    async function* events(): AsyncGenerator<StreamEvent> {}
    const res = new RecordingResponse();
    await respondWith(res, events());
    await new Promise((r) => setImmediate(r));
    assert.deepEqual(res.calls, ['end']);
  });
});

/**
 * Serves one stream of a first chunk and 20 more that are all there at once (one upstream read), and
 * reports what the socket still held when the stream was asked for the second event.
 */
async function firstEventSent(
  write: (events: AsyncGenerator<StreamEvent>, res: http.ServerResponse) => void,
): Promise<{ held: { corked: number; buffered: number } | undefined; body: string }> {
  let held: { corked: number; buffered: number } | undefined;
  const handler = (_req: http.IncomingMessage, res: http.ServerResponse) => {
    async function* events(): AsyncGenerator<StreamEvent> {
      yield chunk('first');
      // Still the tick the first event was written in.
      held = { corked: res.socket!.writableCorked, buffered: res.socket!.writableLength };
      for (let i = 0; i < 20; i++) yield chunk(`more${i}`);
      yield {
        type: 'done',
        done: {
          provider: 'p',
          model: 'm',
          finish_reason: 'stop',
          usage: { prompt_tokens: 1, completion_tokens: 21, total_tokens: 22 },
        },
      } as StreamEvent;
    }
    write(events(), res);
  };
  const { text } = await request(handler).get('/');
  return { held, body: text };
}

describe('streams: the first event leaves at once', () => {
  it('respond(): sent before the events that arrived with it are written', async () => {
    const { held, body } = await firstEventSent(
      (events, res) => void respondWith(Object.assign(res, { locals: {} }), events),
    );
    assert.deepEqual(held, { corked: 0, buffered: 0 });
    const deltas = [...body.matchAll(/"delta":"([^"]+)"/g)].map((m) => m[1]);
    assert.deepEqual(deltas, ['first', ...Array.from({ length: 20 }, (_, i) => `more${i}`)]);
    assert.match(body, /event: done/);
  });

  it('the OpenAI-compatible stream: the same', async () => {
    const { held, body } = await firstEventSent(
      (events, res) =>
        void writeOpenAIStream(contextWith(events), res as never, {
          meta: { id: 'chatcmpl-1', created: 1 },
          includeUsage: false,
          headers: {},
        }),
    );
    assert.deepEqual(held, { corked: 0, buffered: 0 });
    const contents = [...body.matchAll(/"content":"([^"]*)"/g)].map((m) => m[1]);
    assert.deepEqual(contents, ['first', ...Array.from({ length: 20 }, (_, i) => `more${i}`)]);
    assert.match(body, /data: \[DONE\]\n\n$/);
  });
});
