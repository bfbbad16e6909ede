/**
 * Helpers for the analytics tests: crafted outcomes (for rows whose features a test does not exercise
 * through HTTP), the figures a summary must show for a list of known requests, and a TCP proxy that can
 * take PostgreSQL "down" and bring it back; the two storages the suite runs on, each with a way to fail.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import knexFactory, { type Knex } from 'knex';
import { REQUESTS_TABLE } from '../../lib/analytics/schema.js';
import type { GatewayContext, RequestOutcome } from '../../lib/context.js';
import type { GatewayError } from '../../lib/errors.js';
import type { Gateway } from '../../lib/gateway.js';
import type { AnalyticsFileConfig } from '../../types/index.js';
import { POSTGRES_URL, probePostgres, requireService } from './services.js';

export interface CraftOptions {
  user?: string;
  /** Arrival time, epoch ms (default now). */
  at?: number;
  latency?: number;
  provider?: string;
  model?: string;
  prompt?: number;
  completion?: number;
  cost?: number;
  cached?: boolean;
  costSaved?: number;
  error?: GatewayError;
}

/**
 * The fields of a `recent()` entry and of the dashboard's latest requests, sorted: ids, counts, timings and
 * flags, exactly (anything else could be content or a secret).
 */
export const RECENT_FIELDS = [
  'cached',
  'completion_tokens',
  'cost',
  'cost_saved',
  'error_kind',
  'latency_ms',
  'model',
  'prompt_tokens',
  'provider',
  'rate_limited',
  'request_id',
  'status',
  'stream',
  'time',
  'ttft_ms',
  'user',
];

/** A context and outcome as the pipeline would produce them, for `analytics.recordOutcome()`. */
export function craft(gateway: Gateway, o: CraftOptions): { ctx: GatewayContext; outcome: RequestOutcome } {
  const model = o.model ?? 'gpt-4o-mini';
  const provider = o.provider ?? 'openai';
  const ctx = gateway.createContext({ model, messages: [{ role: 'user', content: 'crafted' }] }, false, {
    user: o.user,
  });
  if (o.at !== undefined) Object.assign(ctx, { receivedAt: new Date(o.at) });
  if (o.cached) {
    ctx.cacheStatus = 'HIT';
    if (o.costSaved !== undefined) ctx.locals.costSaved = o.costSaved;
  } else if (!o.error || o.provider) {
    ctx.attempts.push({
      provider,
      model,
      status: o.error ? 500 : 200,
      latency_ms: o.latency ?? 1,
      ...(o.error ? { error_kind: o.error.kind } : {}),
    });
  }
  if (o.error) return { ctx, outcome: { status: o.error.status, error: o.error } };
  const prompt = o.prompt ?? 1;
  const completion = o.completion ?? 1;
  return {
    ctx,
    outcome: {
      status: 200,
      response: {
        id: ctx.requestId,
        provider,
        model,
        content: '',
        finish_reason: 'stop',
        usage: { prompt_tokens: prompt, completion_tokens: completion, total_tokens: prompt + completion },
        cost: o.cost ?? 0,
        latency_ms: o.latency ?? 1,
        cached: o.cached ?? false,
      },
    },
  };
}

/** What the test knows about one request it made. */
export interface Known {
  user: string;
  provider: string | null;
  error: boolean;
  tokens?: number;
  prompt?: number;
  completion?: number;
  cost?: number;
  stream?: boolean;
  cached?: boolean;
  saved?: number;
  rateLimited?: boolean;
  /** Upstream attempts in order: [provider, failed]. */
  attempts?: [string, boolean][];
}

interface Group {
  name: string | null;
  requests: number;
  errors: number;
  error_rate: number;
  tokens: number;
  cost: number;
}

function groupBy(known: Known[], key: (k: Known) => string | null): Group[] {
  const groups = new Map<string | null, Group>();
  for (const k of known) {
    const name = key(k);
    const g = groups.get(name) ?? { name, requests: 0, errors: 0, error_rate: 0, tokens: 0, cost: 0 };
    g.requests += 1;
    g.errors += k.error ? 1 : 0;
    g.tokens += k.tokens ?? 0;
    g.cost += k.cost ?? 0;
    g.error_rate = g.errors / g.requests;
    groups.set(name, g);
  }
  return [...groups.values()].sort((a, b) => String(a.name).localeCompare(String(b.name)));
}

export function expectedOf(known: Known[]) {
  const sum = (f: (k: Known) => number) => known.reduce((n, k) => n + f(k), 0);
  return {
    total_requests: known.length,
    total_errors: sum((k) => (k.error ? 1 : 0)),
    total_tokens: sum((k) => k.tokens ?? 0),
    prompt_tokens: sum((k) => k.prompt ?? 0),
    completion_tokens: sum((k) => k.completion ?? 0),
    total_cost: sum((k) => k.cost ?? 0),
    cache_hits: sum((k) => (k.cached ? 1 : 0)),
    rate_limited: sum((k) => (k.rateLimited ? 1 : 0)),
    streams: sum((k) => (k.stream ? 1 : 0)),
    fallbacks: sum((k) => ((k.attempts?.length ?? 0) > 1 ? 1 : 0)),
    by_provider: groupBy(known, (k) => k.provider),
    by_user: groupBy(known, (k) => k.user),
  };
}

/** Sums of doubles differ in the last bits with the order of addition; nothing more is tolerated. */
export function closeEnough(actual: number, expected: number, what: string): void {
  assert.ok(
    Math.abs(actual - expected) <= 1e-12 + Math.abs(expected) * 1e-9,
    `${what}: ${actual} != ${expected}`,
  );
}

/** A TCP proxy to `target` whose `down()` refuses and cuts every connection until `up()`. */
export async function pgProxy(target: URL) {
  const sockets = new Set<net.Socket>();
  const server = net.createServer((client) => {
    const upstream = net.connect(Number(target.port || 5432), target.hostname);
    for (const s of [client, upstream]) {
      sockets.add(s);
      s.on('close', () => sockets.delete(s));
      s.on('error', () => {
        client.destroy();
        upstream.destroy();
      });
    }
    client.pipe(upstream).pipe(client);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as net.AddressInfo).port;
  const stop = () =>
    new Promise<void>((resolve) => {
      for (const s of sockets) s.destroy();
      if (server.listening) server.close(() => resolve());
      else resolve();
    });
  return {
    port,
    down: stop,
    up: () => new Promise<void>((resolve) => server.listen(port, '127.0.0.1', resolve)),
    close: stop,
  };
}

export interface Storage {
  config: AnalyticsFileConfig;
  db: Knex;
  cleanup(): Promise<void>;
}

export interface Backend {
  name: 'sqlite' | 'postgres';
  check(mocha: Mocha.Context): Promise<void>;
  fresh(): Promise<Storage>;
  /** A way to take the database down (writes fail) and bring it back; `config` is what the gateway uses. */
  outage(storage: Storage): Promise<Outage>;
}

export interface Outage {
  config: AnalyticsFileConfig;
  down(): Promise<void>;
  restore(): Promise<void>;
  close(): Promise<void>;
}

export const sqlite: Backend = {
  name: 'sqlite',
  check: async () => {},
  async fresh() {
    const dir = mkdtempSync(join(tmpdir(), 'gw-analytics-'));
    const path = join(dir, 'analytics.db');
    const db = knexFactory({ client: 'sqlite3', connection: { filename: path }, useNullAsDefault: true });
    return {
      config: { storage: 'sqlite', sqlite_path: path },
      db,
      async cleanup() {
        await db.destroy();
        rmSync(dir, { recursive: true, force: true });
      },
    };
  },
  async outage(storage) {
    // The table must exist for the trigger; a first flush creates it.
    const trigger = `CREATE TRIGGER fail_inserts BEFORE INSERT ON ${REQUESTS_TABLE} BEGIN SELECT RAISE(FAIL, 'disk is down'); END`;
    return {
      config: storage.config,
      down: async () => void (await storage.db.raw(trigger)),
      restore: async () => void (await storage.db.raw('DROP TRIGGER fail_inserts')),
      close: async () => {},
    };
  },
};

let schemaSeq = 0;
export const postgres: Backend = {
  name: 'postgres',
  check: (mocha) => requireService(mocha, 'PostgreSQL', () => probePostgres()),
  async fresh() {
    const schema = `analytics_test_${process.pid}_${Date.now()}_${schemaSeq++}`;
    const admin = knexFactory({ client: 'pg', connection: POSTGRES_URL, pool: { min: 0, max: 1 } });
    await admin.raw(`CREATE SCHEMA ${schema}`);
    await admin.destroy();
    const url = `${POSTGRES_URL}?options=${encodeURIComponent(`-c search_path=${schema}`)}`;
    const db = knexFactory({ client: 'pg', connection: url, pool: { min: 0, max: 2 } });
    return {
      config: { storage: 'postgres', postgres_url: url },
      db,
      async cleanup() {
        await db.raw(`DROP SCHEMA ${schema} CASCADE`);
        await db.destroy();
      },
    };
  },
  async outage(storage) {
    const proxy = await pgProxy(new URL(POSTGRES_URL));
    const url = new URL(String(storage.config.postgres_url));
    url.port = String(proxy.port);
    return {
      config: { storage: 'postgres', postgres_url: url.toString() },
      down: () => proxy.down(),
      restore: () => proxy.up(),
      close: () => proxy.close(),
    };
  },
};
