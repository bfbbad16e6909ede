/**
 * The public contract of express-ai-gateway. Everything a user sends, receives or configures is typed here;
 * the implementation in lib/ imports these types and never redefines them.
 */

// ---------------------------------------------------------------------------------------------------------
// Requests and responses
// ---------------------------------------------------------------------------------------------------------

export type Role = 'system' | 'user' | 'assistant' | 'tool';

export interface ToolCall {
  id: string;
  type: 'function';
  function: { name: string; arguments: string };
}

export interface ToolDefinition {
  type: 'function';
  function: { name: string; description?: string; parameters?: Record<string, unknown> };
}

export interface ChatMessage {
  role: Role;
  /** Plain text. `null` only for an assistant message that carries `tool_calls`. */
  content: string | null;
  name?: string;
  /** Assistant messages: the tools the model asked to call. */
  tool_calls?: ToolCall[];
  /** Tool messages: which call this result answers. */
  tool_call_id?: string;
}

export interface ChatRequest {
  /** Bare (`gpt-4o`: the highest-priority provider listing it) or qualified (`openai/gpt-4o`). */
  model: string;
  messages: ChatMessage[];
  max_tokens?: number;
  temperature?: number;
  top_p?: number;
  stop?: string | string[];
  tools?: ToolDefinition[];
  tool_choice?: 'auto' | 'none' | 'required' | { type: 'function'; function: { name: string } };
  /** Identifies the end user for rate limits and analytics. */
  user?: string;
  /** Free-form data for middlewares and analytics; never sent upstream. */
  metadata?: Record<string, unknown>;
  /** Per-request cache control (see the caching docs). */
  cache?: { ttl?: number; bypass?: boolean };
}

export type FinishReason = 'stop' | 'length' | 'tool_calls' | 'content_filter' | 'error' | 'other';

export interface Usage {
  prompt_tokens: number;
  completion_tokens: number;
  total_tokens: number;
  /** Prompt tokens served from the provider's prompt cache (included in prompt_tokens). */
  cached_prompt_tokens?: number;
  /** Prompt tokens written to the provider's prompt cache (Anthropic; included in prompt_tokens). */
  cache_creation_tokens?: number;
}

export interface Attempt {
  provider: string;
  model: string;
  error_kind?: ErrorKind;
  status?: number;
  latency_ms: number;
}

export interface ChatResponse {
  id: string;
  provider: string;
  model: string;
  content: string;
  finish_reason: FinishReason;
  usage: Usage;
  /** US dollars, from pricing.yaml. */
  cost: number;
  latency_ms: number;
  cached: boolean;
  tool_calls?: ToolCall[];
  attempts?: Attempt[];
}

/** One `data:` event of `/chat/stream`, and one item of `gateway.chatStream()`. */
export interface StreamChunk {
  delta: string;
  provider: string;
  model: string;
  tool_calls?: ToolCall[];
}

/** The `event: done` payload of `/chat/stream`. */
export interface StreamDone {
  finish_reason: FinishReason;
  usage: Usage;
  cost: number;
  provider: string;
  model: string;
  latency_ms: number;
  cached?: boolean;
  tool_calls?: ToolCall[];
}

// ---------------------------------------------------------------------------------------------------------
// Errors
// ---------------------------------------------------------------------------------------------------------

export type ErrorKind =
  | 'invalid_request'
  | 'authentication'
  | 'permission'
  | 'not_found'
  | 'payload_too_large'
  | 'rate_limit'
  | 'timeout'
  | 'server_error'
  | 'connection'
  | 'content_filter'
  | 'budget_exceeded'
  | 'all_providers_failed';

/** The body of every error answer: `{"error": {...}}`. */
export interface ErrorBody {
  error: {
    type: ErrorKind;
    message: string;
    provider?: string;
    request_id?: string;
    /** The offending request field, for invalid_request. */
    param?: string;
    /** Why a middleware refused the request, e.g. `prompt_injection`. */
    reason?: string;
    attempts?: Attempt[];
    /** For rate_limit refused by the gateway's own limits: which one. */
    limit?: RateLimitScope;
  };
}

/** The gateway's own rate limits (`rate_limiting` in the config). */
export type RateLimitScope = 'global' | 'user' | 'model';

// ---------------------------------------------------------------------------------------------------------
// Configuration, as users write it (YAML or an object of the same shape: snake_case)
// ---------------------------------------------------------------------------------------------------------

export type ProviderType = 'openai' | 'anthropic' | 'gemini' | 'mistral' | 'ollama';

export interface ProviderFileConfig {
  /** Which adapter speaks to it; defaults to the provider's name when that is one of the five. */
  type?: ProviderType;
  api_key?: string;
  api_keys?: string[];
  /** Means what it means for that provider's official SDK. */
  base_url?: string;
  models: string[];
  timeout_seconds?: number;
  max_retries?: number;
  priority?: number;
  enabled?: boolean;
  /** Anthropic requires max_tokens; this is sent when the client gave none. */
  default_max_tokens?: number;
  /** How `api_keys` are used: in turn, or the one rate-limited longest ago first. */
  key_strategy?: 'round_robin' | 'least_recently_rate_limited';
  headers?: Record<string, string>;
  /**
   * What to ask this provider for when it serves as a fallback for another model, e.g.
   * `{ "gpt-4o": "claude-sonnet-4-20250514" }`; unmapped models fall back to its first listed model.
   */
  model_map?: Record<string, string>;
}

export interface RateLimitingFileConfig {
  global_rpm?: number;
  per_user_rpm?: number;
  per_model_rpm?: number;
  algorithm?: 'token_bucket' | 'fixed_window';
  store?: 'memory' | 'redis';
  redis_url?: string;
  user_header?: string;
  on_store_error?: 'fail_open' | 'fail_closed';
}

export type CacheBackendName = 'memory' | 'redis' | 'disabled';
export type HashStrategy = 'content' | 'content+model' | 'full_request';

export interface CacheFileConfig {
  backend?: CacheBackendName;
  redis_url?: string;
  ttl_seconds?: number;
  max_cache_size_mb?: number;
  hash_strategy?: HashStrategy;
  scope?: 'global' | 'per_user';
  cache_nondeterministic?: boolean;
}

/**
 * Where cached answers live (`cacheStore` option, or the built-in memory/redis backends). Values are opaque
 * strings the gateway writes; `ttlSeconds` 0 means no expiry. Any method may reject or be slow: the gateway
 * bounds every call with a short timeout and then serves the request uncached.
 */
export interface CacheStore {
  get(key: string): Promise<string | undefined>;
  set(key: string, value: string, ttlSeconds: number): Promise<void>;
  delete(key: string): Promise<void>;
  /** Removes every entry this store holds (and only those, on a shared Redis). */
  clear(): Promise<void>;
  close(): Promise<void>;
}

export interface AnalyticsFileConfig {
  enabled?: boolean;
  storage?: 'sqlite' | 'postgres';
  sqlite_path?: string;
  postgres_url?: string;
  retention_days?: number;
  dashboard_port?: number;
  batch_size?: number;
  flush_interval_ms?: number;
}

export interface RoutingFileConfig {
  /** `provider/model`; requests for this model (bare or qualified) follow primary, then fallbacks. */
  primary?: string;
  fallbacks?: string[];
  fallback_on?: ErrorKind[];
  /** US dollars; targets whose worst-case cost exceeds it are skipped (402 budget_exceeded if none fits). */
  max_cost_per_request?: number;
  /** Deadline for a whole request, retries and fallbacks included (streams: until their first chunk). */
  request_timeout_seconds?: number;
  /** Longest Retry-After the gateway waits out on the same provider; a longer one moves on at once. */
  max_retry_wait_seconds?: number;
  /** Most time one provider may take in one request, retries included, before the next target is tried. */
  retry_budget_seconds?: number;
  circuit_breaker?: CircuitBreakerFileConfig;
  /** Named policies: a request for model `fast` follows `aliases.fast`. */
  aliases?: Record<string, RoutingAliasFileConfig>;
}

export interface RoutingAliasFileConfig {
  primary: string;
  fallbacks?: string[];
  fallback_on?: ErrorKind[];
  max_cost_per_request?: number;
}

export interface CircuitBreakerFileConfig {
  failure_threshold?: number;
  window_seconds?: number;
  cooldown_seconds?: number;
}

export type MiddlewareFileEntry = string | Record<string, Record<string, unknown>>;

export interface PriceEntry {
  input_per_mtok: number;
  output_per_mtok: number;
  cached_input_per_mtok?: number;
  cache_write_per_mtok?: number;
}

/** One gateway access key: exactly one of `key` (hashed at load) or `key_sha256`. */
export interface AuthKeyFileConfig {
  key?: string;
  key_sha256?: string;
  user: string;
  /** Models this key may use (bare, `provider/model` or alias names); absent: every model. */
  models?: string[];
  /** Requests per minute for this key, read by the rate limiter. */
  rpm?: number;
  /** Daily spend for this key, in US dollars (`ctx.locals.budgetUsdPerDay`). */
  budget_usd_per_day?: number;
}

export interface AuthFileConfig {
  keys?: AuthKeyFileConfig[];
  admin_keys?: string[];
  admin_keys_sha256?: string[];
  /** Guard /stats, /metrics, /dashboard and /admin with admin keys; default true. */
  protect_admin_routes?: boolean;
  /** With user keys but no admin key, admit anyone to the admin routes; default false (refused). */
  admin_open?: boolean;
}

export interface GatewayFileConfig {
  providers: Record<string, ProviderFileConfig>;
  rate_limiting?: RateLimitingFileConfig;
  cache?: CacheFileConfig;
  analytics?: AnalyticsFileConfig;
  routing?: RoutingFileConfig;
  middleware?: MiddlewareFileEntry[];
  /** Per-model price overrides, keyed `provider/model` or `model`. */
  pricing?: Record<string, PriceEntry>;
  server?: {
    body_limit?: string;
    port?: number;
    /** Most messages one request may carry (default 1000). */
    max_messages?: number;
    /** Most characters one message's content may have (default 1,000,000). */
    max_content_chars?: number;
  };
  /** Gateway access keys and admin keys (see the README's Security section). */
  auth?: AuthFileConfig;
}

// ---------------------------------------------------------------------------------------------------------
// Resolved configuration: what the code runs on (camelCase, defaults applied, validated)
// ---------------------------------------------------------------------------------------------------------

export interface ResolvedProvider {
  name: string;
  type: ProviderType;
  apiKeys: string[];
  baseUrl: string;
  models: string[];
  timeoutMs: number;
  maxRetries: number;
  priority: number;
  enabled: boolean;
  defaultMaxTokens: number;
  headers: Record<string, string>;
  keyStrategy?: 'round_robin' | 'least_recently_rate_limited';
  /** From `model_map`; absent means none. */
  modelMap?: Record<string, string>;
}

/** One routing chain, resolved: the whole config's, or one alias'. */
export interface ResolvedRoutingPolicy {
  primary?: string;
  fallbacks: string[];
  fallbackOn: ErrorKind[];
  maxCostPerRequest?: number;
}

export interface ResolvedAuthKey {
  /** Public id (for revocation and logs), derived from the digest. */
  id: string;
  /** SHA-256 of the key, hex. */
  sha256: string;
  user: string;
  models?: string[];
  rpm?: number;
  budgetUsdPerDay?: number;
}

export interface ResolvedConfig {
  providers: ResolvedProvider[];
  rateLimiting: {
    globalRpm?: number;
    perUserRpm?: number;
    perModelRpm?: number;
    algorithm: 'token_bucket' | 'fixed_window';
    store: 'memory' | 'redis';
    redisUrl?: string;
    userHeader: string;
    onStoreError: 'fail_open' | 'fail_closed';
  };
  cache: {
    backend: CacheBackendName;
    redisUrl?: string;
    ttlSeconds: number;
    maxCacheSizeMb: number;
    hashStrategy: HashStrategy;
    scope: 'global' | 'per_user';
    cacheNondeterministic: boolean;
  };
  analytics: {
    enabled: boolean;
    storage: 'sqlite' | 'postgres';
    sqlitePath: string;
    postgresUrl?: string;
    retentionDays: number;
    dashboardPort: number;
    batchSize: number;
    flushIntervalMs: number;
  };
  routing?: ResolvedRoutingPolicy & {
    requestTimeoutMs?: number;
    maxRetryWaitMs?: number;
    retryBudgetMs?: number;
    circuitBreaker?: { failureThreshold: number; windowMs: number; cooldownMs: number };
    aliases?: Record<string, ResolvedRoutingPolicy>;
  };
  middleware: { name: string; options: Record<string, unknown> }[];
  pricing: Record<string, PriceEntry>;
  bodyLimit: string;
  /** From `server.max_messages` / `server.max_content_chars`. */
  requestLimits: { maxMessages: number; maxContentChars: number };
  /** Digests only: a plain key never reaches the resolved config. */
  auth: {
    keys: ResolvedAuthKey[];
    adminKeysSha256: string[];
    protectAdminRoutes: boolean;
    adminOpen: boolean;
  };
}

/** A minimal logger; pino, console and most loggers fit. */
export interface Logger {
  info(obj: unknown, msg?: string): void;
  warn(obj: unknown, msg?: string): void;
  error(obj: unknown, msg?: string): void;
  debug?(obj: unknown, msg?: string): void;
}
