/**
 * `npm run demo`: a tour of the gateway that needs no key and no network. Local fake providers stand in
 * for OpenAI and Anthropic, the gateway runs in front of them on loopback, and each step sends one kind of
 * request and prints what came back: an answer, a cache hit, a fallback, a rate-limit refusal, a stream,
 * then the usage statistics. It exits 0 when every step behaved as described.
 */
import express from 'express';
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { createGatewayRouter, silentLogger, type Logger } from '../lib/index.js';
import { startFakeAnthropic, startFakeOpenAI } from '../lib/testing/index.js';

const MODEL = 'gpt-4o-mini';
const FALLBACK = 'anthropic/claude-3-5-haiku-20241022';

export async function main(options: { log?: (line: string) => void; logger?: Logger } = {}) {
  const log = options.log ?? console.log;
  const step = (title: string) => log(`\n== ${title}`);
  const failures: string[] = [];
  const expect = (ok: boolean, what: string) => {
    if (!ok) failures.push(what);
    log(`   ${ok ? 'ok' : 'UNEXPECTED'}: ${what}`);
  };

  const openai = await startFakeOpenAI({ chunkDelayMs: 40 });
  const anthropic = await startFakeAnthropic({ chunkDelayMs: 40 });
  // Analytics go to a throwaway SQLite file so the demo leaves nothing behind.
  const dir = mkdtempSync(path.join(os.tmpdir(), 'gateway-demo-'));
  const router = createGatewayRouter({
    providers: {
      openai: { api_key: 'test-key', base_url: openai.baseUrl, models: [MODEL], max_retries: 0 },
      anthropic: { api_key: 'test-key', base_url: anthropic.baseUrl, models: ['claude-3-5-haiku-20241022'] },
    },
    routing: { primary: `openai/${MODEL}`, fallbacks: [FALLBACK] },
    cache: { backend: 'memory', ttl_seconds: 600 },
    rate_limiting: { per_user_rpm: 5 },
    analytics: {
      enabled: true,
      storage: 'sqlite',
      sqlite_path: path.join(dir, 'analytics.db'),
      flush_interval_ms: 100,
    },
    // The demo prints its own narration; the gateway's JSON logs would drown it.
    logger: options.logger ?? silentLogger,
  });
  const gateway = router.gateway;
  const app = express();
  app.use('/ai', router);
  const server = app.listen(0, '127.0.0.1');
  await new Promise<void>((resolve) => server.once('listening', resolve));
  const base = `http://127.0.0.1:${(server.address() as { port: number }).port}/ai`;

  const chat = async (content: string, user = 'alice') => {
    const res = await fetch(`${base}/chat`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', 'x-user-id': user },
      body: JSON.stringify({ model: MODEL, messages: [{ role: 'user', content }] }),
    });
    return { res, body: (await res.json()) as any };
  };

  try {
    log(`Gateway on ${base}, fake OpenAI on ${openai.origin}, fake Anthropic on ${anthropic.origin}`);

    step('1. A request');
    const first = await chat('What is an AI gateway?');
    log(`   ${first.res.status} ${first.body.provider}/${first.body.model}: "${first.body.content}"`);
    log(
      `   usage ${JSON.stringify(first.body.usage)}, cost $${first.body.cost}, ${first.body.latency_ms} ms`,
    );
    expect(first.res.status === 200 && first.body.provider === 'openai', 'answered by the primary, OpenAI');

    step('2. The same request again: a cache hit');
    const again = await chat('What is an AI gateway?');
    log(
      `   ${again.res.status} X-Gateway-Cache: ${again.res.headers.get('x-gateway-cache')}, cached: ${again.body.cached}`,
    );
    log(`   upstream calls so far: ${openai.requests.length} (the second answer never left the gateway)`);
    expect(again.body.cached === true && openai.requests.length === 1, 'served from the cache');

    step('3. The primary fails: fallback');
    openai.fault({ status: 503, message: 'overloaded', times: 1 });
    const fallback = await chat('Are you still there?');
    log(`   ${fallback.res.status} answered by ${fallback.body.provider}/${fallback.body.model}`);
    log(`   X-Gateway-Fallback-Count: ${fallback.res.headers.get('x-gateway-fallback-count')}`);
    expect(fallback.res.status === 200 && fallback.body.provider === 'anthropic', 'fell back to Anthropic');

    step('4. Too many requests from one user: rate limit (per_user_rpm: 5)');
    const statuses: number[] = [];
    let refused: Awaited<ReturnType<typeof chat>> | undefined;
    for (let i = 1; i <= 6; i++) {
      const r = await chat(`burst ${i}`, 'mallory');
      statuses.push(r.res.status);
      if (r.res.status === 429) refused = r;
    }
    log(`   mallory's six requests: ${statuses.join(' ')}`);
    if (refused) {
      log(`   429 ${refused.body.error.type}: ${refused.body.error.message}`);
      log(`   Retry-After: ${refused.res.headers.get('retry-after')} s`);
    }
    expect(
      statuses.slice(0, 5).every((s) => s === 200) && statuses[5] === 429,
      'the sixth request was refused',
    );

    step('5. A stream');
    const res = await fetch(`${base}/chat/stream`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', 'x-user-id': 'bob' },
      body: JSON.stringify({
        model: MODEL,
        messages: [{ role: 'user', content: 'count one two three four' }],
      }),
    });
    const text = await res.text();
    const deltas = [...text.matchAll(/^data: (\{"delta".*)$/gm)].map(
      (m) => JSON.parse(m[1]!).delta as string,
    );
    const done = /event: done\ndata: (.*)/.exec(text);
    log(`   ${deltas.length} chunks: ${deltas.map((d) => JSON.stringify(d)).join(' ')}`);
    if (done) log(`   done: ${done[1]}`);
    expect(
      deltas.join('') === 'echo: count one two three four' && done !== null,
      'streamed chunk by chunk, then done',
    );

    step('6. The statistics');
    await gateway.analytics.flush();
    const stats = await gateway.analytics.summary();
    if (stats.enabled) {
      log(
        `   requests ${stats.total_requests}, errors ${stats.total_errors}, cache hits ${stats.cache_hits}`,
      );
      log(`   rate limited ${stats.rate_limited}, fallbacks ${stats.fallbacks}, streams ${stats.streams}`);
      log(`   cost $${stats.total_cost}, saved by the cache $${stats.total_cost_saved}`);
      // A refused request never reached a provider: its row has none.
      const byProvider = stats.by_provider.map((b) => `${b.name ?? '(none)'} ${b.requests}`);
      log(`   requests by provider: ${byProvider.join(', ')}`);
      expect(stats.total_requests === 10, 'every request was recorded');
    } else {
      expect(false, 'analytics enabled');
    }
    log(`   the same as JSON: GET ${base}/stats, Prometheus: GET ${base}/metrics`);
    const dashboard = await fetch(`${base}/dashboard`);
    log(
      dashboard.ok
        ? `   dashboard: ${base}/dashboard`
        : `   (no dashboard in this build: GET /dashboard answered ${dashboard.status})`,
    );
  } finally {
    await new Promise((resolve) => server.close(resolve));
    await gateway.close();
    await openai.close();
    await anthropic.close();
    rmSync(dir, { recursive: true, force: true });
  }
  log(
    failures.length
      ? `\nDemo finished with ${failures.length} surprise(s).`
      : '\nDemo finished: all steps as described.',
  );
  return { failures };
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  const { failures } = await main();
  process.exit(failures.length ? 1 : 0);
}
