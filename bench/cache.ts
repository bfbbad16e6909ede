/**
 * Cache-hit bench, on demand (`npx tsx bench/cache.ts`): latency and throughput of a cache hit through the
 * gateway router (memory store, and Redis when it is up) against a plain Express route returning the same
 * JSON. Each target runs in its own process (pinned to its own core where possible); the load generator
 * and the fake upstream share the other core. Figures depend on the machine: read them side by side.
 */
import autocannon from 'autocannon';
import { REDIS_URL, probeRedis } from '../test/helpers/services.js';
import { startFakeOpenAI } from '../lib/testing/fake-openai.js';
import { CORE_LOAD, CORE_UNDER_TEST, MODEL, pinSelf, startServer } from './common.js';

const DURATION_S = Number(process.env.CACHE_BENCH_SECONDS ?? 10);
const CONNECTIONS = Number(process.env.CACHE_BENCH_CONNECTIONS ?? 10);
const body = JSON.stringify({
  model: MODEL,
  messages: [{ role: 'user', content: 'Summarise the plot of a short story about a lighthouse keeper.' }],
});

function run(url: string, duration: number): Promise<autocannon.Result> {
  return autocannon({
    url,
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body,
    connections: CONNECTIONS,
    duration,
  });
}

async function post(url: string): Promise<{ cache: string | null; text: string }> {
  const r = await fetch(url, { method: 'POST', headers: { 'content-type': 'application/json' }, body });
  return { cache: r.headers.get('x-gateway-cache'), text: await r.text() };
}

pinSelf(CORE_LOAD);
const fake = await startFakeOpenAI({ apiKeys: ['bench-key'] });
const rows: Record<string, string | number>[] = [];
let payload = '{}';

const targets = ['memory', ...((await probeRedis(REDIS_URL)) === undefined ? ['redis'] : []), 'plain'];
if (!targets.includes('redis')) console.warn('Redis is not reachable: the redis row is left out.');

for (const target of targets) {
  const server = await startServer(target, 'cache-host.ts', {
    core: CORE_UNDER_TEST,
    env: {
      CACHE_BENCH_TARGET: target,
      CACHE_BENCH_UPSTREAM: fake.baseUrl,
      CACHE_BENCH_REDIS_URL: REDIS_URL,
      CACHE_BENCH_PAYLOAD: payload,
    },
  });
  const url = `http://127.0.0.1:${server.port}${target === 'plain' ? '/plain' : '/ai/chat'}`;
  try {
    if (target !== 'plain') {
      const upstreamBefore = fake.requests.length;
      await post(url);
      const hit = await post(url);
      if (hit.cache !== 'HIT')
        throw new Error(`${target}: the warm-up did not produce a hit (${hit.cache}): ${hit.text}`);
      payload = hit.text;
      await run(url, 2);
      const result = await run(url, DURATION_S);
      // Each one is a request that missed (a store call timed out under load): shown, not hidden.
      const upstream = fake.requests.length - upstreamBefore - 1;
      rows.push({ ...row(`gateway hit (${target})`, result), 'upstream calls': upstream });
    } else {
      await run(url, 2);
      rows.push({ ...row('plain express route', await run(url, DURATION_S)), 'upstream calls': 0 });
    }
  } finally {
    await server.stop();
  }
}
await fake.close();

function row(name: string, r: autocannon.Result): Record<string, string | number> {
  return {
    target: name,
    'req/s (mean)': Math.round(r.requests.average),
    'p50 ms': r.latency.p50,
    'p90 ms': r.latency.p90,
    'p99 ms': r.latency.p99,
    'mean ms': Number(r.latency.average.toFixed(2)),
    errors: r.errors + r.non2xx,
    bytes: Math.round(r.throughput.average / Math.max(1, r.requests.average)),
  };
}

console.log(`\n${CONNECTIONS} connections, ${DURATION_S} s per target, after a 2 s warm-up:`);
console.table(rows);
