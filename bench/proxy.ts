/**
 * The thinnest Node reverse proxy: node:http in, node:http out over a keep-alive agent, bodies piped both
 * ways, no parsing at all. Whatever a Node gateway does, it cannot beat this: it is the ceiling.
 */
import http from 'node:http';
import { reportReady } from './common.js';

const upstreamPort = Number(process.env.UPSTREAM_PORT);
const agent = new http.Agent({ keepAlive: true, maxSockets: 256 });

const server = http.createServer((req, res) => {
  const up = http.request(
    {
      host: '127.0.0.1',
      port: upstreamPort,
      method: req.method,
      path: req.url,
      headers: { ...req.headers, host: `127.0.0.1:${upstreamPort}`, connection: 'keep-alive' },
      agent,
    },
    (upRes) => {
      res.writeHead(upRes.statusCode ?? 502, upRes.headers);
      upRes.pipe(res);
    },
  );
  up.on('error', () => {
    if (!res.headersSent) res.writeHead(502);
    res.end();
  });
  req.pipe(up);
});
server.keepAliveTimeout = 60_000;
server.listen(0, '127.0.0.1', () => {
  reportReady((server.address() as { port: number }).port, () => {
    agent.destroy();
    return new Promise((r) => server.close(() => r()));
  });
});
