/**
 * V8 settings for a process whose job is serving requests. The CLI applies them to its own process; a host
 * app decides for its own, by calling disablePretenuring() at start (README, "Performance"). The package
 * never changes V8's settings by itself.
 *
 * Allocation-site pretenuring: V8 watches where objects are allocated and, for a site whose objects often
 * survive a young-generation collection (scavenge), allocates the next ones directly in the old
 * generation. A request's objects die with the request, but those allocated in the old generation stay
 * until the next full collection, and until then everything young they point to counts as alive in every
 * scavenge, survives it and is promoted, which makes more sites look long-lived. In an Express + axios
 * process this kept ~8 KB of every request past the next scavenge and made each scavenge pause ~3 ms;
 * without pretenuring the floor promoted ~1 KB per request and paused ~0.6 ms, and the gateway's added p99
 * at one connection went from 3.07 to 1.64 ms (bench/RESULTS.md, "Eighth pass").
 */
import v8 from 'node:v8';

export const PRETENURING_FLAG = '--allocation-site-pretenuring';

/**
 * Turns allocation-site pretenuring off for this process, unless it was started with
 * `--allocation-site-pretenuring` (the operator's explicit choice wins). Returns whether it turned it off.
 * V8 reads the setting at each collection, so it takes effect from the next one.
 */
export function disablePretenuring(execArgv: readonly string[] = process.execArgv): boolean {
  if (execArgv.includes(PRETENURING_FLAG)) return false;
  v8.setFlagsFromString('--no-allocation-site-pretenuring');
  return true;
}
