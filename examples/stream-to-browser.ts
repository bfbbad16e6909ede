/**
 * Streaming an answer into a browser page. The gateway's stream route is a POST (the prompt is in the
 * body), so the page reads it with fetch() and a stream reader instead of EventSource (GET only), and
 * parses the server-sent events itself: `data:` lines carry `{delta}`, `event: done` the usage and cost,
 * `event: error` a failure after the stream began.
 *
 * Run it: `npx tsx examples/stream-to-browser.ts`, open the printed address. Offline: a local fake OpenAI
 * (slowed down so you can watch the words arrive) unless OPENAI_API_KEY is set.
 */
import express from 'express';
import { pathToFileURL } from 'node:url';
import { createGatewayRouter, type GatewayInput } from '../lib/index.js';
import { startFakeOpenAI } from '../lib/testing/index.js';

export const PAGE = `<!doctype html>
<html lang="en">
<meta charset="utf-8">
<title>Streaming chat</title>
<form id="ask"><input id="prompt" value="Tell me about streaming" size="50"> <button>Ask</button></form>
<pre id="answer"></pre>
<p id="usage"></p>
<script type="module">
  const answer = document.getElementById('answer');
  const usage = document.getElementById('usage');
  document.getElementById('ask').addEventListener('submit', async (e) => {
    e.preventDefault();
    answer.textContent = '';
    usage.textContent = '';
    const res = await fetch('/ai/chat/stream', {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ model: 'gpt-4o-mini', messages: [{ role: 'user', content: document.getElementById('prompt').value }] }),
    });
    if (!res.ok) {
      // Errors before the first byte are ordinary JSON errors.
      usage.textContent = (await res.json()).error.message;
      return;
    }
    const reader = res.body.pipeThrough(new TextDecoderStream()).getReader();
    let buffer = '';
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      buffer += value;
      // Events end with a blank line; a network chunk can hold several events or part of one.
      let end;
      while ((end = buffer.indexOf('\\n\\n')) !== -1) {
        const block = buffer.slice(0, end);
        buffer = buffer.slice(end + 2);
        const event = /^event: (.*)$/m.exec(block)?.[1] ?? 'message';
        const data = JSON.parse(block.split('\\n').filter((l) => l.startsWith('data: ')).map((l) => l.slice(6)).join(''));
        if (event === 'message') answer.textContent += data.delta;
        else if (event === 'done') usage.textContent = data.usage.total_tokens + ' tokens, $' + data.cost + ' via ' + data.provider;
        else if (event === 'error') usage.textContent = 'error: ' + data.error.message;
      }
    }
  });
</script>
</html>
`;

export function createApp(config: GatewayInput) {
  const app = express();
  app.get('/', (_req, res) => {
    res.type('html').send(PAGE);
  });
  const router = createGatewayRouter(config);
  app.use('/ai', router);
  return { app, gateway: router.gateway };
}

export async function main(port = Number(process.env.PORT ?? 3000)) {
  const fake = process.env.OPENAI_API_KEY ? undefined : await startFakeOpenAI({ chunkDelayMs: 150 });
  const { app, gateway } = createApp({
    providers: {
      openai: fake
        ? { api_key: 'test-key', base_url: fake.baseUrl, models: ['gpt-4o-mini'] }
        : { api_key: process.env.OPENAI_API_KEY, models: ['gpt-4o-mini'] },
    },
    analytics: { enabled: false },
  });
  const server = app.listen(port, '127.0.0.1');
  await new Promise<void>((resolve) => server.once('listening', resolve));
  const { port: actual } = server.address() as { port: number };
  console.log(`open http://127.0.0.1:${actual}/ and press Ask`);
  return {
    port: actual,
    async stop() {
      await new Promise((resolve) => server.close(resolve));
      await gateway.close();
      await fake?.close();
    },
  };
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  const running = await main();
  const stop = () => void running.stop().then(() => process.exit(0));
  process.once('SIGINT', stop);
  process.once('SIGTERM', stop);
}
