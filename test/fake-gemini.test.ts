import assert from 'node:assert/strict';
import { ApiError, FinishReason, GoogleGenAI } from '@google/genai';
import { startFakeGemini } from '../lib/testing/fake-gemini.js';
import type { FakeProvider } from '../lib/testing/fake-server.js';

const MODEL = 'gemini-2.5-flash';

/** The SDK puts the API's error JSON, as text, in ApiError.message. */
function apiErrorBody(err: unknown): any {
  assert.ok(err instanceof ApiError, `expected ApiError, got ${String(err)}`);
  return JSON.parse(err.message);
}

async function rejection(p: Promise<unknown>): Promise<unknown> {
  try {
    await p;
  } catch (err) {
    return err;
  }
  assert.fail('expected the call to fail');
}

describe('fake Gemini with the official @google/genai SDK', () => {
  let fake: FakeProvider;
  let ai: GoogleGenAI;

  before(async () => {
    fake = await startFakeGemini({ cachedPromptTokens: 1 });
    ai = new GoogleGenAI({ apiKey: 'test-key', httpOptions: { baseUrl: fake.baseUrl } });
  });
  afterEach(() => fake.clearFaults());
  after(() => fake.close());

  it('answers generateContent with text, finishReason and usage', async () => {
    const res = await ai.models.generateContent({ model: MODEL, contents: 'hello there' });
    assert.equal(res.text, 'echo: hello there');
    assert.equal(res.candidates?.[0]?.finishReason, FinishReason.STOP);
    assert.equal(res.candidates?.[0]?.content?.role, 'model');
    assert.equal(res.modelVersion, MODEL);
    assert.match(res.responseId ?? '', /^[\w-]{10,}$/);
    assert.equal(res.usageMetadata?.promptTokenCount, 2);
    assert.equal(res.usageMetadata?.candidatesTokenCount, 3);
    assert.equal(res.usageMetadata?.totalTokenCount, 5);
    assert.equal(res.usageMetadata?.cachedContentTokenCount, 1);
    assert.deepEqual(res.usageMetadata?.promptTokensDetails, [{ modality: 'TEXT', tokenCount: 2 }]);
  });

  it('sends the key in the x-goog-api-key header, not in the URL', async () => {
    await ai.models.generateContent({ model: MODEL, contents: 'hi' });
    const rec = fake.requests.at(-1)!;
    assert.equal(rec.path, `/v1beta/models/${MODEL}:generateContent`);
    assert.equal(rec.headers['x-goog-api-key'], 'test-key');
    assert.equal(rec.query.has('key'), false);
  });

  it('streams the same text, with usage complete only on the last chunk', async () => {
    const stream = await ai.models.generateContentStream({ model: MODEL, contents: 'hello there' });
    const chunks = [];
    for await (const chunk of stream) chunks.push(chunk);
    assert.equal(chunks.map((c) => c.text).join(''), 'echo: hello there');
    assert.equal(chunks.length, 3);
    const last = chunks.at(-1)!;
    assert.equal(last.candidates?.[0]?.finishReason, FinishReason.STOP);
    assert.equal(last.usageMetadata?.candidatesTokenCount, 3);
    assert.equal(last.usageMetadata?.totalTokenCount, 5);
    for (const c of chunks.slice(0, -1)) {
      assert.equal(c.candidates?.[0]?.finishReason, undefined);
      assert.equal(c.usageMetadata?.candidatesTokenCount, undefined);
      assert.equal(c.usageMetadata?.totalTokenCount, 2);
    }
    assert.equal(fake.requests.at(-1)!.query.get('alt'), 'sse');
  });

  it('records systemInstruction and counts it in the prompt', async () => {
    const res = await ai.models.generateContent({
      model: MODEL,
      contents: 'hello there',
      config: { systemInstruction: 'be brief' },
    });
    assert.equal(fake.requests.at(-1)!.body.systemInstruction.parts[0].text, 'be brief');
    assert.equal(res.usageMetadata?.promptTokenCount, 4);
  });

  it('truncates at maxOutputTokens with MAX_TOKENS and cuts at a stop sequence with STOP', async () => {
    const long = await ai.models.generateContent({
      model: MODEL,
      contents: 'one two three',
      config: { maxOutputTokens: 2 },
    });
    assert.equal(long.text, 'echo: one');
    assert.equal(long.candidates?.[0]?.finishReason, FinishReason.MAX_TOKENS);
    assert.equal(long.usageMetadata?.candidatesTokenCount, 2);

    const stopped = await ai.models.generateContent({
      model: MODEL,
      contents: 'one two three',
      config: { stopSequences: [' two'] },
    });
    assert.equal(stopped.text, 'echo: one');
    assert.equal(stopped.candidates?.[0]?.finishReason, FinishReason.STOP);
  });

  it('turns a 429 fault into ApiError 429 with RetryInfo in the body', async () => {
    fake.fault({ status: 429, retryAfter: 2, times: 1 });
    const err = await rejection(ai.models.generateContent({ model: MODEL, contents: 'hi' }));
    assert.equal((err as ApiError).status, 429);
    const { error } = apiErrorBody(err);
    assert.equal(error.status, 'RESOURCE_EXHAUSTED');
    const retry = error.details.find((d: any) => d['@type'] === 'type.googleapis.com/google.rpc.RetryInfo');
    assert.equal(retry.retryDelay, '2s');
  });

  it('turns a 503 fault on a stream into ApiError 503 before any chunk', async () => {
    fake.fault({ status: 503, times: 1 });
    const err = await rejection(ai.models.generateContentStream({ model: MODEL, contents: 'hi' }));
    assert.equal((err as ApiError).status, 503);
    assert.equal(apiErrorBody(err).error.status, 'UNAVAILABLE');
  });

  it('rejects a bad role with ApiError 400', async () => {
    const err = await rejection(
      ai.models.generateContent({ model: MODEL, contents: [{ role: 'assistant', parts: [{ text: 'x' }] }] }),
    );
    assert.equal((err as ApiError).status, 400);
    const { error } = apiErrorBody(err);
    assert.equal(error.status, 'INVALID_ARGUMENT');
    assert.equal(error.message, 'Please use a valid role: user, model.');
  });

  it('rejects a wrong key with 400 API_KEY_INVALID', async () => {
    const wrong = new GoogleGenAI({ apiKey: 'nope', httpOptions: { baseUrl: fake.baseUrl } });
    const err = await rejection(wrong.models.generateContent({ model: MODEL, contents: 'hi' }));
    assert.equal((err as ApiError).status, 400);
    const { error } = apiErrorBody(err);
    assert.equal(error.message, 'API key not valid. Please pass a valid API key.');
    assert.equal(error.details[0].reason, 'API_KEY_INVALID');
  });

  it('answers an unknown model with 404 NOT_FOUND', async () => {
    const err = await rejection(ai.models.generateContent({ model: 'does-not-exist', contents: 'hi' }));
    assert.equal((err as ApiError).status, 404);
    assert.match(
      apiErrorBody(err).error.message,
      /^models\/does-not-exist is not found for API version v1beta/,
    );
  });

  it('blocks a prompt with promptFeedback and no candidates', async () => {
    const res = await ai.models.generateContent({ model: MODEL, contents: 'please BLOCKME' });
    assert.equal(res.promptFeedback?.blockReason, 'SAFETY');
    assert.equal(res.candidates, undefined);
    assert.equal(res.text, undefined);
  });

  it('stops an unsafe answer with finishReason SAFETY and no text', async () => {
    const res = await ai.models.generateContent({ model: MODEL, contents: 'say UNSAFE_ANSWER' });
    assert.equal(res.candidates?.[0]?.finishReason, FinishReason.SAFETY);
    assert.equal(res.text, undefined);
  });

  it('fails the SDK stream when the connection is cut mid-stream', async () => {
    fake.fault({ cutStreamAfter: 1, times: 1 });
    const stream = await ai.models.generateContentStream({ model: MODEL, contents: 'hello there' });
    const seen: string[] = [];
    const err = await rejection(
      (async () => {
        for await (const chunk of stream) seen.push(chunk.text ?? '');
      })(),
    );
    assert.deepEqual(seen, ['echo:']);
    assert.ok(!(err instanceof ApiError), 'a dropped connection is a transport error, not an API error');
  });

  it('fails the SDK stream with ApiError on a mid-stream error event', async () => {
    fake.fault({ errorStreamAfter: 2, times: 1 });
    const stream = await ai.models.generateContentStream({ model: MODEL, contents: 'hello there' });
    const seen: string[] = [];
    const err = await rejection(
      (async () => {
        for await (const chunk of stream) seen.push(chunk.text ?? '');
      })(),
    );
    assert.equal(seen.length, 2);
    assert.equal((err as ApiError).status, 500);
  });
});

describe('fake Gemini function calls', () => {
  let fake: FakeProvider;
  let ai: GoogleGenAI;

  before(async () => {
    fake = await startFakeGemini({ toolCall: { name: 'get_weather', arguments: { city: 'Paris' } } });
    ai = new GoogleGenAI({ apiKey: 'test-key', httpOptions: { baseUrl: fake.baseUrl } });
  });
  after(() => fake.close());

  it('answers with a functionCall part and finishReason STOP', async () => {
    const res = await ai.models.generateContent({
      model: MODEL,
      contents: 'weather in Paris?',
      config: {
        tools: [
          { functionDeclarations: [{ name: 'get_weather', parametersJsonSchema: { type: 'object' } }] },
        ],
      },
    });
    assert.deepEqual(res.functionCalls, [{ name: 'get_weather', args: { city: 'Paris' } }]);
    assert.equal(res.candidates?.[0]?.finishReason, FinishReason.STOP);
  });

  it('streams the function call as one chunk', async () => {
    const stream = await ai.models.generateContentStream({ model: MODEL, contents: 'weather?' });
    const chunks = [];
    for await (const chunk of stream) chunks.push(chunk);
    assert.equal(chunks.length, 1);
    assert.equal(chunks[0]!.functionCalls?.[0]?.name, 'get_weather');
    assert.equal(chunks[0]!.candidates?.[0]?.finishReason, FinishReason.STOP);
  });
});

describe('fake Gemini over raw HTTP', () => {
  let fake: FakeProvider;
  const url = (method = 'generateContent', version = 'v1beta') =>
    `${fake.origin}/${version}/models/${MODEL}:${method}`;
  const post = (
    target: string,
    body: unknown,
    headers: Record<string, string> = { 'x-goog-api-key': 'test-key' },
  ) =>
    fetch(target, {
      method: 'POST',
      headers: { 'content-type': 'application/json', ...headers },
      body: typeof body === 'string' ? body : JSON.stringify(body),
    });
  const hi = { contents: [{ role: 'user', parts: [{ text: 'hi' }] }] };

  async function errorOf(res: Response): Promise<any> {
    assert.equal(res.headers.get('content-type'), 'application/json; charset=UTF-8');
    return ((await res.json()) as any).error;
  }

  before(async () => {
    fake = await startFakeGemini();
  });
  afterEach(() => fake.clearFaults());
  after(() => fake.close());

  it('rejects invalid JSON', async () => {
    const res = await post(url(), '{"contents": [}');
    assert.equal(res.status, 400);
    const error = await errorOf(res);
    assert.equal(error.status, 'INVALID_ARGUMENT');
    assert.match(error.message, /^Invalid JSON payload received\. Unexpected token\./);
  });

  it('requires contents', async () => {
    const error = await errorOf(await post(url(), {}));
    assert.equal(error.code, 400);
    assert.equal(error.message, '* GenerateContentRequest.contents: contents is not specified\n');
  });

  it('rejects unknown field names, top-level and nested, with BadRequest details', async () => {
    const top = await errorOf(await post(url(), { ...hi, foo: 1 }));
    assert.equal(top.message, 'Invalid JSON payload received. Unknown name "foo": Cannot find field.');
    assert.equal(top.details[0]['@type'], 'type.googleapis.com/google.rpc.BadRequest');

    const nested = await errorOf(await post(url(), { ...hi, generationConfig: { maxTokens: 5 } }));
    assert.equal(
      nested.message,
      `Invalid JSON payload received. Unknown name "maxTokens" at 'generation_config': Cannot find field.`,
    );
    assert.equal(nested.details[0].fieldViolations[0].field, 'generation_config');

    const inPart = await errorOf(await post(url(), { contents: [{ parts: [{ text: 'x', foo: 1 }] }] }));
    assert.equal(
      inPart.message,
      `Invalid JSON payload received. Unknown name "foo" at 'contents[0].parts[0]': Cannot find field.`,
    );
  });

  it('accepts snake_case field names as proto3 JSON does', async () => {
    const res = await post(url(), {
      contents: [{ role: 'user', parts: [{ text: 'one two three' }] }],
      system_instruction: { parts: [{ text: 'be brief' }] },
      generation_config: { max_output_tokens: 2, top_k: 40 },
      safety_settings: [{ category: 'HARM_CATEGORY_HARASSMENT', threshold: 'BLOCK_NONE' }],
    });
    assert.equal(res.status, 200);
    const body = (await res.json()) as any;
    assert.equal(body.candidates[0].content.parts[0].text, 'echo: one');
    assert.equal(body.candidates[0].finishReason, 'MAX_TOKENS');
    assert.equal(body.usageMetadata.promptTokenCount, 5);
  });

  it('rejects a non-numeric maxOutputTokens and a non-number temperature', async () => {
    const tokens = await errorOf(await post(url(), { ...hi, generationConfig: { maxOutputTokens: 'ten' } }));
    assert.equal(
      tokens.message,
      `Invalid value at 'generation_config.max_output_tokens' (TYPE_INT32), "ten"`,
    );
    const temp = await errorOf(await post(url(), { ...hi, generationConfig: { temperature: 'hot' } }));
    assert.equal(temp.message, `Invalid value at 'generation_config.temperature' (TYPE_FLOAT), "hot"`);
  });

  it('rejects a bad role and empty parts', async () => {
    const role = await errorOf(await post(url(), { contents: [{ role: 'system', parts: [{ text: 'x' }] }] }));
    assert.equal(role.message, 'Please use a valid role: user, model.');
    const empty = await errorOf(await post(url(), { contents: [{ role: 'user', parts: [] }] }));
    assert.equal(
      empty.message,
      '* GenerateContentRequest.contents[0].parts: contents.parts must not be empty.\n',
    );
  });

  it('answers 403 without a key, accepts ?key= and the v1 path', async () => {
    const missing = await post(url(), hi, {});
    assert.equal(missing.status, 403);
    const error = await errorOf(missing);
    assert.equal(error.status, 'PERMISSION_DENIED');
    assert.match(error.message, /^Method doesn't allow unregistered callers/);

    const viaQuery = await post(`${url('generateContent', 'v1')}?key=test-key`, hi, {});
    assert.equal(viaQuery.status, 200);
  });

  it('answers 401 for a bearer token it does not know', async () => {
    const res = await post(url(), hi, { authorization: 'Bearer ya29.nope' });
    assert.equal(res.status, 401);
    assert.equal((await errorOf(res)).status, 'UNAUTHENTICATED');
  });

  it("answers an unknown URL with Google's HTML 404 page", async () => {
    const res = await post(`${fake.origin}/v1beta/models/${MODEL}:explode`, hi);
    assert.equal(res.status, 404);
    assert.match(res.headers.get('content-type') ?? '', /^text\/html/);
    assert.match(await res.text(), /<title>Error 404 \(Not Found\)!!1<\/title>/);
  });

  it('sets retry-after only when the fault asks for it', async () => {
    fake.fault({ status: 429, times: 1 });
    const plain = await post(url(), hi);
    assert.equal(plain.headers.get('retry-after'), null);
    const details = (await errorOf(plain)).details.map((d: any) => d['@type']);
    assert.ok(!details.includes('type.googleapis.com/google.rpc.RetryInfo'));

    fake.fault({ status: 429, retryAfter: 3, times: 1 });
    const timed = await post(url(), hi);
    assert.equal(timed.headers.get('retry-after'), '3');
  });

  it('maps fault statuses to canonical codes', async () => {
    for (const [status, canonical] of [
      [500, 'INTERNAL'],
      [504, 'DEADLINE_EXCEEDED'],
    ] as const) {
      fake.fault({ status, times: 1 });
      const error = await errorOf(await post(url(), hi));
      assert.equal(error.code, status);
      assert.equal(error.status, canonical);
    }
  });

  it('frames SSE events as "data: <json>\\r\\n\\r\\n" with no [DONE]', async () => {
    const res = await post(`${url('streamGenerateContent')}?alt=sse`, {
      contents: [{ parts: [{ text: 'hello there' }] }],
    });
    assert.equal(res.status, 200);
    assert.equal(res.headers.get('content-type'), 'text/event-stream');
    const raw = await res.text();
    assert.ok(raw.endsWith('\r\n\r\n'));
    assert.ok(!raw.includes('[DONE]'));
    const events = raw.split('\r\n\r\n').filter(Boolean);
    assert.equal(events.length, 3);
    for (const e of events) assert.match(e, /^data: \{.*\}$/);
    const parsed = events.map((e) => JSON.parse(e.slice('data: '.length)));
    assert.equal(parsed.map((p) => p.candidates[0].content.parts[0].text).join(''), 'echo: hello there');
    assert.deepEqual(Object.keys(parsed[0].usageMetadata).sort(), [
      'promptTokenCount',
      'promptTokensDetails',
      'totalTokenCount',
    ]);
    assert.equal(parsed[2].usageMetadata.candidatesTokenCount, 3);
    assert.equal(new Set(parsed.map((p) => p.responseId)).size, 1);
  });

  it('streams a JSON array without alt=sse', async () => {
    const res = await post(url('streamGenerateContent'), hi);
    const body = JSON.parse(await res.text());
    assert.ok(Array.isArray(body));
    assert.equal(body.map((p: any) => p.candidates[0].content.parts[0].text).join(''), 'echo: hi');
  });

  it('cutStreamAfter 0 drops the connection before any event', async () => {
    fake.fault({ cutStreamAfter: 0, times: 1 });
    const res = await post(`${url('streamGenerateContent')}?alt=sse`, hi);
    assert.equal(res.status, 200);
    await assert.rejects(res.text());
  });

  it('sends the in-stream error event as SSE data', async () => {
    fake.fault({ errorStreamAfter: 1, status: 503, times: 1 });
    const raw = await (await post(`${url('streamGenerateContent')}?alt=sse`, hi)).text();
    const events = raw.split('\r\n\r\n').filter(Boolean);
    assert.equal(events.length, 2);
    assert.deepEqual(JSON.parse(events[1]!.slice('data: '.length)).error.status, 'UNAVAILABLE');
  });
});
