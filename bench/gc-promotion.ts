/**
 * `npm run bench:gc`: what the one-connection p99 is made of. Runs each host at one connection under V8's
 * `--trace-gc-nvp` and reports, per request, how many bytes each young-generation collection (scavenge)
 * promoted to the old generation, and how long the scavenges paused the process. A request that meets a
 * scavenge waits for it, and a scavenge's pause grows with what survives it: in a host where every
 * request's objects survive the next scavenge, about one request in a hundred waits several milliseconds.
 *
 * Hosts: the minimal servers of gc-hosts.ts (node:http, an Express Router, an Express application served
 * by node's server and by the package's `createExpressServer()`, node:http with axios), the bench's floor
 * (Express + axios) and the gateway, both set up as `npm run bench` sets them up (`benchServer()`: the
 * package's server and V8's pretenuring off, or with `BENCH_SERVER=plain` node's and V8's defaults; the small
 * hosts keep V8's defaults unless BENCH_NODE_FLAGS says otherwise). The small hosts run with
 * `--allow-natives-syntax` and also report how many requests ended with a hidden class (V8 map) of their
 * own: on V8 before 13 (Node 20 and 22), a property added to an object after `Object.setPrototypeOf()`
 * makes a new map for that object alone, and Express' application does that to `req` and `res` on every
 * request.
 *
 * Run it under another Node to compare (`<that node> --import tsx bench/gc-promotion.ts`): every host is
 * started with the Node that runs this script. Environment: GC_ROUNDS (default 2), GC_SECONDS (default 4),
 * GC_CONNECTIONS (default 1), GC_HOSTS (comma-separated names to run only those), BENCH_NODE_FLAGS (node
 * options for every host, as for `npm run bench`).
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { join, relative } from 'node:path';
import {
  CORE_LOAD,
  CORE_UNDER_TEST,
  RESULTS_DIR,
  benchNodeFlags,
  benchServerSetup,
  loadavgNow,
  machineInfo,
  median,
  percentile,
  pinSelf,
  startServer,
  type Server,
} from './common.js';
import type { MapCount } from './gc-hosts.js';
import { load } from './load.js';

const ROUNDS = Number(process.env.GC_ROUNDS ?? 2);
const SECONDS = Number(process.env.GC_SECONDS ?? 4);
const CONNECTIONS = Number(process.env.GC_CONNECTIONS ?? 1);
const only = process.env.GC_HOSTS?.split(',').map((s) => s.trim());
// The same option as `npm run bench`'s: node options for every host, e.g. --no-allocation-site-pretenuring.
const NODE_FLAGS = benchNodeFlags();

interface Host {
  name: string;
  file: string;
  path: string;
  env?: Record<string, string>;
  /** The small hosts can check hidden classes; the floor and the gateway are left as the bench runs them. */
  checksMaps?: boolean;
}

const OPENAI_PATH = '/v1/chat/completions';
/** One of gc-hosts.ts' servers; they answer the upstream's path. */
const smallHost = (name: string): Host => ({
  name,
  file: 'gc-hosts.ts',
  path: OPENAI_PATH,
  env: { GC_HOST: name },
  checksMaps: true,
});
const ALL_HOSTS: Host[] = [
  ...['node-http', 'express-router', 'express-app', 'express-app-server', 'node-http-axios'].map(smallHost),
  { name: 'floor', file: 'floor.ts', path: OPENAI_PATH },
  { name: 'gateway', file: 'gateway-host.ts', path: '/ai/chat' },
];
const HOSTS = ALL_HOSTS.filter((h) => !only || only.includes(h.name));

interface Scavenge {
  pauseMs: number;
  promoted: number;
}

/** The scavenges in `--trace-gc-nvp` lines: `... pause=4.1 ... gc=s ... promoted=2202960 ...`. */
function scavengesIn(lines: readonly string[]): Scavenge[] {
  const found: Scavenge[] = [];
  for (const line of lines) {
    if (!/\bgc=s\b/.test(line)) continue;
    const pause = /\bpause=([\d.]+)/.exec(line);
    const promoted = /\bpromoted=(\d+)/.exec(line);
    if (pause && promoted) found.push({ pauseMs: Number(pause[1]), promoted: Number(promoted[1]) });
  }
  return found;
}

interface HostResult {
  host: string;
  requests: number;
  p50Ms: number;
  p99Ms: number;
  scavenges: number;
  promotedKbPerRequest: number;
  scavengePauseMedianMs: number;
  scavengePauseMaxMs: number;
  /** Share of requests whose `req` ended with a map of its own (small hosts only). */
  reqMapsOfTheirOwn?: number;
  resMapsOfTheirOwn?: number;
}

const pause = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function measure(server: Server, host: Host, lines: string[]) {
  // Warm up (compilation, the upstream's keep-alive sockets), then count only the measured window's lines.
  await load({ port: server.port, path: host.path, connections: CONNECTIONS, seconds: 1, unique: true });
  await pause(200);
  const from = lines.length;
  const result = await load({
    port: server.port,
    path: host.path,
    connections: CONNECTIONS,
    seconds: SECONDS,
    unique: true,
  });
  // A GC's line is printed when it ends; the last one of the window is out by now.
  await pause(200);
  return { result, scavenges: scavengesIn(lines.slice(from)) };
}

async function main(): Promise<void> {
  const pinned = pinSelf(CORE_LOAD);
  const loadBefore = loadavgNow();
  const upstream = await startServer('upstream', 'upstream.ts', { core: CORE_LOAD });
  const results: HostResult[] = [];
  for (const host of HOSTS) {
    const lines: string[] = [];
    const server = await startServer(host.name, host.file, {
      env: { UPSTREAM_PORT: String(upstream.port), ...host.env },
      core: CORE_UNDER_TEST,
      nodeArgs: ['--trace-gc-nvp', ...NODE_FLAGS, ...(host.checksMaps ? ['--allow-natives-syntax'] : [])],
      pipeStdout: true,
    });
    let rest = '';
    server.child.stdout!.setEncoding('utf8').on('data', (text: string) => {
      const split = (rest + text).split('\n');
      rest = split.pop()!;
      lines.push(...split);
    });
    const latencies: number[] = [];
    const scavenges: Scavenge[] = [];
    let requests = 0;
    for (let round = 0; round < ROUNDS; round++) {
      const m = await measure(server, host, lines);
      requests += m.result.requests;
      latencies.push(...m.result.latencies);
      scavenges.push(...m.scavenges);
    }
    const memory = await server.ask<{ state?: MapCount }>('memory');
    await server.stop();
    latencies.sort((a, b) => a - b);
    const pauses = scavenges.map((s) => s.pauseMs);
    const maps = memory.state;
    results.push({
      host: host.name,
      requests,
      p50Ms: percentile(latencies, 50),
      p99Ms: percentile(latencies, 99),
      scavenges: scavenges.length,
      promotedKbPerRequest: scavenges.reduce((n, s) => n + s.promoted, 0) / 1024 / requests,
      scavengePauseMedianMs: pauses.length ? median(pauses) : NaN,
      scavengePauseMaxMs: pauses.length ? Math.max(...pauses) : NaN,
      reqMapsOfTheirOwn: maps ? maps.reqMapOfItsOwn / Math.max(1, maps.requests - 1) : undefined,
      resMapsOfTheirOwn: maps ? maps.resMapOfItsOwn / Math.max(1, maps.requests - 1) : undefined,
    });
  }
  await upstream.stop();

  const round = (n: number | undefined, digits: number) =>
    n === undefined || Number.isNaN(n) ? '' : Number(n.toFixed(digits));
  console.log(
    `Node ${process.version} (V8 ${process.versions.v8}), ${CONNECTIONS} connection(s), ${ROUNDS} × ${SECONDS} s, floor and gateway host setup: ${benchServerSetup()}` +
      (NODE_FLAGS.length ? `, node options: ${NODE_FLAGS.join(' ')}` : ''),
  );
  console.table(
    results.map((r) => ({
      host: r.host,
      requests: r.requests,
      'p50 ms': round(r.p50Ms, 3),
      'p99 ms': round(r.p99Ms, 3),
      scavenges: r.scavenges,
      'promoted KB/req': round(r.promotedKbPerRequest, 1),
      'pause median ms': round(r.scavengePauseMedianMs, 2),
      'pause max ms': round(r.scavengePauseMaxMs, 2),
      'req maps of own': round(r.reqMapsOfTheirOwn, 2),
      'res maps of own': round(r.resMapsOfTheirOwn, 2),
    })),
  );
  mkdirSync(RESULTS_DIR, { recursive: true });
  const file = join(RESULTS_DIR, 'gc-promotion.json');
  writeFileSync(
    file,
    JSON.stringify(
      {
        date: new Date().toISOString(),
        machine: machineInfo(
          loadBefore,
          pinned
            ? `hosts on core ${CORE_UNDER_TEST}; load generator and upstream on core ${CORE_LOAD}`
            : 'not pinned',
        ),
        v8: process.versions.v8,
        hostSetup: benchServerSetup(),
        nodeFlags: NODE_FLAGS,
        connections: CONNECTIONS,
        rounds: ROUNDS,
        results,
      },
      null,
      2,
    ),
  );
  console.log(`written: ${relative(process.cwd(), file)}`);
}

main().then(
  () => process.exit(0),
  (err) => {
    console.error(err);
    process.exit(1);
  },
);
