/**
 * Streams are forwarded as they arrive, not buffered until the upstream finishes: with a slow upstream
 * (a pause between chunks) the client must receive chunks while the upstream response is still open.
 * Only the order of events is asserted, never how fast anything was.
 */
import assert from 'node:assert/strict';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { silentLogger } from '../lib/logger.js';
import { startFakeOpenAI } from '../lib/testing/fake-openai.js';
import type { FakeProvider } from '../lib/testing/fake-server.js';
import { hostApp } from './helpers/setup.js';

const WORDS = ['one', 'two', 'three', 'four', 'five', 'six'];

/** A pass-through in front of the fake that notes when the upstream response has ended. */
function upstreamWatch(target: number) {
  const state: { ended: boolean } = { ended: false };
  const server = http.createServer((req, res) => {
    const up = http.request(
      { host: '127.0.0.1', port: target, method: req.method, path: req.url, headers: req.headers },
      (upRes) => {
        res.writeHead(upRes.statusCode ?? 502, upRes.headers);
        // Forwarded piece by piece, so that this hop adds no buffering of its own.
        upRes.on('data', (d: Buffer) => res.write(d));
        upRes.on('end', () => {
          state.ended = true;
          res.end();
        });
      },
    );
    req.pipe(up);
  });
  return { server, state };
}

function listen(server: http.Server): Promise<number> {
  return new Promise((resolve) =>
    server.listen(0, '127.0.0.1', () => resolve((server.address() as AddressInfo).port)),
  );
}

describe('stream forwarding', function () {
  this.timeout(15_000);
  let fake: FakeProvider;
  let watch: ReturnType<typeof upstreamWatch>;
  let gatewayServer: http.Server;
  let gatewayPort: number;

  before(async () => {
    fake = await startFakeOpenAI({ chunkDelayMs: 200, reply: () => WORDS.join(' ') });
    watch = upstreamWatch(Number(new URL(fake.origin).port));
    const watchPort = await listen(watch.server);
    const { app } = hostApp({
      providers: {
        openai: {
          api_key: 'test-key',
          base_url: `http://127.0.0.1:${watchPort}/v1`,
          models: ['gpt-4o-mini'],
        },
      },
      logger: silentLogger,
    });
    gatewayServer = http.createServer(app);
    gatewayPort = await listen(gatewayServer);
  });

  after(async () => {
    gatewayServer.closeAllConnections();
    await new Promise((r) => gatewayServer.close(r));
    watch.server.closeAllConnections();
    await new Promise((r) => watch.server.close(r));
    await fake.close();
  });

  it('delivers chunks to the client while the upstream is still producing them', async () => {
    // For each delta event: whether the upstream response had already ended when it reached the client.
    const deltas: { text: string; upstreamEnded: boolean }[] = [];
    const body = JSON.stringify({ model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'count' }] });
    await new Promise<void>((resolve, reject) => {
      const req = http.request(
        {
          host: '127.0.0.1',
          port: gatewayPort,
          path: '/ai/chat/stream',
          method: 'POST',
          headers: { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) },
        },
        (res) => {
          assert.equal(res.statusCode, 200);
          res.setEncoding('utf8');
          let buffered = '';
          res.on('data', (text: string) => {
            const ended = watch.state.ended;
            buffered += text;
            let end: number;
            while ((end = buffered.indexOf('\n\n')) !== -1) {
              const block = buffered.slice(0, end);
              buffered = buffered.slice(end + 2);
              if (block.startsWith('event:')) continue;
              const data = JSON.parse(block.replace(/^data: /, '')) as { delta: string };
              if (data.delta) deltas.push({ text: data.delta, upstreamEnded: ended });
            }
          });
          res.on('end', resolve);
          res.on('error', reject);
        },
      );
      req.on('error', reject);
      req.end(body);
    });

    assert.equal(deltas.map((d) => d.text).join(''), WORDS.join(' '), 'the whole reply arrives');
    assert.equal(deltas[0]!.upstreamEnded, false, 'the first chunk arrived before the upstream finished');
    const early = deltas.filter((d) => !d.upstreamEnded).length;
    assert.ok(
      early >= Math.ceil(WORDS.length / 2),
      `most chunks arrived while the upstream was still open (got ${early} of ${deltas.length})`,
    );
    assert.equal(watch.state.ended, true);
  });
});
