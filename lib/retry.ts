/**
 * Retry timing for the route stage: exponential backoff with full jitter, the provider's Retry-After when it
 * gave one (up to a cap), an abortable sleep, and the request's overall deadline.
 *
 * Why not axios-retry: upstream.ts validates every status itself (a 429 is not an axios error), the kind
 * that decides a retry comes from the adapter (Anthropic's 529, Gemini's quota 400), each attempt has its
 * own AbortController deadline, and a stream may only be retried before its first chunk. A retry inside
 * axios would see none of that, nor the circuit breaker and the request deadline, so the loop lives in the
 * route stage and this file only computes when to try again.
 */
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
export function sleep(ms: number, signal: AbortSignal): Promise<boolean> {
  if (signal.aborted) return Promise.resolve(false);
  return new Promise((resolve) => {
    const done = (completed: boolean) => {
      clearTimeout(timer);
      signal.removeEventListener('abort', onAbort);
      resolve(completed);
    };
    const onAbort = () => done(false);
    const timer = setTimeout(() => done(true), ms);
    signal.addEventListener('abort', onAbort, { once: true });
  });
}

/**
 * The whole request's deadline: a signal that aborts when the client leaves or the time is up, so every
 * attempt, backoff and fallback shares one clock.
 */
export class Deadline {
  private readonly controller = new AbortController();
  private readonly timer: NodeJS.Timeout;
  private readonly endsAt: number;
  private timedOut = false;

  constructor(
    private readonly clientSignal: AbortSignal,
    readonly timeoutMs: number,
  ) {
    this.endsAt = performance.now() + timeoutMs;
    const onClientAbort = () => this.controller.abort();
    if (clientSignal.aborted) onClientAbort();
    // Kept for the stream's lifetime: a client leaving mid-stream must still end the upstream call.
    else clientSignal.addEventListener('abort', onClientAbort, { once: true });
    this.timer = setTimeout(() => {
      this.timedOut = true;
      this.controller.abort();
    }, timeoutMs);
    this.timer.unref?.();
  }

  get signal(): AbortSignal {
    return this.controller.signal;
  }

  get expired(): boolean {
    return this.timedOut && !this.clientSignal.aborted;
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
