/**
 * API-key rotation and hot-reloaded configuration: keys are spread round-robin, a revoked key leaves the
 * rotation, a key is rotated in the config file under load with zero failed requests, an invalid edit keeps
 * the running config, and a reload changes routing.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, renameSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import request from 'supertest';
import type { GatewayError } from '../lib/errors.js';
import { Gateway } from '../lib/gateway.js';
import type { KeyStrategy } from '../lib/key-pool.js';
import { KeyHealthRegistry, KeyPool } from '../lib/key-pool.js';
import { silentLogger } from '../lib/logger.js';
import { fingerprint } from '../lib/redact.js';
import type { FakeProvider } from '../lib/testing/fake-server.js';
import { startFakeOpenAI } from '../lib/testing/fake-openai.js';
import { hostApp, recordingLogger } from './helpers/setup.js';

const dir = mkdtempSync(join(tmpdir(), 'aigw-keys-'));
const chat = { model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'hi' }] };
const keyOf = (fake: FakeProvider, from = 0) =>
  fake.requests.slice(from).map((r) => String(r.headers.authorization).replace('Bearer ', ''));

/** Writes the file atomically (as editors and config tools do), so a watcher never reads half a file. */
function writeConfig(path: string, yaml: string) {
  writeFileSync(`${path}.tmp`, yaml);
  renameSync(`${path}.tmp`, path);
}

async function until(cond: () => boolean, what: string, ms = 5000) {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

describe('API key rotation', () => {
  let fake: FakeProvider;
  before(async () => {
    fake = await startFakeOpenAI({
      apiKeys: ['sk-key-one-111111', 'sk-key-two-222222', 'sk-key-three-333333'],
    });
  });
  after(() => fake.close());

  it('spreads requests round-robin across api_keys', async () => {
    const { app, gateway } = hostApp({
      providers: {
        openai: {
          api_keys: ['sk-key-one-111111', 'sk-key-two-222222', 'sk-key-three-333333'],
          base_url: fake.baseUrl,
          models: ['gpt-4o-mini'],
        },
      },
      cache: { backend: 'disabled' },
      logger: silentLogger,
    });
    const from = fake.requests.length;
    for (let i = 0; i < 6; i++) await request(app).post('/ai/chat').send(chat).expect(200);
    const counts = new Map<string, number>();
    for (const k of keyOf(fake, from)) counts.set(k, (counts.get(k) ?? 0) + 1);
    assert.deepEqual([...counts.values()], [2, 2, 2]);
    await gateway.close();
  });

  it('takes a key refused with 401 out of rotation, retries with the next key, and reports it by fingerprint', async () => {
    const logger = recordingLogger();
    const { app, gateway } = hostApp({
      providers: {
        openai: {
          api_keys: ['sk-revoked-000000', 'sk-key-two-222222'],
          base_url: fake.baseUrl,
          models: ['gpt-4o-mini'],
        },
      },
      cache: { backend: 'disabled' },
      logger,
    });
    const from = fake.requests.length;
    for (let i = 0; i < 4; i++) await request(app).post('/ai/chat').send(chat).expect(200);
    // One refused attempt, then never again.
    assert.deepEqual(keyOf(fake, from).filter((k) => k === 'sk-revoked-000000').length, 1);
    const health = await request(app).get('/ai/health').expect(200);
    const keys = health.body.providers[0].keys;
    assert.deepEqual(
      keys.map((k: { fingerprint: string; state: string }) => [k.fingerprint, k.state]),
      [
        [fingerprint('sk-revoked-000000'), 'revoked'],
        [fingerprint('sk-key-two-222222'), 'active'],
      ],
    );
    assert.doesNotMatch(health.text, /sk-revoked|sk-key-two/);
    assert.doesNotMatch(logger.text(), /sk-revoked-000000/);
    assert.match(logger.text(), new RegExp(fingerprint('sk-revoked-000000')));
    await gateway.close();
  });
});

describe('KeyPool.pick', () => {
  const [a, b, c] = ['sk-pool-aaaaaa1', 'sk-pool-bbbbbb2', 'sk-pool-cccccc3'] as const;
  function pool(strategy?: KeyStrategy) {
    const clock = { now: 1_000 };
    const registry = new KeyHealthRegistry(() => clock.now);
    const keys = new KeyPool('openai', [a, b, c], registry, silentLogger, strategy);
    const picks = (n: number) => Array.from({ length: n }, () => keys.pick());
    const rest = (key: string, ms: number) => keys.report(key, { kind: 'rate_limit', retryAfterMs: ms });
    return { clock, registry, keys, picks, rest };
  }

  it('round robin skips resting and revoked keys, and takes a rested key back', () => {
    const { clock, keys, picks, rest } = pool();
    assert.deepEqual(picks(4), [a, b, c, a]);
    rest(b, 500);
    assert.deepEqual(picks(3), [c, a, c]);
    clock.now += 500;
    assert.deepEqual(picks(3), [a, b, c]);
    keys.report(a, { upstreamStatus: 401 });
    assert.deepEqual(picks(3), [b, c, b]);
  });

  it('when every usable key rests, picks the one whose rest ends first (the earlier key on a tie)', () => {
    const { picks, rest } = pool();
    rest(a, 300);
    rest(b, 100);
    rest(c, 200);
    assert.deepEqual(picks(2), [b, b]);
    const tie = pool();
    tie.rest(c, 100);
    tie.rest(b, 100);
    tie.rest(a, 300);
    assert.deepEqual(tie.picks(1), [b]);
  });

  it('least_recently_rate_limited picks the key limited longest ago (the earlier key on a tie)', () => {
    const { clock, picks, rest } = pool('least_recently_rate_limited');
    assert.deepEqual(picks(2), [a, a]);
    rest(a, 10);
    clock.now += 1_000;
    rest(b, 10);
    clock.now += 1_000;
    assert.deepEqual(picks(1), [c]);
    rest(c, 10);
    clock.now += 1_000;
    assert.deepEqual(picks(1), [a]);
    rest(a, 5_000);
    assert.deepEqual(picks(1), [b], 'a resting key is not ready');
  });

  it('refuses with an authentication error when every key was revoked', () => {
    const { registry, keys } = pool();
    for (const k of [a, b, c]) registry.stateOf('openai', k).revoked = true;
    assert.throws(
      () => keys.pick(),
      (err: GatewayError) => err.kind === 'authentication',
    );
  });
});

describe('hot-reloaded configuration', () => {
  it('rotates a key in the config file under load with zero failed requests', async () => {
    const fake = await startFakeOpenAI({ apiKeys: ['sk-old-key-000000', 'sk-new-key-111111'] });
    const path = join(dir, 'rotate.yaml');
    const yaml = (key: string) =>
      `providers:\n  openai:\n    api_key: "${key}"\n    base_url: "${fake.baseUrl}"\n    models: [gpt-4o-mini]\ncache: { backend: disabled }\n`;
    writeConfig(path, yaml('sk-old-key-000000'));
    const gateway = new Gateway(path, { logger: silentLogger });
    const { app } = hostApp(gateway);
    const statuses: number[] = [];
    let running = true;
    const load = Promise.all(
      Array.from({ length: 4 }, async () => {
        while (running) statuses.push((await request(app).post('/ai/chat').send(chat)).status);
      }),
    );
    try {
      await until(() => statuses.length > 20, 'traffic before the swap');
      writeConfig(path, yaml('sk-new-key-111111'));
      await until(
        () => gateway.runtime.config.providers[0]!.apiKeys[0] === 'sk-new-key-111111',
        'the reload',
      );
      // From now on the provider accepts only the new key. Requests already in flight on the old config
      // may still present the old key once; they must heal (200) through the new key, not fail.
      fake.apiKeys = ['sk-new-key-111111'];
      const atSwap = statuses.length;
      // Each of the 4 workers finishes its in-flight request and starts new ones on the new config.
      await until(() => statuses.length > atSwap + 8, 'in-flight requests to finish');
      const swappedAt = fake.requests.length;
      const before = statuses.length;
      await until(() => statuses.length > before + 20, 'traffic after the swap');
      running = false;
      await load;
      assert.ok(statuses.length > 40);
      assert.deepEqual([...new Set(statuses)], [200], 'every request succeeded');
      assert.deepEqual([...new Set(keyOf(fake, swappedAt))], ['sk-new-key-111111']);
    } finally {
      running = false;
      await load;
      await gateway.close();
      await fake.close();
    }
  });

  it('keeps the running config when the edit is invalid, and logs why', async () => {
    const fake = await startFakeOpenAI();
    const path = join(dir, 'invalid.yaml');
    writeConfig(
      path,
      `providers:\n  openai:\n    api_key: test-key\n    base_url: "${fake.baseUrl}"\n    models: [gpt-4o-mini]\n`,
    );
    const logger = recordingLogger();
    const gateway = new Gateway(path, { logger });
    try {
      writeConfig(path, `providers:\n  openai:\n    api_key: test-key\n    models: []\n    timeout: 3\n`);
      await until(() => logger.lines.some((l) => l.level === 'error'), 'the error log');
      const line = logger.lines.find((l) => l.level === 'error')!;
      assert.match(JSON.stringify(line.obj), /providers\.openai\.models/);
      assert.match(line.msg!, /running config is kept/);
      const r = await gateway.chat(chat as never);
      assert.equal(r.content, 'echo: hi');
      assert.throws(() => gateway.reload(), /providers\.openai\.timeout: unknown key/);
    } finally {
      await gateway.close();
      await fake.close();
    }
  });

  it('a reload changes routing: disabling the primary moves traffic to the backup at once', async () => {
    const a = await startFakeOpenAI();
    const b = await startFakeOpenAI();
    const path = join(dir, 'routing.yaml');
    const yaml = (enabled: boolean) =>
      `providers:\n  primary:\n    type: openai\n    api_key: test-key\n    base_url: "${a.baseUrl}"\n    models: [gpt-4o-mini]\n    priority: 1\n    enabled: ${enabled}\n  backup:\n    type: openai\n    api_key: test-key\n    base_url: "${b.baseUrl}"\n    models: [gpt-4o-mini]\n    priority: 2\ncache: { backend: disabled }\n`;
    writeConfig(path, yaml(true));
    const gateway = new Gateway(path, { logger: silentLogger, watch: false });
    try {
      assert.equal((await gateway.chat(chat as never)).provider, 'primary');
      writeConfig(path, yaml(false));
      gateway.reload();
      assert.equal((await gateway.chat(chat as never)).provider, 'backup');
      const health = gateway.health();
      assert.equal(health.providers.find((p) => p.name === 'primary')!.enabled, false);
    } finally {
      await gateway.close();
      await a.close();
      await b.close();
    }
  });

  it('a reload changes rate limits for the next request', async () => {
    const fake = await startFakeOpenAI();
    const path = join(dir, 'limits.yaml');
    const yaml = (rpm: number) =>
      `providers:\n  openai:\n    api_key: test-key\n    base_url: "${fake.baseUrl}"\n    models: [gpt-4o-mini]\nrate_limiting: { per_user_rpm: ${rpm}, algorithm: fixed_window }\ncache: { backend: disabled }\nanalytics: { enabled: false }\n`;
    writeConfig(path, yaml(2));
    const gateway = new Gateway(path, { logger: silentLogger, watch: false });
    const { app } = hostApp(gateway);
    const send = () => request(app).post('/ai/chat').set('X-User-Id', 'reload-user').send(chat);
    try {
      assert.deepEqual(
        [(await send()).status, (await send()).status, (await send()).status],
        [200, 200, 429],
      );
      writeConfig(path, yaml(5));
      gateway.reload();
      assert.equal((await send()).status, 200);
    } finally {
      await gateway.close();
      await fake.close();
    }
  });

  it('re-reads ${VAR} keys at reload and keeps restart-only settings with a warning', async () => {
    const fake = await startFakeOpenAI({ apiKeys: ['sk-env-one-000000', 'sk-env-two-111111'] });
    const path = join(dir, 'env.yaml');
    const yaml = (db: string) =>
      `providers:\n  openai:\n    api_key: "\${ROTATE_TEST_KEY}"\n    base_url: "${fake.baseUrl}"\n    models: [gpt-4o-mini]\nanalytics: { enabled: false, sqlite_path: "${db}" }\n`;
    const env = { ROTATE_TEST_KEY: 'sk-env-one-000000' };
    writeConfig(path, yaml('one.db'));
    const logger = recordingLogger();
    const gateway = new Gateway(path, { logger, env, watch: false });
    try {
      env.ROTATE_TEST_KEY = 'sk-env-two-111111';
      writeConfig(path, yaml('two.db'));
      gateway.reload();
      await gateway.chat(chat as never);
      assert.equal(keyOf(fake).at(-1), 'sk-env-two-111111');
      assert.equal(gateway.runtime.config.analytics.sqlitePath, 'one.db');
      assert.match(logger.text(), /analytics\.sqlitePath changed but only take effect after a restart/);
    } finally {
      await gateway.close();
      await fake.close();
    }
  });
});
