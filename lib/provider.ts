/**
 * `new Provider({...})`: the programmatic way to declare a provider, in camelCase. It converts to the same
 * file-shaped config that YAML produces, so both go through one validation.
 */
import type { ProviderFileConfig, ProviderType } from '../types/index.js';

export interface ProviderOptions {
  name: string;
  type?: ProviderType;
  apiKey?: string;
  apiKeys?: string[];
  baseUrl?: string;
  models: string[];
  priority?: number;
  timeoutSeconds?: number;
  maxRetries?: number;
  enabled?: boolean;
  defaultMaxTokens?: number;
  headers?: Record<string, string>;
  /** Which of this provider's models answers for a model it does not list, when it serves as a fallback. */
  modelMap?: Record<string, string>;
  keyStrategy?: 'round_robin' | 'least_recently_rate_limited';
}

export class Provider {
  readonly name: string;
  constructor(readonly options: ProviderOptions) {
    if (!options || typeof options.name !== 'string' || !options.name) {
      throw new TypeError(
        'new Provider({...}) needs a `name`, e.g. new Provider({ name: "openai", apiKey, models }).',
      );
    }
    this.name = options.name;
  }

  toFileConfig(): ProviderFileConfig {
    const o = this.options;
    const out: ProviderFileConfig = { models: o.models };
    if (o.type !== undefined) out.type = o.type;
    if (o.apiKey !== undefined) out.api_key = o.apiKey;
    if (o.apiKeys !== undefined) out.api_keys = o.apiKeys;
    if (o.baseUrl !== undefined) out.base_url = o.baseUrl;
    if (o.priority !== undefined) out.priority = o.priority;
    if (o.timeoutSeconds !== undefined) out.timeout_seconds = o.timeoutSeconds;
    if (o.maxRetries !== undefined) out.max_retries = o.maxRetries;
    if (o.enabled !== undefined) out.enabled = o.enabled;
    if (o.defaultMaxTokens !== undefined) out.default_max_tokens = o.defaultMaxTokens;
    if (o.headers !== undefined) out.headers = o.headers;
    if (o.modelMap !== undefined) out.model_map = o.modelMap;
    if (o.keyStrategy !== undefined) out.key_strategy = o.keyStrategy;
    return out;
  }
}
