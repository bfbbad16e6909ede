/**
 * Security, part 1: gateway access keys (401/403, nothing reaches a provider), the programmatic face, a
 * host's own auth in front, auth config errors, admin routes and the key admin API.
 */
import assert from 'node:assert/strict';
import express from 'express';
import request from 'supertest';
import { ConfigError, GatewayError } from '../lib/errors.js';
import { Gateway } from '../lib/gateway.js';
import { silentLogger } from '../lib/logger.js';
import { createGatewayRouter } from '../lib/router.js';
import type { Stage } from '../lib/stage.js';
import { startFakeOpenAI } from '../lib/testing/fake-openai.js';
import type { FakeProvider } from '../lib/testing/fake-server.js';
import type { GatewayFileConfig } from '../types/index.js';
import { ADMIN, ALICE, authConfig, BOB, hello, PROVIDER_KEY, sha } from './helpers/security.js';
import { hostApp, recordingLogger } from './helpers/setup.js';

describe('security: gateway keys and admin routes', function () {
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
      // 'openai': the OpenAI-compatible routes speak OpenAI's error types; the status is the contract.
      if (type !== 'openai') assert.equal(r.body.error.type, type);
      assert.equal(fake.requests.length, before, 'the request must not reach the provider');
      return r;
    };

    it('refuses a missing, wrong, malformed or provider key with 401 before any provider call', async () => {
      const r = await refusedWithout(request(app).post('/ai/chat').send(hello), 401, 'authentication');
      assert.match(r.headers['www-authenticate'], /^Bearer/);
      assert.match(r.body.error.message, /Authorization: Bearer/);
      await refusedWithout(
        request(app).post('/ai/chat').set('Authorization', 'Bearer gw-wrong-0000000000000000').send(hello),
        401,
        'authentication',
      );
      await refusedWithout(
        request(app).post('/ai/chat').set('Authorization', `Basic ${ALICE}`).send(hello),
        401,
        'authentication',
      );
      await refusedWithout(
        request(app).post('/ai/chat').set('x-api-key', PROVIDER_KEY).send(hello),
        401,
        'authentication',
      );
      await refusedWithout(request(app).post('/ai/chat/stream').send(hello), 401, 'authentication');
      await refusedWithout(request(app).post('/ai/v1/chat/completions').send(hello), 401, 'authentication');
      // The digest itself is not a key.
      await refusedWithout(
        request(app).post('/ai/chat').set('x-api-key', sha(BOB)).send(hello),
        401,
        'authentication',
      );
    });

    it('admits a key by Bearer or x-api-key, and one given as its SHA-256 in the config', async () => {
      await request(app).post('/ai/chat').set('Authorization', `Bearer ${ALICE}`).send(hello).expect(200);
      await request(app)
        .post('/ai/chat')
        .set('x-api-key', BOB)
        .send({ ...hello, model: 'gpt-4o' })
        .expect(200);
      const r = await request(app)
        .post('/ai/v1/chat/completions')
        .set('Authorization', `Bearer ${ALICE}`)
        .send(hello);
      assert.equal(r.status, 200, r.text);
      // The provider only ever sees the provider key.
      for (const rec of fake.requests) assert.equal(rec.headers.authorization, `Bearer ${PROVIDER_KEY}`);
    });

    it('refuses models a key is not allowed with 403, bare or qualified, streaming or not', async () => {
      const as = (model: string, path = '/ai/chat') =>
        request(app)
          .post(path)
          .set('Authorization', `Bearer ${ALICE}`)
          .send({ ...hello, model });
      await refusedWithout(as('gpt-4o'), 403, 'permission');
      await refusedWithout(as('openai/gpt-4o'), 403, 'permission');
      await refusedWithout(as('gpt-4o', '/ai/chat/stream'), 403, 'permission');
      await refusedWithout(as('gpt-4o', '/ai/v1/chat/completions'), 403, 'openai');
      const ok = await as('openai/gpt-4o-mini');
      assert.equal(ok.status, 200, ok.text);
    });

    it('sets ctx.user, keyRpm and budgetUsdPerDay from the key, whatever user the client claims', async () => {
      const seen: Record<string, unknown>[] = [];
      const spy: Stage = { name: 'spy', run: (ctx) => void seen.push({ user: ctx.user, ...ctx.locals }) };
      const { app: spied, gateway: g } = hostApp(
        { ...authConfig(fake), logger: silentLogger },
        { pipeline: ['auth', spy, 'route'] },
      );
      await request(spied)
        .post('/ai/chat')
        .set('Authorization', `Bearer ${ALICE}`)
        .set('X-User-Id', 'mallory')
        .send({ ...hello, user: 'mallory' })
        .expect(200);
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
      await assert.rejects(
        gateway.chat(hello, { apiKey: 'gw-wrong-0000000000000000' }),
        (e: GatewayError) => e.status === 401,
      );
      await assert.rejects(
        gateway.chat({ ...hello, model: 'gpt-4o' }, { apiKey: ALICE }),
        (e: GatewayError) => e.status === 403,
      );
      assert.equal((await gateway.chat(hello, { apiKey: ALICE })).content, 'echo: hello');
      assert.equal((await gateway.chat({ ...hello, model: 'gpt-4o' })).model, 'gpt-4o');
    });

    it("admits a host's own auth in front through res.locals.gatewayAuth, models enforced", async () => {
      const host = express();
      host.use((req, res, next) => {
        if (req.headers['x-session'] === 'ok')
          res.locals.gatewayAuth = { user: 'sso-user', models: ['gpt-4o-mini'] };
        next();
      });
      const router = createGatewayRouter({ ...authConfig(fake), logger: silentLogger });
      host.use('/ai', router);
      await request(host).post('/ai/chat').set('x-session', 'ok').send(hello).expect(200);
      await request(host)
        .post('/ai/chat')
        .set('x-session', 'ok')
        .send({ ...hello, model: 'gpt-4o' })
        .expect(403);
      await request(host).post('/ai/chat').send(hello).expect(401);
      await router.gateway.close();
    });

    it('runs open with exactly one clear warning when no key is configured', async () => {
      const logger = recordingLogger();
      const open = hostApp({ providers: authConfig(fake).providers, analytics: { enabled: false }, logger });
      await request(open.app).post('/ai/chat').send(hello).expect(200);
      await request(open.app)
        .post('/ai/chat')
        .set('Authorization', 'Bearer whatever-the-client-sends')
        .send(hello)
        .expect(200);
      const warnings = logger.lines.filter((l) => l.level === 'warn' && /auth\.keys/.test(l.msg ?? ''));
      assert.equal(warnings.length, 1);
      await request(open.app)
        .get('/ai/stats')
        .expect((r) => assert.notEqual(r.status, 401));
      await open.gateway.close();
    });

    it('rejects unusable auth config with messages that never echo the key', () => {
      const bad = (auth: GatewayFileConfig['auth']) => () =>
        new Gateway({ providers: authConfig(fake).providers, auth, logger: silentLogger });
      assert.throws(
        bad({ keys: [{ key: 'short-secret', user: 'a' }] }),
        (e: Error) =>
          e instanceof ConfigError &&
          /auth\.keys\[0\]\.key: too short/.test(e.message) &&
          !e.message.includes('short-secret'),
      );
      assert.throws(bad({ keys: [{ key: ALICE, key_sha256: sha(ALICE), user: 'a' }] }), /exactly one of/);
      assert.throws(bad({ keys: [{ key_sha256: 'abc', user: 'a' }] }), /64 hex characters/);
      assert.throws(
        bad({ keys: [{ key: ALICE, user: 'a' }], admin_keys: [ALICE] }),
        (e: Error) => /same key as auth\.keys\[0\]/.test(e.message) && !e.message.includes(ALICE),
      );
      assert.throws(
        bad({ keys: [{ user: 'a', key: ALICE, color: 'red' } as never] }),
        /auth\.keys\.\[0\]\.color|auth\.keys\[0\]\.color|color: unknown key/,
      );
    });
  });

  describe('admin routes', () => {
    const paths = [
      '/ai/stats',
      '/ai/stats/timeseries',
      '/ai/metrics',
      '/ai/admin/keys',
      '/ai/STATS',
      '/ai/stats/',
    ];

    it('refuses no key (401), a wrong key (401) and a user key (403); admits the admin key', async () => {
      for (const path of paths) {
        assert.equal((await request(app).get(path)).status, 401, path);
        assert.equal(
          (await request(app).get(path).set('x-api-key', 'gw-wrong-0000000000000000')).status,
          401,
          path,
        );
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
      const opened = hostApp({
        ...noAdmin,
        auth: { ...noAdmin.auth, admin_open: true },
        logger: silentLogger,
      });
      await request(opened.app).get('/ai/metrics').expect(200);
      await Promise.all([closed.gateway.close(), opened.gateway.close()]);
    });

    it('creates a key once, lists keys without secrets, and revokes created and config keys', async () => {
      const { app: a, gateway: g } = hostApp({ ...authConfig(fake), logger: silentLogger });
      await request(a).post('/ai/admin/keys').set('x-api-key', ALICE).send({ user: 'eve' }).expect(403);
      const created = await request(a)
        .post('/ai/admin/keys')
        .set('x-api-key', ADMIN)
        .send({ user: 'carol', models: ['gpt-4o'], rpm: 5 });
      assert.equal(created.status, 201, created.text);
      assert.match(created.body.key, /^sk-gw-/);
      const key: string = created.body.key;
      await request(a)
        .post('/ai/chat')
        .set('x-api-key', key)
        .send({ ...hello, model: 'gpt-4o' })
        .expect(200);
      await request(a).post('/ai/chat').set('x-api-key', key).send(hello).expect(403);
      const list = await request(a).get('/ai/admin/keys').set('x-api-key', ADMIN).expect(200);
      assert.equal(list.body.keys.length, 3);
      assert.ok(!list.text.includes(key) && !list.text.includes(sha(key)) && !list.text.includes(sha(ALICE)));
      await request(a).delete(`/ai/admin/keys/${created.body.id}`).set('x-api-key', ADMIN).expect(200);
      const before = fake.requests.length;
      await request(a)
        .post('/ai/chat')
        .set('x-api-key', key)
        .send({ ...hello, model: 'gpt-4o' })
        .expect(401);
      const aliceId = list.body.keys.find((k: { user: string }) => k.user === 'alice').id;
      await request(a).delete(`/ai/admin/keys/${aliceId}`).set('x-api-key', ADMIN).expect(200);
      await request(a).post('/ai/chat').set('x-api-key', ALICE).send(hello).expect(401);
      await request(a).delete(`/ai/admin/keys/${aliceId}`).set('x-api-key', ADMIN).expect(404);
      assert.equal(fake.requests.length, before);
      await request(a)
        .post('/ai/admin/keys')
        .set('x-api-key', ADMIN)
        .send({ user: 'x', admin: true })
        .expect(400);
      await g.close();
    });
  });
});
