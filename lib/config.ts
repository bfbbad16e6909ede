/**
 * Configuration: YAML (snake_case, as users write it) or an object of the same shape, validated completely
 * before anything uses it. Every error names the path in the file and says how to fix it.
 */
import { readFileSync } from 'node:fs';
import { parse as parseYaml } from 'yaml';
import { z } from 'zod';
import type { GatewayFileConfig, ProviderType, ResolvedConfig, ResolvedProvider } from '../types/index.js';
import { ConfigError, ERROR_KINDS } from './errors.js';
import { resolveRouting, routingProblems } from './routing-config.js';
import { authProblems, authSchema, resolveAuth } from './auth-config.js';
import { DEFAULT_REQUEST_LIMITS } from './validations.js';

export const PROVIDER_TYPES: readonly ProviderType[] = ['openai', 'anthropic', 'gemini', 'mistral', 'ollama'];

/** Where each provider's official SDK points by default; `base_url` overrides mean the same thing. */
export const DEFAULT_BASE_URLS: Record<ProviderType, string> = {
  openai: 'https://api.openai.com/v1',
  anthropic: 'https://api.anthropic.com',
  gemini: 'https://generativelanguage.googleapis.com',
  mistral: 'https://api.mistral.ai',
  ollama: 'http://127.0.0.1:11434',
};

const positiveInt = z.number().int().positive();
const nonNegative = z.number().nonnegative();

const providerSchema = z.strictObject({
  type: z.enum(PROVIDER_TYPES as [ProviderType, ...ProviderType[]]).optional(),
  api_key: z.string().optional(),
  api_keys: z.array(z.string().min(1)).optional(),
  base_url: z.url({ protocol: /^https?$/ }).optional(),
  models: z.array(z.string().min(1)).min(1),
  timeout_seconds: z.number().positive().optional(),
  max_retries: z.number().int().min(0).max(10).optional(),
  priority: z.number().int().optional(),
  enabled: z.boolean().optional(),
  default_max_tokens: positiveInt.optional(),
  key_strategy: z.enum(['round_robin', 'least_recently_rate_limited']).optional(),
  headers: z.record(z.string(), z.string()).optional(),
  model_map: z.record(z.string().min(1), z.string().min(1)).optional(),
});

const priceSchema = z.strictObject({
  input_per_mtok: nonNegative,
  output_per_mtok: nonNegative,
  cached_input_per_mtok: nonNegative.optional(),
  cache_write_per_mtok: nonNegative.optional(),
});

export const fileConfigSchema = z.strictObject({
  providers: z.record(z.string().regex(/^[a-zA-Z0-9_.-]+$/), providerSchema),
  rate_limiting: z
    .strictObject({
      global_rpm: positiveInt.optional(),
      per_user_rpm: positiveInt.optional(),
      per_model_rpm: positiveInt.optional(),
      algorithm: z.enum(['token_bucket', 'fixed_window']).optional(),
      store: z.enum(['memory', 'redis']).optional(),
      redis_url: z.string().optional(),
      user_header: z.string().min(1).optional(),
      on_store_error: z.enum(['fail_open', 'fail_closed']).optional(),
    })
    .optional(),
  cache: z
    .strictObject({
      backend: z.enum(['memory', 'redis', 'disabled']).optional(),
      redis_url: z.string().optional(),
      ttl_seconds: z.number().int().nonnegative().optional(),
      max_cache_size_mb: z.number().positive().optional(),
      hash_strategy: z.enum(['content', 'content+model', 'full_request']).optional(),
      scope: z.enum(['global', 'per_user']).optional(),
      cache_nondeterministic: z.boolean().optional(),
    })
    .optional(),
  analytics: z
    .strictObject({
      enabled: z.boolean().optional(),
      storage: z.enum(['sqlite', 'postgres']).optional(),
      sqlite_path: z.string().min(1).optional(),
      postgres_url: z.string().optional(),
      retention_days: positiveInt.optional(),
      dashboard_port: z.number().int().min(0).max(65535).optional(),
      batch_size: positiveInt.optional(),
      flush_interval_ms: positiveInt.optional(),
    })
    .optional(),
  routing: z
    .strictObject({
      primary: z.string().optional(),
      fallbacks: z.array(z.string()).optional(),
      fallback_on: z.array(z.enum(ERROR_KINDS)).optional(),
      max_cost_per_request: z.number().positive().optional(),
      request_timeout_seconds: z.number().positive().optional(),
      max_retry_wait_seconds: z.number().nonnegative().optional(),
      retry_budget_seconds: z.number().nonnegative().optional(),
      circuit_breaker: z
        .strictObject({
          failure_threshold: positiveInt.optional(),
          window_seconds: z.number().positive().optional(),
          cooldown_seconds: z.number().positive().optional(),
        })
        .optional(),
      aliases: z
        .record(
          z.string().min(1),
          z.strictObject({
            primary: z.string().min(1),
            fallbacks: z.array(z.string()).optional(),
            fallback_on: z.array(z.enum(ERROR_KINDS)).optional(),
            max_cost_per_request: z.number().positive().optional(),
          }),
        )
        .optional(),
    })
    .optional(),
  middleware: z
    .array(z.union([z.string(), z.record(z.string(), z.record(z.string(), z.unknown()))]))
    .optional(),
  pricing: z.record(z.string(), priceSchema).optional(),
  server: z
    .strictObject({
      body_limit: z
        .string()
        .regex(/^\d+(b|kb|mb)$/i)
        .optional(),
      port: z.number().int().min(0).max(65535).optional(),
      max_messages: positiveInt.optional(),
      max_content_chars: positiveInt.optional(),
    })
    .optional(),
  auth: authSchema.optional(),
});

function pathOf(path: readonly PropertyKey[]): string {
  return path.length
    ? path.map((p) => (typeof p === 'number' ? `[${p}]` : String(p))).join('.')
    : '(top level)';
}

function describeIssue(issue: z.core.$ZodIssue): string {
  const at = pathOf(issue.path);
  switch (issue.code) {
    case 'unrecognized_keys':
      return issue.keys
        .map(
          (k) =>
            `${pathOf([...issue.path, k])}: unknown key. Remove it or check its spelling against the README's config reference.`,
        )
        .join('\n');
    case 'invalid_type':
      return `${at}: expected ${issue.expected}${issue.input === undefined ? ' but it is missing' : `, got ${typeof issue.input}`}. Set it to a ${issue.expected}.`;
    case 'invalid_value':
      return `${at}: must be one of ${issue.values.map((v) => JSON.stringify(v)).join(', ')}.`;
    case 'too_small':
      return issue.origin === 'array'
        ? `${at}: list at least ${String(issue.minimum)} item(s).`
        : `${at}: must be ${issue.inclusive ? 'at least' : 'greater than'} ${String(issue.minimum)}.`;
    case 'too_big':
      return `${at}: must be at most ${String(issue.maximum)}.`;
    default:
      return `${at}: ${issue.message}.`;
  }
}

/** Replaces `${VAR}` with the environment's value; a missing variable is an error naming where it was used. */
export function interpolateEnv(value: unknown, env: NodeJS.ProcessEnv, path: PropertyKey[] = []): unknown {
  if (typeof value === 'string') {
    return value.replace(/\$\{([A-Za-z_][A-Za-z0-9_]*)\}/g, (_m, name: string) => {
      const v = env[name];
      if (v === undefined || v === '') {
        throw new ConfigError(
          `${pathOf(path)}: environment variable ${name} is not set. Export ${name} or replace \${${name}} with a value.`,
        );
      }
      return v;
    });
  }
  if (Array.isArray(value)) return value.map((v, i) => interpolateEnv(v, env, [...path, i]));
  if (value && typeof value === 'object') {
    const out: Record<string, unknown> = {};
    for (const [k, v] of Object.entries(value)) {
      if (k === '__proto__' || k === 'constructor' || k === 'prototype') {
        throw new ConfigError(`${pathOf([...path, k])}: this key is not allowed in a config.`);
      }
      out[k] = interpolateEnv(v, env, [...path, k]);
    }
    return out;
  }
  return value;
}

/** Validates a file-shaped config and returns it typed, or throws one ConfigError listing every problem. */
export function validateFileConfig(raw: unknown, env: NodeJS.ProcessEnv = process.env): GatewayFileConfig {
  if (!raw || typeof raw !== 'object' || Array.isArray(raw)) {
    throw new ConfigError('Config must be a mapping with at least a `providers` section.');
  }
  const interpolated = interpolateEnv(raw, env);
  const result = fileConfigSchema.safeParse(interpolated);
  if (!result.success) {
    throw new ConfigError(`Invalid gateway config:\n${result.error.issues.map(describeIssue).join('\n')}`);
  }
  const cfg = result.data as GatewayFileConfig;
  const problems: string[] = [];
  if (Object.keys(cfg.providers).length === 0) {
    problems.push(
      'providers: no provider is configured. Add at least one, e.g. `openai: { api_key: "${OPENAI_API_KEY}", models: ["gpt-4o-mini"] }`.',
    );
  }
  for (const [name, p] of Object.entries(cfg.providers)) {
    if (!p.type && !PROVIDER_TYPES.includes(name as ProviderType)) {
      problems.push(
        `providers.${name}.type: "${name}" is not one of ${PROVIDER_TYPES.join(', ')}; say which API it speaks with \`type: openai\` (or anthropic, gemini, mistral, ollama).`,
      );
    }
    const type = p.type ?? (name as ProviderType);
    const keys = [...(p.api_key ? [p.api_key] : []), ...(p.api_keys ?? [])];
    if (keys.length === 0 && type !== 'ollama') {
      problems.push(
        `providers.${name}.api_key: missing. Set \`api_key: "\${${name.toUpperCase().replace(/[^A-Z0-9]/g, '_')}_API_KEY}"\` or list \`api_keys\`.`,
      );
    }
  }
  problems.push(...routingProblems(cfg));
  problems.push(...authProblems(cfg.auth));
  if (cfg.cache?.backend === 'redis' && !cfg.cache.redis_url) {
    problems.push(
      'cache.redis_url: required when cache.backend is redis. Set e.g. `redis_url: "${REDIS_URL}"` (redis://host:6379).',
    );
  }
  if (problems.length) throw new ConfigError(`Invalid gateway config:\n${problems.join('\n')}`);
  return cfg;
}

/** Reads and validates a YAML config file. */
export function loadConfig(path: string, env: NodeJS.ProcessEnv = process.env): GatewayFileConfig {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (err) {
    throw new ConfigError(
      `Cannot read config file ${path}: ${(err as NodeJS.ErrnoException).code ?? String(err)}.`,
    );
  }
  let raw: unknown;
  try {
    raw = parseYaml(text, { prettyErrors: true });
  } catch (err) {
    throw new ConfigError(`Config file ${path} is not valid YAML: ${(err as Error).message}`);
  }
  try {
    return validateFileConfig(raw, env);
  } catch (err) {
    if (err instanceof ConfigError) throw new ConfigError(`${path}: ${err.message}`);
    throw err;
  }
}

/** Applies defaults and turns the file shape into what the code runs on. */
export function resolveConfig(cfg: GatewayFileConfig): ResolvedConfig {
  const providers: ResolvedProvider[] = Object.entries(cfg.providers).map(([name, p], index) => {
    const type = p.type ?? (name as ProviderType);
    return {
      name,
      type,
      apiKeys: [...(p.api_key ? [p.api_key] : []), ...(p.api_keys ?? [])],
      baseUrl: (p.base_url ?? DEFAULT_BASE_URLS[type]).replace(/\/+$/, ''),
      models: p.models,
      timeoutMs: Math.round((p.timeout_seconds ?? 60) * 1000),
      maxRetries: p.max_retries ?? 2,
      // Without an explicit priority, the order of the file decides.
      priority: p.priority ?? index + 1,
      enabled: p.enabled ?? true,
      defaultMaxTokens: p.default_max_tokens ?? 4096,
      keyStrategy: p.key_strategy ?? 'round_robin',
      headers: p.headers ?? {},
      ...(p.model_map ? { modelMap: p.model_map } : {}),
    };
  });
  providers.sort((a, b) => a.priority - b.priority);
  const rl = cfg.rate_limiting ?? {};
  const cache = cfg.cache ?? {};
  const an = cfg.analytics ?? {};
  return {
    providers,
    rateLimiting: {
      globalRpm: rl.global_rpm,
      perUserRpm: rl.per_user_rpm,
      perModelRpm: rl.per_model_rpm,
      algorithm: rl.algorithm ?? 'token_bucket',
      store: rl.store ?? 'memory',
      redisUrl: rl.redis_url,
      userHeader: (rl.user_header ?? 'x-user-id').toLowerCase(),
      onStoreError: rl.on_store_error ?? 'fail_open',
    },
    cache: {
      backend: cache.backend ?? 'memory',
      redisUrl: cache.redis_url,
      ttlSeconds: cache.ttl_seconds ?? 3600,
      maxCacheSizeMb: cache.max_cache_size_mb ?? 512,
      // full_request by default: a key that ignored max_tokens or stop could serve a cut answer to a request that did not ask for one.
      hashStrategy: cache.hash_strategy ?? 'full_request',
      scope: cache.scope ?? 'global',
      cacheNondeterministic: cache.cache_nondeterministic ?? false,
    },
    analytics: {
      enabled: an.enabled ?? true,
      storage: an.storage ?? 'sqlite',
      sqlitePath: an.sqlite_path ?? 'gateway-analytics.db',
      postgresUrl: an.postgres_url,
      retentionDays: an.retention_days ?? 90,
      dashboardPort: an.dashboard_port ?? 8080,
      batchSize: an.batch_size ?? 100,
      flushIntervalMs: an.flush_interval_ms ?? 1000,
    },
    routing: cfg.routing ? resolveRouting(cfg.routing) : undefined,
    middleware: (cfg.middleware ?? []).map((entry) =>
      typeof entry === 'string'
        ? { name: entry, options: {} }
        : { name: Object.keys(entry)[0]!, options: Object.values(entry)[0] ?? {} },
    ),
    pricing: cfg.pricing ?? {},
    bodyLimit: cfg.server?.body_limit ?? '1mb',
    requestLimits: {
      maxMessages: cfg.server?.max_messages ?? DEFAULT_REQUEST_LIMITS.maxMessages,
      maxContentChars: cfg.server?.max_content_chars ?? DEFAULT_REQUEST_LIMITS.maxContentChars,
    },
    auth: resolveAuth(cfg.auth),
  };
}
