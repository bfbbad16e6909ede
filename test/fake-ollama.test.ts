import assert from 'node:assert/strict';
import { Ollama, type ChatResponse } from 'ollama';
import { startFakeOllama } from '../lib/testing/fake-ollama.js';
import type { FakeProvider } from '../lib/testing/fake-server.js';

const MODEL = 'llama3.2';
const hi = [{ role: 'user', content: 'hello there' }];

async function postChat(fake: FakeProvider, body: string, headers: Record<string, string> = {}) {
  return fetch(`${fake.origin}/api/chat`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', ...headers },
    body,
  });
}

/** Error thrown by `fn`, so tests can look at the SDK's error fields. */
async function errorOf(fn: () => Promise<unknown>): Promise<any> {
  try {
    await fn();
  } catch (err) {
    return err;
  }
  assert.fail('expected an error');
}

describe('fake Ollama: chat with the official SDK', () => {
  let fake: FakeProvider;
  let ollama: Ollama;
  before(async () => {
    fake = await startFakeOllama();
    ollama = new Ollama({ host: fake.baseUrl });
  });
  after(() => fake.close());
  afterEach(() => fake.clearFaults());

  it('answers a non-streaming chat with text, done_reason and counts', async () => {
    const res = await ollama.chat({
      model: MODEL,
      messages: [{ role: 'system', content: 'be brief' }, ...hi],
    });
    assert.equal(res.model, MODEL);
    assert.deepEqual(res.message, { role: 'assistant', content: 'echo: hello there' });
    assert.equal(res.done, true);
    assert.equal(res.done_reason, 'stop');
    assert.equal(res.prompt_eval_count, 4);
    assert.equal(res.eval_count, 3);
    for (const d of [res.total_duration, res.load_duration, res.prompt_eval_duration, res.eval_duration]) {
      assert.ok(Number.isInteger(d) && d > 0);
    }
    assert.match(String(res.created_at), /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{1,9})?Z$/);
    const recorded = fake.requests.at(-1)!;
    assert.equal(recorded.body.stream, false);
    assert.match(String(recorded.headers['user-agent']), /^ollama-js\//);
  });

  it('streams NDJSON that reassembles to the same text, with the counts on the final line', async () => {
    const parts: ChatResponse[] = [];
    for await (const part of await ollama.chat({ model: MODEL, messages: hi, stream: true }))
      parts.push(part);
    assert.equal(parts.map((p) => p.message.content).join(''), 'echo: hello there');
    assert.equal(parts.length, 4);
    assert.ok(parts.slice(0, -1).every((p) => p.done === false && p.message.role === 'assistant'));
    const last = parts.at(-1)!;
    assert.equal(last.done, true);
    assert.equal(last.done_reason, 'stop');
    assert.equal(last.message.content, '');
    assert.equal(last.prompt_eval_count, 2);
    assert.equal(last.eval_count, 3);
  });

  it('honours num_predict (done_reason length) and stop, and records the options', async () => {
    const options = { num_predict: 2, temperature: 0.2, top_p: 0.9, top_k: 40, seed: 7, num_ctx: 4096 };
    const short = await ollama.chat({ model: MODEL, messages: hi, options });
    assert.equal(short.message.content, 'echo: hello');
    assert.equal(short.done_reason, 'length');
    assert.equal(short.eval_count, 2);
    assert.deepEqual(fake.requests.at(-1)!.body.options, options);
    const stopped = await ollama.chat({ model: MODEL, messages: hi, options: { stop: [' there'] } });
    assert.equal(stopped.message.content, 'echo: hello');
    assert.equal(stopped.done_reason, 'stop');
  });

  it('answers an empty message list with done_reason load', async () => {
    const res = await ollama.chat({ model: MODEL, messages: [] });
    assert.equal(res.done_reason, 'load');
    assert.equal(res.message.content, '');
  });

  it('streams NDJSON when the request has no stream field (Ollama defaults it to true)', async () => {
    const res = await postChat(fake, JSON.stringify({ model: MODEL, messages: hi, keep_alive: '5m', x: 1 }));
    assert.equal(res.status, 200);
    assert.equal(res.headers.get('content-type'), 'application/x-ndjson');
    const lines = (await res.text())
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l));
    assert.equal(lines.length, 4);
    assert.equal(lines.at(-1).done, true);
  });

  it('serves /, /api/version, /api/tags and 404s unknown routes as text', async () => {
    assert.equal(await (await fetch(`${fake.origin}/`)).text(), 'Ollama is running');
    assert.ok((await ollama.version()).version);
    const { models } = await ollama.list();
    assert.ok(models.some((m) => m.name === `${MODEL}:latest`));
    const missing = await fetch(`${fake.origin}/api/nope`);
    assert.equal(missing.status, 404);
    assert.match(String(missing.headers.get('content-type')), /^text\/plain/);
    assert.equal(await missing.text(), '404 page not found');
  });
});

describe('fake Ollama: errors as the SDK sees them', () => {
  let fake: FakeProvider;
  let ollama: Ollama;
  before(async () => {
    fake = await startFakeOllama();
    ollama = new Ollama({ host: fake.baseUrl });
  });
  after(() => fake.close());
  afterEach(() => fake.clearFaults());

  it('turns a 429 fault into the SDK ResponseError with retry-after', async () => {
    fake.fault({ status: 429, retryAfter: 2, times: 1 });
    const err = await errorOf(() => ollama.chat({ model: MODEL, messages: hi }));
    assert.equal(err.name, 'ResponseError');
    assert.equal(err.status_code, 429);
    assert.equal(err.error, 'rate limit exceeded');
    fake.fault({ status: 429, retryAfter: 2, times: 1 });
    const raw = await postChat(fake, JSON.stringify({ model: MODEL, messages: hi }));
    assert.equal(raw.headers.get('retry-after'), '2');
    assert.deepEqual(await raw.json(), { error: 'rate limit exceeded' });
  });

  it('uses the reference texts for 503 and 500 faults', async () => {
    fake.fault({ status: 503, times: 1 });
    const busy = await errorOf(() => ollama.chat({ model: MODEL, messages: hi }));
    assert.equal(busy.error, 'server busy, please try again.  maximum pending requests exceeded');
    fake.fault({ status: 500, times: 1 });
    const broken = await errorOf(() => ollama.chat({ model: MODEL, messages: hi, stream: true }));
    assert.equal(broken.status_code, 500);
    assert.equal(broken.error, 'an error was encountered while running the model');
  });

  it('rejects a missing model and badly typed messages with 400', async () => {
    const raw = await postChat(fake, JSON.stringify({ messages: hi, stream: false }));
    assert.equal(raw.status, 400);
    assert.equal(raw.headers.get('content-type'), 'application/json; charset=utf-8');
    assert.deepEqual(await raw.json(), { error: 'model is required' });
    const err = await errorOf(() => ollama.chat({ model: MODEL, messages: 'hi' as any }));
    assert.equal(err.name, 'ResponseError');
    assert.equal(err.status_code, 400);
    assert.equal(
      err.error,
      'json: cannot unmarshal string into Go struct field ChatRequest.messages of type []api.Message',
    );
  });

  it('answers body and JSON syntax errors with Go messages', async () => {
    const cases: [string, string][] = [
      ['', 'missing request body'],
      ['x', "invalid character 'x' looking for beginning of value"],
      ['{"model":"m",}', "invalid character '}' looking for beginning of object key string"],
      ['{"model":', 'unexpected EOF'],
      ['[]', 'json: cannot unmarshal array into Go value of type api.ChatRequest'],
    ];
    for (const [body, error] of cases) {
      const res = await postChat(fake, body);
      assert.equal(res.status, 400, body);
      assert.deepEqual(await res.json(), { error }, body);
    }
  });

  it('answers an unknown model with 404', async () => {
    const err = await errorOf(() => ollama.chat({ model: 'does-not-exist', messages: hi }));
    assert.equal(err.name, 'ResponseError');
    assert.equal(err.status_code, 404);
    assert.equal(err.error, "model 'does-not-exist' not found");
  });

  it('makes the SDK stream iterator throw on a mid-stream error line', async () => {
    fake.fault({ errorStreamAfter: 2, message: 'model runner crashed', times: 1 });
    const seen: string[] = [];
    const stream = await ollama.chat({ model: MODEL, messages: hi, stream: true });
    const err = await errorOf(async () => {
      for await (const part of stream) seen.push(part.message.content);
    });
    assert.equal(err.message, 'model runner crashed');
    assert.deepEqual(seen, ['echo:', ' hello']);
  });

  it('answers an error before the first stream line as a JSON 500, as Ollama does', async () => {
    fake.fault({ errorStreamAfter: 0, times: 1 });
    const err = await errorOf(() => ollama.chat({ model: MODEL, messages: hi, stream: true }));
    assert.equal(err.name, 'ResponseError');
    assert.equal(err.status_code, 500);
  });

  it('cuts a stream so the SDK iterator fails without a done line', async () => {
    fake.fault({ cutStreamAfter: 1, times: 1 });
    const seen: string[] = [];
    const stream = await ollama.chat({ model: MODEL, messages: hi, stream: true });
    await errorOf(async () => {
      for await (const part of stream) seen.push(part.message.content);
    });
    assert.deepEqual(seen, ['echo:']);
    assert.equal(fake.requests.at(-1)!.faulted, true);
  });
});

describe('fake Ollama: tool calls', () => {
  let fake: FakeProvider;
  let ollama: Ollama;
  const toolCall = { name: 'get_weather', arguments: { city: 'Paris', days: 2 } };
  const tools = [
    {
      type: 'function',
      function: {
        name: 'get_weather',
        parameters: { type: 'object', properties: { city: { type: 'string' } }, required: ['city'] },
      },
    },
  ];
  before(async () => {
    fake = await startFakeOllama({ toolCall });
    ollama = new Ollama({ host: fake.baseUrl });
  });
  after(() => fake.close());

  it('answers with tool_calls whose arguments are an object', async () => {
    const res = await ollama.chat({ model: MODEL, messages: hi, tools });
    assert.equal(res.done_reason, 'stop');
    assert.equal(res.message.content, '');
    assert.equal(res.message.tool_calls?.length, 1);
    assert.deepEqual(res.message.tool_calls![0].function.name, 'get_weather');
    assert.deepEqual(res.message.tool_calls![0].function.arguments, toolCall.arguments);
  });

  it('streams the tool call in a line before the done line', async () => {
    const parts: ChatResponse[] = [];
    for await (const p of await ollama.chat({ model: MODEL, messages: hi, tools, stream: true }))
      parts.push(p);
    assert.equal(parts.length, 2);
    assert.deepEqual(parts[0].message.tool_calls![0].function.arguments, toolCall.arguments);
    assert.equal(parts[1].done, true);
  });

  it('leaves the call as text when the request offered no tools', async () => {
    const res = await ollama.chat({ model: MODEL, messages: hi });
    assert.equal(res.message.tool_calls, undefined);
    assert.deepEqual(JSON.parse(res.message.content), toolCall);
  });
});

describe('fake Ollama: bearer auth when keys are passed', () => {
  let fake: FakeProvider;
  before(async () => {
    fake = await startFakeOllama({ apiKeys: ['test-key'] });
  });
  after(() => fake.close());

  it('answers 401 unauthorized without a key', async () => {
    const err = await errorOf(() => new Ollama({ host: fake.baseUrl }).chat({ model: MODEL, messages: hi }));
    assert.equal(err.name, 'ResponseError');
    assert.equal(err.status_code, 401);
    assert.equal(err.error, 'unauthorized');
    const wrong = new Ollama({ host: fake.baseUrl, headers: { Authorization: 'Bearer nope' } });
    assert.equal((await errorOf(() => wrong.chat({ model: MODEL, messages: hi }))).status_code, 401);
  });

  it('accepts the bearer key', async () => {
    const ollama = new Ollama({ host: fake.baseUrl, headers: { Authorization: 'Bearer test-key' } });
    const res = await ollama.chat({ model: MODEL, messages: hi });
    assert.equal(res.message.content, 'echo: hello there');
    assert.equal(fake.requests.at(-1)!.headers.authorization, 'Bearer test-key');
  });
});
