/**
 * The cache's pieces on their own: the memory store's byte budget, eviction order, clock and sweep, the key
 * function's canonical form (its fast path proven equal to the generic one), the stored answer's
 * serialisation, the replay's word split, and the config-built memory backend (size cap, disabled, bad
 * per-request options).
 */
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import fc from 'fast-check';
import request from 'supertest';
import { answerFromResponse, answerFromStream, serializeAnswer, splitWords } from '../lib/cache-answer.js';
import type { CacheKeyOptions } from '../lib/cache-key.js';
import { cacheKeyOf, canonicalJson, jsonString, keyInput, keyInputJsonFast } from '../lib/cache-key.js';
import type { Stage } from '../lib/stage.js';
import { MemoryCacheStore } from '../lib/stores/memory-cache-store.js';
import { validateChatRequest } from '../lib/validations.js';
import type { ChatRequest, ChatResponse, HashStrategy } from '../types/index.js';
import { burst, cacheSuite, user } from './helpers/cache.js';
import { parseSse } from './helpers/setup.js';

describe('response cache: memory backend from config', () => {
  const suite = cacheSuite();
  const build = suite.build;

  it('enforces max_cache_size_mb by evicting the oldest entries', async () => {
    // About 1 KB: room for a few answers of ~300 bytes each.
    const { app: a } = build({ cache: { backend: 'memory', max_cache_size_mb: 0.001 } });
    const ask = (i: number) => ({ model: 'gpt-4o-mini', messages: user(`prompt number ${i}`) });
    for (let i = 0; i < 6; i++)
      await request(a).post('/ai/chat').send(ask(i)).expect('X-Gateway-Cache', 'MISS');
    await request(a).post('/ai/chat').send(ask(5)).expect('X-Gateway-Cache', 'HIT');
    await request(a).post('/ai/chat').send(ask(0)).expect('X-Gateway-Cache', 'MISS');
    assert.equal(suite.fake.requests.length, 7);
  });

  // The built-in memory store is read and written without promises and keeps each entry parsed: the same
  // guarantees as any other store, checked on it.
  it('identical requests in flight make one upstream call, the others waiting for it', async () => {
    const { app: a } = build({ cache: { backend: 'memory' } });
    suite.fake.fault({ delayMs: 150, times: 1 });
    const answers = await burst(a, 10, 'burst');
    assert.equal(suite.fake.requests.length, 1);
    assert.ok(answers.every((r) => r.body.content === 'echo: burst'));
    assert.deepEqual(answers.map((r) => r.cache).sort(), [...Array(9).fill('HIT'), 'MISS']);
  });

  it('serves each hit its own copy: a hook editing one in place changes nothing for the next', async () => {
    const seen: unknown[] = [];
    const editInPlace: Stage = {
      name: 'edit-in-place',
      run(ctx) {
        ctx.responseHooks.push((c) => {
          if (!c.response) return;
          seen.push({ content: c.response.content, usage: { ...c.response.usage } });
          c.response.content = 'edited';
          c.response.usage.total_tokens = -1;
        });
      },
    };
    const { app: a } = build({ cache: { backend: 'memory' }, pipeline: [editInPlace, 'cache', 'route'] });
    const body = { model: 'gpt-4o-mini', messages: user('in place') };
    await request(a).post('/ai/chat').send(body).expect('X-Gateway-Cache', 'MISS');
    await request(a).post('/ai/chat').send(body).expect('X-Gateway-Cache', 'HIT');
    await request(a).post('/ai/chat').send(body).expect('X-Gateway-Cache', 'HIT');
    assert.equal(seen.length, 3);
    assert.deepEqual(seen[1], seen[0]);
    assert.deepEqual(seen[2], seen[0]);
  });

  it('replays a stored stream as often as asked, and serves the same entry as JSON', async () => {
    const { app: a } = build({ cache: { backend: 'memory' } });
    const body = { model: 'gpt-4o-mini', messages: user('stream me a few words') };
    const text = (sse: string) =>
      parseSse(sse)
        .filter((e) => e.event === 'message')
        .map((e) => e.data.delta)
        .join('');
    const live = await request(a).post('/ai/chat/stream').send(body).expect('X-Gateway-Cache', 'MISS');
    for (let i = 0; i < 2; i++) {
      const replay = await request(a).post('/ai/chat/stream').send(body).expect('X-Gateway-Cache', 'HIT');
      assert.equal(text(replay.text), text(live.text));
      assert.equal(parseSse(replay.text).at(-1)!.data.cached, true);
    }
    const json = await request(a).post('/ai/chat').send(body).expect('X-Gateway-Cache', 'HIT');
    assert.equal(json.body.content, text(live.text));
    assert.equal(suite.fake.requests.length, 1);
  });

  it('backend disabled: no cache header, every request goes upstream', async () => {
    const { app: a } = build({ cacheBackend: 'disabled' });
    const body = { model: 'gpt-4o-mini', messages: user('no cache') };
    const r1 = await request(a).post('/ai/chat').send(body).expect(200);
    const r2 = await request(a).post('/ai/chat').send(body).expect(200);
    assert.equal(r1.headers['x-gateway-cache'], undefined);
    assert.equal(r2.body.cached, false);
    assert.equal(suite.fake.requests.length, 2);
  });

  it('rejects a bad cache.ttl naming the field', async () => {
    const { app: a } = build();
    for (const ttl of [0, -1, 'soon']) {
      const r = await request(a)
        .post('/ai/chat')
        .send({ model: 'gpt-4o-mini', messages: user('x'), cache: { ttl } })
        .expect(400);
      assert.equal(r.body.error.param, 'cache.ttl');
    }
    assert.equal(suite.fake.requests.length, 0);
  });
});

describe('MemoryCacheStore', () => {
  let t = 1_000_000;
  const now = () => t;

  it('evicts the oldest entries to stay within maxBytes, counting key and value bytes', async () => {
    const store = new MemoryCacheStore({ maxBytes: 30, now });
    await store.set('a', 'x'.repeat(9), 0); // 10 bytes
    await store.set('b', 'x'.repeat(9), 0);
    await store.set('c', 'x'.repeat(9), 0);
    assert.equal(store.bytes, 30);
    await store.set('d', 'é'.repeat(4), 0); // 1 + 8 bytes: UTF-8, not string length
    assert.equal(await store.get('a'), undefined, 'the oldest went first');
    assert.equal(await store.get('b'), 'x'.repeat(9));
    assert.equal(store.bytes, 29);
    // Rewriting a key makes it the newest and replaces its size.
    await store.set('b', 'y', 0);
    await store.set('e', 'x'.repeat(19), 0);
    assert.deepEqual([await store.get('c'), await store.get('d')], [undefined, undefined]);
    assert.equal(await store.get('b'), 'y');
    assert.equal(store.bytes, 2 + 20);
    await store.close();
  });

  it('refuses an entry larger than the whole budget instead of emptying the store for it', async () => {
    const store = new MemoryCacheStore({ maxBytes: 20, now });
    await store.set('keep', 'v', 0);
    await store.set('huge', 'x'.repeat(50), 0);
    assert.equal(await store.get('huge'), undefined);
    assert.equal(await store.get('keep'), 'v');
    await store.close();
  });

  it('expires by its clock, frees the bytes, and shrinks when the budget is lowered', async () => {
    const store = new MemoryCacheStore({ now });
    await store.set('k', 'value', 10);
    await store.set('forever', 'value', 0);
    t += 9_999;
    assert.equal(await store.get('k'), 'value');
    t += 1;
    assert.equal(await store.get('k'), undefined);
    assert.equal(store.entries, 1);
    assert.equal(store.bytes, 'forever'.length + 5);
    store.setMaxBytes(5);
    assert.equal(store.entries, 0);
    await store.set('z', 'z', 0);
    await store.clear();
    assert.equal(store.bytes, 0);
    await store.close();
  });

  it('validates its options with a message saying what to pass', () => {
    assert.throws(() => new MemoryCacheStore({ maxBytes: 0 }), /maxBytes must be a positive number/);
    assert.throws(() => new MemoryCacheStore({ now: 5 as never }), /now must be a function/);
  });

  it('evicts oldest first through any mix of writes, rewrites, deletes, clears and budget changes', async () => {
    type Op =
      | { op: 'set'; key: string; value: string }
      | { op: 'delete'; key: string }
      | { op: 'clear' }
      | { op: 'budget'; bytes: number };
    const key = fc.constantFrom('a', 'b', 'c', 'd', 'e', 'f', 'g', 'h');
    const op: fc.Arbitrary<Op> = fc.oneof(
      {
        weight: 8,
        arbitrary: fc.record({ op: fc.constant('set' as const), key, value: fc.string({ maxLength: 30 }) }),
      },
      { weight: 2, arbitrary: fc.record({ op: fc.constant('delete' as const), key }) },
      { weight: 1, arbitrary: fc.constant({ op: 'clear' as const }) },
      {
        weight: 1,
        arbitrary: fc.record({ op: fc.constant('budget' as const), bytes: fc.integer({ min: 5, max: 120 }) }),
      },
    );
    await fc.assert(
      fc.asyncProperty(
        fc.integer({ min: 5, max: 120 }),
        fc.array(op, { maxLength: 200 }),
        async (budget, ops) => {
          const store = new MemoryCacheStore({ maxBytes: budget });
          // The model: entries oldest first.
          let model: { key: string; value: string; bytes: number }[] = [];
          let limit = budget;
          const total = () => model.reduce((n, e) => n + e.bytes, 0);
          const shrinkTo = (room: number) => {
            while (model.length && total() + room > limit) model.shift();
          };
          try {
            for (const o of ops) {
              if (o.op === 'set') {
                await store.set(o.key, o.value, 0);
                model = model.filter((e) => e.key !== o.key);
                const bytes = Buffer.byteLength(o.key) + Buffer.byteLength(o.value);
                if (bytes <= limit) {
                  shrinkTo(bytes);
                  model.push({ key: o.key, value: o.value, bytes });
                }
              } else if (o.op === 'delete') {
                await store.delete(o.key);
                model = model.filter((e) => e.key !== o.key);
              } else if (o.op === 'clear') {
                await store.clear();
                model = [];
              } else {
                store.setMaxBytes(o.bytes);
                limit = o.bytes;
                shrinkTo(0);
              }
              assert.equal(store.bytes, total());
              assert.equal(store.entries, model.length);
              for (const e of model) assert.equal(await store.get(e.key), e.value);
            }
          } finally {
            await store.close();
          }
        },
      ),
      { numRuns: 300 },
    );
  });

  it('parses a stored value on its first read only, and again once it is rewritten', async () => {
    const store = new MemoryCacheStore({ now });
    const parsed: string[] = [];
    const parse = (text: string) => {
      parsed.push(text);
      return { text };
    };
    await store.set('k', 'one', 0);
    const first = store.getParsedNow('k', parse);
    assert.deepEqual(first, { text: 'one' });
    assert.equal(store.getParsedNow('k', parse), first, 'the same result, not a new parse');
    assert.equal(store.getParsedNow('missing', parse), undefined);
    await store.set('k', 'two', 0);
    assert.deepEqual(store.getParsedNow('k', parse), { text: 'two' });
    // Another parser never sees what the first one made.
    assert.equal(
      store.getParsedNow('k', (text) => text.length),
      3,
    );
    assert.deepEqual(parsed, ['one', 'two']);
    await store.close();
  });

  it("sweeps expired entries out without waiting for a read (node-cache's sweep, on the real clock)", async () => {
    const store = new MemoryCacheStore({ checkPeriodSeconds: 0.01 });
    try {
      await store.set('short', 'value', 0.05);
      await store.set('forever', 'value', 0);
      assert.equal(store.entries, 2);
      await new Promise((r) => setTimeout(r, 150));
      assert.equal(store.entries, 1);
      assert.equal(store.bytes, 'forever'.length + 5);
    } finally {
      await store.close();
    }
  });
});

describe('cache keys', () => {
  const req = (extra: Partial<ChatRequest> = {}): ChatRequest => ({
    model: 'gpt-4o-mini',
    messages: [{ role: 'user', content: 'hi' }],
    ...extra,
  });
  const full = { hashStrategy: 'full_request' as const, scope: 'global' as const };

  it('is versioned SHA-256 over a canonical JSON that ignores key order', () => {
    const key = cacheKeyOf(req({ temperature: 0, max_tokens: 5 }), full);
    assert.match(key, /^v1:[0-9a-f]{64}$/);
    const reordered = {
      max_tokens: 5,
      temperature: 0,
      messages: [{ content: 'hi', role: 'user' }],
      model: 'gpt-4o-mini',
    };
    assert.equal(cacheKeyOf(reordered as ChatRequest, full), key);
    assert.equal(canonicalJson({ b: [1, { d: 1, c: undefined }], a: null }), '{"a":null,"b":[1,{"d":1}]}');
  });

  it('full_request keeps unknown fields and tools but drops user, metadata and cache options', () => {
    const base = cacheKeyOf(req(), full);
    assert.equal(cacheKeyOf(req({ user: 'u', metadata: { x: 1 }, cache: { ttl: 5 } }), full), base);
    assert.notEqual(cacheKeyOf({ ...req(), seed: 1 } as ChatRequest, full), base);
    const tools = [{ type: 'function' as const, function: { name: 'f' } }];
    assert.notEqual(cacheKeyOf(req({ tools }), full), base);
    assert.notEqual(cacheKeyOf(req({ tool_choice: 'none' }), full), base);
  });

  it('hashes the user only in the per_user scope, and the strategy always', () => {
    const perUser = { hashStrategy: 'content' as const, scope: 'per_user' as const };
    assert.notEqual(cacheKeyOf(req(), perUser, 'a'), cacheKeyOf(req(), perUser, 'b'));
    const global = { hashStrategy: 'content' as const, scope: 'global' as const };
    assert.equal(cacheKeyOf(req(), global, 'a'), cacheKeyOf(req(), global, 'b'));
    assert.notEqual(
      cacheKeyOf(req(), global),
      cacheKeyOf(req(), { ...global, hashStrategy: 'content+model' }),
    );
  });

  it('keeps the keys already stored: digests pinned from the generic implementation', () => {
    const pinned = {
      model: 'gpt-4o-mini',
      messages: [
        { role: 'system', content: 'Answer in "French".\n' },
        { role: 'user', content: 'Où est la bibliothèque? 😀' },
      ],
      max_tokens: 64,
      temperature: 0,
      stop: ['\n\n'],
      user: 'alice',
      metadata: { trace: 'x' },
      seed: 7,
    } as ChatRequest;
    const key = (hashStrategy: HashStrategy, scope: 'global' | 'per_user', who?: string) =>
      cacheKeyOf(pinned, { hashStrategy, scope }, who).slice(3);
    assert.equal(
      key('full_request', 'global'),
      '8366dda5288b717debab9d102c0a5fbd760603e3a1a899ee41f47b7ff98c3d25',
    );
    assert.equal(
      key('content', 'global'),
      '10463be9a489c929e151ea568e0a38502011b5baa36534d0236b2deacfae87d9',
    );
    assert.equal(
      key('content+model', 'per_user', 'alice'),
      '09fbd9f3f61940180439952dca1bebf4042b8b41b791f8539168d450a31aea65',
    );
    assert.equal(
      key('full_request', 'per_user'),
      '0da64ba4ffd2bd7ada1ed8894b390fd37f21d1bb369adfe1856dbc45aa112aef',
    );
  });

  // Text with everything JSON must escape: quotes, backslashes, control characters, lone surrogates.
  const tricky = fc.string({
    unit: fc.oneof(
      fc.constantFrom(
        '"',
        '\\',
        '\n',
        '\u0000',
        '\u001f',
        '\u007f',
        '\u2028',
        '\ud800',
        '\udfff',
        'é',
        '😀',
        ' ',
      ),
      fc.string({ unit: 'binary', minLength: 1, maxLength: 1 }),
      fc.string({ unit: 'grapheme-ascii', minLength: 1, maxLength: 1 }),
    ),
    maxLength: 40,
  });
  const options: fc.Arbitrary<CacheKeyOptions> = fc.record({
    hashStrategy: fc.constantFrom<HashStrategy>('full_request', 'content', 'content+model'),
    scope: fc.constantFrom('global' as const, 'per_user' as const),
  });
  /** The key as the generic canonical walk and a Hash object compute it: what every stored key was made with. */
  const referenceKey = (r: ChatRequest, o: CacheKeyOptions, who?: string) =>
    `v1:${createHash('sha256')
      .update(canonicalJson(keyInput(r, o, who)))
      .digest('hex')}`;

  it('writes strings exactly as JSON.stringify does', () => {
    fc.assert(
      fc.property(tricky, (text) => assert.equal(jsonString(text), JSON.stringify(text))),
      { numRuns: 2000 },
    );
  });

  it('the fast path writes exactly the generic canonical JSON for every request validation accepts', () => {
    const message = fc.oneof(
      fc.record({ role: fc.constantFrom('system', 'user', 'assistant'), content: tricky }),
      fc.record({
        role: fc.constant('user'),
        content: fc.array(fc.record({ type: fc.constant('text'), text: tricky }), { maxLength: 2 }),
      }),
      fc.record({ role: fc.constant('user'), content: tricky, name: tricky }),
      fc.record({ role: fc.constant('tool'), content: tricky, tool_call_id: fc.string({ minLength: 1 }) }),
      fc.record({
        role: fc.constant('assistant'),
        content: fc.constant(null),
        tool_calls: fc.array(
          fc.record({
            id: fc.string(),
            type: fc.constant('function'),
            function: fc.record({ name: fc.string({ minLength: 1 }), arguments: tricky }),
          }),
          { minLength: 1, maxLength: 2 },
        ),
      }),
    );
    // Validation refuses these keys anywhere in a body.
    const json = fc
      .jsonValue()
      .filter((v) => !/"(__proto__|constructor|prototype)":/.test(JSON.stringify(v)));
    const field = fc.string().filter((k) => !['__proto__', 'constructor', 'prototype'].includes(k));
    const body = fc.record(
      {
        model: fc.constantFrom('gpt-4o-mini', 'openai/gpt-4o', 'm"x'),
        messages: fc.array(message, { minLength: 1, maxLength: 4 }),
        max_tokens: fc.integer({ min: 1, max: 4096 }),
        temperature: fc.double({ min: 0, max: 2, noNaN: true }),
        top_p: fc.double({ min: 0, max: 1, noNaN: true }),
        stop: fc.oneof(tricky, fc.array(fc.string({ minLength: 1 }), { maxLength: 3 })),
        tools: fc.array(
          fc.record({
            type: fc.constant('function'),
            function: fc.record({ name: fc.string(), parameters: json }),
          }),
          { maxLength: 2 },
        ),
        tool_choice: fc.constantFrom('auto', 'none', 'required'),
        user: fc.string({ maxLength: 10 }),
        metadata: fc.dictionary(field, json, { maxKeys: 2 }),
        cache: fc.record({ ttl: fc.integer({ min: 1, max: 100 }) }),
        stream: fc.boolean(),
        seed: json,
        response_format: json,
      },
      { requiredKeys: ['model', 'messages'] },
    );
    fc.assert(
      fc.property(body, options, fc.option(tricky, { nil: undefined }), (raw, o, who) => {
        const r = validateChatRequest(JSON.parse(JSON.stringify(raw)));
        const fast = keyInputJsonFast(r, o, who);
        assert.notEqual(fast, undefined, 'a validated request takes the fast path');
        assert.equal(fast, canonicalJson(keyInput(r, o, who)));
        assert.equal(cacheKeyOf(r, o, who), referenceKey(r, o, who));
      }),
      { numRuns: 1500 },
    );
  });

  it('any other request shape still gets the key the generic walk gives it', () => {
    const value = fc.anything({
      maxDepth: 2,
      withSparseArray: true,
      withNullPrototype: true,
      withBoxedValues: true,
      withObjectString: true,
      withDate: true,
      withMap: true,
      key: fc.oneof(fc.string({ maxLength: 6 }), fc.constantFrom('__proto__', 'role', 'content', 'messages')),
    });
    const message = fc.oneof(
      fc.record({ role: fc.oneof(tricky, value), content: fc.oneof(tricky, value) }, { requiredKeys: [] }),
      fc.record({ content: tricky, role: tricky }),
      value,
    );
    const messages = fc.oneof(fc.array(message, { maxLength: 3 }), fc.sparseArray(message, { maxLength: 3 }));
    const requestShape = fc.dictionary(
      fc.oneof(
        fc.constantFrom('model', 'messages', 'max_tokens', 'stop', 'user', 'cache', '__proto__'),
        fc.string({ maxLength: 6 }),
      ),
      value,
      { maxKeys: 4 },
    );
    const outcome = (f: () => string) => {
      try {
        return f();
      } catch (err) {
        return `threw ${(err as Error).constructor.name}`;
      }
    };
    fc.assert(
      fc.property(
        requestShape,
        messages,
        fc.option(value, { nil: undefined }),
        options,
        fc.option(fc.oneof(tricky, value), { nil: undefined }),
        (extra, msgs, model, o, who) => {
          const r = Object.assign(Object.create(null), extra, { messages: msgs, model }) as ChatRequest;
          const w = who as string | undefined;
          assert.equal(
            outcome(() => cacheKeyOf(r, o, w)),
            outcome(() => referenceKey(r, o, w)),
          );
        },
      ),
      { numRuns: 1500 },
    );
  });
});

describe('stored answers', () => {
  const usage = fc.record(
    {
      prompt_tokens: fc.integer({ min: 0 }),
      completion_tokens: fc.integer({ min: 0 }),
      total_tokens: fc.integer({ min: 0 }),
      cached_prompt_tokens: fc.integer({ min: 0 }),
    },
    { requiredKeys: ['prompt_tokens', 'completion_tokens', 'total_tokens'] },
  );
  const toolCalls = fc.option(
    fc.array(
      fc.record({
        id: fc.string(),
        type: fc.constant('function' as const),
        function: fc.record({ name: fc.string(), arguments: fc.string() }),
      }),
      { maxLength: 2 },
    ),
    { nil: undefined },
  );
  const text = fc.oneof(
    fc.string(),
    fc.string({ unit: 'binary' }),
    fc.constantFrom('a "quoted"\n\\ line\u0001', 'lone \ud800'),
  );

  it('serialises an answer exactly as JSON.stringify would', () => {
    fc.assert(
      fc.property(
        text,
        fc.constantFrom('stop', 'length', 'tool_calls'),
        usage,
        fc.oneof(fc.double(), fc.constant(Number.NaN)),
        toolCalls,
        fc.boolean(),
        (content, finish_reason, u, cost, tool_calls, fromStream) => {
          const answer = fromStream
            ? answerFromStream(
                { finish_reason, usage: u, cost, provider: 'openai', model: 'm', latency_ms: 1, tool_calls },
                content,
              )
            : answerFromResponse({
                id: 'r',
                provider: 'openai',
                model: 'gpt-4o-mini',
                content,
                finish_reason,
                usage: u,
                cost,
                latency_ms: 1,
                cached: false,
                tool_calls,
              } as ChatResponse);
          assert.equal(serializeAnswer(answer), JSON.stringify(answer));
        },
      ),
      { numRuns: 1000 },
    );
  });
});

describe('replay split', () => {
  it('cuts text into word pieces whose concatenation is the text, whitespace included', () => {
    for (const text of ['echo: one two', '  lead and trail  ', 'line\nbreak\ttab', '', 'single']) {
      assert.equal(splitWords(text).join(''), text);
    }
    assert.deepEqual(splitWords('a bc  d'), ['a', ' bc', '  d']);
  });
});
