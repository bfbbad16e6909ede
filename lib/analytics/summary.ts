/**
 * The summary and timeseries queries. Aggregates run in the database (SQL that SQLite and PostgreSQL both
 * accept); percentiles use the nearest-rank method, one indexed ORDER BY ... OFFSET query each, which both
 * databases answer the same way.
 */
import type { Knex } from 'knex';
import type { Filters, Period, ResolvedRange } from './query.js';
import { num } from './query.js';
import { REQUESTS_TABLE } from './schema.js';

export interface Breakdown {
  name: string | null;
  requests: number;
  errors: number;
  error_rate: number;
  tokens: number;
  cost: number;
  avg_latency_ms: number;
}

export interface UpstreamBreakdown {
  name: string | null;
  attempts: number;
  errors: number;
  error_rate: number;
  avg_latency_ms: number;
}

export interface AnalyticsSummary {
  enabled: true;
  period?: Period;
  from: string;
  to: string;
  filters: Filters;
  total_requests: number;
  total_errors: number;
  error_rate: number;
  total_cost: number;
  total_cost_saved: number;
  total_tokens: number;
  prompt_tokens: number;
  completion_tokens: number;
  cache_hits: number;
  cache_hit_rate: number;
  rate_limited: number;
  streams: number;
  /** Requests that needed more than one upstream attempt. */
  fallbacks: number;
  avg_latency_ms: number;
  p50_latency_ms: number;
  p95_latency_ms: number;
  p99_latency_ms: number;
  avg_ttft_ms: number | null;
  by_provider: Breakdown[];
  by_model: Breakdown[];
  by_user: Breakdown[];
  /** Every upstream attempt by provider, failed fallbacks included. */
  upstream_by_provider: UpstreamBreakdown[];
}

export interface TimeseriesPoint {
  t: string;
  requests: number;
  errors: number;
  tokens: number;
  cost: number;
  cost_saved: number;
  cache_hits: number;
  avg_latency_ms: number;
}

export interface Timeseries {
  enabled: true;
  period?: Period;
  from: string;
  to: string;
  bucket_ms: number;
  filters: Filters;
  points: TimeseriesPoint[];
}

/** Breakdowns list the busiest names first, at most this many. */
const BREAKDOWN_LIMIT = 100;

const ERRORS = 'sum(case when error_kind is not null then 1 else 0 end)';

function ratio(a: number, b: number): number {
  return b === 0 ? 0 : a / b;
}

function scoped(db: Knex, kind: 'request' | 'attempt', range: ResolvedRange): Knex.QueryBuilder {
  const q = db(REQUESTS_TABLE).where('kind', kind).whereBetween('ts', [range.fromMs, range.toMs]);
  if (range.filters.user !== undefined) q.where('user_id', range.filters.user);
  if (range.filters.provider !== undefined) q.where('provider', range.filters.provider);
  if (range.filters.model !== undefined) q.where('model', range.filters.model);
  return q;
}

async function breakdown(db: Knex, range: ResolvedRange, column: string): Promise<Breakdown[]> {
  const rows: any[] = await scoped(db, 'request', range)
    .select(
      db.raw('?? as name', [column]),
      db.raw('count(*) as requests'),
      db.raw(`${ERRORS} as errors`),
      db.raw('sum(total_tokens) as tokens'),
      db.raw('sum(cost) as cost'),
      db.raw('avg(latency_ms) as avg_latency_ms'),
    )
    .groupBy(column)
    .orderBy([{ column: 'requests', order: 'desc' }, { column: 'name' }])
    .limit(BREAKDOWN_LIMIT);
  return rows.map((r) => ({
    name: r.name ?? null,
    requests: num(r.requests),
    errors: num(r.errors),
    error_rate: ratio(num(r.errors), num(r.requests)),
    tokens: num(r.tokens),
    cost: num(r.cost),
    avg_latency_ms: num(r.avg_latency_ms),
  }));
}

/**
 * Every upstream attempt: the attempt rows, and the answering attempts stored on their request rows
 * (`upstream_latency_ms` set; see rows.ts). Older request rows leave it null and have attempt rows instead.
 */
async function upstreamBreakdown(db: Knex, range: ResolvedRange): Promise<UpstreamBreakdown[]> {
  const attempts = scoped(db, 'attempt', range).select('provider', 'error_kind', 'latency_ms');
  const answering = scoped(db, 'request', range)
    .whereNotNull('upstream_latency_ms')
    .select('provider', 'error_kind', db.raw('upstream_latency_ms as latency_ms'));
  const rows: any[] = await db
    .from(attempts.unionAll(answering).as('upstream'))
    .select(
      db.raw('provider as name'),
      db.raw('count(*) as attempts'),
      db.raw(`${ERRORS} as errors`),
      db.raw('avg(latency_ms) as avg_latency_ms'),
    )
    .groupBy('provider')
    .orderBy([{ column: 'attempts', order: 'desc' }, { column: 'name' }])
    .limit(BREAKDOWN_LIMIT);
  return rows.map((r) => ({
    name: r.name ?? null,
    attempts: num(r.attempts),
    errors: num(r.errors),
    error_rate: ratio(num(r.errors), num(r.attempts)),
    avg_latency_ms: num(r.avg_latency_ms),
  }));
}

/** Nearest-rank percentile: the smallest latency with at least p% of the requests at or below it. */
async function percentile(db: Knex, range: ResolvedRange, count: number, p: number): Promise<number> {
  if (count === 0) return 0;
  const rank = Math.max(1, Math.ceil((p / 100) * count));
  const row: any = await scoped(db, 'request', range)
    .select('latency_ms')
    .orderBy('latency_ms')
    .offset(rank - 1)
    .limit(1)
    .first();
  return num(row?.latency_ms);
}

function window(range: ResolvedRange) {
  return {
    ...(range.period ? { period: range.period } : {}),
    from: new Date(range.fromMs).toISOString(),
    to: new Date(range.toMs).toISOString(),
    filters: range.filters,
  };
}

export async function querySummary(db: Knex, range: ResolvedRange): Promise<AnalyticsSummary> {
  const totals: any = await scoped(db, 'request', range)
    .select(
      db.raw('count(*) as requests'),
      db.raw(`${ERRORS} as errors`),
      db.raw('sum(cost) as cost'),
      db.raw('sum(cost_saved) as cost_saved'),
      db.raw('sum(total_tokens) as tokens'),
      db.raw('sum(prompt_tokens) as prompt_tokens'),
      db.raw('sum(completion_tokens) as completion_tokens'),
      db.raw('sum(case when cached then 1 else 0 end) as cache_hits'),
      db.raw('sum(case when rate_limited then 1 else 0 end) as rate_limited'),
      db.raw('sum(case when stream then 1 else 0 end) as streams'),
      db.raw('sum(case when attempts > 1 then 1 else 0 end) as fallbacks'),
      db.raw('avg(latency_ms) as avg_latency'),
      db.raw('avg(ttft_ms) as avg_ttft'),
    )
    .first();
  const requests = num(totals?.requests);
  const [p50, p95, p99, byProvider, byModel, byUser, upstream] = await Promise.all([
    percentile(db, range, requests, 50),
    percentile(db, range, requests, 95),
    percentile(db, range, requests, 99),
    breakdown(db, range, 'provider'),
    breakdown(db, range, 'model'),
    breakdown(db, range, 'user_id'),
    upstreamBreakdown(db, range),
  ]);
  const errors = num(totals?.errors);
  const cacheHits = num(totals?.cache_hits);
  return {
    enabled: true,
    ...window(range),
    total_requests: requests,
    total_errors: errors,
    error_rate: ratio(errors, requests),
    total_cost: num(totals?.cost),
    total_cost_saved: num(totals?.cost_saved),
    total_tokens: num(totals?.tokens),
    prompt_tokens: num(totals?.prompt_tokens),
    completion_tokens: num(totals?.completion_tokens),
    cache_hits: cacheHits,
    cache_hit_rate: ratio(cacheHits, requests),
    rate_limited: num(totals?.rate_limited),
    streams: num(totals?.streams),
    fallbacks: num(totals?.fallbacks),
    avg_latency_ms: num(totals?.avg_latency),
    p50_latency_ms: p50,
    p95_latency_ms: p95,
    p99_latency_ms: p99,
    avg_ttft_ms: totals?.avg_ttft === null || totals?.avg_ttft === undefined ? null : num(totals.avg_ttft),
    by_provider: byProvider,
    by_model: byModel,
    by_user: byUser,
    upstream_by_provider: upstream,
  };
}

export async function queryTimeseries(db: Knex, range: ResolvedRange, bucketMs: number): Promise<Timeseries> {
  // bucketMs comes from the fixed BUCKETS table, never from a client, so it is safe to inline.
  const bucketExpr = `(ts - (ts % ${Math.trunc(bucketMs)}))`;
  const rows: any[] = await scoped(db, 'request', range)
    .select(
      db.raw(`${bucketExpr} as bucket`),
      db.raw('count(*) as requests'),
      db.raw(`${ERRORS} as errors`),
      db.raw('sum(total_tokens) as tokens'),
      db.raw('sum(cost) as cost'),
      db.raw('sum(cost_saved) as cost_saved'),
      db.raw('sum(case when cached then 1 else 0 end) as cache_hits'),
      db.raw('avg(latency_ms) as avg_latency_ms'),
    )
    .groupByRaw(bucketExpr)
    .orderBy('bucket');
  const byBucket = new Map(rows.map((r) => [num(r.bucket), r]));
  // Empty buckets are listed with zeros so a chart's x axis is regular.
  const points: TimeseriesPoint[] = [];
  for (let t = range.fromMs - (range.fromMs % bucketMs); t <= range.toMs; t += bucketMs) {
    const r = byBucket.get(t);
    points.push({
      t: new Date(t).toISOString(),
      requests: num(r?.requests),
      errors: num(r?.errors),
      tokens: num(r?.tokens),
      cost: num(r?.cost),
      cost_saved: num(r?.cost_saved),
      cache_hits: num(r?.cache_hits),
      avg_latency_ms: num(r?.avg_latency_ms),
    });
  }
  return { enabled: true, ...window(range), bucket_ms: bucketMs, points };
}
