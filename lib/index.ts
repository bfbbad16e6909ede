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
export { routeStage } from './middlewares/route.js';
export { toExpress, runStages } from './stage.js';
export type { Stage } from './stage.js';
export type { GatewayContext, RequestOutcome, StreamEvent } from './context.js';

// Config, pricing and errors.
export { loadConfig, validateFileConfig, resolveConfig, DEFAULT_BASE_URLS } from './config.js';
export { PriceBook, loadPricingFile } from './pricing.js';
export { GatewayError, InvalidRequestError, NotFoundError, ConfigError } from './errors.js';
export { createDefaultLogger, silentLogger } from './logger.js';

// Provider adapters, for hosts that want the translation without the gateway.
export type { ProviderAdapter, Target, AdapterResult, StreamPart } from './providers/adapter.js';

export type * from '../types/index.js';
