/**
 * `npm run bench:ab -- <git revision>`: the working tree's gateway against the same gateway at another
 * revision, in one run. On a shared machine a target's throughput moves by 10-15% between rounds, more than
 * most changes; two builds loaded in alternation, each pinned to the same core, are what resolve a change of
 * a few percent. Reports CPU µs per request (the steadier figure), req/s and p50 per build and path.
 *
 * The base revision is checked out as a detached worktree under `.bench-base/` (ignored by git; kept for
 * the next run of the same revision), with this checkout's node_modules linked in, and built there.
 * Environment: AB_PATHS (comma-separated, default `/ai/chat`), AB_ROUNDS (default 8), AB_SECONDS (per
 * build, path and round, default 3), AB_CONNECTIONS (default 32). A path ending in `/stream` runs
 * AB_STREAMS (default 500) sequential streams on one connection instead of a load; its p50 is the time to
 * the first chunk and its req/s is streams per second. AB_SAME=1 sends the same request every time (cache
 * hits after the first) instead of distinct ones.
 */
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, symlinkSync } from 'node:fs';
import { join, relative } from 'node:path';
import {
  BENCH_DIR,
  CORE_LOAD,
  CORE_UNDER_TEST,
  cpuMs,
  median,
  percentile,
  pinSelf,
  settle,
  startServer,
} from './common.js';
import { load, streams } from './load.js';

const ROOT = join(BENCH_DIR, '..');
const revision = process.argv[2];
if (!revision) {
  console.error('usage: npm run bench:ab -- <git revision to compare the working tree with>, e.g. HEAD~3');
  process.exit(2);
}
const paths = (process.env.AB_PATHS ?? '/ai/chat').split(',').map((p) => p.trim());
// Even: each build goes first in half the rounds.
const rounds = Number(process.env.AB_ROUNDS ?? 8);
const seconds = Number(process.env.AB_SECONDS ?? 3);
const connections = Number(process.env.AB_CONNECTIONS ?? 32);
const streamsPerRound = Number(process.env.AB_STREAMS ?? 500);
const isStream = (path: string) => path.endsWith('/stream');
const unique = process.env.AB_SAME !== '1';

/** One measurement on one build: requests (or streams) served, per second, and their p50 in ms. */
async function measure(port: number, path: string, n: number) {
  if (isStream(path)) {
    const r = await streams(port, path, n, true);
    const ttfb = r.ttfb.sort((x, y) => x - y);
    return { requests: r.streams, rps: r.streams / r.seconds, p50: percentile(ttfb, 50), failed: r.failures };
  }
  const r = await load({ port, path, connections, seconds: n, unique });
  const sorted = r.latencies.sort((x, y) => x - y);
  return { requests: r.requests, rps: r.rps, p50: percentile(sorted, 50), failed: r.non2xx + r.errors };
}

/**
 * The two builds ran back to back in each round: the median of their per-round differences cancels the
 * machine's drift between rounds, which the medians of each build alone keep.
 */
function pairedMedian(mine: number[], theirs: number[]): number | undefined {
  return mine.length && mine.length === theirs.length
    ? median(mine.map((v, i) => v - theirs[i]!))
    : undefined;
}

function git(...args: string[]): string {
  const r = spawnSync('git', args, { cwd: ROOT, encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`git ${args.join(' ')}: ${r.stderr.trim()}`);
  return r.stdout.trim();
}

/** The base revision built in its own worktree; the path of its compiled lib/, relative to this file. */
function buildBase(): string {
  const commit = git('rev-parse', '--verify', `${revision}^{commit}`);
  const dir = join(ROOT, '.bench-base', commit.slice(0, 12));
  if (!existsSync(dir)) {
    mkdirSync(join(ROOT, '.bench-base'), { recursive: true });
    git('worktree', 'add', '--detach', dir, commit);
    // The same dependencies as this checkout: a comparison of our code, not of two installs.
    symlinkSync(join(ROOT, 'node_modules'), join(dir, 'node_modules'), 'dir');
  }
  const built = spawnSync('npm', ['run', '--silent', 'build'], { cwd: dir, stdio: 'inherit' });
  if (built.status !== 0) throw new Error(`bench:ab: building ${revision} failed`);
  return relative(BENCH_DIR, join(dir, 'dist', 'lib'));
}

interface Samples {
  cpu: number[];
  rps: number[];
  p50: number[];
}

async function main(): Promise<void> {
  const baseLib = buildBase();
  // startServer builds this checkout's dist/ before the first host starts.
  pinSelf(CORE_LOAD);
  const upstream = await startServer('upstream', 'upstream.ts', { core: CORE_LOAD });
  const env = { UPSTREAM_PORT: String(upstream.port) };
  const hosts = {
    base: await startServer('base', 'gateway-host.ts', {
      env: { ...env, BENCH_LIB: baseLib },
      core: CORE_UNDER_TEST,
    }),
    tree: await startServer('tree', 'gateway-host.ts', { env, core: CORE_UNDER_TEST }),
  };
  const builds = ['base', 'tree'] as const;
  console.log(
    `bench:ab: ${revision} (base) against the working tree; ${rounds} rounds × ${seconds} s per build and path, ${connections} connections`,
  );
  // Warm-up: JIT, keep-alive pools.
  for (const b of builds) {
    for (const path of paths) {
      await measure(hosts[b].port, path, isStream(path) ? 2000 : 2);
    }
  }
  // Both builds share the core under test: each load starts once neither is busy.
  const hostPids = Object.values(hosts).map((h) => h.child.pid);
  const samples = new Map<string, Samples>();
  for (let round = 0; round < rounds; round++) {
    // Alternating which build goes first keeps a within-round trend from favouring one.
    const order = round % 2 ? [...builds].reverse() : builds;
    for (const path of paths) {
      for (const b of order) {
        const server = hosts[b];
        await settle(hostPids);
        const before = cpuMs(server.child.pid);
        const r = await measure(server.port, path, isStream(path) ? streamsPerRound : seconds);
        const after = cpuMs(server.child.pid);
        const key = `${b} ${path}`;
        const s = samples.get(key) ?? { cpu: [], rps: [], p50: [] };
        if (before !== undefined && after !== undefined) s.cpu.push(((after - before) * 1000) / r.requests);
        s.rps.push(r.rps);
        s.p50.push(r.p50);
        samples.set(key, s);
        if (r.failed) console.log(`${key}: ${r.failed} failed`);
      }
    }
  }
  for (const s of [...Object.values(hosts), upstream]) await s.stop();

  const round1 = (n: number) => Math.round(n);
  const rows = [];
  for (const path of paths) {
    const base = samples.get(`base ${path}`)!;
    for (const b of builds) {
      const s = samples.get(`${b} ${path}`)!;
      const paired = b === 'tree' ? pairedMedian(s.cpu, base.cpu) : undefined;
      const pairedP50 = b === 'tree' ? pairedMedian(s.p50, base.p50) : undefined;
      rows.push({
        build: b,
        path,
        'cpu us/req (median)': s.cpu.length ? round1(median(s.cpu)) : 'n/a',
        'cpu us/req (rounds)': s.cpu.map(round1).join(' '),
        'tree - base per round (median)': paired === undefined ? '' : round1(paired),
        'req/s (median)': round1(median(s.rps)),
        'p50 ms': Math.round(median(s.p50) * 1000) / 1000,
        'p50 tree - base per round (median)':
          pairedP50 === undefined ? '' : Math.round(pairedP50 * 1000) / 1000,
      });
    }
  }
  console.table(rows);
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
