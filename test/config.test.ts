/**
 * Config loading: the YAML form users write, ${VAR} interpolation, and every kind of mistake reported with
 * its YAML path and a fix.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadConfig, resolveConfig, validateFileConfig } from '../lib/config.js';
import { ConfigError } from '../lib/errors.js';
import { Gateway } from '../lib/gateway.js';
import { silentLogger } from '../lib/logger.js';
import { Provider } from '../lib/provider.js';

const dir = mkdtempSync(join(tmpdir(), 'aigw-config-'));
let n = 0;
function yamlFile(text: string): string {
  const path = join(dir, `config-${n++}.yaml`);
  writeFileSync(path, text);
  return path;
}

const FULL = `
providers:
  openai:
    api_key: "\${OPENAI_API_KEY}"
    base_url: "https://api.openai.com/v1"
    models: ["gpt-4o", "gpt-4o-mini"]
    timeout_seconds: 30
    max_retries: 2
    priority: 1
  anthropic:
    api_key: "\${ANTHROPIC_API_KEY}"
    models: ["claude-sonnet-4-20250514"]
    timeout_seconds: 60
    priority: 2
rate_limiting: { global_rpm: 1000, per_user_rpm: 60, per_model_rpm: 500, algorithm: "token_bucket" }
cache: { backend: "memory", redis_url: "redis://localhost:6379/0", ttl_seconds: 3600, max_cache_size_mb: 512, hash_strategy: "content" }
analytics: { enabled: true, storage: "sqlite", sqlite_path: "gateway-analytics.db", retention_days: 90, dashboard_port: 8080 }
middleware: [pii_scrubber, request_logger, prompt_injection_detector]
`;
const ENV = { OPENAI_API_KEY: 'sk-openai-test', ANTHROPIC_API_KEY: 'sk-ant-test' };

function expectConfigError(fn: () => unknown, ...patterns: RegExp[]) {
  assert.throws(fn, (err: unknown) => {
    assert.ok(err instanceof ConfigError, `expected ConfigError, got ${String(err)}`);
    for (const p of patterns) assert.match(err.message, p);
    return true;
  });
}

describe('config', () => {
  it('loads the documented YAML with every section and interpolates ${VAR}', () => {
    const cfg = loadConfig(yamlFile(FULL), ENV);
    assert.equal(cfg.providers.openai!.api_key, 'sk-openai-test');
    assert.equal(cfg.providers.anthropic!.api_key, 'sk-ant-test');
    assert.equal(cfg.rate_limiting!.per_user_rpm, 60);
    assert.equal(cfg.cache!.hash_strategy, 'content');
    assert.equal(cfg.analytics!.retention_days, 90);
    assert.deepEqual(cfg.middleware, ['pii_scrubber', 'request_logger', 'prompt_injection_detector']);
    const resolved = resolveConfig(cfg);
    assert.deepEqual(
      resolved.providers.map((p) => [p.name, p.type, p.baseUrl, p.timeoutMs, p.priority]),
      [
        ['openai', 'openai', 'https://api.openai.com/v1', 30_000, 1],
        ['anthropic', 'anthropic', 'https://api.anthropic.com', 60_000, 2],
      ],
    );
    assert.equal(resolved.cache.ttlSeconds, 3600);
  });

  it('names the missing environment variable and where it is used', () => {
    expectConfigError(
      () => loadConfig(yamlFile(FULL), { OPENAI_API_KEY: 'x' }),
      /providers\.anthropic\.api_key/,
      /ANTHROPIC_API_KEY is not set/,
    );
  });

  it('reports an unknown key with its path', () => {
    expectConfigError(
      () => validateFileConfig({ providers: { openai: { api_key: 'k', models: ['m'], timeout: 3 } } }, {}),
      /providers\.openai\.timeout: unknown key/,
    );
    expectConfigError(
      () => validateFileConfig({ providers: { openai: { api_key: 'k', models: ['m'] } }, cahce: {} }, {}),
      /cahce: unknown key/,
    );
  });

  it('reports a wrong type with its path and the expected type', () => {
    expectConfigError(
      () =>
        validateFileConfig(
          { providers: { openai: { api_key: 'k', models: ['m'], timeout_seconds: 'thirty' } } },
          {},
        ),
      /providers\.openai\.timeout_seconds: expected number/,
    );
    expectConfigError(
      () =>
        validateFileConfig(
          { providers: { openai: { api_key: 'k', models: ['m'] } }, cache: { backend: 'memcached' } },
          {},
        ),
      /cache\.backend: must be one of "memory", "redis", "disabled"/,
    );
  });

  it('rejects an empty provider list and says how to add one', () => {
    expectConfigError(
      () => validateFileConfig({ providers: {} }, {}),
      /providers: no provider is configured/,
      /api_key/,
    );
    expectConfigError(() => validateFileConfig({}, {}), /providers/);
  });

  it('requires a type for a provider not named after one of the five, and lets two share a type', () => {
    expectConfigError(
      () => validateFileConfig({ providers: { 'openai-eu': { api_key: 'k', models: ['m'] } } }, {}),
      /providers\.openai-eu\.type/,
      /type: openai/,
    );
    const cfg = validateFileConfig(
      {
        providers: {
          openai: { api_key: 'k1', models: ['gpt-4o'] },
          'openai-eu': {
            type: 'openai',
            api_key: 'k2',
            base_url: 'https://eu.example.com/v1',
            models: ['gpt-4o'],
          },
          local: { type: 'ollama', models: ['llama3.2'] },
        },
      },
      {},
    );
    const resolved = resolveConfig(cfg);
    assert.deepEqual(
      resolved.providers.map((p) => [p.name, p.type]),
      [
        ['openai', 'openai'],
        ['openai-eu', 'openai'],
        ['local', 'ollama'],
      ],
    );
    assert.equal(resolved.providers[2]!.baseUrl, 'http://127.0.0.1:11434');
  });

  it('requires an API key except for Ollama', () => {
    expectConfigError(
      () => validateFileConfig({ providers: { openai: { models: ['m'] } } }, {}),
      /providers\.openai\.api_key: missing/,
    );
  });

  it('reports invalid YAML and an unreadable file clearly', () => {
    expectConfigError(() => loadConfig(yamlFile('providers: [unclosed'), {}), /not valid YAML/);
    expectConfigError(() => loadConfig(join(dir, 'missing.yaml'), {}), /Cannot read config file/, /ENOENT/);
  });

  it('rejects prototype-pollution keys', () => {
    const raw = JSON.parse('{"providers":{"openai":{"api_key":"k","models":["m"]}},"__proto__":{"x":1}}');
    expectConfigError(() => validateFileConfig(raw, {}), /__proto__/);
  });
});

describe('Gateway construction', () => {
  it('takes a YAML path', () => {
    const path = yamlFile('providers:\n  openai:\n    api_key: "${K}"\n    models: [gpt-4o]\n');
    process.env.K = 'sk-from-env';
    try {
      const gw = new Gateway(path);
      assert.equal(gw.runtime.config.providers[0]!.apiKeys[0], 'sk-from-env');
      assert.equal(gw.configPath, path);
    } finally {
      delete process.env.K;
    }
  });

  it('takes Provider objects and camelCase shorthands', () => {
    const gw = new Gateway({
      providers: [
        new Provider({ name: 'openai', apiKey: 'k1', models: ['gpt-4o', 'gpt-4o-mini'], priority: 1 }),
        new Provider({ name: 'anthropic', apiKey: 'k2', models: ['claude-sonnet-4-20250514'], priority: 2 }),
      ],
      cacheBackend: 'memory',
      cacheTtl: 120,
      logger: silentLogger,
    });
    assert.deepEqual(
      gw.runtime.config.providers.map((p) => p.name),
      ['openai', 'anthropic'],
    );
    assert.equal(gw.runtime.config.cache.ttlSeconds, 120);
  });

  it('Provider carries modelMap and keyStrategy into the resolved config', () => {
    const gw = new Gateway({
      providers: [
        new Provider({ name: 'openai', apiKey: 'k1', models: ['gpt-4o'] }),
        new Provider({
          name: 'anthropic',
          apiKeys: ['k2', 'k3'],
          models: ['claude-sonnet-4-20250514'],
          modelMap: { 'gpt-4o': 'claude-sonnet-4-20250514' },
          keyStrategy: 'least_recently_rate_limited',
        }),
      ],
      logger: silentLogger,
    });
    const anthropic = gw.runtime.config.providers.find((p) => p.name === 'anthropic')!;
    assert.deepEqual(anthropic.modelMap, { 'gpt-4o': 'claude-sonnet-4-20250514' });
    assert.equal(anthropic.keyStrategy, 'least_recently_rate_limited');
  });

  it('fails at construction with the same messages for objects as for YAML', () => {
    assert.throws(
      () => new Gateway({ providers: { openai: { api_key: 'k', models: [] } }, logger: silentLogger }),
      /providers\.openai\.models: list at least 1/,
    );
    assert.throws(
      () => new Gateway({ providers: [{ name: 'x' } as never], logger: silentLogger }),
      /new Provider/,
    );
  });
});
