/**
 * Tests that need a real service (PostgreSQL, Redis) call `requireService()` in a `before` hook. When the
 * service is absent the suite is skipped with a loud message on a developer machine, and FAILS when the `CI`
 * environment variable is set: CI must never go green by skipping.
 */
import net from 'node:net';
import pg from 'pg';

export const POSTGRES_URL = process.env.TEST_POSTGRES_URL ?? 'postgres://postgres@127.0.0.1:5432/test';
export const REDIS_URL = process.env.TEST_REDIS_URL ?? 'redis://127.0.0.1:6379';

const probes = new Map<string, Promise<string | undefined>>();

/** Resolves undefined when PostgreSQL answers a query at `url`, else the reason it does not. */
export function probePostgres(url = POSTGRES_URL): Promise<string | undefined> {
  return memo(`postgres ${url}`, async () => {
    const client = new pg.Client({ connectionString: url, connectionTimeoutMillis: 2000 });
    try {
      await client.connect();
      await client.query('SELECT 1');
      return undefined;
    } finally {
      await client.end().catch(() => {});
    }
  });
}

/** Resolves undefined when Redis answers PING at `url`, else the reason it does not. */
export function probeRedis(url = REDIS_URL): Promise<string | undefined> {
  return memo(`redis ${url}`, () => {
    const { hostname, port } = new URL(url);
    return new Promise<undefined>((resolve, reject) => {
      const socket = net.connect({ host: hostname, port: Number(port || 6379) });
      socket.setTimeout(2000, () => socket.destroy(new Error('no answer within 2s')));
      socket.on('connect', () => socket.write('PING\r\n'));
      socket.on('data', (d) => {
        socket.destroy();
        if (d.toString().startsWith('+PONG')) resolve(undefined);
        else reject(new Error(`unexpected answer ${JSON.stringify(d.toString().slice(0, 40))}`));
      });
      socket.on('error', reject);
    });
  });
}

function memo(key: string, probe: () => Promise<undefined>): Promise<string | undefined> {
  let p = probes.get(key);
  if (!p) {
    p = probe().then(
      () => undefined,
      (err: unknown) => (err instanceof Error ? err.message : String(err)) || 'unreachable',
    );
    probes.set(key, p);
  }
  return p;
}

/**
 * Skips the current suite or test when `probe` reports the service missing, or throws under CI.
 * Use in `before`/`beforeEach` with a `function () {}` so that `this` is mocha's context.
 */
export async function requireService(
  mocha: Mocha.Context,
  name: string,
  probe: () => Promise<string | undefined>,
): Promise<void> {
  const problem = await probe();
  if (problem === undefined) return;
  const message = `${name} is not available (${problem}).`;
  if (process.env.CI) {
    throw new Error(`${message} CI must run every test: start ${name} before the tests.`);
  }
  console.warn(`\n  !!! SKIPPING: ${message} Start ${name} to run these tests. !!!\n`);
  mocha.skip();
}
