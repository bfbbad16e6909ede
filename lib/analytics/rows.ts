/**
 * What analytics stores, built from the final outcome: one row per request, and one per upstream attempt
 * that did not produce the answer (a failure, a retry, a fallback). The attempt that answered is stored on
 * its request row (`upstream_latency_ms`): it repeats that row's provider, model, status, tokens and cost,
 * and a second row for it doubled the writes of every request (~30 µs of CPU per request, bench/RESULTS.md).
 * Rows carry counts, ids and timings only: never message content, never a key or a header.
 */
import { randomBytes } from 'node:crypto';
import type { GatewayContext, RequestOutcome } from '../context.js';
import { elapsedMs } from '../context.js';

export interface AnalyticsRow {
  /** Arrival time of the request, epoch milliseconds (portable across SQLite and PostgreSQL). */
  ts: number;
  kind: 'request' | 'attempt';
  /**
   * Generated per request, unique across processes and restarts: with `attempt` it makes a write
   * idempotent when a batch is retried.
   */
  event_id: string;
  /** 0 for the request row, 1.. for its upstream attempts in order. */
  attempt: number;
  request_id: string;
  user_id: string | null;
  provider: string | null;
  model: string | null;
  /** Request rows: the client's status. Attempt rows: the upstream status (null for transport errors). */
  status: number | null;
  error_kind: string | null;
  prompt_tokens: number;
  completion_tokens: number;
  total_tokens: number;
  /** Dollars spent upstream (0 on a cache hit). */
  cost: number;
  /** Dollars a cache hit saved, as the cache reports it in `ctx.locals.costSaved`. */
  cost_saved: number;
  latency_ms: number;
  ttft_ms: number | null;
  cached: boolean;
  /** Refused by the gateway's own rate limiter, before any provider was tried. */
  rate_limited: boolean;
  stream: boolean;
  /** Request rows: how many upstream attempts it took (0 when none was made). */
  attempts: number;
  /**
   * Request rows whose answer came from an upstream: that attempt's own latency, the attempt being stored
   * on this row rather than as a row of its own. Null otherwise, and on rows written before this column.
   */
  upstream_latency_ms: number | null;
}

/** The table's columns in the order the writer thread binds them: a row travels as its values alone. */
export const COLUMNS = [
  'ts',
  'kind',
  'event_id',
  'attempt',
  'request_id',
  'user_id',
  'provider',
  'model',
  'status',
  'error_kind',
  'prompt_tokens',
  'completion_tokens',
  'total_tokens',
  'cost',
  'cost_saved',
  'latency_ms',
  'ttft_ms',
  'cached',
  'rate_limited',
  'stream',
  'attempts',
  'upstream_latency_ms',
] as const satisfies readonly (keyof AnalyticsRow)[];

export type RowValue = AnalyticsRow[(typeof COLUMNS)[number]];

/**
 * The rows' values, one row after another in `COLUMNS` order: a flat array of primitives is the
 * cheapest thing to structured-clone to the writer thread, and is already the INSERT's bindings. Each
 * field is named (reading `row[column]` in a loop is a slow keyed lookup), and the array is pushed, never
 * preallocated: structured clone copies an array with holes key by key, several times slower.
 */
export function rowValues(rows: readonly AnalyticsRow[]): RowValue[] {
  const out: RowValue[] = [];
  for (const r of rows) {
    out.push(
      r.ts,
      r.kind,
      r.event_id,
      r.attempt,
      r.request_id,
      r.user_id,
      r.provider,
      r.model,
      r.status,
      r.error_kind,
      r.prompt_tokens,
      r.completion_tokens,
      r.total_tokens,
      r.cost,
      r.cost_saved,
      r.latency_ms,
      r.ttft_ms,
      r.cached,
      r.rate_limited,
      r.stream,
      r.attempts,
      r.upstream_latency_ms,
    );
  }
  return out;
}

/**
 * Event ids: a random per-process prefix (96 bits, so that two processes, or this one after a restart,
 * never share it) and a counter. Costs a string concatenation where randomUUID() cost an entropy read and
 * formatting per request; 16 + 1 + at most 11 characters fit the 36-character column.
 */
const EVENT_PREFIX = randomBytes(12).toString('base64url');
let eventSeq = 0;

export function nextEventId(): string {
  return `${EVENT_PREFIX}-${(eventSeq++).toString(36)}`;
}

/**
 * Bounds what a client can put into a column (user ids, model names). A lone surrogate (sent escaped in
 * the JSON body, or left by the cut splitting a pair) becomes U+FFFD here: SQLite's JSON unpacking would
 * store it as bytes that are not UTF-8, and PostgreSQL's driver replaces it anyway.
 */
function clip(value: string | undefined | null, max = 200): string | null {
  if (value === undefined || value === null || value === '') return null;
  const clipped = value.length > max ? value.slice(0, max) : value;
  return clipped.isWellFormed() ? clipped : clipped.toWellFormed();
}

function finite(n: unknown): number {
  return typeof n === 'number' && Number.isFinite(n) ? n : 0;
}

export function rowsFromOutcome(outcome: RequestOutcome, ctx: GatewayContext): AnalyticsRow[] {
  const answer = outcome.response ?? outcome.done;
  const attempts = ctx.attempts;
  const last = attempts.at(-1);
  const hit = ctx.cacheStatus === 'HIT';
  const saved = ctx.locals.costSaved;
  const usage = answer?.usage;
  const ts = ctx.receivedAt.getTime();
  const eventId = nextEventId();
  const request: AnalyticsRow = {
    ts,
    kind: 'request',
    event_id: eventId,
    attempt: 0,
    request_id: ctx.requestId,
    user_id: clip(ctx.user),
    provider: clip(answer?.provider ?? outcome.error?.provider ?? last?.provider),
    model: clip(answer?.model ?? last?.model ?? ctx.request.model),
    status: outcome.status,
    error_kind: outcome.error?.kind ?? null,
    prompt_tokens: finite(usage?.prompt_tokens),
    completion_tokens: finite(usage?.completion_tokens),
    total_tokens: finite(usage?.total_tokens),
    // Nothing was spent upstream for a cache hit, whatever cost the cached answer carries.
    cost: hit ? 0 : finite(answer?.cost),
    cost_saved: hit && typeof saved === 'number' && Number.isFinite(saved) ? saved : 0,
    latency_ms: answer ? finite(answer.latency_ms) : elapsedMs(ctx),
    ttft_ms: typeof outcome.ttftMs === 'number' ? outcome.ttftMs : null,
    cached: hit,
    rate_limited:
      ctx.locals.rateLimited === true || (outcome.error?.kind === 'rate_limit' && attempts.length === 0),
    stream: ctx.stream,
    attempts: attempts.length,
    upstream_latency_ms: null,
  };
  if (attempts.length === 0) return [request];
  // The answering attempt folds into the request row when that row already says everything it would:
  // same provider, model and status (the answer's tokens and cost are the request's).
  let folded = -1;
  if (answer !== undefined && last && !last.error_kind) {
    if (
      clip(last.provider) === request.provider &&
      clip(last.model) === request.model &&
      (last.status ?? null) === request.status
    ) {
      folded = attempts.length - 1;
      request.upstream_latency_ms = last.latency_ms;
    }
  }
  const rows = [request];
  // A plain loop and a full literal: no closure per request, and every row has the request row's shape.
  for (let i = 0; i < attempts.length; i++) {
    if (i === folded) continue;
    const a = attempts[i]!;
    // The attempt that produced the answer carries its tokens and cost; failed ones spent nothing.
    const won = !a.error_kind && i === attempts.length - 1 && answer !== undefined;
    rows.push({
      ts,
      kind: 'attempt',
      event_id: eventId,
      attempt: i + 1,
      request_id: request.request_id,
      user_id: request.user_id,
      provider: clip(a.provider),
      model: clip(a.model),
      status: a.status ?? null,
      error_kind: a.error_kind ?? null,
      prompt_tokens: won ? request.prompt_tokens : 0,
      completion_tokens: won ? request.completion_tokens : 0,
      total_tokens: won ? request.total_tokens : 0,
      cost: won ? request.cost : 0,
      cost_saved: 0,
      latency_ms: a.latency_ms,
      ttft_ms: won ? request.ttft_ms : null,
      cached: false,
      rate_limited: false,
      stream: request.stream,
      attempts: 0,
      upstream_latency_ms: null,
    });
  }
  return rows;
}
