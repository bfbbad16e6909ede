/**
 * The main thread's handle on the analytics writer thread (`writer-worker.ts`). `write()` posts one
 * message per batch, the rows as one flat array of values (cheap to structured-clone), and resolves when
 * the thread has committed them or rejects when it could not: the recorder keeps the rows buffered until
 * then, so a failed write or a crashed thread loses nothing. A thread that dies is reported and replaced
 * by a new one at the next write; the thread starts on the first write, so a gateway that never serves a
 * request starts no thread and opens no database.
 */
import { Worker } from 'node:worker_threads';
import type { Logger } from '../../types/index.js';
import { rowValues, type AnalyticsRow, type RowValue } from './rows.js';
import type { AnalyticsStorageConfig } from './store.js';

export interface WriterData {
  storage: AnalyticsStorageConfig;
  /**
   * One Int32 the thread increments (and notifies) after answering each message: the main thread can
   * block on it without its event loop, which is what `waitForProgress()` needs.
   */
  progress: SharedArrayBuffer;
}

export type WriterRequest =
  | { type: 'write'; id: number; count: number; values: RowValue[] }
  | { type: 'schema'; id: number }
  | { type: 'close'; id: number };

export type WriterReply =
  | { type: 'done'; id: number }
  | { type: 'failed'; id: number; error: string }
  | { type: 'log'; fields: unknown; msg: string };

export interface WriterOptions {
  storage: AnalyticsStorageConfig;
  logger: Logger;
  /** How long close() waits for the thread to close the database before terminating it. */
  closeTimeoutMs?: number;
}

interface Pending {
  resolve(): void;
  reject(err: Error): void;
}

/**
 * From the build this module is a .js file and its worker loads directly; from the TypeScript sources
 * (tests, benchmarks) a small .mjs entry registers the TypeScript loader in the thread first (see it).
 */
function startThread(data: WriterData): Worker {
  const entry = import.meta.url.endsWith('.ts') ? './writer-worker-dev.mjs' : './writer-worker.js';
  return new Worker(new URL(entry, import.meta.url), { workerData: data });
}

export class AnalyticsWriter {
  private thread?: Worker;
  private readonly pending = new Map<number, Pending>();
  private seq = 0;
  private readonly progress = new Int32Array(new SharedArrayBuffer(4));
  /** Messages posted to the thread, in the same count as `progress` (see waitForProgress). */
  private posted = 0;
  private closing = false;
  private ended = false;
  /** Threads that ended without being asked to (crash, terminate, out of memory). */
  crashes = 0;

  constructor(private readonly options: WriterOptions) {}

  /** Whether a writer thread was ever started (the database may have been opened). */
  get started(): boolean {
    return this.seq > 0;
  }

  /** The live thread, if any; tests use it to kill the thread. */
  get worker(): Worker | undefined {
    return this.thread;
  }

  /**
   * Blocks this thread (event loop included) until the writer thread has answered one more message, or
   * `timeoutMs` passed; returns at once when the thread has nothing to answer. This is backpressure for a
   * core the request path keeps saturated: the writer runs at the lowest priority and would otherwise get
   * almost no time there, its backlog growing until rows are dropped. Blocking here gives it the core for
   * the length of one batch instead.
   */
  waitForProgress(timeoutMs: number): void {
    const answered = Atomics.load(this.progress, 0);
    if (!this.thread || answered >= this.posted) return;
    Atomics.wait(this.progress, 0, answered, timeoutMs);
  }

  /** Writes the rows in the writer thread; resolves once committed, rejects with the database's error. */
  write(rows: readonly AnalyticsRow[]): Promise<void> {
    if (rows.length === 0) return Promise.resolve();
    return this.call((id) => ({ type: 'write', id, count: rows.length, values: rowValues(rows) }));
  }

  /** Creates or upgrades the schema from the writer thread's connection. */
  schema(): Promise<void> {
    return this.call((id) => ({ type: 'schema', id }));
  }

  /**
   * Closes the thread's database and ends the thread. Call after the last write has settled; a thread
   * that does not answer within the timeout is terminated all the same.
   */
  async close(): Promise<void> {
    this.closing = true;
    const thread = this.thread;
    if (!thread) return;
    const timeoutMs = this.options.closeTimeoutMs ?? 10_000;
    let timer: NodeJS.Timeout | undefined;
    try {
      await Promise.race([
        this.call((id) => ({ type: 'close', id })),
        new Promise<void>((resolve) => {
          timer = setTimeout(resolve, timeoutMs);
        }),
      ]);
    } catch {
      // Closing a database that is down fails; the thread is ended below either way.
    } finally {
      clearTimeout(timer);
      await thread.terminate();
      this.ended = true;
    }
  }

  private call(build: (id: number) => WriterRequest): Promise<void> {
    if (this.ended) return Promise.reject(new Error('the analytics writer is closed'));
    const thread = this.thread ?? this.start();
    const id = ++this.seq;
    const message = build(id);
    return new Promise<void>((resolve, reject) => {
      // Only while an answer is awaited does the thread keep the process alive, as a pending database
      // write on the main thread did.
      if (this.pending.size === 0) thread.ref();
      this.pending.set(id, { resolve, reject });
      this.posted += 1;
      thread.postMessage(message);
    });
  }

  private start(): Worker {
    const thread = startThread({
      storage: this.options.storage,
      progress: this.progress.buffer as SharedArrayBuffer,
    });
    thread.unref();
    thread.on('message', (m: WriterReply) => this.onReply(thread, m));
    // Without an 'error' listener an exception in the thread would be rethrown in the host process.
    thread.on('error', (err) => {
      this.options.logger.error(
        { err: (err instanceof Error ? err.message : String(err)).slice(0, 300) },
        'Analytics writer thread failed.',
      );
    });
    thread.on('exit', (code) => this.onExit(thread, code));
    this.thread = thread;
    return thread;
  }

  private onReply(thread: Worker, m: WriterReply): void {
    if (m.type === 'log') {
      this.options.logger.debug?.(m.fields, m.msg);
      return;
    }
    const p = this.pending.get(m.id);
    if (!p) return;
    this.pending.delete(m.id);
    if (this.pending.size === 0 && this.thread === thread) thread.unref();
    if (m.type === 'done') p.resolve();
    else p.reject(new Error(m.error));
  }

  private onExit(thread: Worker, code: number): void {
    if (this.thread === thread) this.thread = undefined;
    // The messages it never answered will never count: start the next thread level with the counter.
    this.posted = Atomics.load(this.progress, 0);
    const expected = this.closing && this.pending.size === 0;
    if (!expected) {
      this.crashes += 1;
      this.options.logger.error(
        { exit_code: code, crashes: this.crashes, unanswered: this.pending.size },
        'Analytics writer thread stopped unexpectedly; unwritten rows stay buffered and a new thread starts with the next write.',
      );
    }
    // Every message it had not answered failed: the recorder keeps those rows and retries them.
    const err = new Error(`analytics writer thread exited (code ${code}) before answering`);
    for (const p of this.pending.values()) p.reject(err);
    this.pending.clear();
  }
}
