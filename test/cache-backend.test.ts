/**
 * Which stores answer at once: the in-process memory store, whether the config built it or the host handed
 * it in, answers without a promise; any other store (a subclass, Redis, a host's own) goes through the
 * guarded path, which answers with a promise and bounds the wait.
 */
import assert from 'node:assert/strict';
import { CacheBackend } from '../lib/cache-backend.js';
import { silentLogger } from '../lib/logger.js';
import { MemoryCacheStore } from '../lib/stores/memory-cache-store.js';
import type { ResolvedConfig } from '../types/index.js';

const parse = (text: string) => JSON.parse(text) as { n: number };
const memoryConfig = { backend: 'memory', maxCacheSizeMb: 1 } as ResolvedConfig['cache'];

describe('CacheBackend: the in-process fast path', () => {
  it('a memory store the host handed in answers at once, as the one the config builds does', async () => {
    const hosts = new MemoryCacheStore({ maxBytes: 1024 * 1024 });
    const backends = [new CacheBackend(silentLogger, { store: hosts }), new CacheBackend(silentLogger)];
    for (const backend of backends) {
      const store = backend.storeFor(memoryConfig)!;
      assert.equal(backend.set(store, 'k', '{"n":1}', 60), undefined, 'written without a promise');
      const got = backend.get(store, 'k', parse);
      assert.ok(!(got instanceof Promise), 'read without a promise');
      assert.deepEqual(got, { n: 1 });
      assert.equal(backend.get(store, 'missing', parse), undefined);
      await backend.close();
    }
    assert.equal(await hosts.get('k'), '{"n":1}', "the host's store holds what was written");
    await hosts.close();
  });

  it('a subclass that overrides get and set is called through them, with a promise', async () => {
    const calls: string[] = [];
    class Counting extends MemoryCacheStore {
      override async get(key: string) {
        calls.push(`get ${key}`);
        return super.get(key);
      }
      override async set(key: string, value: string, ttlSeconds: number) {
        calls.push(`set ${key}`);
        return super.set(key, value, ttlSeconds);
      }
    }
    const store = new Counting({ maxBytes: 1024 * 1024 });
    const backend = new CacheBackend(silentLogger, { store });
    const written = backend.set(store, 'k', '{"n":2}', 60);
    assert.ok(written instanceof Promise);
    await written;
    const got = backend.get(store, 'k', parse);
    assert.ok(got instanceof Promise);
    assert.deepEqual(await got, { n: 2 });
    assert.deepEqual(calls, ['set k', 'get k']);
    await backend.close();
    await store.close();
  });
});
