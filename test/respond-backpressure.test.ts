/**
 * A client that reads a stream slowly must slow the upstream down: respond() stops pulling events while the
 * socket's buffer is full, instead of buffering the whole answer in memory.
 */
import assert from 'node:assert/strict';
import { EventEmitter } from 'node:events';
import type { GatewayContext, StreamEvent } from '../lib/context.js';
import { respond } from '../lib/middlewares/respond.js';

class SlowResponse extends EventEmitter {
  destroyed = false;
  writes: string[] = [];
  locals: Record<string, unknown> = {};
  writeHead() {
    return this;
  }
  flushHeaders() {}
  /** Reports a full buffer after every write, as a socket to a client that stopped reading does. */
  write(text: string) {
    this.writes.push(text);
    return false;
  }
  end() {
    this.emit('finish');
  }
}

describe('respond(): stream backpressure', () => {
  it('pulls the next event only after the socket drained', async () => {
    let pulled = 0;
    async function* events(): AsyncGenerator<StreamEvent> {
      for (let i = 0; i < 3; i++) {
        pulled += 1;
        yield { type: 'chunk', chunk: { delta: `c${i}`, provider: 'p', model: 'm' } };
      }
    }
    const res = new SlowResponse();
    res.locals.gateway = {
      requestId: 'req_1',
      streamEvents: events(),
      responseHeaders: {},
      warnings: [],
    } as unknown as GatewayContext;
    const finished = new Promise((r) => res.once('finish', r));
    respond()({} as never, res as never, (err?: unknown) => {
      if (err) throw err;
    });
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
