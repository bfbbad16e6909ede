/**
 * The analytics writer thread: owns the knex connection rows are written through, so that the database
 * driver's JavaScript work (statement preparation, parameter binding, result callbacks) runs beside the
 * request path instead of on its event loop. It answers every message once, `done` or `failed`; what to
 * retry and when is the main thread's decision (its buffer is what survives this thread crashing).
 */
import { readlinkSync } from 'node:fs';
import { setPriority } from 'node:os';
import { parentPort, workerData, type MessagePort } from 'node:worker_threads';
import type { Logger } from '../../types/index.js';
import { AnalyticsStore } from './store.js';
import type { WriterData, WriterReply, WriterRequest } from './writer.js';

if (!parentPort) throw new Error('writer-worker runs as a worker thread, started by AnalyticsWriter.');
const port: MessagePort = parentPort;

const post = (reply: WriterReply) => port.postMessage(reply);

// knex reports pool and connection trouble through its log; the main thread's logger decides what shows.
const logger: Logger = {
  info: () => {},
  warn: () => {},
  error: () => {},
  debug: (fields, msg) => post({ type: 'log', fields, msg: msg ?? '' }),
};

/**
 * Writing analytics is background work: on Linux this thread lowers its own scheduling priority (a
 * thread id is a valid target of setpriority there), so that on a busy core the request path's thread
 * runs first. SQLite's own work runs in libuv's thread pool, which the process shares and has usually
 * started before this thread (Node's ESM loader reads files through it); its threads keep the priority of
 * the thread that started them, normal in that case. Of a row's ~6 µs outside the event loop, ~2 are this
 * thread's and ~4 the pool's (bench/RESULTS.md, "Seventh pass").
 *
 * Measured at 1,000 requests/s with the gateway pinned to one core: at normal priority (and at nice 10)
 * the writer's bursts added about 1.3 ms to the median latency; at 19 the difference was within noise.
 * The price: on a core the request path keeps saturated the writer gets almost no time, so the recorder
 * applies backpressure once the backlog grows (AnalyticsWriter.waitForProgress): without it a 10-minute
 * soak filled the buffer in 90 s and dropped rows (bench/RESULTS.md, "Memory soak").
 */
const WRITER_NICE = 19;

function lowerPriority(): void {
  if (process.platform !== 'linux') return;
  try {
    const tid = Number(readlinkSync('/proc/thread-self').split('/').pop());
    if (Number.isInteger(tid) && tid > 0) setPriority(tid, WRITER_NICE);
  } catch {
    // Not permitted or not available: the writes still happen, at normal priority.
  }
}
lowerPriority();

const { storage, progress: progressBuffer } = workerData as WriterData;
const progress = new Int32Array(progressBuffer);
const store = new AnalyticsStore(storage, logger);

/**
 * knex prefixes a failed statement's message with its SQL, values included: for a batch that is
 * kilobytes of bindings (user ids among them) ahead of the one part worth logging, the driver's reason.
 */
function reason(err: unknown): string {
  let message = err instanceof Error ? err.message : String(err);
  if (message.startsWith('insert into ')) {
    const cut = message.lastIndexOf(' - ');
    if (cut >= 0) message = message.slice(cut + 3);
  }
  return message.slice(0, 300) || 'write failed';
}

async function handle(m: WriterRequest): Promise<void> {
  try {
    if (m.type === 'write') await store.insertValues(m.values, m.count);
    else if (m.type === 'schema') await store.ready();
    else await store.close();
    post({ type: 'done', id: m.id });
  } catch (err) {
    post({ type: 'failed', id: m.id, error: reason(err) });
  }
  // After the reply, so that a main thread woken by this finds its answer already queued.
  Atomics.add(progress, 0, 1);
  Atomics.notify(progress, 0);
  // After the database is closed nothing keeps this thread: its event loop empties and it exits.
  if (m.type === 'close') port.close();
}

port.on('message', (m: WriterRequest) => void handle(m));
