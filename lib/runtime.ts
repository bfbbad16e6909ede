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
import { KeyHealthRegistry, KeyPool } from './key-pool.js';
import { UpstreamClient } from './upstream.js';

export interface RuntimeProvider {
  readonly config: ResolvedProvider;
  readonly adapter: ProviderAdapter;
  readonly client: UpstreamClient;
  /** Rotation over `api_key`/`api_keys`, with the health of each key. */
  readonly keys: KeyPool;
}

export class GatewayRuntime {
  readonly providers: ReadonlyMap<string, RuntimeProvider>;
  /** Enabled providers, highest priority first. */
  readonly ordered: readonly RuntimeProvider[];
  readonly prices: PriceBook;
  /** Every provider key, to scrub from anything relayed or logged. */
  readonly secrets: readonly string[];
  /** Key health, shared with the runtimes before and after this one. */
  readonly keyHealth: KeyHealthRegistry;

  constructor(
    readonly config: ResolvedConfig,
    readonly logger: Logger,
    previous?: GatewayRuntime,
    keyHealth: KeyHealthRegistry = previous?.keyHealth ?? new KeyHealthRegistry(),
  ) {
    this.keyHealth = keyHealth;
    const providers = new Map<string, RuntimeProvider>();
    for (const p of config.providers) {
      if (!hasAdapter(p.type)) {
        throw new ConfigError(
          `providers.${p.name}.type: the ${p.type} adapter is not available in this version.`,
        );
      }
      // Keep the HTTP client (and its warm keep-alive sockets) when the provider's endpoint did not change.
      const old = previous?.providers.get(p.name);
      const client =
        old && old.config.baseUrl === p.baseUrl && old.config.timeoutMs === p.timeoutMs
          ? old.client
          : new UpstreamClient(p);
      client.provider = p;
      const keys = new KeyPool(p.name, p.apiKeys, keyHealth, logger, p.keyStrategy);
      providers.set(p.name, { config: p, adapter: adapterFor(p.type), client, keys });
    }
    this.providers = providers;
    this.ordered = [...providers.values()].filter((p) => p.config.enabled);
    this.prices = PriceBook.withOverrides(config.pricing, logger);
    this.secrets = config.providers.flatMap((p) => p.apiKeys);
  }

  /** The key for the next attempt (see KeyPool); undefined for providers without keys (local Ollama). */
  nextKey(provider: RuntimeProvider): string | undefined {
    return provider.keys.pick();
  }

  /** Closes clients that the next runtime does not reuse. */
  closeUnused(next?: GatewayRuntime): void {
    for (const p of this.providers.values()) {
      const reused = next && [...next.providers.values()].some((n) => n.client === p.client);
      if (!reused) p.client.close();
    }
  }
}
