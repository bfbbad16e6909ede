/**
 * The load generators: autocannon for fixed-concurrency load (requests/s and latency; every response time
 * is collected, not only autocannon's whole-millisecond histogram, so that sub-millisecond differences
 * show), and a small sequential SSE client for time to first chunk and chunks/s.
 */
import http from 'node:http';
import { performance } from 'node:perf_hooks';
import autocannon from 'autocannon';
import { chatBody } from './common.js';

export interface LoadResult {
  requests: number;
  non2xx: number;
  errors: number;
  seconds: number;
  rps: number;
  /** Response times in ms, unsorted. */
  latencies: number[];
}

let counter = 0;

export interface LoadOptions {
  port: number;
  path: string;
  connections: number;
  seconds: number;
  /** Each request distinct (cache miss) or all identical (cache hit). */
  unique: boolean;
  stream?: boolean;
  /** Distinct user per request (`X-User-Id`): the soak's many users. */
  distinctUsers?: boolean;
}

export function load(o: LoadOptions): Promise<LoadResult> {
  const latencies: number[] = [];
  const headers: Record<string, string> = {
    'content-type': 'application/json',
    authorization: 'Bearer bench-key',
  };
  const fixedBody = chatBody(undefined, o.stream);
  return new Promise((resolve, reject) => {
    const instance = autocannon(
      {
        url: `http://127.0.0.1:${o.port}`,
        connections: o.connections,
        duration: o.seconds,
        requests: [
          {
            method: 'POST',
            path: o.path,
            headers,
            setupRequest: (req) => {
              const n = counter++;
              req.body = o.unique ? chatBody(n, o.stream) : fixedBody;
              if (o.distinctUsers) req.headers = { ...headers, 'x-user-id': `user-${n}` };
              return req;
            },
          },
        ],
      },
      (err, result) => {
        if (err) return reject(err);
        const ok = result['2xx'];
        resolve({
          requests: ok,
          non2xx: result.non2xx,
          errors: result.errors + result.timeouts,
          seconds: result.duration,
          rps: ok / result.duration,
          latencies,
        });
      },
    );
    (instance as unknown as NodeJS.EventEmitter).on(
      'response',
      (_client: unknown, status: number, _bytes: number, ms: number) => {
        if (status >= 200 && status < 300) latencies.push(ms);
      },
    );
  });
}

export interface StreamResult {
  streams: number;
  failures: number;
  /** Time to the first content chunk, ms per stream. */
  ttfb: number[];
  /** Whole stream, ms per stream. */
  total: number[];
  chunks: number;
  seconds: number;
}

const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
// Every target's stream carries the same content words ("word0 ", "word1 ", ...): counting them counts
// content chunks in any of the formats.
const WORD = /word\d+ /g;

function oneStream(
  port: number,
  path: string,
  body: string,
): Promise<{ ttfb: number; total: number; chunks: number }> {
  return new Promise((resolve, reject) => {
    const started = performance.now();
    let ttfb = -1;
    let text = '';
    const req = http.request(
      {
        host: '127.0.0.1',
        port,
        path,
        method: 'POST',
        agent,
        headers: { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) },
      },
      (res) => {
        res.setEncoding('utf8');
        res.on('data', (s: string) => {
          text += s;
          if (ttfb < 0 && text.includes('word0 ')) ttfb = performance.now() - started;
        });
        res.on('end', () => {
          if (res.statusCode !== 200 || ttfb < 0)
            return reject(new Error(`stream ${res.statusCode}: ${text.slice(0, 200)}`));
          resolve({ ttfb, total: performance.now() - started, chunks: text.match(WORD)?.length ?? 0 });
        });
        res.on('error', reject);
      },
    );
    req.on('error', reject);
    req.end(body);
  });
}

/** N streams one after the other on one keep-alive connection. */
export async function streams(port: number, path: string, n: number, unique: boolean): Promise<StreamResult> {
  const out: StreamResult = { streams: 0, failures: 0, ttfb: [], total: [], chunks: 0, seconds: 0 };
  const started = performance.now();
  for (let i = 0; i < n; i++) {
    try {
      const r = await oneStream(port, path, chatBody(unique ? counter++ : undefined, true));
      out.streams++;
      out.ttfb.push(r.ttfb);
      out.total.push(r.total);
      out.chunks += r.chunks;
    } catch {
      out.failures++;
    }
  }
  out.seconds = (performance.now() - started) / 1000;
  return out;
}
