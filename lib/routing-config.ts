/**
 * The `routing:` section beyond its shape (which the config schema checks): defaults, and the checks that
 * need the providers, such as a policy naming a provider or model that is not configured. Kept apart from
 * lib/config.ts so that the routing rules live in one place.
 */
import type {
  ErrorKind,
  GatewayFileConfig,
  ResolvedConfig,
  ResolvedRoutingPolicy,
  RoutingAliasFileConfig,
  RoutingFileConfig,
} from '../types/index.js';
import { DEFAULT_BREAKER_SETTINGS, type BreakerSettings } from './breaker.js';
import { preloadTokenizer } from './cost-ceiling.js';

export const DEFAULT_FALLBACK_ON: readonly ErrorKind[] = [
  'rate_limit',
  'timeout',
  'server_error',
  'connection',
];
export const DEFAULT_REQUEST_TIMEOUT_MS = 120_000;
/** Waiting longer than this on one provider is worse than trying the next one. */
export const DEFAULT_MAX_RETRY_WAIT_MS = 5_000;
export const DEFAULT_RETRY_BUDGET_MS = 15_000;

/** Everything routing runs on, defaults applied, whether or not the config has a `routing:` section. */
export interface RoutingSettings {
  policy: ResolvedRoutingPolicy;
  aliases: Record<string, ResolvedRoutingPolicy>;
  requestTimeoutMs: number;
  maxRetryWaitMs: number;
  retryBudgetMs: number;
  breaker: BreakerSettings;
}

function resolvePolicy(p: RoutingFileConfig | RoutingAliasFileConfig, inherit?: ResolvedRoutingPolicy) {
  const out: ResolvedRoutingPolicy = {
    primary: p.primary,
    fallbacks: p.fallbacks ?? [],
    fallbackOn: p.fallback_on ?? inherit?.fallbackOn ?? [...DEFAULT_FALLBACK_ON],
  };
  const maxCost = p.max_cost_per_request ?? inherit?.maxCostPerRequest;
  if (maxCost !== undefined) out.maxCostPerRequest = maxCost;
  return out;
}

const seconds = (s: number | undefined) => (s === undefined ? undefined : Math.round(s * 1000));

/** File shape to resolved shape; called by resolveConfig(). */
export function resolveRouting(r: RoutingFileConfig): NonNullable<ResolvedConfig['routing']> {
  const policy = resolvePolicy(r);
  const cb = r.circuit_breaker;
  const ceilings = [
    r.max_cost_per_request,
    ...Object.values(r.aliases ?? {}).map((a) => a.max_cost_per_request),
  ];
  if (ceilings.some((c) => c !== undefined)) preloadTokenizer();
  return {
    ...policy,
    requestTimeoutMs: seconds(r.request_timeout_seconds),
    maxRetryWaitMs: seconds(r.max_retry_wait_seconds),
    retryBudgetMs: seconds(r.retry_budget_seconds),
    circuitBreaker: {
      failureThreshold: cb?.failure_threshold ?? DEFAULT_BREAKER_SETTINGS.failureThreshold,
      windowMs: seconds(cb?.window_seconds) ?? DEFAULT_BREAKER_SETTINGS.windowMs,
      cooldownMs: seconds(cb?.cooldown_seconds) ?? DEFAULT_BREAKER_SETTINGS.cooldownMs,
    },
    aliases: Object.fromEntries(
      Object.entries(r.aliases ?? {}).map(([name, a]) => [name, resolvePolicy(a, policy)]),
    ),
  };
}

const settingsCache = new WeakMap<ResolvedConfig, RoutingSettings>();

/** The routing settings of a config, computed once per config snapshot. */
export function routingSettings(config: ResolvedConfig): RoutingSettings {
  let s = settingsCache.get(config);
  if (s) return s;
  const r = config.routing;
  s = {
    policy: r
      ? {
          primary: r.primary,
          fallbacks: r.fallbacks,
          fallbackOn: r.fallbackOn,
          maxCostPerRequest: r.maxCostPerRequest,
        }
      : { fallbacks: [], fallbackOn: [...DEFAULT_FALLBACK_ON] },
    aliases: r?.aliases ?? {},
    requestTimeoutMs: r?.requestTimeoutMs ?? DEFAULT_REQUEST_TIMEOUT_MS,
    maxRetryWaitMs: r?.maxRetryWaitMs ?? DEFAULT_MAX_RETRY_WAIT_MS,
    retryBudgetMs: r?.retryBudgetMs ?? DEFAULT_RETRY_BUDGET_MS,
    breaker: r?.circuitBreaker ?? { ...DEFAULT_BREAKER_SETTINGS },
  };
  settingsCache.set(config, s);
  return s;
}

/** Splits `provider/model` at the first slash (model names may contain slashes themselves). */
export function splitTarget(target: string): { provider: string; model: string } | undefined {
  const slash = target.indexOf('/');
  if (slash <= 0 || slash === target.length - 1) return undefined;
  return { provider: target.slice(0, slash), model: target.slice(slash + 1) };
}

function targetProblem(cfg: GatewayFileConfig, at: string, target: string): string | undefined {
  const parts = splitTarget(target);
  if (!parts) return `${at}: "${target}" must be written "provider/model", e.g. "openai/gpt-4o".`;
  const provider = cfg.providers[parts.provider];
  if (!provider) {
    return `${at}: "${target}" names provider "${parts.provider}", which is not configured. Configured providers: ${Object.keys(cfg.providers).join(', ')}.`;
  }
  if (!provider.models.includes(parts.model)) {
    return `${at}: "${target}": model "${parts.model}" is not listed in providers.${parts.provider}.models; add it there or fix the name.`;
  }
  return undefined;
}

function policyProblems(
  cfg: GatewayFileConfig,
  at: string,
  p: RoutingFileConfig | RoutingAliasFileConfig,
): string[] {
  const problems: string[] = [];
  if (p.fallbacks?.length && !p.primary)
    problems.push(`${at}.fallbacks: set ${at}.primary too; fallbacks follow it.`);
  if (p.primary !== undefined) {
    const problem = targetProblem(cfg, `${at}.primary`, p.primary);
    if (problem) problems.push(problem);
  }
  (p.fallbacks ?? []).forEach((f, i) => {
    const problem = targetProblem(cfg, `${at}.fallbacks[${i}]`, f);
    if (problem) problems.push(problem);
  });
  return problems;
}

/** Problems that need the providers to be seen; validateFileConfig() reports them with the rest. */
export function routingProblems(cfg: GatewayFileConfig): string[] {
  const problems: string[] = [];
  for (const [name, p] of Object.entries(cfg.providers)) {
    for (const [from, to] of Object.entries(p.model_map ?? {})) {
      if (!p.models.includes(to)) {
        problems.push(
          `providers.${name}.model_map.${from}: "${to}" is not listed in providers.${name}.models; add it there so that it is priced and validated.`,
        );
      }
    }
  }
  const r = cfg.routing;
  if (!r) return problems;
  problems.push(...policyProblems(cfg, 'routing', r));
  for (const [alias, a] of Object.entries(r.aliases ?? {})) {
    if (alias.includes('/'))
      problems.push(`routing.aliases.${alias}: an alias name cannot contain "/"; rename it.`);
    problems.push(...policyProblems(cfg, `routing.aliases.${alias}`, a));
  }
  return problems;
}
