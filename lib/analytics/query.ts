/**
 * Validation of summary/timeseries queries, shared by the programmatic API and `GET /stats`: every error
 * is an invalid_request naming the parameter and the values it accepts.
 */
import { InvalidRequestError } from '../errors.js';

export const PERIODS = {
  '1h': 3_600_000,
  '24h': 86_400_000,
  '7d': 7 * 86_400_000,
  '30d': 30 * 86_400_000,
} as const;
export type Period = keyof typeof PERIODS;

export const BUCKETS = {
  '1m': 60_000,
  '5m': 300_000,
  '15m': 900_000,
  '1h': 3_600_000,
  '6h': 21_600_000,
  '1d': 86_400_000,
} as const;
export type Bucket = keyof typeof BUCKETS;

const DEFAULT_BUCKET: Record<Period, Bucket> = { '1h': '1m', '24h': '1h', '7d': '6h', '30d': '1d' };
/** Bounds the work and the answer of one timeseries call. */
export const MAX_POINTS = 2000;

export interface StatsQuery {
  period?: Period;
  /** A Date, an ISO 8601 string or epoch milliseconds. */
  from?: Date | string | number;
  to?: Date | string | number;
  user?: string;
  provider?: string;
  model?: string;
}

export interface TimeseriesQuery extends StatsQuery {
  bucket?: Bucket;
}

export interface Filters {
  user?: string;
  provider?: string;
  model?: string;
}

export interface ResolvedRange {
  period?: Period;
  fromMs: number;
  toMs: number;
  filters: Filters;
}

function timeOf(name: string, value: unknown): number {
  let ms = NaN;
  if (value instanceof Date) ms = value.getTime();
  else if (typeof value === 'number') ms = value;
  else if (typeof value === 'string' && /^\d{1,16}$/.test(value)) ms = Number(value);
  else if (typeof value === 'string' && value.length <= 64) ms = Date.parse(value);
  if (!Number.isFinite(ms)) {
    throw new InvalidRequestError(
      `${name}: expected an ISO 8601 time (e.g. 2025-01-31T00:00:00Z) or epoch milliseconds.`,
      name,
    );
  }
  return ms;
}

function filterOf(name: string, value: unknown): string | undefined {
  if (value === undefined || value === '') return undefined;
  if (typeof value !== 'string' || value.length > 200) {
    throw new InvalidRequestError(`${name}: expected one string of at most 200 characters.`, name);
  }
  return value;
}

export function resolveRange(
  query: StatsQuery | Record<string, unknown> = {},
  now = Date.now(),
): ResolvedRange {
  if (!query || typeof query !== 'object')
    throw new InvalidRequestError('The stats query must be an object.');
  const q = query as Record<string, unknown>;
  const filters: Filters = {};
  for (const name of ['user', 'provider', 'model'] as const) {
    const v = filterOf(name, q[name]);
    if (v !== undefined) filters[name] = v;
  }
  const hasRange = (q.from !== undefined && q.from !== '') || (q.to !== undefined && q.to !== '');
  if (hasRange) {
    if (q.period !== undefined && q.period !== '') {
      throw new InvalidRequestError('period: give either period or from/to, not both.', 'period');
    }
    if (q.from === undefined || q.from === '') {
      throw new InvalidRequestError('from: required with to (the start of the range).', 'from');
    }
    const fromMs = timeOf('from', q.from);
    const toMs = q.to === undefined || q.to === '' ? now : timeOf('to', q.to);
    if (fromMs >= toMs) throw new InvalidRequestError('from: must be before to.', 'from');
    return { fromMs, toMs, filters };
  }
  const period = (q.period === undefined || q.period === '' ? '24h' : q.period) as Period;
  if (typeof period !== 'string' || !Object.hasOwn(PERIODS, period)) {
    throw new InvalidRequestError(`period: must be one of ${Object.keys(PERIODS).join(', ')}.`, 'period');
  }
  return { period, fromMs: now - PERIODS[period], toMs: now, filters };
}

export function resolveBucket(
  query: TimeseriesQuery | Record<string, unknown>,
  range: ResolvedRange,
): number {
  const raw = (query as Record<string, unknown>).bucket;
  let bucket: Bucket;
  if (raw === undefined || raw === '') {
    const span = range.toMs - range.fromMs;
    bucket = range.period
      ? DEFAULT_BUCKET[range.period]
      : ((Object.keys(BUCKETS) as Bucket[]).find((b) => span / BUCKETS[b] <= 200) ?? '1d');
  } else if (typeof raw === 'string' && Object.hasOwn(BUCKETS, raw)) {
    bucket = raw as Bucket;
  } else {
    throw new InvalidRequestError(`bucket: must be one of ${Object.keys(BUCKETS).join(', ')}.`, 'bucket');
  }
  const ms = BUCKETS[bucket];
  if ((range.toMs - range.fromMs) / ms > MAX_POINTS) {
    throw new InvalidRequestError(
      `bucket: ${bucket} makes more than ${MAX_POINTS} points over this range; choose a larger bucket.`,
      'bucket',
    );
  }
  return ms;
}

/** Database values to numbers: PostgreSQL returns bigint and numeric columns as strings, absent ones as null. */
export function num(v: unknown): number {
  if (v === null || v === undefined) return 0;
  const n = typeof v === 'number' ? v : Number(v);
  return Number.isFinite(n) ? n : 0;
}
