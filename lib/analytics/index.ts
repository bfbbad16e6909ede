/**
 * `gateway.analytics`: records one row per request and one per upstream attempt that did not answer (the
 * answering attempt is stored on its request row; see rows.ts) through the "analytics" stage's outcome
 * hook, keeps Prometheus metrics, and answers summary and timeseries queries. Created once per Gateway;
 * `enabled` and storage settings apply at start (a reload keeps them), batch and retention settings are
 * read at run time.
 */
import type { Logger, ResolvedConfig } from '../../types/index.js';
import type { GatewayContext, RequestOutcome } from '../context.js';
import { GatewayMetrics } from './metrics.js';
import type { StatsQuery, TimeseriesQuery } from './query.js';
import { resolveBucket, resolveRange } from './query.js';
import type { RecentQuery, RecentRequests } from './recent.js';
import { queryRecent, resolveRecent } from './recent.js';
import { AnalyticsRecorder, emptyRecorderStats, type RecorderStats } from './recorder.js';
import { rowsFromOutcome } from './rows.js';
import { AnalyticsStore } from './store.js';
import { AnalyticsWriter } from './writer.js';
import type { AnalyticsSummary, Timeseries } from './summary.js';
import { querySummary, queryTimeseries } from './summary.js';

export type { AnalyticsRow } from './rows.js';
export type {
  AnalyticsSummary,
  Breakdown,
  Timeseries,
  TimeseriesPoint,
  UpstreamBreakdown,
} from './summary.js';
export type { Bucket, Period, StatsQuery, TimeseriesQuery } from './query.js';
export type { RecorderStats } from './recorder.js';
export type { RecentQuery, RecentRequest, RecentRequests } from './recent.js';

export interface AnalyticsDisabled {
  enabled: false;
  message: string;
}

type AnalyticsConfig = ResolvedConfig['analytics'];

export interface AnalyticsOptions {
  /** The analytics section of the config new requests run on (it changes on reload). */
  current: () => AnalyticsConfig;
  logger: Logger;
  /** Code-only tuning, mainly for tests and benchmarks. */
  maxBufferedRows?: number;
  backoffMs?: number;
  now?: () => number;
}

const DISABLED_MESSAGE =
  'Analytics is disabled in this gateway: set analytics.enabled: true in the config (it applies at start).';
/** How often the retention job looks for rows older than analytics.retention_days. */
const RETENTION_EVERY_MS = 3_600_000;

export class Analytics {
  readonly enabled: boolean;
  readonly metrics: GatewayMetrics;
  private readonly store?: AnalyticsStore;
  private readonly recorder?: AnalyticsRecorder;
  private readonly writer?: AnalyticsWriter;
  private readonly now: () => number;
  private retentionTimer?: NodeJS.Timeout;

  constructor(private readonly options: AnalyticsOptions) {
    const config = options.current();
    this.enabled = config.enabled;
    this.now = options.now ?? Date.now;
    this.metrics = new GatewayMetrics(() => this.recorder?.stats());
    if (!this.enabled) return;
    // Rows are written from a worker thread; this thread's store only answers queries, on a schema the
    // writer thread created.
    const writer = new AnalyticsWriter({ storage: config, logger: options.logger });
    this.writer = writer;
    this.store = new AnalyticsStore(config, options.logger, { schema: () => writer.schema() });
    this.recorder = new AnalyticsRecorder({
      write: (rows) => writer.write(rows),
      waitForWriter: (timeoutMs) => writer.waitForProgress(timeoutMs),
      logger: options.logger,
      batchSize: () => options.current().batchSize,
      flushIntervalMs: () => options.current().flushIntervalMs,
      maxBufferedRows: options.maxBufferedRows,
      backoffMs: options.backoffMs,
      now: this.now,
    });
    this.retentionTimer = setInterval(() => void this.applyRetention(), RETENTION_EVERY_MS);
    this.retentionTimer.unref();
  }

  /** The outcome hook's body: builds the rows, counts metrics and buffers the rows. Never throws. */
  recordOutcome(outcome: RequestOutcome, ctx: GatewayContext): void {
    const rows = rowsFromOutcome(outcome, ctx);
    this.metrics.observe(rows);
    if (!this.recorder) return;
    for (const row of rows) this.recorder.push(row);
  }

  /** Totals, latency percentiles, rates and breakdowns over a period (default 24h) or a from/to range. */
  async summary(query: StatsQuery = {}): Promise<AnalyticsSummary | AnalyticsDisabled> {
    const range = resolveRange(query, this.now());
    if (!this.store) return { enabled: false, message: DISABLED_MESSAGE };
    // Recent requests are still buffered; a summary should include them.
    await this.recorder!.flush();
    return querySummary(await this.store.ready(), range);
  }

  /** Requests, errors, tokens and cost per time bucket, empty buckets included. */
  async timeseries(query: TimeseriesQuery = {}): Promise<Timeseries | AnalyticsDisabled> {
    const range = resolveRange(query, this.now());
    const bucketMs = resolveBucket(query, range);
    if (!this.store) return { enabled: false, message: DISABLED_MESSAGE };
    await this.recorder!.flush();
    return queryTimeseries(await this.store.ready(), range, bucketMs);
  }

  /** The latest requests (not attempts), newest first: ids, counts, timings and flags, never content. */
  async recent(query: RecentQuery = {}): Promise<RecentRequests | AnalyticsDisabled> {
    const resolved = resolveRecent(query);
    if (!this.store) return { enabled: false, message: DISABLED_MESSAGE };
    // The newest requests are the ones most likely still buffered.
    await this.recorder!.flush();
    return queryRecent(await this.store.ready(), resolved);
  }

  /** Writes every buffered row now; false when the database failed (rows stay buffered). */
  async flush(): Promise<boolean> {
    return this.recorder ? this.recorder.flush() : true;
  }

  /** Deletes rows older than `date`, `batchSize` rows per statement; resolves how many were deleted. */
  async purgeOlderThan(date: Date, options: { batchSize?: number } = {}): Promise<number> {
    if (!this.store) return 0;
    return this.store.purgeOlderThan(date, options.batchSize);
  }

  stats(): RecorderStats {
    return this.recorder?.stats() ?? emptyRecorderStats();
  }

  /** What the hourly retention job runs: deletes rows older than analytics.retention_days. Never rejects. */
  async applyRetention(): Promise<number> {
    if (!this.store?.opened && !this.writer?.started) return 0;
    const days = this.options.current().retentionDays;
    try {
      const deleted = await this.purgeOlderThan(new Date(this.now() - days * 86_400_000));
      if (deleted)
        this.options.logger.info({ deleted, retention_days: days }, 'Analytics retention purged old rows.');
      return deleted;
    } catch (err) {
      const message = (err instanceof Error ? err.message : String(err)).slice(0, 300);
      this.options.logger.warn(
        { err: message },
        'Analytics retention failed; it runs again within the hour.',
      );
      return 0;
    }
  }

  /** Flushes what is buffered and closes the database (gateway.close()). */
  async close(): Promise<void> {
    if (this.retentionTimer) clearInterval(this.retentionTimer);
    await this.recorder?.close();
    await this.writer?.close();
    await this.store?.close();
  }
}
