/**
 * The latest individual requests, newest first, for the dashboard's "Latest requests" table and
 * `GET /stats/recent`. A row lists what analytics stores about one request (ids, counts, timings, flags):
 * the table holds no message content, and this query names its columns so that nothing added to the
 * table later leaks out by accident.
 */
import type { Knex } from 'knex';
import { InvalidRequestError } from '../errors.js';
import type { Filters } from './query.js';
import { num, resolveRange } from './query.js';
import { REQUESTS_TABLE } from './schema.js';

export const RECENT_DEFAULT_LIMIT = 50;
/** Bounds the work and the answer of one call. */
export const RECENT_MAX_LIMIT = 500;

export interface RecentQuery {
  /** How many requests, 1..500; default 50. A string of digits is accepted (query strings). */
  limit?: number | string;
  user?: string;
  provider?: string;
  model?: string;
}

export interface RecentRequest {
  /** Arrival time, ISO 8601. */
  time: string;
  request_id: string;
  user: string | null;
  provider: string | null;
  model: string | null;
  status: number | null;
  error_kind: string | null;
  prompt_tokens: number;
  completion_tokens: number;
  cost: number;
  cost_saved: number;
  latency_ms: number;
  ttft_ms: number | null;
  cached: boolean;
  stream: boolean;
  rate_limited: boolean;
}

export interface RecentRequests {
  enabled: true;
  limit: number;
  filters: Filters;
  requests: RecentRequest[];
}

export interface ResolvedRecent {
  limit: number;
  filters: Filters;
}

function limitOf(value: unknown): number {
  if (value === undefined || value === '') return RECENT_DEFAULT_LIMIT;
  let n = NaN;
  if (typeof value === 'number') n = value;
  else if (typeof value === 'string' && /^\d{1,6}$/.test(value)) n = Number(value);
  if (!Number.isInteger(n) || n < 1 || n > RECENT_MAX_LIMIT) {
    throw new InvalidRequestError(
      `limit: expected a whole number from 1 to ${RECENT_MAX_LIMIT} (default ${RECENT_DEFAULT_LIMIT}).`,
      'limit',
    );
  }
  return n;
}

/** Validates a recent() query; every error is an invalid_request naming the parameter, like /stats. */
export function resolveRecent(query: RecentQuery | Record<string, unknown> = {}): ResolvedRecent {
  if (!query || typeof query !== 'object')
    throw new InvalidRequestError('The recent query must be an object.');
  const q = query as Record<string, unknown>;
  // The filters are validated exactly as the summary's are (the range part is unused here).
  const { filters } = resolveRange({ user: q.user, provider: q.provider, model: q.model });
  return { limit: limitOf(q.limit), filters };
}

/** SQLite stores booleans as 0/1, PostgreSQL returns true/false. */
function bool(v: unknown): boolean {
  return v === true || v === 1 || v === '1' || v === 't';
}

const COLUMNS = [
  'ts',
  'request_id',
  'user_id',
  'provider',
  'model',
  'status',
  'error_kind',
  'prompt_tokens',
  'completion_tokens',
  'cost',
  'cost_saved',
  'latency_ms',
  'ttft_ms',
  'cached',
  'stream',
  'rate_limited',
];

export async function queryRecent(db: Knex, resolved: ResolvedRecent): Promise<RecentRequests> {
  // Attempt rows repeat their request's id; one line per client request is what "latest requests" means.
  const q = db(REQUESTS_TABLE).where('kind', 'request');
  const { user, provider, model } = resolved.filters;
  if (user !== undefined) q.where('user_id', user);
  if (provider !== undefined) q.where('provider', provider);
  if (model !== undefined) q.where('model', model);
  // id breaks ties between requests that arrived in the same millisecond: later written, later listed.
  const rows: any[] = await q
    .select(COLUMNS)
    .orderBy([
      { column: 'ts', order: 'desc' },
      { column: 'id', order: 'desc' },
    ])
    .limit(resolved.limit);
  return {
    enabled: true,
    limit: resolved.limit,
    filters: resolved.filters,
    requests: rows.map((r) => ({
      time: new Date(num(r.ts)).toISOString(),
      request_id: String(r.request_id),
      user: r.user_id ?? null,
      provider: r.provider ?? null,
      model: r.model ?? null,
      status: r.status === null || r.status === undefined ? null : num(r.status),
      error_kind: r.error_kind ?? null,
      prompt_tokens: num(r.prompt_tokens),
      completion_tokens: num(r.completion_tokens),
      cost: num(r.cost),
      cost_saved: num(r.cost_saved),
      latency_ms: num(r.latency_ms),
      ttft_ms: r.ttft_ms === null || r.ttft_ms === undefined ? null : num(r.ttft_ms),
      cached: bool(r.cached),
      stream: bool(r.stream),
      rate_limited: bool(r.rate_limited),
    })),
  };
}
