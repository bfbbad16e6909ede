/**
 * Circuit breakers, one per provider name. A provider that keeps failing with retryable errors is skipped
 * for a cooldown instead of costing every request a timeout; after the cooldown one probe request decides
 * whether it is back. The registry lives on the Gateway, not in a runtime, so that a config reload does not
 * forget that a provider is down.
 */

export type BreakerState = 'closed' | 'open' | 'half_open';

export interface BreakerSettings {
  /** Failures in a row (within `windowMs`) that open the circuit. */
  failureThreshold: number;
  /** Failures older than this no longer count. */
  windowMs: number;
  /** How long an open circuit refuses calls before it lets one probe through. */
  cooldownMs: number;
}

export const DEFAULT_BREAKER_SETTINGS: Readonly<BreakerSettings> = {
  failureThreshold: 5,
  windowMs: 30_000,
  cooldownMs: 30_000,
};

/** What a caller learns from reporting a result: whether the state changed, for logging. */
export type BreakerTransition = 'opened' | 'closed' | undefined;

export interface BreakerSnapshot {
  state: BreakerState;
  /** Failures currently counted towards opening. */
  recent_failures: number;
  /** Open circuits: milliseconds until a probe is allowed. */
  retry_in_ms?: number;
}

export class CircuitBreaker {
  private failures: number[] = [];
  private openedAt: number | undefined;
  private probing = false;

  constructor(private readonly clock: () => number) {}

  state(settings: BreakerSettings): BreakerState {
    if (this.openedAt === undefined) return 'closed';
    return this.clock() - this.openedAt >= settings.cooldownMs ? 'half_open' : 'open';
  }

  /**
   * Asks to make one call. A closed circuit always says yes; an open one says no until its cooldown ends;
   * then exactly one caller gets the probe and the others keep skipping until it reports back.
   */
  tryAcquire(settings: BreakerSettings): boolean {
    const state = this.state(settings);
    if (state === 'closed') return true;
    if (state === 'open' || this.probing) return false;
    this.probing = true;
    return true;
  }

  /** A call made although the circuit is open (every target was open): it acts as the probe. */
  forceAcquire(): void {
    if (this.openedAt !== undefined) this.probing = true;
  }

  /** When the next probe is allowed; 0 for a closed circuit. */
  reopensAt(settings: BreakerSettings): number {
    return this.openedAt === undefined ? 0 : this.openedAt + settings.cooldownMs;
  }

  /** The provider answered (any non-retryable outcome counts: a 400 still proves it is up). */
  onSuccess(): BreakerTransition {
    const wasOpen = this.openedAt !== undefined;
    this.failures = [];
    this.openedAt = undefined;
    this.probing = false;
    return wasOpen ? 'closed' : undefined;
  }

  /** A retryable failure (rate limit, timeout, 5xx, connection). */
  onFailure(settings: BreakerSettings): BreakerTransition {
    const now = this.clock();
    if (this.openedAt !== undefined) {
      // A failed probe (or a call that started before the circuit opened) restarts the cooldown.
      const wasProbe = this.probing;
      this.probing = false;
      if (wasProbe) this.openedAt = now;
      return undefined;
    }
    this.failures = this.failures.filter((t) => now - t < settings.windowMs);
    this.failures.push(now);
    if (this.failures.length >= settings.failureThreshold) {
      this.openedAt = now;
      this.failures = [];
      return 'opened';
    }
    return undefined;
  }

  /** The call ended without a verdict (the client left): frees the probe slot, changes nothing else. */
  release(): void {
    this.probing = false;
  }

  snapshot(settings: BreakerSettings): BreakerSnapshot {
    const state = this.state(settings);
    const now = this.clock();
    const recent = this.failures.filter((t) => now - t < settings.windowMs).length;
    return state === 'open'
      ? { state, recent_failures: recent, retry_in_ms: Math.max(0, this.reopensAt(settings) - now) }
      : { state, recent_failures: recent };
  }
}

export interface BreakerRegistryOptions {
  /** Milliseconds clock; tests inject a manual one. Default `Date.now`. */
  clock?: () => number;
}

/** Breakers by provider name, created on first use. */
export class BreakerRegistry {
  private readonly breakers = new Map<string, CircuitBreaker>();
  readonly clock: () => number;

  constructor(options: BreakerRegistryOptions = {}) {
    if (options.clock !== undefined && typeof options.clock !== 'function') {
      throw new TypeError(
        'new BreakerRegistry({ clock }): `clock` must be a function returning milliseconds.',
      );
    }
    this.clock = options.clock ?? Date.now;
  }

  for(provider: string): CircuitBreaker {
    let breaker = this.breakers.get(provider);
    if (!breaker) {
      breaker = new CircuitBreaker(this.clock);
      this.breakers.set(provider, breaker);
    }
    return breaker;
  }

  snapshot(provider: string, settings: BreakerSettings): BreakerSnapshot {
    return this.breakers.get(provider)?.snapshot(settings) ?? { state: 'closed', recent_failures: 0 };
  }
}
