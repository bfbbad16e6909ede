/**
 * The write path of analytics, kept off the request path: `push()` only appends to an in-memory buffer;
 * rows reach the database in batches, on a timer or when a batch is full. A failing database is retried
 * with exponential backoff while rows stay buffered; the buffer is bounded, and every row it has to drop
 * is counted and logged.
 */
import type { Logger } from '../../types/index.js';
import type { AnalyticsRow } from './rows.js';

export interface RecorderOptions {
  write(rows: readonly AnalyticsRow[]): Promise<void>;
  logger: Logger;
  /** Read at each flush, so a config reload applies without a restart. */
  batchSize: () => number;
  flushIntervalMs: () => number;
  /** Rows kept while the database is unreachable; beyond it new rows are dropped (and counted). */
  maxBufferedRows?: number;
  /** First retry delay after a failed write; doubles per failure up to `maxBackoffMs`. */
  backoffMs?: number;
  maxBackoffMs?: number;
  now?: () => number;
  /**
   * Blocks until the writer has made progress (at most `timeoutMs`). Called by push() while the backlog is
   * over `backpressureRows` and the database is healthy; see AnalyticsWriter.waitForProgress.
   */
  waitForWriter?: (timeoutMs: number) => void;
  /** Backlog (rows) from which push() waits for the writer. Default: 20 batches. */
  backpressureRows?: () => number;
}

/** The longest one push() may block for the writer: a stuck writer must not stall requests for long. */
const BACKPRESSURE_WAIT_MS = 50;
/**
 * At most this share of each second is spent blocked for the writer. A writer starved of CPU needs far
 * less (its rows cost a few percent of a request's CPU); a writer held up by a slow database gains nothing
 * from waits, and without this cap they would throttle every request to the database's pace. Past it, rows
 * buffer (and, at maxBufferedRows, are dropped and counted) as they did before backpressure.
 */
const BACKPRESSURE_BUDGET_MS_PER_SECOND = 250;

/**
 * While more than two batches wait, a write takes up to this many at once (within CATCH_UP_MAX_ROWS): a
 * backlog means the writer is behind, and per row a 400-row INSERT cost the writer thread ~20% less CPU
 * than a 100-row one here (SQLite, every index; the per-write hand-off is shared by more rows).
 */
const CATCH_UP_BATCHES = 4;
/** One multi-row INSERT's worth (the store's chunk): a catch-up write never needs a transaction. */
const CATCH_UP_MAX_ROWS = 500;

export interface RecorderStats {
  buffered: number;
  written: number;
  dropped: number;
  failedWrites: number;
  /** Times push() blocked for the writer (backpressure on a saturated core). */
  backpressureWaits: number;
}

/** The stats of a recorder that has recorded nothing (and of analytics that has no recorder). */
export function emptyRecorderStats(): RecorderStats {
  return { buffered: 0, written: 0, dropped: 0, failedWrites: 0, backpressureWaits: 0 };
}

export class AnalyticsRecorder {
  private buffer: AnalyticsRow[] = [];
  private readonly maxBuffered: number;
  private readonly backoffMs: number;
  private readonly maxBackoffMs: number;
  private readonly now: () => number;
  private inflight?: Promise<boolean>;
  private timer?: NodeJS.Timeout;
  private soon = false;
  private closed = false;
  private failures = 0;
  private retryAt = 0;
  private droppedUnlogged = 0;
  private budgetWindowStart = 0;
  private blockedInWindowMs = 0;
  private readonly counts = emptyRecorderStats();

  constructor(private readonly options: RecorderOptions) {
    const max = options.maxBufferedRows ?? 100_000;
    if (!Number.isInteger(max) || max < 1) {
      throw new RangeError(`maxBufferedRows must be a positive integer (got ${String(max)}); try 100000.`);
    }
    this.maxBuffered = max;
    this.backoffMs = options.backoffMs ?? 500;
    this.maxBackoffMs = options.maxBackoffMs ?? 60_000;
    this.now = options.now ?? Date.now;
    this.arm();
  }

  /**
   * The hot path: O(1) and never throws. It waits only when the writer is healthy but so far behind that
   * the backlog passed `backpressureRows`: then it blocks for one batch of the writer's progress, so that
   * a saturated core writes its rows instead of dropping them; at most a quarter of each second (a slow
   * database is not sped up by waiting), and never during a database outage (rows buffer up to
   * maxBufferedRows).
   */
  push(row: AnalyticsRow): void {
    if (this.closed) {
      this.drop(1);
      return;
    }
    if (this.buffer.length >= this.maxBuffered) {
      this.drop(1);
      return;
    }
    this.buffer.push(row);
    if (
      this.options.waitForWriter &&
      this.inflight &&
      this.failures === 0 &&
      this.buffer.length > this.backpressureRows()
    ) {
      this.waitForWriter(this.options.waitForWriter);
    }
    if (
      this.buffer.length >= this.options.batchSize() &&
      !this.soon &&
      !this.inflight &&
      this.now() >= this.retryAt
    ) {
      this.soon = true;
      setImmediate(() => {
        this.soon = false;
        void this.drain('batches');
      });
    }
  }

  private waitForWriter(wait: (timeoutMs: number) => void): void {
    const start = this.now();
    if (start - this.budgetWindowStart >= 1000) {
      this.budgetWindowStart = start;
      this.blockedInWindowMs = 0;
    }
    const left = BACKPRESSURE_BUDGET_MS_PER_SECOND - this.blockedInWindowMs;
    if (left <= 0) return;
    this.counts.backpressureWaits += 1;
    wait(Math.min(BACKPRESSURE_WAIT_MS, left));
    this.blockedInWindowMs += Math.max(0, this.now() - start);
  }

  private backpressureRows(): number {
    return this.options.backpressureRows?.() ?? 20 * Math.max(1, this.options.batchSize());
  }

  stats(): RecorderStats {
    return { ...this.counts, buffered: this.buffer.length };
  }

  /**
   * Writes everything buffered now, ignoring the backoff. Resolves true when the buffer was emptied,
   * false when the database failed (the rows stay buffered for the next try). Never rejects.
   */
  flush(): Promise<boolean> {
    return this.drain('all');
  }

  /** Stops the timer and writes what is left; rows it cannot write are counted as dropped and logged. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    if (this.timer) clearTimeout(this.timer);
    const ok = await this.drain('all');
    if (!ok) this.drop(this.buffer.splice(0).length);
    this.logDrops();
  }

  private drop(n: number): void {
    if (n <= 0) return;
    this.counts.dropped += n;
    this.droppedUnlogged += n;
    // The first loss is reported at once; a sustained loss is summed up once per flush interval.
    if (this.counts.dropped === n) this.logDrops();
  }

  private logDrops(): void {
    if (this.droppedUnlogged === 0) return;
    this.options.logger.error(
      {
        dropped: this.droppedUnlogged,
        total_dropped: this.counts.dropped,
        max_buffered_rows: this.maxBuffered,
      },
      'Analytics rows dropped: the database is unreachable and the buffer is full (or the gateway closed).',
    );
    this.droppedUnlogged = 0;
  }

  private arm(): void {
    if (this.closed) return;
    this.timer = setTimeout(() => {
      this.logDrops();
      const due = this.buffer.length > 0 && this.now() >= this.retryAt;
      (due ? this.drain('due') : Promise.resolve(true)).finally(() => this.arm());
    }, this.options.flushIntervalMs());
    // Analytics must never keep a host process alive.
    this.timer.unref();
  }

  /**
   * One write at a time: each caller queues behind the previous drain, then writes. Resolves false when the
   * database failed (the rows stay buffered), true otherwise.
   *
   * - `batches` (a push filled a batch): full batches, as long as the buffer holds one.
   * - `due` (the flush interval): what is buffered now, a partial batch included, then full batches.
   * - `all` (flush(), close()): until the buffer is empty, backoff or not.
   *
   * Rows that arrive during a write wait for a full batch or the next interval. Writing them as soon as the
   * write ends turned steady moderate load (one connection here) into an endless run of writes of a few rows
   * each: every row then cost the writer and the main thread over 100 µs instead of ~15 (bench/RESULTS.md).
   */
  private drain(mode: 'batches' | 'due' | 'all'): Promise<boolean> {
    const previous = this.inflight;
    const p = (async () => {
      if (previous) await previous;
      return this.writeAll(mode);
    })();
    this.inflight = p;
    void p.finally(() => {
      if (this.inflight === p) this.inflight = undefined;
    });
    return p;
  }

  private async writeAll(mode: 'batches' | 'due' | 'all'): Promise<boolean> {
    const force = mode === 'all';
    // Rows this drain was asked for whatever their number; beyond them only full batches are written.
    let owed = mode === 'due' ? this.buffer.length : 0;
    while (this.buffer.length > 0) {
      if (!force && this.now() < this.retryAt) return false;
      const batchSize = Math.max(1, this.options.batchSize());
      if (!force && owed <= 0 && this.buffer.length < batchSize) return true;
      const batch = this.buffer.slice(0, this.nextWriteSize(batchSize));
      try {
        await this.options.write(batch);
      } catch (err) {
        this.failed(err);
        return false;
      }
      // Rows pushed during the write were appended behind the batch, so the batch is still at the front.
      this.buffer.splice(0, batch.length);
      this.counts.written += batch.length;
      owed -= batch.length;
      if (this.failures > 0) {
        this.options.logger.info({ failures: this.failures }, 'Analytics database is writable again.');
        this.failures = 0;
        this.retryAt = 0;
      }
    }
    return true;
  }

  /** A batch, or several at once while a backlog waits (see CATCH_UP_BATCHES). */
  private nextWriteSize(batch: number): number {
    if (this.buffer.length <= 2 * batch) return batch;
    return Math.min(this.buffer.length, CATCH_UP_BATCHES * batch, Math.max(batch, CATCH_UP_MAX_ROWS));
  }

  private failed(err: unknown): void {
    this.failures += 1;
    this.counts.failedWrites += 1;
    const delay = Math.min(this.backoffMs * 2 ** (this.failures - 1), this.maxBackoffMs);
    this.retryAt = this.now() + delay;
    const message = (err instanceof Error ? err.message : String(err)).slice(0, 300);
    this.options.logger.error(
      { err: message, failures: this.failures, buffered: this.buffer.length, retry_in_ms: delay },
      'Analytics write failed; the rows stay buffered and will be retried.',
    );
  }
}
