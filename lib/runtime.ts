/**
 * A runtime is one immutable snapshot of a validated config with everything built from it (adapters,
 * HTTP clients, prices). Each request captures the runtime current when it arrived, so a reload swaps the
 * whole snapshot atomically and in-flight requests finish on the config they started with.
 */
import type { Logger, ResolvedConfig, ResolvedProvider } from '../types/index.js';
import { ConfigError } from './errors.js';
import { PriceBook } from './pricing.js';
import type { ProviderAdapter } from './providers/adapter.js';
import { adapterFor, hasAdapter } from './providers/index.js';
import { UpstreamClient } from './upstream.js';

export interface RuntimeProvider {
  readonly config: ResolvedProvider;
  readonly adapter: ProviderAdapter;
  readonly client: UpstreamClient;
  /** Next key index for round-robin over `api_keys`. */
  keyCursor: number;
}

export class GatewayRuntime {
  readonly providers: ReadonlyMap<string, RuntimeProvider>;
  /** Enabled providers, highest priority first. */
  readonly ordered: readonly RuntimeProvider[];
  readonly prices: PriceBook;
  /** Every provider key, to scrub from anything relayed or logged. */
  readonly secrets: readonly string[];

  constructor(
    readonly config: ResolvedConfig,
    readonly logger: Logger,
    previous?: GatewayRuntime,
  ) {
    const providers = new Map<string, RuntimeProvider>();
    for (const p of config.providers) {
      if (!hasAdapter(p.type)) {
        throw new ConfigError(`providers.${p.name}.type: the ${p.type} adapter is not available in this version.`);
      }
      // Keep the HTTP client (and its warm keep-alive sockets) when the provider's endpoint did not change.
      const old = previous?.providers.get(p.name);
      const client =
        old && old.config.baseUrl === p.baseUrl && old.config.timeoutMs === p.timeoutMs
          ? old.client
          : new UpstreamClient(p);
      client.provider = p;
      providers.set(p.name, { config: p, adapter: adapterFor(p.type), client, keyCursor: 0 });
    }
    this.providers = providers;
    this.ordered = [...providers.values()].filter((p) => p.config.enabled);
    this.prices = PriceBook.withOverrides(config.pricing, logger);
    this.secrets = config.providers.flatMap((p) => p.apiKeys);
  }

  /** Picks the next key round-robin; undefined for providers without keys (local Ollama). */
  nextKey(provider: RuntimeProvider): string | undefined {
    const keys = provider.config.apiKeys;
    if (keys.length === 0) return undefined;
    const key = keys[provider.keyCursor % keys.length];
    provider.keyCursor = (provider.keyCursor + 1) % keys.length;
    return key;
  }

  /** Closes clients that the next runtime does not reuse. */
  closeUnused(next?: GatewayRuntime): void {
    for (const p of this.providers.values()) {
      const reused = next && [...next.providers.values()].some((n) => n.client === p.client);
      if (!reused) p.client.close();
    }
  }
}
