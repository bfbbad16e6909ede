/**
 * The cache's pieces on their own: the memory store's byte budget and clock, the key function's canonical
 * form, the replay's word split, and the config-built memory backend (size cap, disabled, bad per-request
 * options).
 */
import assert from 'node:assert/strict';
import request from 'supertest';
import { splitWords } from '../lib/cache-answer.js';
import { cacheKeyOf, canonicalJson } from '../lib/cache-key.js';
import { MemoryCacheStore } from '../lib/stores/memory-cache-store.js';
import type { ChatRequest } from '../types/index.js';
import { cacheSuite, user } from './helpers/cache.js';

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
});

describe('replay split', () => {
  it('cuts text into word pieces whose concatenation is the text, whitespace included', () => {
    for (const text of ['echo: one two', '  lead and trail  ', 'line\nbreak\ttab', '', 'single']) {
      assert.equal(splitWords(text).join(''), text);
    }
    assert.deepEqual(splitWords('a bc  d'), ['a', ' bc', '  d']);
  });
});
