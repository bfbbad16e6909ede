// The public API. This file only re-exports; each piece lives in its own file.

// The two faces: an Express router, and the programmatic gateway running the same stages.
export { createGatewayRouter } from './router.js';
export type { GatewayRouter, PipelineEntry, RouterOptions } from './router.js';
export { Gateway, defaultPipeline, stageFactories } from './gateway.js';
export type { CallOptions, ChatStream, GatewayInput, GatewayOptions } from './gateway.js';
export { Provider } from './provider.js';
export type { ProviderOptions } from './provider.js';

// The pieces a host composes into its own router.
export { parseRequest } from './middlewares/parse-request.js';
export { respond } from './middlewares/respond.js';
export { errorHandler } from './middlewares/error-handler.js';
export { gatewayAuth, adminAuth, authStage } from './middlewares/auth.js';
export { adminKeys } from './middlewares/admin-keys.js';
export { jsonBody } from './middlewares/json-body.js';
export type { AuthIdentity } from './auth.js';
export { hardenServer } from './server-timeouts.js';
export type { ServerTimeouts } from './server-timeouts.js';
export { createExpressServer } from './express-server.js';
export { disablePretenuring } from './v8-tuning.js';
export { routeStage } from './middlewares/route.js';
export type { RouteStageOptions } from './middlewares/route.js';
export { RoutingPolicy } from './routing-policy.js';
export type { RoutingPolicyOptions, AliasPolicyOptions } from './routing-policy.js';
export { BreakerRegistry, CircuitBreaker } from './breaker.js';
export type { BreakerRegistryOptions, BreakerSettings, BreakerSnapshot, BreakerState } from './breaker.js';
export { analyticsStage } from './middlewares/analytics.js';
// Request/response middlewares and the built-ins the config can name.
export { Middleware } from './middleware.js';
export type { ChunkResult, CommonMiddlewareOptions } from './middleware.js';
export { middlewareStage, builtinMiddlewares } from './middlewares/middleware-stage.js';
export { PIIScrubber } from './middlewares/pii-scrubber.js';
export type { PIIScrubberOptions } from './middlewares/pii-scrubber.js';
export { RequestLogger } from './middlewares/request-logger.js';
export type { RequestLoggerOptions } from './middlewares/request-logger.js';
export { PromptInjectionDetector, PROMPT_INJECTION_HEADER } from './middlewares/prompt-injection.js';
export type { PromptInjectionOptions, PromptInjectionResult } from './middlewares/prompt-injection.js';
export { findPII, scrubPII, PII_TYPES } from './pii-detectors.js';
export type { PIIType, PIIMatch } from './pii-detectors.js';
export { scoreInjection } from './injection-patterns.js';
export { stats } from './middlewares/stats.js';
export { statsRecent } from './middlewares/stats-recent.js';
export { metrics } from './middlewares/metrics.js';
export { dashboard, dashboardCredentials, dashboardOverview } from './dashboard/index.js';
export type { DashboardOptions, DashboardOverview } from './dashboard/index.js';
export { startDashboardServer, dashboardApp } from './dashboard/server.js';
export type { DashboardServer, DashboardServerOptions } from './dashboard/server.js';
export { Analytics } from './analytics/index.js';
export type {
  AnalyticsDisabled,
  AnalyticsRow,
  AnalyticsSummary,
  Breakdown,
  Bucket,
  Period,
  RecentQuery,
  RecentRequest,
  RecentRequests,
  StatsQuery,
  Timeseries,
  TimeseriesPoint,
  TimeseriesQuery,
  UpstreamBreakdown,
} from './analytics/index.js';
export { cacheStage, cacheMiddleware } from './middlewares/cache.js';
export type { CacheStageOptions } from './middlewares/cache.js';
export { MemoryCacheStore } from './stores/memory-cache-store.js';
export type { MemoryCacheStoreOptions } from './stores/memory-cache-store.js';
export { RedisCacheStore } from './stores/redis-cache-store.js';
export type { RedisCacheStoreOptions } from './stores/redis-cache-store.js';
export { cacheKeyOf, canonicalJson } from './cache-key.js';
export { rateLimitStage } from './middlewares/rate-limit.js';
export type { RateLimitStageOptions } from './middlewares/rate-limit.js';
export { globalRateLimit, userRateLimit, modelRateLimit } from './middlewares/rate-limiters.js';
export type { RateLimiterOptions } from './middlewares/rate-limiters.js';
export { rateLimitingOf, RateLimiting } from './rate-limit.js';
export type { LimitStore, RateLimitingOptions } from './rate-limit.js';
export { TokenBucketMemoryStore } from './stores/token-bucket-memory.js';
export type { TokenBucketOptions } from './stores/token-bucket-memory.js';
export { TokenBucketRedisStore } from './stores/token-bucket-redis.js';
export type { SendCommand, TokenBucketRedisOptions } from './stores/token-bucket-redis.js';
export { toExpress, runStages } from './stage.js';
export type { Stage } from './stage.js';
export type { GatewayContext, RequestOutcome, StreamEvent } from './context.js';
// For hosts that write their own response step: report the outcome (analytics, cache store, logs) once.
export { finishContext, applyResponseHooks } from './context.js';

// Config, pricing and errors.
export { loadConfig, validateFileConfig, resolveConfig, DEFAULT_BASE_URLS } from './config.js';
export { PriceBook, loadPricingFile } from './pricing.js';
export { GatewayError, InvalidRequestError, NotFoundError, ConfigError } from './errors.js';
export { createDefaultLogger, silentLogger } from './logger.js';

// Provider adapters, for hosts that want the translation without the gateway.
export type { ProviderAdapter, Target, AdapterResult, StreamPart } from './providers/adapter.js';

export type * from '../types/index.js';
