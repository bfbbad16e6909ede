/**
 * The gateway without Express: `new Gateway()` with `gateway.chat()` and `gateway.chatStream()`, the same
 * stages the router runs. The alias `smart` is OpenAI first and Anthropic as its fallback.
 *
 * Run it: `npx tsx examples/programmatic.ts` (offline: the providers are local fakes). In your code, import
 * from 'express-ai-gateway' and drop the `baseUrl`s.
 */
import { pathToFileURL } from 'node:url';
import { Gateway, Provider, type Logger } from '../lib/index.js';
import { startFakeAnthropic, startFakeOpenAI } from '../lib/testing/index.js';

export async function main(log: (line: string) => void = console.log, logger?: Logger) {
  const openai = await startFakeOpenAI();
  const anthropic = await startFakeAnthropic();
  const gateway = new Gateway({
    providers: [
      // maxRetries 0: fall back at the first failure (the default retries twice first).
      new Provider({
        name: 'openai',
        apiKey: 'test-key',
        baseUrl: openai.baseUrl,
        models: ['gpt-4o-mini'],
        maxRetries: 0,
      }),
      new Provider({
        name: 'anthropic',
        apiKey: 'test-key',
        baseUrl: anthropic.baseUrl,
        models: ['claude-3-5-haiku-20241022'],
      }),
    ],
    routing: {
      aliases: {
        smart: { primary: 'openai/gpt-4o-mini', fallbacks: ['anthropic/claude-3-5-haiku-20241022'] },
      },
    },
    cacheBackend: 'memory',
    cacheTtl: 3600,
    analytics: { enabled: false },
    ...(logger ? { logger } : {}),
  });
  try {
    const r = await gateway.chat({
      model: 'smart',
      messages: [{ role: 'user', content: 'Hi' }],
      max_tokens: 200,
    });
    log(`chat: ${r.content} (provider ${r.provider}, cost $${r.cost})`);

    const stream = gateway.chatStream({
      model: 'smart',
      messages: [{ role: 'user', content: 'stream me please' }],
    });
    let text = '';
    for await (const c of stream) text += c.delta;
    const done = await stream.done;
    log(`stream: ${text} (finish ${done.finish_reason}, ${done.usage.total_tokens} tokens)`);

    // The first provider answers 503 once: the request falls back to the second, invisibly to the caller.
    openai.fault({ status: 503, times: 1 });
    const fallback = await gateway.chat({
      model: 'smart',
      messages: [{ role: 'user', content: 'still there?' }],
    });
    log(`fallback: ${fallback.content} (provider ${fallback.provider})`);
    return { chat: r, streamed: text, done, fallback };
  } finally {
    await gateway.close();
    await openai.close();
    await anthropic.close();
  }
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  await main();
}
