/**
 * Shared pieces of the benchmark: starting each server in its own process (pinned to a core when the
 * platform allows it), the request bodies every target receives, and percentile arithmetic. Kept apart so
 * that the bench and the soak start their processes the same way.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import http from 'node:http';
import { readFileSync } from 'node:fs';
import { cpus, loadavg, totalmem } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Express } from 'express';
import { createExpressServer } from '../lib/express-server.js';
import { disablePretenuring } from '../lib/v8-tuning.js';
import { ensureBuilt } from './package-under-test.js';

export const BENCH_DIR = dirname(fileURLToPath(import.meta.url));
export const RESULTS_DIR = join(BENCH_DIR, 'results');

/** Whether `taskset` exists: pinning is what keeps the gateway's core free of the load generator. */
const canPin = process.platform === 'linux' && spawnSync('taskset', ['-V']).status === 0;

/**
 * Core placement on a 2-core machine: the process under test (gateway, floor or thin proxy; only one is
 * loaded at a time) gets core 0 to itself; the load generator and the fake upstream share core 1. The
 * upstream answers from precomputed buffers, so its share is small and the same for every target.
 */
export const CORE_UNDER_TEST = '0';
export const CORE_LOAD = cpus().length > 1 ? '1' : '0';

/**
 * CPU time (user + system, all threads) a process has used, in ms, from /proc. Throughput on a shared
 * machine moves with whatever else runs; CPU time per request is what the code itself costs, so the bench
 * reports both. Undefined where /proc does not exist.
 */
export function cpuMs(pid: number | undefined): number | undefined {
  return statCpuMs(pid, `/proc/${pid}/stat`);
}

/**
 * The same for the process's main thread alone (its event loop). The rest of `cpuMs()` is V8's helper
 * threads (concurrent and parallel GC, background compilation), libuv's pool and the gateway's analytics
 * writer thread: on a hit, the main thread's share against the whole tells the request path's own cost
 * from what GC and the analytics row add.
 */
export function mainThreadCpuMs(pid: number | undefined): number | undefined {
  return statCpuMs(pid, `/proc/${pid}/task/${pid}/stat`);
}

function statCpuMs(pid: number | undefined, file: string): number | undefined {
  if (pid === undefined || process.platform !== 'linux') return undefined;
  try {
    const stat = readFileSync(file, 'utf8');
    // Fields after the command name (which may contain spaces) start at field 3; utime, stime are 14, 15.
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return ((Number(fields[11]) + Number(fields[12])) * 1000) / CLOCK_TICKS;
  } catch {
    return undefined;
  }
}
const CLOCK_TICKS = Number(spawnSync('getconf', ['CLK_TCK']).stdout?.toString().trim()) || 100;

/**
 * Waits (at most 5 s) until none of the processes is busy. A load leaves work behind (the gateway's
 * analytics backlog, GC) that would otherwise run during the next load and count against its target:
 * every gateway target of a bench shares one process.
 */
export async function settle(pids: readonly (number | undefined)[]): Promise<void> {
  const busy = () => pids.reduce<number>((n, pid) => n + (cpuMs(pid) ?? 0), 0);
  for (let i = 0, last = busy(); i < 50; i++) {
    await new Promise((r) => setTimeout(r, 100));
    const now = busy();
    // Under 5 ms of CPU in 100 ms: idle but for timers.
    if (now - last < 5) return;
    last = now;
  }
}

export function pinSelf(core: string): boolean {
  if (!canPin) return false;
  // -a: every thread of this process, libuv's pool included.
  return spawnSync('taskset', ['-a', '-pc', core, String(process.pid)]).status === 0;
}

export interface Server {
  readonly name: string;
  readonly port: number;
  readonly child: ChildProcess;
  /** Sends a message and waits for the reply of the same type. */
  ask<T>(type: string): Promise<T>;
  stop(): Promise<void>;
}

/**
 * Starts `bench/<file>` in its own node process (tsx loader, no type checking at runtime) and waits for it
 * to report the port it listens on over the IPC channel. The host files themselves run through tsx; the
 * gateway code they load comes from dist/ (see package-under-test.ts).
 */
export async function startServer(
  name: string,
  file: string,
  options: { env?: Record<string, string>; core?: string; nodeArgs?: string[]; pipeStdout?: boolean } = {},
): Promise<Server> {
  // The gateway hosts load the compiled package; building here covers every bench entry point.
  ensureBuilt();
  const nodeArgs = [...(options.nodeArgs ?? []), '--import', 'tsx', join(BENCH_DIR, file)];
  const [cmd, args] =
    canPin && options.core !== undefined
      ? ['taskset', ['-c', options.core, process.execPath, ...nodeArgs]]
      : [process.execPath, nodeArgs];
  const child = spawn(cmd, args as string[], {
    // pipeStdout: what V8's --trace-gc flags print goes to the parent instead of the terminal.
    stdio: ['ignore', options.pipeStdout ? 'pipe' : 'inherit', 'inherit', 'ipc'],
    env: { ...process.env, ...options.env },
  });
  const port = await new Promise<number>((resolve, reject) => {
    const onExit = (code: number | null) => reject(new Error(`${name} exited (${code}) before it listened`));
    child.once('exit', onExit);
    child.once('message', (m: { type?: string; port?: number }) => {
      child.off('exit', onExit);
      if (m?.type === 'ready' && typeof m.port === 'number') resolve(m.port);
      else reject(new Error(`${name}: unexpected first message ${JSON.stringify(m)}`));
    });
  });
  return {
    name,
    port,
    child,
    ask<T>(type: string) {
      return new Promise<T>((resolve) => {
        const onMessage = (m: { type?: string; value?: T }) => {
          if (m?.type !== type) return;
          child.off('message', onMessage);
          resolve(m.value as T);
        };
        child.on('message', onMessage);
        child.send({ type });
      });
    },
    stop() {
      if (child.exitCode !== null) return Promise.resolve();
      return new Promise<void>((resolve) => {
        // A normal exit (not a signal) is what lets --cpu-prof write its profile.
        const timer = setTimeout(() => child.kill('SIGKILL'), 10_000);
        child.once('exit', () => {
          clearTimeout(timer);
          resolve();
        });
        child.send({ type: 'shutdown' });
      });
    },
  };
}

/** Called by each server process once it listens; handles shutdown and memory questions from the parent. */
export function reportReady(
  port: number,
  onShutdown: () => Promise<void> | void,
  extra?: () => unknown,
): void {
  process.on('message', (m: { type?: string }) => {
    if (m?.type === 'shutdown') {
      void Promise.resolve(onShutdown()).finally(() => process.exit(0));
    } else if (m?.type === 'memory') {
      const gc = (globalThis as { gc?: () => void }).gc;
      // After a full collection heapUsed is what is really kept alive: the figure that shows a leak.
      gc?.();
      process.send?.({
        type: 'memory',
        value: { ...process.memoryUsage(), gcForced: !!gc, state: extra?.() },
      });
    }
  });
  // The parent gone (crashed bench) must not leave servers behind.
  process.on('disconnect', () => process.exit(0));
  process.send?.({ type: 'ready', port });
}

export const MODEL = 'gpt-4o-mini';
/** A typical short prompt; the counter makes every request distinct (a cache miss) when wanted. */
export function promptText(n: number | undefined): string {
  return `Summarise the plot of a short story about a lighthouse keeper and a storm in two sentences.${
    n === undefined ? '' : ` (request ${n})`
  }`;
}

export function chatBody(n: number | undefined, stream = false): string {
  const body: Record<string, unknown> = {
    model: MODEL,
    messages: [{ role: 'user', content: promptText(n) }],
  };
  if (stream) body.stream = true;
  return JSON.stringify(body);
}

export function percentile(sorted: Float64Array | number[], p: number): number {
  if (sorted.length === 0) return NaN;
  const i = Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1));
  return sorted[i]!;
}

/** BENCH_NODE_FLAGS: space-separated node options for the processes under test. */
export function benchNodeFlags(): string[] {
  return (process.env.BENCH_NODE_FLAGS ?? '').split(' ').filter(Boolean);
}

export function median(values: number[]): number {
  const s = [...values].sort((a, b) => a - b);
  return percentile(s, 50);
}

/** Which host setup benchServer() gives, as the bench reports it: `BENCH_SERVER=plain` or the default. */
export function benchServerSetup(): 'recommended' | 'plain' {
  return process.env.BENCH_SERVER === 'plain' ? 'plain' : 'recommended';
}

/**
 * How every Express host of the bench (the floor, the gateway's host, the cache and analytics hosts) is set
 * up: as the README recommends, with the package's `createExpressServer()` (Express' prototypes in place
 * from construction, see lib/express-server.ts) and `disablePretenuring()` (lib/v8-tuning.ts); or, with
 * `BENCH_SERVER=plain`, with node's `http.createServer(app)` as `app.listen()` makes it and V8's defaults.
 * One setting for every host, taken from the sources whichever build is measured, so that the floor and
 * both sides of `bench:ab` are set up alike.
 */
export function benchServer(app: Express): http.Server {
  if (benchServerSetup() === 'plain') return http.createServer(app);
  disablePretenuring();
  return createExpressServer(app);
}

/** The load averages now, to two decimals: recorded before and after a run so a reader can judge it. */
export function loadavgNow(): number[] {
  return loadavg().map((l) => Math.round(l * 100) / 100);
}

/** The machine a run measured, as the results' JSON records it. */
export function machineInfo(loadavgBefore: number[], placement: string) {
  return {
    nproc: cpus().length,
    cpu: cpus()[0]?.model,
    memGiB: Math.round(totalmem() / 2 ** 30),
    loadavgBefore,
    loadavgAfter: loadavgNow(),
    node: process.version,
    placement,
  };
}
