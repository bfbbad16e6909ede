/**
 * The benchmark's upstream: a minimal node:http server speaking just enough of OpenAI's Chat Completions to
 * satisfy the gateway's openai adapter: a JSON completion, or (when the body asks for `"stream": true`) a
 * short SSE stream ending in usage and `[DONE]`. Every answer is precomputed so that the upstream costs as
 * little as possible and the same for every target; the full fake (lib/testing) validates and records,
 * which would make the upstream, not the gateway, the thing measured.
 */
import http from 'node:http';
import { reportReady } from './common.js';

const CHUNKS = Number(process.env.BENCH_STREAM_CHUNKS ?? 20);
const created = Math.floor(Date.now() / 1000);

const completion = Buffer.from(
  JSON.stringify({
    id: 'chatcmpl-bench',
    object: 'chat.completion',
    created,
    model: 'gpt-4o-mini-2024-07-18',
    choices: [
      {
        index: 0,
        message: {
          role: 'assistant',
          content:
            'A lighthouse keeper keeps the lamp burning through a night-long storm. At dawn a rescued crew rows ashore to thank him.',
          refusal: null,
        },
        logprobs: null,
        finish_reason: 'stop',
      },
    ],
    usage: { prompt_tokens: 28, completion_tokens: 26, total_tokens: 54 },
    system_fingerprint: 'fp_bench',
  }),
);

function chunk(delta: Record<string, unknown>, finish: string | null, usage?: unknown): string {
  const body = {
    id: 'chatcmpl-bench',
    object: 'chat.completion.chunk',
    created,
    model: 'gpt-4o-mini-2024-07-18',
    choices: usage ? [] : [{ index: 0, delta, logprobs: null, finish_reason: finish }],
    ...(usage ? { usage } : {}),
  };
  return `data: ${JSON.stringify(body)}\n\n`;
}

/** Each element is written separately, as a provider flushes tokens one event at a time. */
const streamEvents: Buffer[] = [
  chunk({ role: 'assistant', content: '' }, null),
  ...Array.from({ length: CHUNKS }, (_, i) => chunk({ content: `word${i} ` }, null)),
  chunk({}, 'stop'),
  chunk({}, null, { prompt_tokens: 28, completion_tokens: CHUNKS, total_tokens: 28 + CHUNKS }),
  'data: [DONE]\n\n',
].map((s) => Buffer.from(s));

const server = http.createServer((req, res) => {
  const parts: Buffer[] = [];
  req.on('data', (b: Buffer) => parts.push(b));
  req.on('end', () => {
    // A substring test instead of JSON.parse: the upstream should cost nothing measurable.
    const stream = Buffer.concat(parts).includes('"stream":true');
    if (!stream) {
      res.writeHead(200, { 'content-type': 'application/json', 'content-length': completion.length });
      res.end(completion);
      return;
    }
    res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-cache' });
    for (const ev of streamEvents) res.write(ev);
    res.end();
  });
});
server.keepAliveTimeout = 60_000;
server.listen(0, '127.0.0.1', () => {
  reportReady((server.address() as { port: number }).port, () => new Promise((r) => server.close(() => r())));
});
