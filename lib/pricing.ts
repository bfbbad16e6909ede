/**
 * Prices from pricing.yaml (shipped with the package) plus config overrides, and the one function that
 * turns usage into dollars. A model without a price costs 0 and is warned about once: a missing price must
 * never fail a request.
 */
import { existsSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parse as parseYaml } from 'yaml';
import { z } from 'zod';
import type { Logger, PriceEntry, Usage } from '../types/index.js';
import { ConfigError } from './errors.js';

const priceSchema = z.strictObject({
  input_per_mtok: z.number().nonnegative(),
  output_per_mtok: z.number().nonnegative(),
  cached_input_per_mtok: z.number().nonnegative().optional(),
  cache_write_per_mtok: z.number().nonnegative().optional(),
});

/** Finds pricing.yaml at the package root, whether running from lib/ (sources) or dist/lib/ (built). */
function defaultPricingPath(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  for (let i = 0; i < 4; i++) {
    const candidate = join(dir, 'pricing.yaml');
    if (existsSync(candidate)) return candidate;
    dir = dirname(dir);
  }
  throw new ConfigError('pricing.yaml was not found beside the package; reinstall express-ai-gateway.');
}

export function loadPricingFile(path = defaultPricingPath()): Record<string, PriceEntry> {
  const raw = parseYaml(readFileSync(path, 'utf8')) as unknown;
  if (!raw || typeof raw !== 'object') throw new ConfigError(`${path}: expected a mapping of model prices.`);
  const out: Record<string, PriceEntry> = {};
  for (const [key, value] of Object.entries(raw)) {
    const parsed = priceSchema.safeParse(value);
    if (!parsed.success) {
      throw new ConfigError(
        `${path}: ${key}: ${parsed.error.issues.map((i) => `${i.path.join('.') || 'entry'} ${i.message}`).join('; ')}`,
      );
    }
    out[key] = parsed.data;
  }
  return out;
}

let shippedPrices: Record<string, PriceEntry> | undefined;

export class PriceBook {
  private readonly warned = new Set<string>();

  constructor(
    private readonly prices: Record<string, PriceEntry>,
    private readonly logger?: Logger,
  ) {}

  /** The shipped prices with `overrides` (keyed `provider/model` or `model`) on top. */
  static withOverrides(overrides: Record<string, PriceEntry>, logger?: Logger): PriceBook {
    shippedPrices ??= loadPricingFile();
    return new PriceBook({ ...shippedPrices, ...overrides }, logger);
  }

  /** Looks up by provider name, then provider type, then bare model, then the type's wildcard. */
  priceOf(providerName: string, providerType: string, model: string): PriceEntry | undefined {
    return (
      this.prices[`${providerName}/${model}`] ??
      this.prices[`${providerType}/${model}`] ??
      this.prices[model] ??
      this.prices[`${providerName}/*`] ??
      this.prices[`${providerType}/*`]
    );
  }

  /** Dollars for this usage; cached prompt tokens at their own rate when the model has one. */
  costOf(usage: Usage, providerName: string, providerType: string, model: string): number {
    const price = this.priceOf(providerName, providerType, model);
    if (!price) {
      const key = `${providerName}/${model}`;
      if (!this.warned.has(key)) {
        this.warned.add(key);
        this.logger?.warn(
          { provider: providerName, model },
          `No price for ${providerType}/${model}: its cost is recorded as 0. Add it to pricing.yaml or to the config's \`pricing:\` section.`,
        );
      }
      return 0;
    }
    const cached = usage.cached_prompt_tokens ?? 0;
    const written = usage.cache_creation_tokens ?? 0;
    const uncached = Math.max(0, usage.prompt_tokens - cached - written);
    const micro =
      uncached * price.input_per_mtok +
      cached * (price.cached_input_per_mtok ?? price.input_per_mtok) +
      written * (price.cache_write_per_mtok ?? price.input_per_mtok) +
      usage.completion_tokens * price.output_per_mtok;
    // Round to a billionth of a dollar so sums in analytics do not drift on float noise.
    return Math.round((micro / 1_000_000) * 1e9) / 1e9;
  }
}
