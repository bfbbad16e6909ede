/**
 * The `middleware` stage: runs the gateway's request/response middlewares (lib/middleware.ts). The list is
 * the built-ins the config names, in config order, then those added with `gateway.addMiddleware()`; an
 * added middleware with a built-in's name takes its place. Built-ins are built once per config snapshot,
 * so a reload with new options takes effect for new requests while in-flight ones keep theirs.
 */
import type { ResolvedConfig } from '../../types/index.js';
import { ConfigError } from '../errors.js';
import type { Gateway } from '../gateway.js';
import type { Middleware } from '../middleware.js';
import { runMiddlewares } from '../middleware.js';
import type { Stage } from '../stage.js';
import { PIIScrubber } from './pii-scrubber.js';
import { PromptInjectionDetector } from './prompt-injection.js';
import { RequestLogger } from './request-logger.js';

/** Built-in middlewares the config can name. Hosts may register their own here. */
export const builtinMiddlewares: Record<string, (options: Record<string, unknown>) => Middleware> = {
  pii_scrubber: (options) => new PIIScrubber(options),
  request_logger: (options) => new RequestLogger(options),
  prompt_injection_detector: (options) => new PromptInjectionDetector(options),
};

const built = new WeakMap<ResolvedConfig, Middleware[]>();

/** The config's built-ins, built (and their options validated) once per config snapshot. */
export function configuredMiddlewares(config: ResolvedConfig): Middleware[] {
  let list = built.get(config);
  if (list) return list;
  list = config.middleware.map(({ name, options }, i) => {
    const factory = Object.hasOwn(builtinMiddlewares, name) ? builtinMiddlewares[name] : undefined;
    if (!factory) {
      throw new ConfigError(
        `middleware[${i}]: unknown middleware "${name}". Built-ins: ${Object.keys(builtinMiddlewares).join(', ')}; add your own in code with gateway.addMiddleware().`,
      );
    }
    try {
      return factory(options ?? {});
    } catch (err) {
      if (err instanceof ConfigError) throw new ConfigError(`middleware[${i}]: ${err.message}`);
      throw err;
    }
  });
  built.set(config, list);
  return list;
}

/** Built-ins in config order (an added middleware of the same name replaces one in place), then the rest. */
export function effectiveMiddlewares(config: ResolvedConfig, added: readonly Middleware[]): Middleware[] {
  const builtins = configuredMiddlewares(config);
  if (!added.length) return builtins;
  const byName = new Map(added.map((mw) => [mw.name, mw]));
  const list = builtins.map((mw) => byName.get(mw.name) ?? mw);
  for (const mw of added) if (!list.includes(mw)) list.push(mw);
  return list;
}

export function middlewareStage(gateway: Gateway): Stage {
  // Fails the gateway's construction, not its first request, on unknown names or bad options.
  configuredMiddlewares(gateway.runtime.config);
  return {
    name: 'middleware',
    run: (ctx) => runMiddlewares(effectiveMiddlewares(ctx.runtime.config, gateway.addedMiddlewares), ctx),
  };
}
