/**
 * Security: gateway access keys (401/403, nothing reaches a provider), admin routes, the key admin API,
 * hostile input that must be a 400 (deep JSON, prototype keys, invalid UTF-8, header injection, model names
 * aimed at another host), and a sweep proving that no key ever shows up in a response, a header, a log
 * line, an analytics row or a cache entry.
 */
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import http from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { inspect } from 'node:util';
import express from 'express';
import request from 'supertest';
import { ConfigError, GatewayError } from '../lib/errors.js';
import { Gateway } from '../lib/gateway.js';
import { silentLogger } from '../lib/logger.js';
import { createGatewayRouter } from '../lib/router.js';
import { hardenServer } from '../lib/server-timeouts.js';
import type { Stage } from '../lib/stage.js';
import { startFakeOpenAI } from '../lib/testing/fake-openai.js';
import type { FakeProvider } from '../lib/testing/fake-server.js';
import type { CacheStore, GatewayFileConfig } from '../types/index.js';
import { hostApp, parseSse, recordingLogger } from './helpers/setup.js';

const PROVIDER_KEY = 'sk-provider-secret-0123456789';
const DOWN_KEY = 'sk-down-provider-secret-abcdef987654';
const ALICE = 'gw-alice-7d1f0c9e2b8a4f63a5e1';
const BOB = 'gw-bob-1a2b3c4d5e6f7a8b9c0d';
const ADMIN = 'gw-admin-55aa66bb77cc88dd99ee';
const sha = (s: string) => createHash('sha256').update(s).digest('hex');
const msgs = (content: string) => [{ role: 'user', content }];
const hello = { model: 'gpt-4o-mini', messages: msgs('hello') };

function authConfig(fake: FakeProvider, extra: Partial<GatewayFileConfig> = {}): GatewayFileConfig {
  return {
    providers: {
      openai: { api_key: PROVIDER_KEY, base_url: fake.baseUrl, models: ['gpt-4o-mini', 'gpt-4o'], max_retries: 0 },
    },
    analytics: { enabled: false },
    auth: {
      keys: [
        { key: ALICE, user: 'alice', models: ['gpt-4o-mini'], rpm: 60, budget_usd_per_day: 5 },
        { key_sha256: sha(BOB), user: 'batch-jobs' },
      ],
      admin_keys: [ADMIN],
    },
    ...extra,
  };
}

describe('security: gateway keys, admin routes, hostile input, secret hygiene', function () {
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

  describe('gateway keys', () => {
    const refusedWithout = async (req: request.Test, status: number, type: string) => {
      const before = fake.requests.length;
      const r = await req;
      assert.equal(r.status, status, r.text);
      assert.equal(r.body.error.type, type);
      assert.equal(fake.requests.length, before, 'the request must not reach the provider');
      return r;
    };

    it('refuses a missing, wrong, malformed or provider key with 401 before any provider call', async () => {
      const r = await refusedWithout(request(app).post('/ai/chat').send(hello), 401, 'authentication');
      assert.match(r.headers['www-authenticate'], /^Bearer/);
      assert.match(r.body.error.message, /Authorization: Bearer/);
      await refusedWithout(request(app).post('/ai/chat').set('Authorization', 'Bearer gw-wrong-0000000000000000').send(hello), 401, 'authentication');
      await refusedWithout(request(app).post('/ai/chat').set('Authorization', `Basic ${ALICE}`).send(hello), 401, 'authentication');
      await refusedWithout(request(app).post('/ai/chat').set('x-api-key', PROVIDER_KEY).send(hello), 401, 'authentication');
      await refusedWithout(request(app).post('/ai/chat/stream').send(hello), 401, 'authentication');
      await refusedWithout(request(app).post('/ai/v1/chat/completions').send(hello), 401, 'authentication');
      // The digest itself is not a key.
      await refusedWithout(request(app).post('/ai/chat').set('x-api-key', sha(BOB)).send(hello), 401, 'authentication');
    });

    it('admits a key by Bearer or x-api-key, and one given as its SHA-256 in the config', async () => {
      await request(app).post('/ai/chat').set('Authorization', `Bearer ${ALICE}`).send(hello).expect(200);
      await request(app).post('/ai/chat').set('x-api-key', BOB).send({ ...hello, model: 'gpt-4o' }).expect(200);
      const r = await request(app).post('/ai/v1/chat/completions').set('Authorization', `Bearer ${ALICE}`).send(hello);
      assert.equal(r.status, 200, r.text);
      // The provider only ever sees the provider key.
      for (const rec of fake.requests) assert.equal(rec.headers.authorization, `Bearer ${PROVIDER_KEY}`);
    });

    it('refuses models a key is not allowed with 403, bare or qualified, streaming or not', async () => {
      const as = (model: string, path = '/ai/chat') =>
        request(app).post(path).set('Authorization', `Bearer ${ALICE}`).send({ ...hello, model });
      await refusedWithout(as('gpt-4o'), 403, 'permission');
      await refusedWithout(as('openai/gpt-4o'), 403, 'permission');
      await refusedWithout(as('gpt-4o', '/ai/chat/stream'), 403, 'permission');
      await refusedWithout(as('gpt-4o', '/ai/v1/chat/completions'), 403, 'permission');
      const ok = await as('openai/gpt-4o-mini');
      assert.equal(ok.status, 200, ok.text);
    });

    it("sets ctx.user, keyRpm and budgetUsdPerDay from the key, whatever user the client claims", async () => {
      const seen: Record<string, unknown>[] = [];
      const spy: Stage = { name: 'spy', run: (ctx) => void seen.push({ user: ctx.user, ...ctx.locals }) };
      const { app: spied, gateway: g } = hostApp({ ...authConfig(fake), logger: silentLogger }, { pipeline: ['auth', spy, 'route'] });
      await request(spied).post('/ai/chat').set('Authorization', `Bearer ${ALICE}`).set('X-User-Id', 'mallory').send({ ...hello, user: 'mallory' }).expect(200);
      await request(spied).post('/ai/chat').set('x-api-key', BOB).send(hello).expect(200);
      assert.equal(seen[0]!.user, 'alice');
      assert.equal(seen[0]!.keyRpm, 60);
      assert.equal(seen[0]!.budgetUsdPerDay, 5);
      assert.match(String(seen[0]!.authKeyId), /^key_[0-9a-f]{16}$/);
      assert.equal(seen[1]!.user, 'batch-jobs');
      assert.equal(seen[1]!.keyRpm, undefined);
      await g.close();
    });

    it('keeps only digests in the resolved config', () => {
      const text = JSON.stringify(gateway.runtime.config.auth);
      assert.ok(!text.includes(ALICE) && !text.includes(ADMIN));
      assert.ok(text.includes(sha(ALICE)) && text.includes(sha(ADMIN)));
    });

    it('authenticates programmatic calls that pass apiKey, and trusts those that do not', async () => {
      await assert.rejects(gateway.chat(hello, { apiKey: 'gw-wrong-0000000000000000' }), (e: GatewayError) => e.status === 401);
      await assert.rejects(gateway.chat({ ...hello, model: 'gpt-4o' }, { apiKey: ALICE }), (e: GatewayError) => e.status === 403);
      assert.equal((await gateway.chat(hello, { apiKey: ALICE })).content, 'echo: hello');
      assert.equal((await gateway.chat({ ...hello, model: 'gpt-4o' })).model, 'gpt-4o');
    });

    it("admits a host's own auth in front through res.locals.gatewayAuth, models enforced", async () => {
      const host = express();
      host.use((req, res, next) => {
        if (req.headers['x-session'] === 'ok') res.locals.gatewayAuth = { user: 'sso-user', models: ['gpt-4o-mini'] };
        next();
      });
      const router = createGatewayRouter({ ...authConfig(fake), logger: silentLogger });
      host.use('/ai', router);
      await request(host).post('/ai/chat').set('x-session', 'ok').send(hello).expect(200);
      await request(host).post('/ai/chat').set('x-session', 'ok').send({ ...hello, model: 'gpt-4o' }).expect(403);
      await request(host).post('/ai/chat').send(hello).expect(401);
      await router.gateway.close();
    });

    it('runs open with exactly one clear warning when no key is configured', async () => {
      const logger = recordingLogger();
      const open = hostApp({ providers: authConfig(fake).providers, analytics: { enabled: false }, logger });
      await request(open.app).post('/ai/chat').send(hello).expect(200);
      await request(open.app).post('/ai/chat').set('Authorization', 'Bearer whatever-the-client-sends').send(hello).expect(200);
      const warnings = logger.lines.filter((l) => l.level === 'warn' && /auth\.keys/.test(l.msg ?? ''));
      assert.equal(warnings.length, 1);
      await request(open.app).get('/ai/stats').expect((r) => assert.notEqual(r.status, 401));
      await open.gateway.close();
    });

    it('rejects unusable auth config with messages that never echo the key', () => {
      const bad = (auth: GatewayFileConfig['auth']) => () =>
        new Gateway({ providers: authConfig(fake).providers, auth, logger: silentLogger });
      assert.throws(bad({ keys: [{ key: 'short-secret', user: 'a' }] }), (e: Error) => e instanceof ConfigError && /auth\.keys\[0\]\.key: too short/.test(e.message) && !e.message.includes('short-secret'));
      assert.throws(bad({ keys: [{ key: ALICE, key_sha256: sha(ALICE), user: 'a' }] }), /exactly one of/);
      assert.throws(bad({ keys: [{ key_sha256: 'abc', user: 'a' }] }), /64 hex characters/);
      assert.throws(bad({ keys: [{ key: ALICE, user: 'a' }], admin_keys: [ALICE] }), (e: Error) => /same key as auth\.keys\[0\]/.test(e.message) && !e.message.includes(ALICE));
      assert.throws(bad({ keys: [{ user: 'a', key: ALICE, color: 'red' } as never] }), /auth\.keys\.\[0\]\.color|auth\.keys\[0\]\.color|color: unknown key/);
    });
  });

  describe('admin routes', () => {
    const paths = ['/ai/stats', '/ai/stats/timeseries', '/ai/metrics', '/ai/admin/keys', '/ai/STATS', '/ai/stats/'];

    it('refuses no key (401), a wrong key (401) and a user key (403); admits the admin key', async () => {
      for (const path of paths) {
        assert.equal((await request(app).get(path)).status, 401, path);
        assert.equal((await request(app).get(path).set('x-api-key', 'gw-wrong-0000000000000000')).status, 401, path);
        const user = await request(app).get(path).set('Authorization', `Bearer ${ALICE}`);
        assert.equal(user.status, 403, path);
        assert.equal(user.body.error.type, 'permission');
        const admin = await request(app).get(path).set('Authorization', `Bearer ${ADMIN}`);
        assert.ok(![401, 403].includes(admin.status), `${path}: ${admin.status}`);
      }
      await request(app).get('/ai/health').expect(200);
    });

    it('refuses admin routes when keys exist but no admin key, unless admin_open', async () => {
      const noAdmin = authConfig(fake);
      delete noAdmin.auth!.admin_keys;
      const closed = hostApp({ ...noAdmin, logger: silentLogger });
      const r = await request(closed.app).get('/ai/stats').set('Authorization', `Bearer ${ALICE}`);
      assert.equal(r.status, 403);
      assert.match(r.body.error.message, /auth\.admin_keys/);
      await request(closed.app).post('/ai/admin/keys').send({ user: 'x' }).expect(403);
      const opened = hostApp({ ...noAdmin, auth: { ...noAdmin.auth, admin_open: true }, logger: silentLogger });
      await request(opened.app).get('/ai/metrics').expect(200);
      await Promise.all([closed.gateway.close(), opened.gateway.close()]);
    });

    it('creates a key once, lists keys without secrets, and revokes created and config keys', async () => {
      const { app: a, gateway: g } = hostApp({ ...authConfig(fake), logger: silentLogger });
      await request(a).post('/ai/admin/keys').set('x-api-key', ALICE).send({ user: 'eve' }).expect(403);
      const created = await request(a).post('/ai/admin/keys').set('x-api-key', ADMIN).send({ user: 'carol', models: ['gpt-4o'], rpm: 5 });
      assert.equal(created.status, 201, created.text);
      assert.match(created.body.key, /^sk-gw-/);
      const key: string = created.body.key;
      await request(a).post('/ai/chat').set('x-api-key', key).send({ ...hello, model: 'gpt-4o' }).expect(200);
      await request(a).post('/ai/chat').set('x-api-key', key).send(hello).expect(403);
      const list = await request(a).get('/ai/admin/keys').set('x-api-key', ADMIN).expect(200);
      assert.equal(list.body.keys.length, 3);
      assert.ok(!list.text.includes(key) && !list.text.includes(sha(key)) && !list.text.includes(sha(ALICE)));
      await request(a).delete(`/ai/admin/keys/${created.body.id}`).set('x-api-key', ADMIN).expect(200);
      const before = fake.requests.length;
      await request(a).post('/ai/chat').set('x-api-key', key).send({ ...hello, model: 'gpt-4o' }).expect(401);
      const aliceId = list.body.keys.find((k: { user: string }) => k.user === 'alice').id;
      await request(a).delete(`/ai/admin/keys/${aliceId}`).set('x-api-key', ADMIN).expect(200);
      await request(a).post('/ai/chat').set('x-api-key', ALICE).send(hello).expect(401);
      await request(a).delete(`/ai/admin/keys/${aliceId}`).set('x-api-key', ADMIN).expect(404);
      assert.equal(fake.requests.length, before);
      await request(a).post('/ai/admin/keys').set('x-api-key', ADMIN).send({ user: 'x', admin: true }).expect(400);
      await g.close();
    });
  });

  describe('hostile input', () => {
    const post = (body: unknown, path = '/ai/chat') =>
      request(app).post(path).set('Authorization', `Bearer ${BOB}`).set('Content-Type', 'application/json').send(typeof body === 'string' ? body : JSON.stringify(body));

    it('answers a 10,000-deep metadata object with 400, not a stack overflow', async () => {
      const deep = `${'{"a":'.repeat(10_000)}1${'}'.repeat(10_000)}`;
      const r = await post(`{"model":"gpt-4o-mini","messages":[{"role":"user","content":"x"}],"metadata":${deep}}`);
      assert.equal(r.status, 400, r.text);
      assert.match(r.body.error.message, /nested deeper than 64/);
      const arrays = `{"model":"gpt-4o-mini","messages":[{"role":"user","content":"x"}],"x":${'['.repeat(10_000)}${']'.repeat(10_000)}}`;
      assert.equal((await post(arrays)).status, 400);
      assert.equal((await post(arrays, '/ai/v1/chat/completions')).status, 400);
    });

    it('refuses prototype keys anywhere in the body, naming where', async () => {
      const cases: [string, string][] = [
        ['{"model":"gpt-4o-mini","messages":[{"role":"user","content":"x","__proto__":{"admin":true}}]}', 'messages[0].__proto__'],
        ['{"model":"gpt-4o-mini","messages":[{"role":"user","content":"x"}],"metadata":{"constructor":{"prototype":{}}}}', 'metadata.constructor'],
        ['{"model":"gpt-4o-mini","messages":[{"role":"user","content":"x"}],"tools":[{"type":"function","function":{"name":"f","parameters":{"prototype":1}}}]}', 'tools[0].function.parameters.prototype'],
        ['{"model":"gpt-4o-mini","messages":[{"role":"user","content":"x"}],"__proto__":{"polluted":1}}', '__proto__'],
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
      const bytes = Buffer.concat([Buffer.from('{"model":"gpt-4o-mini","messages":[{"role":"user","content":"'), Buffer.from([0xff, 0xfe, 0xc3]), Buffer.from('"}]}')]);
      for (const path of ['/ai/chat', '/ai/chat/stream', '/ai/v1/chat/completions']) {
        const r = await request(app).post(path).set('x-api-key', BOB).set('Content-Type', 'application/json').send(bytes);
        assert.equal(r.status, 400, `${path}: ${r.text}`);
        assert.match(r.text, /UTF-8/);
      }
      const text = await request(app).post('/ai/chat').set('x-api-key', BOB).set('Content-Type', 'text/plain').send(JSON.stringify(hello));
      assert.equal(text.status, 400);
      const latin1 = await request(app).post('/ai/chat').set('x-api-key', BOB).set('Content-Type', 'application/json; charset=latin1').send(JSON.stringify(hello));
      assert.equal(latin1.status, 400);
    });

    it('applies server.max_messages and server.max_content_chars', async () => {
      const { app: a, gateway: g } = hostApp({ ...authConfig(fake), server: { max_messages: 3, max_content_chars: 10 }, logger: silentLogger });
      const send = (body: unknown) => request(a).post('/ai/chat').set('x-api-key', BOB).send(body as object);
      const four = await send({ model: 'gpt-4o-mini', messages: [1, 2, 3, 4].map(() => ({ role: 'user', content: 'x' })) });
      assert.equal(four.status, 400);
      assert.equal(four.body.error.param, 'messages');
      const long = await send({ model: 'gpt-4o-mini', messages: msgs('x'.repeat(11)) });
      assert.equal(long.body.error.param, 'messages[0].content');
      await send({ model: 'gpt-4o-mini', messages: msgs('x'.repeat(10)) }).expect(200);
      await assert.rejects(g.chat({ model: 'gpt-4o-mini', messages: msgs('x'.repeat(11)) as never }), /longer than 10/);
      await g.close();
    });

    it('puts nothing from the body into a response header unsanitised', async () => {
      const r = await post({ ...hello, metadata: { 'x\r\nSet-Cookie': 'a=b\r\nX-Evil: 1' }, 'y\r\nX-Injected: 1': 1 });
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
      const hostile = ['http://evil.example/x', '../../admin', 'gpt-4o-mini@evil.com', 'gpt-4o-mini%2F..%2Fadmin', 'openai/../../admin', '//evil.example/v1', 'openai/http://evil.example', 'gpt-4o-mini/../x'];
      for (const model of hostile) {
        const r = await post({ ...hello, model });
        assert.ok(r.status >= 400 && r.status < 500, `${model}: ${r.status}`);
      }
      assert.equal(fake.requests.length, before, 'no hostile model reached the provider');
      await post(hello).expect(200);
      assert.deepEqual(
        fake.requests.map((q) => `${q.method} ${q.path} ${q.headers.host}`).filter((l) => !l.startsWith('POST /v1/chat/completions 127.0.0.1:')),
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
      const config = authConfig(fake, { analytics: { sqlite_path: join(dir, 'a.db'), flush_interval_ms: 600_000 } });
      config.providers.down = { type: 'openai', api_key: DOWN_KEY, base_url: 'http://127.0.0.1:9/v1', models: ['gpt-down'], max_retries: 0 };
      config.auth!.keys!.push({ key: 'gw-carol-0123456789abcdef', user: 'carol' });
      const { app: a, gateway: g } = hostApp({ ...config, cacheStore, logger });
      const seen: string[] = [];
      const keep = (r: request.Response) => {
        seen.push(`${r.status} ${JSON.stringify(r.headers)} ${r.text}`);
        return r;
      };
      const chat = (body: unknown, key = ALICE, path = '/ai/chat') =>
        request(a).post(path).set('Authorization', `Bearer ${key}`).send(body as object).then(keep);

      assert.equal((await chat(hello)).status, 200);
      assert.equal((await chat(hello)).headers['x-gateway-cache'], 'HIT');
      const stream = await chat({ ...hello, messages: msgs('stream me') }, ALICE, '/ai/chat/stream');
      assert.equal(parseSse(stream.text).at(-1)!.event, 'done');
      fake.fault({ status: 401, message: `Incorrect API key provided: ${PROVIDER_KEY}. Also ${PROVIDER_KEY.slice(3)}`, times: 1 });
      const leaked = await chat({ ...hello, messages: msgs('fault 401') });
      assert.equal(leaked.status, 502);
      assert.match(leaked.body.error.message, /Incorrect API key provided/);
      fake.fault({ status: 429, message: `Rate limited for key ${PROVIDER_KEY}`, times: 1 });
      assert.equal((await chat({ ...hello, messages: msgs('fault 429') }, BOB)).status, 429);
      fake.fault({ status: 401, message: `bad key ${PROVIDER_KEY}`, times: 1 });
      const midStream = await chat({ ...hello, messages: msgs('fault stream') }, BOB, '/ai/chat/stream');
      assert.ok(midStream.status >= 400);
      assert.equal((await chat({ model: 'gpt-down', messages: msgs('down') }, BOB)).status, 503);
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
      await g.chat({ ...hello, messages: msgs('programmatic') as never }).catch((e: Error) => thrown.push(inspect(e, { depth: 6 })));
      await g.chat({ model: 'gpt-down', messages: msgs('x') as never }).catch((e: Error) => thrown.push(inspect(e, { depth: 6 })));
      assert.equal(thrown.length, 2);

      await g.analytics.flush();
      assert.equal((await request(a).get('/ai/stats').set('x-api-key', ADMIN).then(keep)).status, 200);
      assert.equal((await request(a).get('/ai/metrics').set('x-api-key', ADMIN).then(keep)).status, 200);
      await g.close();
      const db = readdirSync(dir).map((f) => readFileSync(join(dir, f)).toString('latin1')).join('\n');
      assert.ok(db.length > 1000, 'analytics rows were written');
      rmSync(dir, { recursive: true, force: true });

      const secrets = [PROVIDER_KEY, PROVIDER_KEY.slice(3), DOWN_KEY, ALICE, BOB, ADMIN, 'gw-carol-0123456789abcdef', createdKey];
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
            assert.ok(!text.includes(secret), `${where} contain a secret (${secret.slice(0, 6)}…): ${text.slice(0, 300)}`);
          }
        }
      }
    });
  });
});
