/**
 * API-key rotation for one provider: round-robin over the healthy keys, a key that got a 401 taken out of
 * rotation, a key that got a 429 rested for its Retry-After. The health of each key lives in a registry
 * owned by the Gateway, keyed by fingerprint, so it survives config reloads (a reload that keeps a revoked
 * key does not resurrect it; a new key starts healthy).
 */
import type { Logger } from '../types/index.js';
import { GatewayError } from './errors.js';
import { fingerprint } from './redact.js';

export type KeyStrategy = 'round_robin' | 'least_recently_rate_limited';

interface KeyState {
  revoked: boolean;
  restUntil: number;
  lastRateLimitedAt: number;
}

/** Where a key's health is filed: by provider and fingerprint, never by the key itself. */
function keyId(provider: string, key: string): string {
  return `${provider}:${fingerprint(key)}`;
}

/** Per-gateway memory of key health, shared by every runtime (config snapshot) of that gateway. */
export class KeyHealthRegistry {
  private readonly states = new Map<string, KeyState>();
  /** The keys of the newest config, per provider: a request still on an older config can switch to them. */
  private readonly latest = new Map<string, readonly string[]>();
  constructor(private readonly now: () => number = Date.now) {}

  stateOf(provider: string, key: string): KeyState {
    return this.stateById(keyId(provider, key));
  }

  /** The state under an id from keyId(): a caller that asks for the same keys over and over keeps the ids. */
  stateById(id: string): KeyState {
    let state = this.states.get(id);
    if (!state) {
      state = { revoked: false, restUntil: 0, lastRateLimitedAt: 0 };
      this.states.set(id, state);
    }
    return state;
  }

  latestKeys(provider: string): readonly string[] {
    return this.latest.get(provider) ?? [];
  }

  clock(): number {
    return this.now();
  }

  /** Forgets keys no longer configured, so the registry does not grow with every rotation. */
  retain(provider: string, keys: readonly string[]): void {
    this.latest.set(provider, keys);
    const keep = new Set(keys.map((k) => keyId(provider, k)));
    for (const id of this.states.keys()) {
      if (id.startsWith(`${provider}:`) && !keep.has(id)) this.states.delete(id);
    }
  }
}

export interface KeyReport {
  fingerprint: string;
  state: 'active' | 'resting' | 'revoked';
  rest_ms?: number;
}

export class KeyPool {
  private cursor = 0;
  // Registry ids by key: fingerprint() hashes the whole key, and every request looks up the same few keys
  // several times. Holds this pool's keys and the newer ones it was asked about.
  private readonly ids = new Map<string, string>();

  constructor(
    readonly provider: string,
    private readonly keys: readonly string[],
    private readonly registry: KeyHealthRegistry,
    private readonly logger: Logger,
    private readonly strategy: KeyStrategy = 'round_robin',
  ) {
    registry.retain(provider, keys);
  }

  get size(): number {
    return this.keys.length;
  }

  /**
   * A key of a newer config than this pool's, after `refused` got a 401: a request that started before a
   * key rotation finishes with the new key instead of failing on the revoked one.
   */
  newerKey(refused: string | undefined): string | undefined {
    return this.registry
      .latestKeys(this.provider)
      .find((k) => k !== refused && !this.keys.includes(k) && !this.stateOf(k).revoked);
  }

  hasUsableKey(): boolean {
    return this.keys.some((k) => !this.stateOf(k).revoked);
  }

  private stateOf(key: string): KeyState {
    let id = this.ids.get(key);
    if (id === undefined) {
      id = keyId(this.provider, key);
      this.ids.set(key, id);
    }
    return this.registry.stateById(id);
  }

  /** The key for the next attempt; undefined for a provider without keys (local Ollama). */
  pick(): string | undefined {
    if (this.keys.length === 0) return undefined;
    const now = this.registry.clock();
    // Runs on every request: one pass that builds no arrays. Ties go to the earlier key.
    let ready = 0;
    let soonestRested: string | undefined;
    let soonestRestUntil = Infinity;
    let leastRateLimited: string | undefined;
    let leastRateLimitedAt = Infinity;
    for (const k of this.keys) {
      const s = this.stateOf(k);
      if (s.revoked) continue;
      if (s.restUntil <= now) {
        ready += 1;
        if (leastRateLimited === undefined || s.lastRateLimitedAt < leastRateLimitedAt) {
          leastRateLimited = k;
          leastRateLimitedAt = s.lastRateLimitedAt;
        }
      } else if (soonestRested === undefined || s.restUntil < soonestRestUntil) {
        soonestRested = k;
        soonestRestUntil = s.restUntil;
      }
    }
    if (ready === 0) {
      if (soonestRested === undefined) {
        throw new GatewayError(
          'authentication',
          `Every API key of ${this.provider} was refused by the provider (401); rotate them in the config.`,
          { provider: this.provider },
        );
      }
      // All resting: the one whose rest ends first is the best bet.
      return soonestRested;
    }
    if (this.strategy === 'least_recently_rate_limited') return leastRateLimited;
    let skip = this.cursor % ready;
    this.cursor = (this.cursor + 1) % ready;
    for (const k of this.keys) {
      const s = this.stateOf(k);
      if (!s.revoked && s.restUntil <= now && skip-- === 0) return k;
    }
    // Not reached: the second pass sees the same `ready` keys as the first.
    return leastRateLimited;
  }

  /** Feeds back how an attempt with `key` went. */
  report(
    key: string | undefined,
    outcome: { kind?: string; upstreamStatus?: number; retryAfterMs?: number },
  ): void {
    if (!key) return;
    const state = this.stateOf(key);
    if (outcome.upstreamStatus === 401) {
      // The last usable key stays in rotation: without it the provider is gone until a reload, and a
      // passing 401 (a provider-side glitch) would turn into a permanent outage.
      const others = this.keys.some((k) => k !== key && !this.stateOf(k).revoked);
      if (!state.revoked && others) {
        state.revoked = true;
        this.logger.warn(
          { provider: this.provider, key: fingerprint(key) },
          `A ${this.provider} API key was refused (401) and is taken out of rotation.`,
        );
      }
    } else if (outcome.kind === 'rate_limit') {
      const now = this.registry.clock();
      state.lastRateLimitedAt = now;
      state.restUntil = now + (outcome.retryAfterMs ?? 1000);
    }
  }

  health(): KeyReport[] {
    const now = this.registry.clock();
    return this.keys.map((k) => {
      const s = this.stateOf(k);
      if (s.revoked) return { fingerprint: fingerprint(k), state: 'revoked' as const };
      if (s.restUntil > now)
        return { fingerprint: fingerprint(k), state: 'resting' as const, rest_ms: s.restUntil - now };
      return { fingerprint: fingerprint(k), state: 'active' as const };
    });
  }
}
