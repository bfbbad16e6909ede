/**
 * Security, part 2: hostile input that must be a 400 (deep JSON, prototype keys, invalid UTF-8, header
 * injection, model names aimed at another host), server timeouts, and a sweep proving that no key ever
 * shows up in a response, a header, a log line, a thrown error, an analytics row or a cache entry.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import http from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { inspect } from 'node:util';
import type express from 'express';
import request from 'supertest';
import type { Gateway } from '../lib/gateway.js';
import { silentLogger } from '../lib/logger.js';
import { hardenServer } from '../lib/server-timeouts.js';
import { startFakeOpenAI } from '../lib/testing/fake-openai.js';
import type { FakeProvider } from '../lib/testing/fake-server.js';
import type { CacheStore } from '../types/index.js';
import {
  ADMIN,
  ALICE,
  authConfig,
  BOB,
  DOWN_KEY,
  hello,
  msgs,
  PROVIDER_KEY,
  rawPost,
  sha,
} from './helpers/security.js';
import { hostApp, parseSse, recordingLogger } from './helpers/setup.js';

describe('security: hostile input and secret hygiene', function () {
  this.timeout(20_000);
  let fake: FakeProvider;
  let app: express.Express;
  let gateway: Gateway;

  before(async () => {
    fake = await startFakeOpenAI();
    fake.apiKeys = [PROVIDER_KEY];
    ({ app, gateway } = hostApp({ ...authConfig(fake), logger: silentLogger }));
  });
  after(async () => {
    await gateway.close();
    await fake.close();
  });
  afterEach(() => fake.clearFaults());

  describe('hostile input', () => {
    const post = (body: unknown, path = '/ai/chat') =>
      request(app)
        .post(path)
        .set('Authorization', `Bearer ${BOB}`)
        .set('Content-Type', 'application/json')
        .send(typeof body === 'string' ? body : JSON.stringify(body));

    it('answers a 10,000-deep metadata object with 400, not a stack overflow', async () => {
      const deep = `${'{"a":'.repeat(10_000)}1${'}'.repeat(10_000)}`;
      const r = await post(
        `{"model":"gpt-4o-mini","messages":[{"role":"user","content":"x"}],"metadata":${deep}}`,
      );
      assert.equal(r.status, 400, r.text);
      assert.match(r.body.error.message, /nested deeper than 64/);
      const arrays = `{"model":"gpt-4o-mini","messages":[{"role":"user","content":"x"}],"x":${'['.repeat(10_000)}${']'.repeat(10_000)}}`;
      assert.equal((await post(arrays)).status, 400);
      assert.equal((await post(arrays, '/ai/v1/chat/completions')).status, 400);
    });

    it('refuses prototype keys anywhere in the body, naming where', async () => {
      const cases: [string, string][] = [
        [
          '{"model":"gpt-4o-mini","messages":[{"role":"user","content":"x","__proto__":{"admin":true}}]}',
          'messages[0].__proto__',
        ],
        [
          '{"model":"gpt-4o-mini","messages":[{"role":"user","content":"x"}],"metadata":{"constructor":{"prototype":{}}}}',
          'metadata.constructor',
        ],
        [
          '{"model":"gpt-4o-mini","messages":[{"role":"user","content":"x"}],"tools":[{"type":"function","function":{"name":"f","parameters":{"prototype":1}}}]}',
          'tools[0].function.parameters.prototype',
        ],
        [
          '{"model":"gpt-4o-mini","messages":[{"role":"user","content":"x"}],"__proto__":{"polluted":1}}',
          '__proto__',
        ],
      ];
      for (const [body, param] of cases) {
        const r = await post(body);
        assert.equal(r.status, 400, body);
        assert.equal(r.body.error.param, param);
      }
      assert.equal(({} as Record<string, unknown>).polluted, undefined);
      assert.equal((await post(cases[0]![0], '/ai/v1/chat/completions')).status, 400);
    });

    it('refuses invalid UTF-8, other content types and unsupported charsets with 400', async () => {
      const bytes = Buffer.concat([
        Buffer.from('{"model":"gpt-4o-mini","messages":[{"role":"user","content":"'),
        Buffer.from([0xff, 0xfe, 0xc3]),
        Buffer.from('"}]}'),
      ]);
      const before = fake.requests.length;
      for (const path of ['/ai/chat', '/ai/chat/stream', '/ai/v1/chat/completions']) {
        // Raw bytes: a client library would re-encode them.
        const r = await rawPost(app, path, bytes, { 'x-api-key': BOB });
        assert.equal(r.status, 400, `${path}: ${r.text}`);
        assert.match(r.text, /UTF-8/);
      }
      assert.equal(fake.requests.length, before);
      const valid = await rawPost(
        app,
        '/ai/chat',
        Buffer.from(JSON.stringify({ ...hello, messages: msgs('héllo ✓') })),
        { 'x-api-key': BOB },
      );
      assert.equal(valid.status, 200, valid.text);
      const text = await request(app)
        .post('/ai/chat')
        .set('x-api-key', BOB)
        .set('Content-Type', 'text/plain')
        .send(JSON.stringify(hello));
      assert.equal(text.status, 400);
      const latin1 = await request(app)
        .post('/ai/chat')
        .set('x-api-key', BOB)
        .set('Content-Type', 'application/json; charset=latin1')
        .send(JSON.stringify(hello));
      assert.equal(latin1.status, 400);
    });

    it('applies server.max_messages and server.max_content_chars', async () => {
      const { app: a, gateway: g } = hostApp({
        ...authConfig(fake),
        server: { max_messages: 3, max_content_chars: 10 },
        logger: silentLogger,
      });
      const send = (body: unknown) =>
        request(a)
          .post('/ai/chat')
          .set('x-api-key', BOB)
          .send(body as object);
      const four = await send({
        model: 'gpt-4o-mini',
        messages: [1, 2, 3, 4].map(() => ({ role: 'user', content: 'x' })),
      });
      assert.equal(four.status, 400);
      assert.equal(four.body.error.param, 'messages');
      const long = await send({ model: 'gpt-4o-mini', messages: msgs('x'.repeat(11)) });
      assert.equal(long.body.error.param, 'messages[0].content');
      await send({ model: 'gpt-4o-mini', messages: msgs('x'.repeat(10)) }).expect(200);
      await assert.rejects(
        g.chat({ model: 'gpt-4o-mini', messages: msgs('x'.repeat(11)) as never }),
        /longer than 10/,
      );
      await g.close();
    });

    it('puts nothing from the body into a response header unsanitised', async () => {
      const r = await post({
        ...hello,
        metadata: { 'x\r\nSet-Cookie': 'a=b\r\nX-Evil: 1' },
        'y\r\nX-Injected: 1': 1,
      });
      assert.equal(r.status, 200, r.text);
      assert.equal(r.headers['set-cookie'], undefined);
      assert.equal(r.headers['x-injected'], undefined);
      assert.equal(r.headers['x-evil'], undefined);
      assert.match(r.headers['x-gateway-warnings'], /^[\x20-\x7e]+$/);
      const id = await post(hello).set('X-Request-Id', 'abc\tdef');
      assert.match(id.headers['x-request-id'], /^req_/);
    });

    it('never lets a model name pick the upstream host or path', async () => {
      const before = fake.requests.length;
      const hostile = [
        'http://evil.example/x',
        '../../admin',
        'gpt-4o-mini@evil.com',
        'gpt-4o-mini%2F..%2Fadmin',
        'openai/../../admin',
        '//evil.example/v1',
        'openai/http://evil.example',
        'gpt-4o-mini/../x',
      ];
      for (const model of hostile) {
        const r = await post({ ...hello, model });
        assert.ok(r.status >= 400 && r.status < 500, `${model}: ${r.status}`);
      }
      assert.equal(fake.requests.length, before, 'no hostile model reached the provider');
      await post(hello).expect(200);
      assert.deepEqual(
        fake.requests
          .map((q) => `${q.method} ${q.path} ${q.headers.host}`)
          .filter((l) => !l.startsWith('POST /v1/chat/completions 127.0.0.1:')),
        [],
      );
    });

    it('sets server timeouts against slow clients', () => {
      const server = hardenServer(http.createServer());
      assert.ok(server.headersTimeout > 0 && server.headersTimeout <= 30_000);
      assert.ok(server.requestTimeout > 0 && server.requestTimeout <= 60_000);
      assert.ok(server.requestTimeout >= server.headersTimeout);
    });
  });

  describe('secret hygiene sweep', () => {
    it('never shows a provider or gateway key in responses, headers, logs, analytics or cache entries', async function () {
      const dir = mkdtempSync(join(tmpdir(), 'gw-security-'));
      const logger = recordingLogger();
      const cached: string[] = [];
      const entries = new Map<string, string>();
      const cacheStore: CacheStore = {
        get: async (k) => entries.get(k),
        set: async (k, v) => {
          cached.push(k, v);
          entries.set(k, v);
        },
        delete: async (k) => void entries.delete(k),
        clear: async () => entries.clear(),
        close: async () => {},
      };
      const config = authConfig(fake, {
        analytics: { sqlite_path: join(dir, 'a.db'), flush_interval_ms: 600_000 },
      });
      config.providers.down = {
        type: 'openai',
        api_key: DOWN_KEY,
        base_url: 'http://127.0.0.1:9/v1',
        models: ['gpt-down'],
        max_retries: 0,
      };
      config.auth!.keys!.push({ key: 'gw-carol-0123456789abcdef', user: 'carol' });
      const { app: a, gateway: g } = hostApp({ ...config, cacheStore, logger });
      const seen: string[] = [];
      const keep = (r: request.Response) => {
        seen.push(`${r.status} ${JSON.stringify(r.headers)} ${r.text}`);
        return r;
      };
      const chat = (body: unknown, key = ALICE, path = '/ai/chat') =>
        request(a)
          .post(path)
          .set('Authorization', `Bearer ${key}`)
          .send(body as object)
          .then(keep);

      assert.equal((await chat(hello)).status, 200);
      assert.equal((await chat(hello)).headers['x-gateway-cache'], 'HIT');
      const stream = await chat({ ...hello, messages: msgs('stream me') }, ALICE, '/ai/chat/stream');
      assert.equal(parseSse(stream.text).at(-1)!.event, 'done');
      fake.fault({
        status: 401,
        message: `Incorrect API key provided: ${PROVIDER_KEY}. Also ${PROVIDER_KEY.slice(3)}`,
        times: 1,
      });
      const leaked = await chat({ ...hello, messages: msgs('fault 401') });
      assert.equal(leaked.status, 502);
      assert.match(leaked.body.error.message, /Incorrect API key provided/);
      fake.fault({ status: 429, message: `Rate limited for key ${PROVIDER_KEY}`, times: 1 });
      // 429 is retryable: the chain moves on to the unreachable provider, so the answer is 502.
      assert.equal((await chat({ ...hello, messages: msgs('fault 429') }, BOB)).status, 502);
      fake.fault({ status: 401, message: `bad key ${PROVIDER_KEY}`, times: 1 });
      const midStream = await chat({ ...hello, messages: msgs('fault stream') }, BOB, '/ai/chat/stream');
      assert.ok(midStream.status >= 400);
      fake.clearFaults();
      const down = await chat({ model: 'gpt-down', messages: msgs('down') }, BOB);
      // The unreachable provider failed with a connection error (axios errors carry its key in headers).
      const attempts = (down.body.attempts ?? down.body.error?.attempts) as {
        provider: string;
        error_kind?: string;
      }[];
      assert.equal(attempts.find((x) => x.provider === 'down')?.error_kind, 'connection', down.text);
      await chat(hello, PROVIDER_KEY);
      await chat(hello, 'gw-carol-0123456789abcdef', '/ai/v1/chat/completions');
      fake.fault({ status: 401, message: `Incorrect API key provided: ${PROVIDER_KEY}`, times: 1 });
      await chat({ ...hello, messages: msgs('v1 fault') }, BOB, '/ai/v1/chat/completions');
      await request(a).get('/ai/health').then(keep);
      const created = await request(a).post('/ai/admin/keys').set('x-api-key', ADMIN).send({ user: 'dave' });
      const createdKey: string = created.body.key;
      assert.equal((await chat(hello, createdKey)).status, 200);
      await request(a).get('/ai/admin/keys').set('x-api-key', ADMIN).then(keep);
      const thrown: string[] = [];
      fake.fault({ status: 401, message: `Incorrect API key provided: ${PROVIDER_KEY}`, times: 1 });
      await g
        .chat({ ...hello, messages: msgs('programmatic') as never })
        .catch((e: Error) => thrown.push(inspect(e, { depth: 6 })));
      // The unreachable provider may be skipped by its open breaker by now; pin it to be sure it is tried.
      await g
        .chat({ model: 'down/gpt-down', messages: msgs('x') as never })
        .catch((e: Error) => thrown.push(inspect(e, { depth: 6 })));
      assert.equal(thrown.length, 2);
      assert.match(thrown[0]!, /Incorrect API key provided: \[REDACTED\]/);

      await g.analytics.flush();
      assert.equal((await request(a).get('/ai/stats').set('x-api-key', ADMIN).then(keep)).status, 200);
      assert.equal((await request(a).get('/ai/metrics').set('x-api-key', ADMIN).then(keep)).status, 200);
      await g.close();
      const db = readdirSync(dir)
        .map((f) => readFileSync(join(dir, f)).toString('latin1'))
        .join('\n');
      assert.ok(db.length > 1000, 'analytics rows were written');
      rmSync(dir, { recursive: true, force: true });

      const secrets = [
        PROVIDER_KEY,
        PROVIDER_KEY.slice(3),
        DOWN_KEY,
        ALICE,
        BOB,
        ADMIN,
        'gw-carol-0123456789abcdef',
        createdKey,
      ];
      const logs = logger.lines.map((l) => `${l.level} ${inspect(l.obj, { depth: 10 })} ${l.msg ?? ''}`);
      const places: [string, string[]][] = [
        ['responses', seen],
        ['logs', logs],
        ['thrown errors', thrown],
        ['cache entries', cached],
        ['analytics', [db]],
      ];
      assert.ok(cached.length > 0 && logs.length > 0);
      for (const [where, texts] of places) {
        for (const text of texts) {
          for (const secret of [...secrets, ...secrets.map(sha)]) {
            assert.ok(
              !text.includes(secret),
              `${where} contain a secret (${secret.slice(0, 6)}…): ${text.slice(0, 800)}`,
            );
          }
        }
      }
    });
  });
});
