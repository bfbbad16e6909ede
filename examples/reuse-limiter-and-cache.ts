/**
 * Reusing only the gateway's rate limiter and cache in a host's own routes, without its router.
 *
 * - `POST /api/summarize {text}`: the host's endpoint with its own input shape. The gateway's per-user
 *   limiter guards it (sharing the bucket with the gateway's own chat route, so a user cannot double their
 *   quota by switching endpoints), the host turns the text into a chat request, and the gateway's cache
 *   answers repeated texts without calling the provider.
 * - `POST /api/feedback`: no AI at all, just a limiter of its own (2 per minute per user).
 *
 * Run it: `npx tsx examples/reuse-limiter-and-cache.ts` (offline: the provider is a local fake).
 */
import express, { type RequestHandler } from 'express';
import { pathToFileURL } from 'node:url';
import {
  Gateway,
  cacheMiddleware,
  createGatewayRouter,
  errorHandler,
  parseRequest,
  respond,
  toExpress,
  userRateLimit,
  type GatewayInput,
} from '../lib/index.js';
import { startFakeOpenAI } from '../lib/testing/index.js';

/** The host's input shape, rewritten into the gateway's chat request. */
const summaryRequest: RequestHandler = (req, res, next) => {
  const text = (req.body as { text?: unknown } | undefined)?.text;
  if (typeof text !== 'string' || !text.trim()) {
    res.status(400).json({ error: 'text is required' });
    return;
  }
  // temperature 0: a deterministic request, which the cache may answer.
  req.body = {
    model: 'gpt-4o-mini',
    temperature: 0,
    messages: [
      { role: 'system', content: 'Summarize the text in one sentence.' },
      { role: 'user', content: text },
    ],
  };
  next();
};

export function createApp(config: GatewayInput) {
  const gateway = new Gateway(config);
  const route = gateway.stages.find((s) => s.name === 'route')!;
  const app = express();
  app.use(express.json({ limit: '100kb' }));

  // The gateway's own chat route, for comparison; it counts against the same per-user limit.
  app.use('/ai', createGatewayRouter(gateway));

  app.post(
    '/api/summarize',
    userRateLimit({ gateway }),
    summaryRequest,
    parseRequest(gateway, { stream: false }),
    cacheMiddleware(gateway),
    toExpress(route),
    respond(),
  );

  app.post('/api/feedback', userRateLimit({ limit: 2 }), (req, res) => {
    res.json({ thanks: true, from: req.get('x-user-id') ?? 'anonymous' });
  });
  app.use('/api', errorHandler());
  return { app, gateway };
}

export async function main() {
  const fake = await startFakeOpenAI();
  const { app, gateway } = createApp({
    providers: { openai: { api_key: 'test-key', base_url: fake.baseUrl, models: ['gpt-4o-mini'] } },
    rate_limiting: { per_user_rpm: 3 },
    cache: { backend: 'memory' },
    analytics: { enabled: false },
  });
  const server = app.listen(0, '127.0.0.1');
  await new Promise<void>((resolve) => server.once('listening', resolve));
  const base = `http://127.0.0.1:${(server.address() as { port: number }).port}`;
  const post = (path: string, body: unknown) =>
    fetch(base + path, {
      method: 'POST',
      headers: { 'content-type': 'application/json', 'x-user-id': 'ann' },
      body: JSON.stringify(body),
    });
  const statuses: string[] = [];
  for (const text of ['The cat sat on the mat.', 'The cat sat on the mat.']) {
    const r = await post('/api/summarize', { text });
    statuses.push(`${r.status} ${r.headers.get('x-gateway-cache')}`);
  }
  const chat = await post('/ai/chat', { model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'hi' }] });
  const fourth = await post('/api/summarize', { text: 'A third text.' });
  statuses.push(String(chat.status), String(fourth.status));
  console.log(`summarize, summarize again, chat, summarize: ${statuses.join(', ')}`);
  console.log(`the provider was called ${fake.requests.length} times`);
  await new Promise((resolve) => server.close(resolve));
  await gateway.close();
  await fake.close();
  return { statuses, upstreamCalls: fake.requests.length };
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  await main();
}
