/**
 * `npm run bench`: the gateway's overhead against what any Node gateway must pay.
 *
 * Processes: the fake upstream, the thin proxy, the Express+axios floor and the gateway host each run in
 * their own node process; this process is the load generator. Placement (see common.ts): the process under
 * test alone on core 0, load generator and upstream on core 1. Targets are interleaved: several short
 * rounds, each visiting every target once, so that drift (thermal, noisy neighbours, GC state) spreads over
 * all targets instead of favouring whichever ran first.
 *
 * Environment: BENCH_ROUNDS (default 3), BENCH_SECONDS (per target per round at 32 connections, default 3),
 * BENCH_SECONDS_1 (at 1 connection, default 3), BENCH_STREAMS (sequential streams per target per round,
 * default 150), BENCH_TARGETS (comma-separated names to run only those), BENCH_PROFILE=1 (the gateway and
 * the floor run with --cpu-prof; the gateway's top self-time functions are printed at the end, and the
 * command that compares its self time per request with the floor's), BENCH_FROM_SOURCE=1 (measure the
 * TypeScript sources through tsx instead of the compiled dist/, which is built first by default),
 * BENCH_NODE_FLAGS (space-separated node options for the processes under test, the proxy, the floor and the
 * gateway alike: e.g. `--max-semi-space-size=2` to see what a host's GC setting does; the upstream and the
 * load generator keep the defaults), BENCH_SERVER=plain (the Express hosts, floor included, on node's
 * `http.createServer(app)` with V8's defaults instead of the recommended setup; see benchServer()).
 */
import { mkdirSync, readdirSync, statSync, writeFileSync } from 'node:fs';
import { join, relative } from 'node:path';
import {
  CORE_LOAD,
  CORE_UNDER_TEST,
  RESULTS_DIR,
  benchNodeFlags,
  benchServerSetup,
  cpuMs,
  loadavgNow,
  machineInfo,
  mainThreadCpuMs,
  median,
  percentile,
  pinSelf,
  settle,
  startServer,
  type Server,
} from './common.js';
import { load, streams, type LoadResult, type StreamResult } from './load.js';
import { FROM_SOURCE } from './package-under-test.js';
import { summariseProfile } from './profile-summary.js';

const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 3);
const SECONDS = Number(process.env.BENCH_SECONDS ?? 3);
const SECONDS_1 = Number(process.env.BENCH_SECONDS_1 ?? 3);
const STREAMS = Number(process.env.BENCH_STREAMS ?? 150);
const PROFILE = process.env.BENCH_PROFILE === '1';
const NODE_FLAGS = benchNodeFlags();
const only = process.env.BENCH_TARGETS?.split(',').map((s) => s.trim());

type Host = 'upstream' | 'proxy' | 'floor' | 'gateway';
interface Target {
  name: string;
  host: Host;
  path: string;
  unique: boolean;
  what: string;
}

const OPENAI_PATH = '/v1/chat/completions';
const ALL_LOAD_TARGETS: Target[] = [
  { name: 'upstream', host: 'upstream', path: OPENAI_PATH, unique: true, what: 'the fake upstream, direct' },
  { name: 'proxy', host: 'proxy', path: OPENAI_PATH, unique: true, what: 'thinnest node:http reverse proxy' },
  {
    name: 'floor',
    host: 'floor',
    path: OPENAI_PATH,
    unique: true,
    what: 'Express 5 + axios forwarding, nothing else',
  },
  { name: 'gateway', host: 'gateway', path: '/ai/chat', unique: true, what: 'default pipeline, cache miss' },
  {
    name: 'gateway-hit',
    host: 'gateway',
    path: '/ai/chat',
    unique: false,
    what: 'default pipeline, cache hit',
  },
  {
    name: 'plain',
    host: 'gateway',
    path: '/plain',
    unique: false,
    what: 'plain Express route, same JSON as a hit',
  },
  { name: 'stage:route', host: 'gateway', path: '/s/route/chat', unique: true, what: "pipeline ['route']" },
  {
    name: 'stage:+analytics',
    host: 'gateway',
    path: '/s/analytics/chat',
    unique: true,
    what: '+ analytics (SQLite)',
  },
  {
    name: 'stage:+rateLimit',
    host: 'gateway',
    path: '/s/ratelimit/chat',
    unique: true,
    what: '+ rateLimit (memory)',
  },
  {
    name: 'stage:+middleware',
    host: 'gateway',
    path: '/s/middleware/chat',
    unique: true,
    what: '+ middleware (pii_scrubber)',
  },
  { name: 'stage:+cache', host: 'gateway', path: '/s/cache/chat', unique: true, what: '+ cache (miss)' },
  {
    name: 'hit:cache',
    host: 'gateway',
    path: '/s/hitcache/chat',
    unique: false,
    what: "hit, pipeline ['cache', 'route']",
  },
  {
    name: 'hit:+analytics',
    host: 'gateway',
    path: '/s/hitanalytics/chat',
    unique: false,
    what: 'hit, + analytics (SQLite)',
  },
  {
    name: 'hit:+rateLimit',
    host: 'gateway',
    path: '/s/hitratelimit/chat',
    unique: false,
    what: 'hit, + rateLimit (memory)',
  },
  {
    name: 'hit:+middleware',
    host: 'gateway',
    path: '/s/cache/chat',
    unique: false,
    what: 'hit, + middleware (pii_scrubber)',
  },
  {
    name: 'gateway-noan',
    host: 'gateway',
    path: '/s/noanalytics/chat',
    unique: true,
    what: 'default pipeline without analytics, miss',
  },
  {
    name: 'gateway-noan-hit',
    host: 'gateway',
    path: '/s/noanalytics/chat',
    unique: false,
    what: 'default pipeline without analytics, hit',
  },
];
/** The targets that add one stage at a time, from each chain's reference to the default pipeline. */
const MISS_CHAIN = [
  'floor',
  'stage:route',
  'stage:+analytics',
  'stage:+rateLimit',
  'stage:+middleware',
  'stage:+cache',
  'gateway',
];
const HIT_CHAIN = [
  'plain',
  'hit:cache',
  'hit:+analytics',
  'hit:+rateLimit',
  'hit:+middleware',
  'gateway-hit',
];
const LOAD_TARGETS = ALL_LOAD_TARGETS.filter((t) => !only || only.includes(t.name));
const LATENCY_TARGETS = LOAD_TARGETS.filter((t) =>
  [
    'upstream',
    'proxy',
    'floor',
    'gateway',
    'gateway-hit',
    'plain',
    'gateway-noan',
    'gateway-noan-hit',
  ].includes(t.name),
);
const ALL_STREAM_TARGETS: Target[] = [
  { name: 'upstream', host: 'upstream', path: OPENAI_PATH, unique: true, what: 'direct' },
  { name: 'proxy', host: 'proxy', path: OPENAI_PATH, unique: true, what: 'thin proxy' },
  { name: 'floor', host: 'floor', path: OPENAI_PATH, unique: true, what: 'Express + axios, piped' },
  { name: 'gateway', host: 'gateway', path: '/ai/chat/stream', unique: true, what: 'default pipeline, miss' },
  {
    name: 'gateway-noan',
    host: 'gateway',
    path: '/s/noanalytics/chat/stream',
    unique: true,
    what: 'default pipeline without analytics, miss',
  },
];
const STREAM_TARGETS = ALL_STREAM_TARGETS.filter(
  (t) => !only || only.includes(`stream:${t.name}`) || only.includes(t.name),
);

interface Acc {
  rps: number[];
  /** CPU ms the process under test used, and the requests it served meanwhile. */
  cpuMs: number;
  /** The main thread's share of cpuMs. */
  mainCpuMs: number;
  served: number;
  /** CPU µs per request of each round, in round order (the stage tables pair them up by round). */
  cpuRounds: number[];
  latencies: number[];
  non2xx: number;
  errors: number;
}
/** CPU ms a load cost the process under test: all its threads, and its main thread alone. */
interface Cpu {
  all: number;
  main: number;
}
const acc = (): Acc => ({
  rps: [],
  cpuMs: 0,
  mainCpuMs: 0,
  served: 0,
  cpuRounds: [],
  latencies: [],
  non2xx: 0,
  errors: 0,
});
const at32 = new Map<string, Acc>();
const at1 = new Map<string, Acc>();
const streamAcc = new Map<
  string,
  { ttfb: number[]; total: number[]; chunks: number; seconds: number; failures: number }
>();

function add(map: Map<string, Acc>, name: string, r: LoadResult, cpu: Cpu | undefined): void {
  const a = map.get(name) ?? acc();
  a.rps.push(r.rps);
  if (cpu !== undefined) {
    a.cpuMs += cpu.all;
    a.mainCpuMs += cpu.main;
    a.served += r.requests;
    // NaN for a round that served nothing keeps the rounds of every target aligned.
    a.cpuRounds.push(r.requests > 0 ? (cpu.all * 1000) / r.requests : NaN);
  }
  for (const l of r.latencies) a.latencies.push(l);
  a.non2xx += r.non2xx;
  a.errors += r.errors;
  map.set(name, a);
}

function addStream(name: string, r: StreamResult): void {
  const a = streamAcc.get(name) ?? { ttfb: [], total: [], chunks: 0, seconds: 0, failures: 0 };
  a.ttfb.push(...r.ttfb);
  a.total.push(...r.total);
  a.chunks += r.chunks;
  a.seconds += r.seconds;
  a.failures += r.failures;
  streamAcc.set(name, a);
}

function summary(a: Acc | undefined) {
  if (!a) return undefined;
  const sorted = Float64Array.from(a.latencies).sort();
  return {
    rps: Math.round(median(a.rps)),
    rpsRounds: a.rps.map(Math.round),
    cpuUsPerRequest: a.served ? Math.round((a.cpuMs * 1000) / a.served) : undefined,
    mainCpuUsPerRequest: a.served ? Math.round((a.mainCpuMs * 1000) / a.served) : undefined,
    cpuUsRounds: a.cpuRounds.map(Math.round),
    p50: round3(percentile(sorted, 50)),
    p90: round3(percentile(sorted, 90)),
    p99: round3(percentile(sorted, 99)),
    samples: sorted.length,
    non2xx: a.non2xx,
    errors: a.errors,
  };
}

const round3 = (n: number) => Math.round(n * 1000) / 1000;
const ratio = (a?: number, b?: number) =>
  a !== undefined && b ? Math.round((a / b) * 1000) / 1000 : undefined;

async function main(): Promise<void> {
  const pinned = pinSelf(CORE_LOAD);
  // Other work on the machine moves throughput: recorded so that a reader can judge the run.
  const loadBefore = loadavgNow();
  const servers = new Map<Host, Server>();
  const upstream = await startServer('upstream', 'upstream.ts', { core: CORE_LOAD });
  servers.set('upstream', upstream);
  const env = { UPSTREAM_PORT: String(upstream.port) };
  servers.set(
    'proxy',
    await startServer('proxy', 'proxy.ts', { env, core: CORE_UNDER_TEST, nodeArgs: NODE_FLAGS }),
  );
  const profileDir = join(RESULTS_DIR, 'profile');
  const profileStart = Date.now();
  /** BENCH_NODE_FLAGS, and under BENCH_PROFILE a profile directory of the host's own. */
  const nodeArgsFor = (host: Host) => {
    if (!PROFILE) return NODE_FLAGS;
    mkdirSync(join(profileDir, host), { recursive: true });
    return [...NODE_FLAGS, '--cpu-prof', '--cpu-prof-dir', join(profileDir, host)];
  };
  servers.set(
    'floor',
    await startServer('floor', 'floor.ts', { env, core: CORE_UNDER_TEST, nodeArgs: nodeArgsFor('floor') }),
  );
  servers.set(
    'gateway',
    await startServer('gateway', 'gateway-host.ts', {
      env,
      core: CORE_UNDER_TEST,
      nodeArgs: nodeArgsFor('gateway'),
    }),
  );
  /** Requests sent to each process, warm-up and streams included: what its profile's time is spread over. */
  const sent = new Map<Host, number>();
  const count = (t: Target, n: number) => sent.set(t.host, (sent.get(t.host) ?? 0) + n);
  const port = (t: Target) => servers.get(t.host)!.port;
  /** Runs a load and measures the CPU the target's process spent on it. */
  const underTest = ['proxy', 'floor', 'gateway'].map((h) => servers.get(h as Host)!.child.pid);
  const measured = async (t: Target, connections: number, seconds: number) => {
    const pid = servers.get(t.host)!.child.pid;
    await settle(underTest);
    const before = cpuMs(pid);
    const mainBefore = mainThreadCpuMs(pid);
    const r = await load({ port: port(t), path: t.path, connections, seconds, unique: t.unique });
    const after = cpuMs(pid);
    const mainAfter = mainThreadCpuMs(pid);
    count(t, r.requests);
    const cpu: Cpu | undefined =
      before !== undefined && after !== undefined && mainBefore !== undefined && mainAfter !== undefined
        ? { all: after - before, main: mainAfter - mainBefore }
        : undefined;
    return { r, cpu };
  };

  console.log(
    `bench (gateway from ${FROM_SOURCE ? 'sources via tsx' : 'dist/'}): ${ROUNDS} rounds; ${SECONDS}s at 32 connections, ${SECONDS_1}s at 1 connection, ${STREAMS} streams per target per round; pinned: ${pinned}; host setup: ${benchServerSetup()}${NODE_FLAGS.length ? `; node flags under test: ${NODE_FLAGS.join(' ')}` : ''}`,
  );
  // Warm-up: JIT, keep-alive pools, and the cache entry the hit target reads.
  for (const t of LOAD_TARGETS) {
    const r = await load({ port: port(t), path: t.path, connections: 32, seconds: 2, unique: t.unique });
    count(t, r.requests);
  }
  for (const t of STREAM_TARGETS) {
    await streams(port(t), t.path, 30, t.unique);
    count(t, 30);
  }

  for (let round = 1; round <= ROUNDS; round++) {
    // Rotating the starting target keeps any within-round trend from always hitting the same one.
    const rot = <T>(list: T[]) => list.map((_, i) => list[(i + round - 1) % list.length]!);
    for (const t of rot(LOAD_TARGETS)) {
      const { r, cpu } = await measured(t, 32, SECONDS);
      add(at32, t.name, r, cpu);
    }
    for (const t of rot(LATENCY_TARGETS)) {
      const { r, cpu } = await measured(t, 1, SECONDS_1);
      add(at1, t.name, r, cpu);
    }
    for (const t of rot(STREAM_TARGETS)) {
      await settle(underTest);
      addStream(t.name, await streams(port(t), t.path, STREAMS, t.unique));
      count(t, STREAMS);
    }
    console.log(`round ${round}/${ROUNDS} done`);
  }

  const memory = await servers.get('gateway')!.ask<NodeJS.MemoryUsage>('memory');
  for (const s of [...servers.values()].reverse()) await s.stop();

  const c32 = Object.fromEntries(LOAD_TARGETS.map((t) => [t.name, summary(at32.get(t.name))]));
  const c1 = Object.fromEntries(LATENCY_TARGETS.map((t) => [t.name, summary(at1.get(t.name))]));
  const base = (name: string) => c32[name]?.rps;
  const table32 = LOAD_TARGETS.map((t) => {
    const s = c32[t.name]!;
    return {
      target: t.name,
      what: t.what,
      'req/s': s.rps,
      'p50 ms': s.p50,
      'p99 ms': s.p99,
      'x upstream': ratio(s.rps, base('upstream')),
      'x proxy': ratio(s.rps, base('proxy')),
      'x floor': ratio(s.rps, base('floor')),
      'cpu us/req': s.cpuUsPerRequest,
      'main thread': s.mainCpuUsPerRequest,
      'non-2xx': s.non2xx + s.errors,
    };
  });
  // What each stage adds, from the reference up to the whole default pipeline, for a miss and for a hit:
  // each step's CPU per request against the step before it (the issue's "stage by stage"). Every round
  // visits every target, so the rounds pair up: the median of the per-round differences cancels drift
  // between rounds, and their range shows how far one step can be trusted.
  const stageChain = (chain: string[]) =>
    chain
      .filter((name) => c32[name]?.cpuUsPerRequest !== undefined)
      .map((name, i, present) => {
        const s = c32[name]!;
        const before = i > 0 ? c32[present[i - 1]!]! : undefined;
        const diffs = before
          ? s.cpuUsRounds.map((cpu, round) => cpu - before.cpuUsRounds[round]!).filter(Number.isFinite)
          : [];
        return {
          step: name,
          'cpu us/req': s.cpuUsPerRequest,
          'added us (median of rounds)': diffs.length ? median(diffs) : undefined,
          'added us per round': diffs.join(' '),
          'req/s share of first': ratio(s.rps, c32[present[0]!]!.rps),
        };
      });
  const stages = {
    miss: stageChain(MISS_CHAIN),
    hit: stageChain(HIT_CHAIN),
  };
  const direct1 = c1.upstream;
  const table1 = LATENCY_TARGETS.map((t) => {
    const s = c1[t.name]!;
    return {
      target: t.name,
      'req/s': s.rps,
      'p50 ms': s.p50,
      'p99 ms': s.p99,
      '+p50 vs upstream': direct1 ? round3(s.p50 - direct1.p50) : undefined,
      '+p99 vs upstream': direct1 ? round3(s.p99 - direct1.p99) : undefined,
      '+p50 vs proxy': c1.proxy ? round3(s.p50 - c1.proxy.p50) : undefined,
      '+p50 vs floor': c1.floor ? round3(s.p50 - c1.floor.p50) : undefined,
    };
  });
  const ttfbP50 = (name: string) => {
    const a = streamAcc.get(name);
    return a ? percentile(Float64Array.from(a.ttfb).sort(), 50) : undefined;
  };
  const streamRows = STREAM_TARGETS.map((t) => {
    const a = streamAcc.get(t.name)!;
    const ttfb = Float64Array.from(a.ttfb).sort();
    const total = Float64Array.from(a.total).sort();
    const over = (base: string) => {
      const b = ttfbP50(base);
      return b === undefined ? undefined : round3(percentile(ttfb, 50) - b);
    };
    return {
      target: t.name,
      streams: a.ttfb.length,
      failures: a.failures,
      'ttfb p50 ms': round3(percentile(ttfb, 50)),
      'ttfb p99 ms': round3(percentile(ttfb, 99)),
      '+ttfb vs upstream': over('upstream'),
      '+ttfb vs floor': over('floor'),
      'stream p50 ms': round3(percentile(total, 50)),
      'chunks/s': Math.round(a.chunks / a.seconds),
    };
  });
  const sd = (n: string) => streamRows.find((r) => r.target === n);
  const checks = {
    'gateway >= 85% of floor req/s': check(ratio(c32.gateway?.rps, c32.floor?.rps), (v) => v >= 0.85),
    'added p50 at 1 connection < 0.5 ms': check(
      table1.find((r) => r.target === 'gateway')?.['+p50 vs upstream'],
      (v) => v < 0.5,
    ),
    'added p99 at 1 connection < 2 ms': check(
      table1.find((r) => r.target === 'gateway')?.['+p99 vs upstream'],
      (v) => v < 2,
    ),
    // Throughput on a shared machine moves with other work; CPU per request is the code's own cost.
    'gateway >= 85% of floor, by CPU per request': check(
      ratio(c32.floor?.cpuUsPerRequest, c32.gateway?.cpuUsPerRequest),
      (v) => v >= 0.85,
    ),
    'cache hit >= 90% of plain route req/s': check(
      ratio(c32['gateway-hit']?.rps, c32.plain?.rps),
      (v) => v >= 0.9,
    ),
    'stream ttfb within 1 ms of direct': check(
      sd('gateway') && sd('upstream')
        ? round3(sd('gateway')!['ttfb p50 ms'] - sd('upstream')!['ttfb p50 ms'])
        : undefined,
      (v) => v <= 1,
    ),
    // The same targets for the default pipeline without analytics (whose cost is worked on apart).
    'no analytics: >= 85% of floor req/s': check(
      ratio(c32['gateway-noan']?.rps, c32.floor?.rps),
      (v) => v >= 0.85,
    ),
    'no analytics: >= 85% of floor, by CPU per request': check(
      ratio(c32.floor?.cpuUsPerRequest, c32['gateway-noan']?.cpuUsPerRequest),
      (v) => v >= 0.85,
    ),
    'no analytics: added p50 at 1 connection < 0.5 ms': check(
      table1.find((r) => r.target === 'gateway-noan')?.['+p50 vs upstream'],
      (v) => v < 0.5,
    ),
    'no analytics: cache hit >= 90% of plain route req/s': check(
      ratio(c32['gateway-noan-hit']?.rps, c32.plain?.rps),
      (v) => v >= 0.9,
    ),
    'no analytics: stream ttfb within 1 ms of direct': check(
      sd('gateway-noan') && sd('upstream')
        ? round3(sd('gateway-noan')!['ttfb p50 ms'] - sd('upstream')!['ttfb p50 ms'])
        : undefined,
      (v) => v <= 1,
    ),
  };

  console.log('\nAt 32 connections (req/s: median of rounds; latency over all rounds)');
  console.table(table32);
  console.log('At 1 connection (added latency)');
  console.table(table1);
  console.log('Streaming (sequential, one connection)');
  console.table(streamRows);
  if (stages.miss.length > 1) {
    console.log('Stage by stage, cache miss (CPU per request, each step against the one before)');
    console.table(stages.miss);
  }
  if (stages.hit.length > 1) {
    console.log('Stage by stage, cache hit');
    console.table(stages.hit);
  }
  console.log('Targets');
  console.table(checks);

  const result = {
    date: new Date().toISOString(),
    machine: machineInfo(
      loadBefore,
      pinned
        ? `under test on core ${CORE_UNDER_TEST}; load generator and upstream on core ${CORE_LOAD}`
        : 'not pinned',
    ),
    settings: {
      rounds: ROUNDS,
      seconds32: SECONDS,
      seconds1: SECONDS_1,
      streamsPerRound: STREAMS,
      profile: PROFILE,
      nodeFlags: NODE_FLAGS,
      hostSetup: benchServerSetup(),
      gatewayCode: FROM_SOURCE ? 'TypeScript sources through tsx' : 'compiled dist/',
    },
    connections32: c32,
    connections1: c1,
    table32,
    table1,
    stages,
    streaming: streamRows,
    checks,
    gatewayMemoryAfter: memory,
  };
  mkdirSync(RESULTS_DIR, { recursive: true });
  writeFileSync(join(RESULTS_DIR, 'latest.json'), JSON.stringify(result, null, 2));
  console.log(`\nwritten: ${relative(process.cwd(), join(RESULTS_DIR, 'latest.json'))}`);

  if (PROFILE) {
    const newest = (host: Host) =>
      readdirSync(join(profileDir, host))
        .filter((f) => f.endsWith('.cpuprofile'))
        .map((f) => join(profileDir, host, f))
        .filter((f) => statSync(f).mtimeMs >= profileStart)
        // tsx's loader thread writes a profile too; the main thread's, where requests run, is the largest.
        .sort((a, b) => statSync(b).size - statSync(a).size)[0];
    const gatewayProfile = newest('gateway');
    const floorProfile = newest('floor');
    if (gatewayProfile) {
      console.log(`\nGateway CPU profile: ${relative(process.cwd(), gatewayProfile)}`);
      console.log(summariseProfile(gatewayProfile, 30));
    }
    if (gatewayProfile && floorProfile) {
      const file = (f: string) => relative(process.cwd(), f);
      console.log(
        `\nPer request against the floor: npx tsx bench/profile-summary.ts --diff ${file(gatewayProfile)} ` +
          `${sent.get('gateway') ?? 0} ${file(floorProfile)} ${sent.get('floor') ?? 0}`,
      );
    }
  }
}

function check(value: number | undefined, ok: (v: number) => boolean) {
  return { value, met: value === undefined ? undefined : ok(value) };
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
