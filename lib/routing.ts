/**
 * Which targets a request may go to, in order, and under which policy.
 *
 * - A model named by `routing.aliases` follows that alias' chain.
 * - The model of `routing.primary` (bare or qualified) follows primary, then fallbacks.
 * - Otherwise the priority chain: every enabled provider listing the model (highest priority first), then
 *   those mapping it through `model_map`, then every other enabled provider with its first listed model.
 * - `provider/model` that no provider lists as such pins that provider: no fallback.
 */
import type { ErrorKind, ResolvedRoutingPolicy } from '../types/index.js';
import { NotFoundError } from './errors.js';
import { routingSettings, splitTarget } from './routing-config.js';
import type { GatewayRuntime, RuntimeProvider } from './runtime.js';

export interface PlannedTarget {
  provider: RuntimeProvider;
  model: string;
}

export interface RoutePlan {
  targets: PlannedTarget[];
  fallbackOn: readonly ErrorKind[];
  maxCostPerRequest?: number;
  /** Where the chain came from, for logs. */
  source: 'alias' | 'policy' | 'priority' | 'pinned';
}

function knownModels(runtime: GatewayRuntime): string {
  const names = runtime.ordered.flatMap((p) => p.config.models.map((m) => `${p.config.name}/${m}`));
  const shown = names.slice(0, 20).join(', ');
  return names.length > 20 ? `${shown}, …` : shown;
}

function policyTargets(
  runtime: GatewayRuntime,
  policy: ResolvedRoutingPolicy,
  name: string,
): PlannedTarget[] {
  const seen = new Set<string>();
  const targets: PlannedTarget[] = [];
  for (const entry of [policy.primary!, ...policy.fallbacks]) {
    const parts = splitTarget(entry);
    const provider = parts && runtime.providers.get(parts.provider);
    // Validation guarantees both exist; a disabled provider is simply left out of the chain.
    if (!parts || !provider?.config.enabled || seen.has(entry)) continue;
    seen.add(entry);
    targets.push({ provider, model: parts.model });
  }
  if (targets.length === 0) {
    throw new NotFoundError(`Every target of the routing policy for "${name}" is on a disabled provider.`);
  }
  return targets;
}

function priorityTargets(runtime: GatewayRuntime, model: string): PlannedTarget[] {
  const direct = runtime.ordered.filter((p) => p.config.models.includes(model));
  const mapped = runtime.ordered.filter(
    (p) => !direct.includes(p) && p.config.modelMap?.[model] !== undefined,
  );
  if (direct.length === 0 && mapped.length === 0) return [];
  const rest = runtime.ordered.filter((p) => !direct.includes(p) && !mapped.includes(p));
  return [
    ...direct.map((provider) => ({ provider, model })),
    ...mapped.map((provider) => ({ provider, model: provider.config.modelMap![model]! })),
    ...rest.map((provider) => ({ provider, model: provider.config.models[0]! })),
  ];
}

function plan(
  policy: ResolvedRoutingPolicy,
  targets: PlannedTarget[],
  source: RoutePlan['source'],
): RoutePlan {
  const out: RoutePlan = { targets, fallbackOn: policy.fallbackOn, source };
  if (policy.maxCostPerRequest !== undefined) out.maxCostPerRequest = policy.maxCostPerRequest;
  return out;
}

/**
 * Plans by runtime and model. A runtime is immutable, so a model's plan never changes within one; the
 * rate limiter and the route stage both ask for it on every request. Only successful plans are kept, and
 * those exist only for models the config names, so a client cannot grow this with made-up model names.
 * Cached plans are frozen: callers read them and never change them.
 */
const planCache = new WeakMap<GatewayRuntime, Map<string, RoutePlan>>();

export function planRoute(runtime: GatewayRuntime, model: string): RoutePlan {
  let plans = planCache.get(runtime);
  const cached = plans?.get(model);
  if (cached) return cached;
  const planned = computePlan(runtime, model);
  Object.freeze(planned.targets);
  Object.freeze(planned);
  if (!plans) planCache.set(runtime, (plans = new Map()));
  plans.set(model, planned);
  return planned;
}

function computePlan(runtime: GatewayRuntime, model: string): RoutePlan {
  const settings = routingSettings(runtime.config);
  const global = settings.policy;
  const alias = Object.hasOwn(settings.aliases, model) ? settings.aliases[model] : undefined;
  if (alias) return plan(alias, policyTargets(runtime, alias, model), 'alias');
  if (global.primary) {
    const primary = splitTarget(global.primary);
    if (model === global.primary || model === primary?.model) {
      return plan(global, policyTargets(runtime, global, model), 'policy');
    }
  }

  const chain = priorityTargets(runtime, model);
  if (chain.length > 0) return plan(global, chain, 'priority');

  const pinned = splitTarget(model);
  if (pinned) {
    const provider = runtime.providers.get(pinned.provider);
    if (provider) {
      if (!provider.config.enabled) {
        throw new NotFoundError(`Provider "${pinned.provider}" is disabled in the gateway config.`);
      }
      if (provider.config.models.includes(pinned.model)) {
        return plan(global, [{ provider, model: pinned.model }], 'pinned');
      }
      throw new NotFoundError(
        `Model "${pinned.model}" is not configured for provider "${pinned.provider}". Add it to providers.${pinned.provider}.models.`,
      );
    }
  }
  const disabled = [...runtime.providers.values()].some(
    (p) => !p.config.enabled && p.config.models.includes(model),
  );
  throw new NotFoundError(
    disabled
      ? `Model "${model}" is only served by disabled providers.`
      : `Model "${model}" is not configured. Known models: ${knownModels(runtime)}.`,
  );
}

/** The targets alone, for callers that do not need the policy. */
export function planTargets(runtime: GatewayRuntime, model: string): PlannedTarget[] {
  return planRoute(runtime, model).targets;
}
