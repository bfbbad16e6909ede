/**
 * `npm run bench:analytics`: does the analytics stage add latency to the request path at a fixed rate?
 *
 * The gateway (bench/analytics-host.ts) runs in its own process, pinned like `npm run bench` (see
 * common.ts); the fake upstream and this load generator share the other core. Two targets on the same
 * gateway: pipeline ['route'] and ['analytics', 'route'] (SQLite). Each is driven at a FIXED request rate
 * (autocannon overallRate), not as fast as it goes: at a fixed rate the question is what a request waits,
 * not how many requests fit. Runs are interleaved, both targets once per round, the starting one rotating.
 *
 * Reported per target: p50/p90/p99 over all rounds and per round, the rate achieved, CPU per request of
 * the whole process and of its main thread (where requests run; the analytics writer thread is apart),
 * and the rows analytics wrote per second (from the recorder's stats). The difference between targets is
 * compared with the spread between rounds of the same target: a difference no larger than that spread is
 * not measurable on this machine.
 *
 * Environment: BENCH_RATES (comma-separated requests/s, default "1000"), BENCH_SECONDS (per run, default
 * 10), BENCH_ROUNDS (default 3), BENCH_CONNECTIONS (default 10).
 */
import { mkdirSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { join, relative } from 'node:path';
import autocannon from 'autocannon';
import type { RecorderStats } from '../lib/analytics/recorder.js';
import {
  CORE_LOAD,
  CORE_UNDER_TEST,
  RESULTS_DIR,
  chatBody,
  cpuMs,
  loadavgNow,
  machineInfo,
  median,
  percentile,
  pinSelf,
  startServer,
} from './common.js';

const RATES = (process.env.BENCH_RATES ?? '1000').split(',').map((s) => Number(s.trim()));
const SECONDS = Number(process.env.BENCH_SECONDS ?? 10);
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 3);
const CONNECTIONS = Number(process.env.BENCH_CONNECTIONS ?? 10);

const TARGETS = [
  { name: 'route', path: '/s/route/chat', what: "pipeline ['route']" },
  { name: 'analytics', path: '/s/analytics/chat', what: "pipeline ['analytics', 'route'], SQLite" },
] as const;
type TargetName = (typeof TARGETS)[number]['name'];

interface Run {
  latencies: number[];
  requests: number;
  failed: number;
  seconds: number;
  cpuMs?: number;
  mainCpuMs?: number;
  rowsWritten: number;
}

const CLOCK_TICKS = 100;
/** CPU ms of one thread (the main thread's id is the pid): where requests run. */
function threadCpuMs(pid: number | undefined): number | undefined {
  if (pid === undefined || process.platform !== 'linux') return undefined;
  try {
    const stat = readFileSync(`/proc/${pid}/task/${pid}/stat`, 'utf8');
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return ((Number(fields[11]) + Number(fields[12])) * 1000) / CLOCK_TICKS;
  } catch {
    return undefined;
  }
}

/** CPU ms per thread name (main thread and writer thread are both "node"; the main one is the pid). */
function cpuByThread(pid: number | undefined): Record<string, number> {
  const out: Record<string, number> = {};
  if (pid === undefined || process.platform !== 'linux') return out;
  try {
    for (const tid of readdirSync(`/proc/${pid}/task`)) {
      const stat = readFileSync(`/proc/${pid}/task/${tid}/stat`, 'utf8');
      const name = tid === String(pid) ? 'main' : stat.slice(stat.indexOf('(') + 1, stat.lastIndexOf(')'));
      const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      const ms = ((Number(fields[11]) + Number(fields[12])) * 1000) / CLOCK_TICKS;
      out[name] = (out[name] ?? 0) + ms;
    }
  } catch {
    // A thread that ended between the listing and the read: the figures are indicative only.
  }
  return out;
}

let counter = 0;
function fixedRate(port: number, path: string, rate: number, seconds: number) {
  const latencies: number[] = [];
  const headers = { 'content-type': 'application/json' };
  return new Promise<{ latencies: number[]; requests: number; failed: number; seconds: number }>(
    (resolve, reject) => {
      const instance = autocannon(
        {
          url: `http://127.0.0.1:${port}`,
          connections: CONNECTIONS,
          overallRate: rate,
          duration: seconds,
          requests: [
            {
              method: 'POST',
              path,
              headers,
              setupRequest: (req) => {
                // Every request distinct, as real traffic is.
                req.body = chatBody(counter++);
                return req;
              },
            },
          ],
        },
        (err, result) => {
          if (err) return reject(err);
          resolve({
            latencies,
            requests: result['2xx'],
            failed: result.non2xx + result.errors + result.timeouts,
            seconds: result.duration,
          });
        },
      );
      (instance as unknown as NodeJS.EventEmitter).on(
        'response',
        (_client: unknown, status: number, _bytes: number, ms: number) => {
          if (status >= 200 && status < 300) latencies.push(ms);
        },
      );
    },
  );
}

const round3 = (n: number) => Math.round(n * 1000) / 1000;
const pcts = (values: number[]) => {
  const s = Float64Array.from(values).sort();
  return { p50: round3(percentile(s, 50)), p90: round3(percentile(s, 90)), p99: round3(percentile(s, 99)) };
};

async function main(): Promise<void> {
  const pinned = pinSelf(CORE_LOAD);
  const loadBefore = loadavgNow();
  const upstream = await startServer('upstream', 'upstream.ts', { core: CORE_LOAD });
  const host = await startServer('gateway', 'analytics-host.ts', {
    env: { UPSTREAM_PORT: String(upstream.port) },
    core: CORE_UNDER_TEST,
  });
  const pid = host.child.pid;
  const stats = () => host.ask<RecorderStats>('analytics');
  console.log(
    `bench:analytics: rates ${RATES.join(', ')} req/s; ${ROUNDS} rounds of ${SECONDS}s per target at ${CONNECTIONS} connections; pinned: ${pinned}`,
  );

  // Warm-up: JIT, keep-alive pools, the analytics database and its writer thread.
  for (const t of TARGETS) await fixedRate(host.port, t.path, RATES[0]!, 3);
  await new Promise((res) => setTimeout(res, 1500));

  const results: Record<string, unknown>[] = [];
  for (const rate of RATES) {
    const runs = new Map<TargetName, Run[]>(TARGETS.map((t) => [t.name, []]));
    for (let round = 1; round <= ROUNDS; round++) {
      const order = round % 2 === 1 ? TARGETS : [...TARGETS].reverse();
      for (const t of order) {
        const before = { cpu: cpuMs(pid), main: threadCpuMs(pid), stats: await stats() };
        const r = await fixedRate(host.port, t.path, rate, SECONDS);
        // Rows of the run's last second may still be buffered: the flush timer (1 s) writes them before
        // the next run starts (after both targets alike), so each run is charged its own rows.
        await new Promise((res) => setTimeout(res, 1500));
        const after = { cpu: cpuMs(pid), main: threadCpuMs(pid), stats: await stats() };
        const diff = (a?: number, b?: number) => (a !== undefined && b !== undefined ? a - b : undefined);
        runs.get(t.name)!.push({
          ...r,
          cpuMs: diff(after.cpu, before.cpu),
          mainCpuMs: diff(after.main, before.main),
          rowsWritten: after.stats.written - before.stats.written,
        });
      }
      console.log(`rate ${rate}: round ${round}/${ROUNDS} done`);
    }
    const final = await stats();
    const table = TARGETS.map((t) => {
      const rs = runs.get(t.name)!;
      const all = pcts(rs.flatMap((r) => r.latencies));
      const perRound = rs.map((r) => pcts(r.latencies));
      const served = rs.reduce((n, r) => n + r.requests, 0);
      const seconds = rs.reduce((n, r) => n + r.seconds, 0);
      const sum = (f: (r: Run) => number | undefined) => rs.reduce((n, r) => n + (f(r) ?? NaN), 0);
      return {
        target: t.name,
        what: t.what,
        'req/s achieved': Math.round(served / seconds),
        'p50 ms': all.p50,
        'p90 ms': all.p90,
        'p99 ms': all.p99,
        'p50 by round': perRound.map((p) => p.p50).join(' / '),
        'p99 by round': perRound.map((p) => p.p99).join(' / '),
        'cpu us/req': Math.round((sum((r) => r.cpuMs) * 1000) / served),
        'main thread cpu us/req': Math.round((sum((r) => r.mainCpuMs) * 1000) / served),
        'rows written/s': Math.round(sum((r) => r.rowsWritten) / seconds),
        failed: rs.reduce((n, r) => n + r.failed, 0),
        perRound,
      };
    });
    const [route, analytics] = table as [(typeof table)[0], (typeof table)[0]];
    // Noise: how far apart rounds of the same target land. The difference between the targets is
    // compared on medians of rounds, so one odd round does not decide it.
    const verdict = (['p50', 'p90', 'p99'] as const).map((p) => {
      const a = route.perRound.map((r) => r[p]);
      const b = analytics.perRound.map((r) => r[p]);
      const spread = Math.max(Math.max(...a) - Math.min(...a), Math.max(...b) - Math.min(...b));
      const difference = round3(median(b) - median(a));
      return {
        percentile: p,
        'route ms (median of rounds)': round3(median(a)),
        'analytics ms (median of rounds)': round3(median(b)),
        'difference ms': difference,
        'spread between rounds ms': round3(spread),
        'within noise': Math.abs(difference) <= spread,
      };
    });
    const saturated = table.some((t) => t['req/s achieved'] < rate * 0.95 || t.failed > 0);
    console.log(`\nAt ${rate} requests/s (fixed rate), ${ROUNDS} x ${SECONDS}s per target`);
    console.table(table.map(({ perRound: _perRound, ...row }) => row));
    console.table(verdict);
    if (saturated) console.log(`SATURATED: a target did not sustain ${rate} req/s or had failures.`);
    console.log(`analytics stats after: ${JSON.stringify(final)}`);
    results.push({ rate, table, verdict, saturated, analyticsStats: final });
  }

  const threads = cpuByThread(pid);
  console.log(`gateway CPU ms by thread since start: ${JSON.stringify(threads)}`);
  await host.stop();
  await upstream.stop();
  const out = {
    date: new Date().toISOString(),
    machine: machineInfo(
      loadBefore,
      pinned
        ? `gateway on core ${CORE_UNDER_TEST}; load generator and upstream on core ${CORE_LOAD}`
        : 'not pinned',
    ),
    settings: { rates: RATES, seconds: SECONDS, rounds: ROUNDS, connections: CONNECTIONS },
    gatewayCpuMsByThread: threads,
    results,
  };
  mkdirSync(RESULTS_DIR, { recursive: true });
  const file = join(RESULTS_DIR, 'analytics-latest.json');
  writeFileSync(file, JSON.stringify(out, null, 2));
  console.log(`\nwritten: ${relative(process.cwd(), file)}`);
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
