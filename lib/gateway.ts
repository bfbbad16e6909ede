/**
 * The Gateway: owns the current config snapshot (runtime) and the ordered stages, and runs them for
 * `chat()` / `chatStream()`. `createGatewayRouter()` mounts the very same stages as Express middlewares,
 * so the programmatic and the HTTP face share one implementation.
 */
import type {
  CacheBackendName,
  CacheStore,
  ChatRequest,
  ChatResponse,
  GatewayFileConfig,
  Logger,
  ProviderFileConfig,
  StreamChunk,
  StreamDone,
} from '../types/index.js';
import { loadConfig, resolveConfig, validateFileConfig } from './config.js';
import { keepRestartOnlySettings, watchConfigFile } from './config-reload.js';
import type { GatewayContext, StreamEvent } from './context.js';
import { createContext, finishContext } from './context.js';
import { ConfigError, GatewayError, toGatewayError } from './errors.js';
import { Analytics } from './analytics/index.js';
import { createDefaultLogger } from './logger.js';
import { analyticsStage } from './middlewares/analytics.js';
import { authStage } from './middlewares/auth.js';
import { bindCredential } from './auth.js';
import { cacheStage } from './middlewares/cache.js';
import { rateLimitStage } from './middlewares/rate-limit.js';
import { configuredMiddlewares, middlewareStage } from './middlewares/middleware-stage.js';
import { routeStage } from './middlewares/route.js';
import { BreakerRegistry } from './breaker.js';
import { routingSettings } from './routing-config.js';
import type { RoutingPolicy } from './routing-policy.js';
import type { Middleware } from './middleware.js';
import { Provider } from './provider.js';
import { GatewayRuntime } from './runtime.js';
import type { Stage } from './stage.js';
import { runStages } from './stage.js';
import { validateChatRequest } from './validations.js';

/** Programmatic options: the file's sections, plus camelCase conveniences and code-only settings. */
export interface GatewayOptions extends Partial<Omit<GatewayFileConfig, 'providers' | 'routing'>> {
  providers: Provider[] | Record<string, ProviderFileConfig>;
  /** The `routing:` section, or `new RoutingPolicy({...})`. */
  routing?: GatewayFileConfig['routing'] | RoutingPolicy;
  /** Circuit breakers by provider name (inject one with a manual clock in tests); kept across reloads. */
  breakers?: BreakerRegistry;
  /** Shorthand for `cache.backend`. */
  cacheBackend?: CacheBackendName;
  /** Shorthand for `cache.ttl_seconds`. */
  cacheTtl?: number;
  /** A store of your own for the cache (any backend but `disabled`); you close it. */
  cacheStore?: CacheStore;
  logger?: Logger;
  /** Stage names or stage objects, in order; default: `defaultPipeline`. */
  pipeline?: (string | Stage)[];
  /** Environment used for `${VAR}` interpolation; default `process.env`. */
  env?: NodeJS.ProcessEnv;
  /** Reload when the config file changes (configs given as a path); default true. */
  watch?: boolean;
}

export type GatewayInput = string | GatewayOptions | GatewayFileConfig;

/** Factories for the named stages a pipeline can list. Later features register theirs here. */
export const stageFactories: Record<string, (gateway: Gateway) => Stage> = {
  auth: (gateway) => authStage(gateway),
  analytics: (gateway) => analyticsStage(gateway),
  rateLimit: (gateway) => rateLimitStage(gateway),
  middleware: (gateway) => middlewareStage(gateway),
  cache: (gateway) => cacheStage(gateway),
  route: (gateway) => routeStage({ breakers: gateway.breakers }),
};

/**
 * The stages, in order, when the config names none. Analytics comes first so that every refusal (bad key,
 * rate limit) is recorded too.
 */
export const defaultPipeline: string[] = ['analytics', 'auth', 'rateLimit', 'middleware', 'cache', 'route'];

export interface CallOptions {
  /** Cancels the call (and the upstream request). */
  signal?: AbortSignal;
  requestId?: string;
  user?: string;
  /**
   * A gateway key (`auth.keys`): the call then gets that key's user, models and limits, or a 401. Without
   * one the call is the host's own code and is trusted.
   */
  apiKey?: string;
}

function toFileConfig(input: Exclude<GatewayInput, string>): GatewayFileConfig {
  const {
    cacheBackend,
    cacheTtl,
    logger: _l,
    pipeline: _p,
    env: _e,
    watch: _w,
    breakers: _b,
    cacheStore: _cs,
    ...rest
  } = input as GatewayOptions;
  const providers = Array.isArray(rest.providers)
    ? Object.fromEntries(
        rest.providers.map((p) => {
          if (!(p instanceof Provider)) {
            throw new ConfigError(
              'providers: an array must hold `new Provider({...})` objects; or pass a mapping as in YAML.',
            );
          }
          return [p.name, p.toFileConfig()];
        }),
      )
    : rest.providers;
  const cache = { ...(rest.cache ?? {}) };
  if (cacheBackend !== undefined) cache.backend = cacheBackend;
  if (cacheTtl !== undefined) cache.ttl_seconds = cacheTtl;
  const out: Record<string, unknown> = { ...rest, providers };
  if (Object.keys(cache).length) out.cache = cache;
  // A RoutingPolicy instance carries its file shape.
  const routing = rest.routing as { toFileConfig?: () => unknown } | undefined;
  if (routing && typeof routing.toFileConfig === 'function') out.routing = routing.toFileConfig();
  return out as unknown as GatewayFileConfig;
}

/** A stream of chunks from `gateway.chatStream()`; `done` resolves with the final usage and cost. */
export interface ChatStream extends AsyncIterable<StreamChunk> {
  readonly done: Promise<StreamDone>;
  readonly requestId: string;
}

export class Gateway {
  readonly logger: Logger;
  /** Provider health; outside the runtime so that a reload keeps it. */
  readonly breakers: BreakerRegistry;
  /** Set when the config came from a file: reload() reads it again. */
  readonly configPath?: string;
  private current: GatewayRuntime;
  private readonly env: NodeJS.ProcessEnv;
  private stageList: Stage[];
  private readonly closers: (() => void | Promise<void>)[] = [];
  /** Middlewares added in code, run after the configured built-ins; change with addMiddleware(). */
  readonly addedMiddlewares: Middleware[] = [];
  /** Usage rows, summaries and Prometheus metrics (`lib/analytics/`). */
  readonly analytics: Analytics;
  /** The host's own cache store (`cacheStore` option), if any. */
  readonly cacheStore?: CacheStore;

  constructor(
    input: GatewayInput,
    gatewayOptions: Partial<Pick<GatewayOptions, 'logger' | 'watch' | 'env' | 'pipeline'>> = {},
  ) {
    const options: Partial<GatewayOptions> =
      typeof input === 'string' ? gatewayOptions : { ...gatewayOptions, ...(input as GatewayOptions) };
    this.logger = options.logger ?? createDefaultLogger();
    this.env = options.env ?? process.env;
    this.breakers = options.breakers ?? new BreakerRegistry();
    this.cacheStore = options.cacheStore;
    if (typeof input === 'string') this.configPath = input;
    this.current = new GatewayRuntime(resolveConfig(this.readConfig(input)), this.logger);
    this.analytics = new Analytics({ current: () => this.current.config.analytics, logger: this.logger });
    this.onClose(() => this.analytics.close());
    this.stageList = this.buildStages(options.pipeline ?? defaultPipeline);
    if (this.configPath && options.watch !== false) {
      const path = this.configPath;
      this.onClose(
        watchConfigFile(path, () => {
          try {
            this.reload();
          } catch (err) {
            // An invalid edit must not take the gateway down: the running config stays.
            this.logger.error(
              { file: path, err: (err as Error).message },
              'Config file changed but is invalid; the running config is kept.',
            );
          }
        }),
      );
    }
  }

  private readConfig(input: GatewayInput): GatewayFileConfig {
    if (typeof input === 'string') return loadConfig(input, this.env);
    if (!input || typeof input !== 'object') {
      throw new ConfigError('Gateway config must be a YAML file path or a config object with `providers`.');
    }
    return validateFileConfig(toFileConfig(input), this.env);
  }

  private buildStages(entries: (string | Stage)[]): Stage[] {
    return entries.map((entry) => {
      if (typeof entry !== 'string') return entry;
      const factory = stageFactories[entry];
      if (!factory) {
        throw new ConfigError(
          `pipeline: unknown stage "${entry}". Known stages: ${Object.keys(stageFactories).join(', ')}.`,
        );
      }
      return factory(this);
    });
  }

  /** The config snapshot new requests run on. */
  get runtime(): GatewayRuntime {
    return this.current;
  }

  get stages(): readonly Stage[] {
    return this.stageList;
  }

  /** Replaces the pipeline (names from `stageFactories` or stage objects). */
  setPipeline(entries: (string | Stage)[]): void {
    this.stageList = this.buildStages(entries);
  }

  /**
   * Validates a new config completely, then swaps it in atomically. Without an argument, re-reads the
   * config file. On any error the running config stays and the error is thrown.
   */
  reload(input?: GatewayInput): void {
    const source = input ?? this.configPath;
    if (source === undefined)
      throw new ConfigError('reload() needs a config: this gateway was not built from a file.');
    const nextConfig = resolveConfig(this.readConfig(source));
    keepRestartOnlySettings(this.current.config, nextConfig, this.logger);
    const next = new GatewayRuntime(nextConfig, this.logger, this.current);
    // Bad middleware options must fail the reload, not the first request after it.
    configuredMiddlewares(next.config);
    const previous = this.current;
    this.current = next;
    previous.closeUnused(next);
    this.logger.info({ providers: next.config.providers.map((p) => p.name) }, 'Gateway config reloaded.');
  }

  /**
   * Adds a request/response middleware (lib/middleware.ts) after the configured built-ins. One with the
   * name of a built-in or of an added middleware takes its place instead.
   */
  addMiddleware(mw: Middleware): this {
    const i = this.addedMiddlewares.findIndex((m) => m.name === mw.name);
    if (i === -1) this.addedMiddlewares.push(mw);
    else this.addedMiddlewares[i] = mw;
    return this;
  }

  /** Removes an added middleware by name; true when one was removed. */
  removeMiddleware(name: string): boolean {
    const i = this.addedMiddlewares.findIndex((m) => m.name === name);
    if (i !== -1) this.addedMiddlewares.splice(i, 1);
    return i !== -1;
  }

  /** Registers cleanup for close() (analytics flush, store connections). */
  onClose(fn: () => void | Promise<void>): void {
    this.closers.push(fn);
  }

  async close(): Promise<void> {
    for (const fn of this.closers.splice(0)) await fn();
    this.current.closeUnused();
  }

  health() {
    return {
      status: 'ok' as const,
      providers: [...this.current.providers.values()].map((p) => ({
        name: p.config.name,
        type: p.config.type,
        enabled: p.config.enabled,
        models: p.config.models,
        // Fingerprints only: a key never leaves the process.
        keys: p.keys.health(),
        circuit: this.breakers.snapshot(p.config.name, routingSettings(this.current.config).breaker),
      })),
    };
  }

  /** Creates the context for one request, as the HTTP face does in parseRequest(). */
  createContext(body: unknown, stream: boolean, options: CallOptions = {}): GatewayContext {
    const warnings: string[] = [];
    const request = validateChatRequest(body, warnings, this.current.config.requestLimits);
    const { apiKey, ...contextOptions } = options;
    const ctx = createContext(this.current, request, { stream, ...contextOptions });
    if (apiKey !== undefined) bindCredential(ctx, { presented: apiKey });
    ctx.warnings.push(...warnings);
    return ctx;
  }

  async chat(request: ChatRequest, options: CallOptions = {}): Promise<ChatResponse> {
    const ctx = this.createContext(request, false, options);
    try {
      await runStages(this.stageList, ctx);
      if (!ctx.response)
        throw new GatewayError('server_error', 'No stage produced a response.', { status: 500 });
      finishContext(ctx, { status: 200, response: ctx.response });
      return ctx.response;
    } catch (err) {
      const error = toGatewayError(err);
      finishContext(ctx, { status: error.status, error });
      throw error;
    }
  }

  chatStream(request: ChatRequest, options: CallOptions = {}): ChatStream {
    const ctx = this.createContext(request, true, options);
    const stages = this.stageList;
    let resolveDone!: (d: StreamDone) => void;
    let rejectDone!: (e: unknown) => void;
    const done = new Promise<StreamDone>((res, rej) => {
      resolveDone = res;
      rejectDone = rej;
    });
    // Nobody may await `done`; an unobserved rejection must not crash the host.
    done.catch(() => {});
    async function* chunks(): AsyncGenerator<StreamChunk> {
      let events: AsyncIterator<StreamEvent> | undefined;
      try {
        await runStages(stages, ctx);
        if (!ctx.streamEvents)
          throw new GatewayError('server_error', 'No stage produced a stream.', { status: 500 });
        events = ctx.streamEvents[Symbol.asyncIterator]();
        for (;;) {
          const { value, done: finished } = await events.next();
          if (finished) break;
          if (value.type === 'chunk') yield value.chunk;
          else resolveDone(value.done);
        }
      } catch (err) {
        const error = toGatewayError(err);
        finishContext(ctx, { status: error.status, error });
        rejectDone(error);
        throw error;
      } finally {
        // A consumer that breaks out early ends the upstream call.
        if (events) await events.return?.(undefined);
        else ctx.abort();
        rejectDone(
          new GatewayError('connection', 'The stream was closed before it completed.', { status: 499 }),
        );
      }
    }
    const iterable = chunks();
    return {
      done,
      requestId: ctx.requestId,
      [Symbol.asyncIterator]: () => iterable,
    };
  }
}
