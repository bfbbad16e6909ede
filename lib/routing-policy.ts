/**
 * `new RoutingPolicy({...})`: the programmatic, camelCase way to write the `routing:` section. It converts
 * to the file shape, so a policy from code and one from YAML go through the same validation (which checks
 * that its targets name configured providers and models).
 */
import type { ErrorKind, RoutingAliasFileConfig, RoutingFileConfig } from '../types/index.js';
import { ERROR_KINDS } from './errors.js';

const KINDS: readonly ErrorKind[] = ERROR_KINDS;

export interface AliasPolicyOptions {
  /** `provider/model`, e.g. `openai/gpt-4o`. */
  primary: string;
  fallbacks?: string[];
  fallbackOn?: ErrorKind[];
  maxCostPerRequest?: number;
}

export interface RoutingPolicyOptions {
  /** `provider/model`; requests for this model follow `primary`, then `fallbacks` in order. */
  primary?: string;
  fallbacks?: string[];
  /** Error kinds that move on to the next target; others are returned at once. */
  fallbackOn?: ErrorKind[];
  /** US dollars; see the README's cost ceiling section. */
  maxCostPerRequest?: number;
  requestTimeoutSeconds?: number;
  maxRetryWaitSeconds?: number;
  retryBudgetSeconds?: number;
  circuitBreaker?: { failureThreshold?: number; windowSeconds?: number; cooldownSeconds?: number };
  /** Named policies: a request for model `fast` follows `aliases.fast`. */
  aliases?: Record<string, AliasPolicyOptions>;
}

function fail(message: string): never {
  throw new TypeError(`new RoutingPolicy({...}): ${message}`);
}

function checkTarget(at: string, value: unknown): void {
  if (typeof value !== 'string' || !/^[^/]+\/.+$/.test(value)) {
    fail(`${at} must be a "provider/model" string such as "openai/gpt-4o"; got ${JSON.stringify(value)}.`);
  }
}

function checkPolicy(at: string, o: Partial<AliasPolicyOptions>): void {
  if (o.primary !== undefined) checkTarget(`${at}primary`, o.primary);
  if (o.fallbacks !== undefined) {
    if (!Array.isArray(o.fallbacks)) fail(`${at}fallbacks must be an array of "provider/model" strings.`);
    o.fallbacks.forEach((f, i) => checkTarget(`${at}fallbacks[${i}]`, f));
    if (o.fallbacks.length && o.primary === undefined) fail(`${at}fallbacks need a ${at}primary to follow.`);
  }
  if (o.fallbackOn !== undefined) {
    if (!Array.isArray(o.fallbackOn)) fail(`${at}fallbackOn must be an array of error kinds.`);
    for (const k of o.fallbackOn) {
      if (!KINDS.includes(k))
        fail(`${at}fallbackOn: "${String(k)}" is not an error kind. Use: ${KINDS.join(', ')}.`);
    }
  }
  if (
    o.maxCostPerRequest !== undefined &&
    !(typeof o.maxCostPerRequest === 'number' && o.maxCostPerRequest > 0)
  ) {
    fail(`${at}maxCostPerRequest must be a positive number of US dollars, e.g. 0.05.`);
  }
}

function checkSeconds(name: string, v: unknown, allowZero: boolean): void {
  if (v === undefined) return;
  if (typeof v !== 'number' || !Number.isFinite(v) || v < 0 || (!allowZero && v === 0)) {
    fail(`${name} must be a ${allowZero ? 'non-negative' : 'positive'} number of seconds.`);
  }
}

function aliasToFile(a: AliasPolicyOptions): RoutingAliasFileConfig {
  const out: RoutingAliasFileConfig = { primary: a.primary };
  if (a.fallbacks !== undefined) out.fallbacks = a.fallbacks;
  if (a.fallbackOn !== undefined) out.fallback_on = a.fallbackOn;
  if (a.maxCostPerRequest !== undefined) out.max_cost_per_request = a.maxCostPerRequest;
  return out;
}

export class RoutingPolicy {
  constructor(readonly options: RoutingPolicyOptions = {}) {
    if (!options || typeof options !== 'object')
      fail('pass an options object, e.g. { primary: "openai/gpt-4o" }.');
    checkPolicy('', options);
    checkSeconds('requestTimeoutSeconds', options.requestTimeoutSeconds, false);
    checkSeconds('maxRetryWaitSeconds', options.maxRetryWaitSeconds, true);
    checkSeconds('retryBudgetSeconds', options.retryBudgetSeconds, true);
    const cb = options.circuitBreaker;
    if (cb) {
      if (
        cb.failureThreshold !== undefined &&
        !(Number.isInteger(cb.failureThreshold) && cb.failureThreshold > 0)
      ) {
        fail('circuitBreaker.failureThreshold must be a positive integer.');
      }
      checkSeconds('circuitBreaker.windowSeconds', cb.windowSeconds, false);
      checkSeconds('circuitBreaker.cooldownSeconds', cb.cooldownSeconds, false);
    }
    for (const [name, a] of Object.entries(options.aliases ?? {})) {
      if (!a || typeof a.primary !== 'string') fail(`aliases.${name} needs a primary "provider/model".`);
      checkPolicy(`aliases.${name}.`, a);
    }
  }

  /** The `routing:` section this policy stands for. */
  toFileConfig(): RoutingFileConfig {
    const o = this.options;
    const out: RoutingFileConfig = {};
    if (o.primary !== undefined) out.primary = o.primary;
    if (o.fallbacks !== undefined) out.fallbacks = o.fallbacks;
    if (o.fallbackOn !== undefined) out.fallback_on = o.fallbackOn;
    if (o.maxCostPerRequest !== undefined) out.max_cost_per_request = o.maxCostPerRequest;
    if (o.requestTimeoutSeconds !== undefined) out.request_timeout_seconds = o.requestTimeoutSeconds;
    if (o.maxRetryWaitSeconds !== undefined) out.max_retry_wait_seconds = o.maxRetryWaitSeconds;
    if (o.retryBudgetSeconds !== undefined) out.retry_budget_seconds = o.retryBudgetSeconds;
    if (o.circuitBreaker) {
      const cb = o.circuitBreaker;
      out.circuit_breaker = {};
      if (cb.failureThreshold !== undefined) out.circuit_breaker.failure_threshold = cb.failureThreshold;
      if (cb.windowSeconds !== undefined) out.circuit_breaker.window_seconds = cb.windowSeconds;
      if (cb.cooldownSeconds !== undefined) out.circuit_breaker.cooldown_seconds = cb.cooldownSeconds;
    }
    if (o.aliases) {
      out.aliases = Object.fromEntries(Object.entries(o.aliases).map(([k, a]) => [k, aliasToFile(a)]));
    }
    return out;
  }
}
