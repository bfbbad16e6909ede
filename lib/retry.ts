/**
 * Retry timing for the route stage: exponential backoff with full jitter, the provider's Retry-After when it
 * gave one (up to a cap), an abortable sleep, and the request's overall deadline.
 *
 * Why not axios-retry: upstream.ts validates every status itself (a 429 is not an axios error), the kind
 * that decides a retry comes from the adapter (Anthropic's 529, Gemini's quota 400), each attempt has its
 * own deadline, and a stream may only be retried before its first chunk. A retry inside
 * axios would see none of that, nor the circuit breaker and the request deadline, so the loop lives in the
 * route stage and this file only computes when to try again.
 */
import type { AbortSource } from './context.js';
import { AbortCallbacks, listenForAbort } from './context.js';
import { GatewayError } from './errors.js';

const BACKOFF_BASE_MS = 200;
const BACKOFF_MAX_MS = 4_000;

/**
 * How long to wait before retry number `retry` (0 for the first retry), or undefined when the provider
 * asked for a longer wait than `maxWaitMs`: then another target is the better bet.
 */
export function retryDelayMs(
  retry: number,
  retryAfterMs: number | undefined,
  maxWaitMs: number,
  random: () => number = Math.random,
): number | undefined {
  if (retryAfterMs !== undefined) return retryAfterMs > maxWaitMs ? undefined : retryAfterMs;
  const ceiling = Math.min(BACKOFF_MAX_MS, BACKOFF_BASE_MS * 2 ** retry);
  // Full jitter: clients that failed together must not retry together.
  return Math.min(maxWaitMs, Math.round(random() * ceiling));
}

/** Resolves after `ms`, or as soon as `signal` aborts (then it resolves false). */
export function sleep(ms: number, signal: AbortSignal | AbortSource): Promise<boolean> {
  if (signal.aborted) return Promise.resolve(false);
  return new Promise((resolve) => {
    const timer = setTimeout(() => {
      stopListening();
      resolve(true);
    }, ms);
    const stopListening = listenForAbort(signal, () => {
      clearTimeout(timer);
      resolve(false);
    });
  });
}

/**
 * The whole request's deadline: an abort source that fires when the client leaves or the time is up, so
 * that every attempt, backoff and fallback shares one clock. Only a timer and callbacks, like each
 * attempt's own cancellation (lib/upstream.ts).
 */
export class Deadline extends AbortCallbacks {
  private readonly timer: NodeJS.Timeout;
  private readonly endsAt: number;
  private timedOut = false;

  constructor(
    private readonly client: AbortSignal | AbortSource,
    readonly timeoutMs: number,
  ) {
    super();
    this.endsAt = performance.now() + timeoutMs;
    this.timer = setTimeout(() => {
      this.timedOut = true;
      this.fire();
    }, timeoutMs);
    this.timer.unref?.();
    // Kept for the stream's lifetime: a client leaving mid-stream must still end the upstream call.
    listenForAbort(client, () => {
      clearTimeout(this.timer);
      this.fire();
    });
  }

  get expired(): boolean {
    return this.timedOut && !this.client.aborted;
  }

  remainingMs(): number {
    return Math.max(0, this.endsAt - performance.now());
  }

  /** Routing is over (an answer or a stream's first chunk): the rest is not bounded by this deadline. */
  stop(): void {
    clearTimeout(this.timer);
  }

  error(attempts: GatewayError['attempts']): GatewayError {
    return new GatewayError(
      'timeout',
      `The request did not complete within ${this.timeoutMs / 1000} s (routing.request_timeout_seconds).`,
      { status: 504, attempts },
    );
  }
}
