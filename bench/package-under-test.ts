/**
 * Which gateway code the bench measures: by default the compiled package in `dist/` (what users run, built
 * fresh by `ensureBuilt()` so it always matches the sources), or the TypeScript sources through the tsx
 * loader with `BENCH_FROM_SOURCE=1` (no build step; tsx's keepNames transform wraps every closure in a
 * `__name()` call, which costs a little on every request, so its figures are slightly worse).
 */
import { spawnSync } from 'node:child_process';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

export const FROM_SOURCE = process.env.BENCH_FROM_SOURCE === '1';
// BENCH_LIB: another build's lib/, relative to bench/ (`npm run bench:ab` passes its base revision's).
const LIB = process.env.BENCH_LIB ?? (FROM_SOURCE ? '../lib' : '../dist/lib');

let built = FROM_SOURCE;

/** Builds `dist/` once per bench run (a stale build would measure other code than the sources). */
export function ensureBuilt(): void {
  if (built) return;
  const root = join(dirname(fileURLToPath(import.meta.url)), '..');
  const result = spawnSync('npm', ['run', '--silent', 'build'], { cwd: root, stdio: 'inherit' });
  if (result.status !== 0)
    throw new Error('bench: `npm run build` failed; fix the build or set BENCH_FROM_SOURCE=1.');
  built = true;
}

/** The gateway's modules the hosts use, from dist/ or from the sources (typed from the sources either way). */
export async function gatewayModules() {
  const [gateway, router, logger, rateLimit, redisStore, memoryStore] = await Promise.all([
    import(`${LIB}/gateway.js`) as Promise<typeof import('../lib/gateway.js')>,
    import(`${LIB}/router.js`) as Promise<typeof import('../lib/router.js')>,
    import(`${LIB}/logger.js`) as Promise<typeof import('../lib/logger.js')>,
    import(`${LIB}/rate-limit.js`) as Promise<typeof import('../lib/rate-limit.js')>,
    import(`${LIB}/stores/redis-cache-store.js`) as Promise<
      typeof import('../lib/stores/redis-cache-store.js')
    >,
    import(`${LIB}/stores/memory-cache-store.js`) as Promise<
      typeof import('../lib/stores/memory-cache-store.js')
    >,
  ]);
  return {
    Gateway: gateway.Gateway,
    createGatewayRouter: router.createGatewayRouter,
    silentLogger: logger.silentLogger,
    rateLimitingOf: rateLimit.rateLimitingOf,
    RedisCacheStore: redisStore.RedisCacheStore,
    MemoryCacheStore: memoryStore.MemoryCacheStore,
  };
}
