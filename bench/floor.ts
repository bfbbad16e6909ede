/**
 * The floor: a minimal Express 5 app that parses the JSON body, forwards it to the same upstream with the
 * same axios and agent settings the gateway uses (keep-alive agent with axios' 60 s keep-alive time,
 * maxRedirects 0, no JSON transforms) and relays the answer. Any Express + axios gateway pays at least
 * this; the gateway's own work is what it adds on top.
 * A body asking for `"stream": true` is relayed as a stream (axios `responseType: 'stream'` piped to the
 * client), as the gateway receives its upstream streams.
 */
import express from 'express';
import { benchServer, reportReady } from './common.js';
import { floorClient } from './floor-client.js';

const upstream = `http://127.0.0.1:${Number(process.env.UPSTREAM_PORT)}`;
const { client, httpAgent } = floorClient();

const app = express();
app.disable('x-powered-by');
app.post('/v1/chat/completions', express.json({ limit: '1mb' }), async (req, res, next) => {
  try {
    if (req.body?.stream === true) {
      const up = await client.post<NodeJS.ReadableStream>(
        `${upstream}/v1/chat/completions`,
        JSON.stringify(req.body),
        {
          headers: { 'content-type': 'application/json', authorization: 'Bearer bench-key' },
          responseType: 'stream',
        },
      );
      res.writeHead(up.status, { 'content-type': 'text/event-stream', 'cache-control': 'no-cache' });
      up.data.pipe(res);
      return;
    }
    const up = await client.post<string>(`${upstream}/v1/chat/completions`, JSON.stringify(req.body), {
      headers: { 'content-type': 'application/json', authorization: 'Bearer bench-key' },
      responseType: 'text',
    });
    res.writeHead(up.status, {
      'content-type': 'application/json',
      'content-length': Buffer.byteLength(up.data),
    });
    res.end(up.data);
  } catch (err) {
    next(err);
  }
});

const server = benchServer(app).listen(0, '127.0.0.1', () => {
  reportReady((server.address() as { port: number }).port, () => {
    httpAgent.destroy();
    return new Promise((r) => server.close(() => r()));
  });
});
server.keepAliveTimeout = 60_000;
