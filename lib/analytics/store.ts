/**
 * The database behind analytics, through knex: SQLite (a local file, the default) or PostgreSQL. The
 * connection is opened on first use, so a gateway that never serves a request never creates a file.
 */
import { mkdirSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import knexFactory, { type Knex } from 'knex';
import type { Logger, ResolvedConfig } from '../../types/index.js';
import { ConfigError } from '../errors.js';
import { COLUMNS, rowValues, type AnalyticsRow, type RowValue } from './rows.js';
import { REQUESTS_TABLE, migrateToLatest } from './schema.js';

export type AnalyticsStorageConfig = Pick<
  ResolvedConfig['analytics'],
  'storage' | 'sqlitePath' | 'postgresUrl'
>;

/** Rows per INSERT statement: keeps SQLite and PostgreSQL well under their bound-parameter limits. */
const INSERT_CHUNK = 500;

const TUPLE = `(${COLUMNS.map(() => '?').join(', ')})`;

/**
 * One multi-row INSERT written by hand: knex's builder costs ~50 µs of event-loop time per row here (it
 * renders SQLite multi-row inserts as UNION ALL selects), ten times what this does.
 */
function insertSql(count: number): string {
  return (
    `insert into ${REQUESTS_TABLE} (${COLUMNS.join(', ')}) values ${Array(count).fill(TUPLE).join(', ')}` +
    // A retried batch that had in fact been committed must not count twice.
    ' on conflict (event_id, attempt) do nothing'
  );
}

export interface StoreOptions {
  /**
   * Makes the schema current instead of migrating from this connection. The gateway's query-side store
   * passes the writer thread's migration here, so that one connection per process migrates: knex's
   * migration lock refuses a second migrator rather than waiting for it.
   */
  schema?: () => Promise<void>;
}

/** The parts of a node-sqlite3 prepared statement this file uses. */
interface SqliteStatement {
  run(values: readonly unknown[], done: (err: Error | null) => void): void;
  finalize(done?: () => void): void;
}
interface SqliteConnection {
  prepare(sql: string, done: (err: Error | null) => void): SqliteStatement;
}

/** Batch sizes whose INSERT stays prepared: the configured batch size, and a few partial flushes. */
const PREPARED_SIZES = 4;

/**
 * Prepared INSERTs on the SQLite connection, one per row count, the most recent few kept. Parsing and
 * planning a 100-row INSERT of 2,100 parameters took ~6 µs per row of the writer thread's ~30 here; a
 * full batch, the case under load, now reuses its statement. A statement belongs to its connection: a
 * new connection (the pool replaced one) gets new statements.
 */
class PreparedInserts {
  private readonly byCount = new Map<number, SqliteStatement>();

  constructor(readonly connection: SqliteConnection) {}

  async run(values: readonly RowValue[], count: number): Promise<void> {
    let statement = this.byCount.get(count);
    if (statement) {
      // Most recently used last: the first entry is the one to drop.
      this.byCount.delete(count);
    } else {
      statement = await new Promise<SqliteStatement>((resolve, reject) => {
        const prepared = this.connection.prepare(insertSql(count), (err) =>
          err ? reject(err) : resolve(prepared),
        );
      });
      if (this.byCount.size >= PREPARED_SIZES) {
        const [oldest, stale] = this.byCount.entries().next().value!;
        this.byCount.delete(oldest);
        stale.finalize();
      }
    }
    this.byCount.set(count, statement);
    try {
      await new Promise<void>((resolve, reject) =>
        statement.run(values, (err) => (err ? reject(err) : resolve())),
      );
    } catch (err) {
      // Prepared again next time rather than trusting a statement that failed half-way.
      this.byCount.delete(count);
      statement.finalize();
      throw err;
    }
  }

  /** Before the connection closes: SQLite refuses to close with statements still open. */
  finalizeAll(): Promise<void> {
    const pending = [...this.byCount.values()].map(
      (statement) => new Promise<void>((resolve) => statement.finalize(() => resolve())),
    );
    this.byCount.clear();
    return Promise.all(pending).then(() => undefined);
  }
}

export class AnalyticsStore {
  private db?: Knex;
  private migrated?: Promise<Knex>;
  private prepared?: PreparedInserts;

  constructor(
    private readonly config: AnalyticsStorageConfig,
    private readonly logger?: Logger,
    private readonly options: StoreOptions = {},
  ) {
    if (config.storage === 'postgres' && !config.postgresUrl) {
      throw new ConfigError(
        'analytics.postgres_url: required when analytics.storage is "postgres". Set it, e.g. "${DATABASE_URL}", or use storage: sqlite.',
      );
    }
  }

  /** Whether the database was ever opened (retention has nothing to do before that). */
  get opened(): boolean {
    return this.db !== undefined;
  }

  private open(): Knex {
    if (this.db) return this.db;
    // knex prints pool and connection errors to the console; the recorder already reports failed writes.
    const debug = (message: unknown) =>
      this.logger?.debug?.({ err: String(message).slice(0, 300) }, 'analytics db');
    const log = { warn: debug, error: debug, debug, deprecate: debug };
    if (this.config.storage === 'postgres') {
      this.db = knexFactory({
        log,
        client: 'pg',
        connection: this.config.postgresUrl!,
        // Analytics must not hold many connections of a database the host also uses.
        pool: { min: 0, max: 4 },
        acquireConnectionTimeout: 10_000,
      });
    } else {
      const filename = resolve(this.config.sqlitePath);
      mkdirSync(dirname(filename), { recursive: true });
      this.db = knexFactory({
        log,
        client: 'sqlite3',
        connection: { filename },
        useNullAsDefault: true,
        pool: {
          min: 1,
          max: 1,
          // WAL lets the dashboard read while the gateway writes; busy_timeout rides out other writers;
          // synchronous NORMAL (safe with WAL) skips an fsync per commit, which bounded the write rate.
          afterCreate: (conn: any, done: (err: Error | null, conn: unknown) => void) => {
            conn.exec(
              'PRAGMA journal_mode = WAL; PRAGMA busy_timeout = 5000; PRAGMA synchronous = NORMAL;',
              (err: Error | null) => done(err, conn),
            );
          },
        },
      });
    }
    return this.db;
  }

  /** The migrated database; a failed migration (database down) is tried again on the next call. */
  ready(): Promise<Knex> {
    if (!this.migrated) {
      const db = this.open();
      const schema = this.options.schema;
      this.migrated = (schema ? schema() : migrateToLatest(db)).then(
        () => db,
        (err: unknown) => {
          this.migrated = undefined;
          throw err;
        },
      );
    }
    return this.migrated;
  }

  async insert(rows: readonly AnalyticsRow[]): Promise<void> {
    return this.insertValues(rowValues(rows), rows.length);
  }

  /** Writes `count` rows given as their values in `COLUMNS` order, one row after another. */
  async insertValues(values: readonly RowValue[], count: number): Promise<void> {
    if (count === 0) return;
    if (values.length !== count * COLUMNS.length) {
      throw new RangeError(
        `expected ${count * COLUMNS.length} values for ${count} rows, got ${values.length}`,
      );
    }
    const db = await this.ready();
    if (this.config.storage !== 'postgres' && count <= INSERT_CHUNK) {
      await this.insertPrepared(db, values, count);
      return;
    }
    const width = COLUMNS.length;
    const run = async (q: Knex | Knex.Transaction) => {
      for (let i = 0; i < count; i += INSERT_CHUNK) {
        const n = Math.min(INSERT_CHUNK, count - i);
        const bindings = (
          n === count ? values : values.slice(i * width, (i + n) * width)
        ) as readonly Knex.Value[];
        await q.raw(insertSql(n), bindings);
      }
    };
    // One statement is atomic by itself; BEGIN/COMMIT round trips are only worth it for several.
    if (count <= INSERT_CHUNK) await run(db);
    else await db.transaction(run);
  }

  /** One statement on the pool's only SQLite connection, prepared once per row count. */
  private async insertPrepared(db: Knex, values: readonly RowValue[], count: number): Promise<void> {
    const connection = (await db.client.acquireConnection()) as SqliteConnection;
    try {
      if (this.prepared?.connection !== connection) {
        void this.prepared?.finalizeAll();
        this.prepared = new PreparedInserts(connection);
      }
      await this.prepared.run(values, count);
    } finally {
      await db.client.releaseConnection(connection);
    }
  }

  /** Deletes rows older than `date` in batches, so a large purge never holds a long lock. */
  async purgeOlderThan(date: Date, batchSize = 5000): Promise<number> {
    if (!Number.isInteger(batchSize) || batchSize < 1) {
      throw new RangeError(`batchSize must be a positive integer (got ${String(batchSize)}); try 5000.`);
    }
    const db = await this.ready();
    const cutoff = date.getTime();
    let total = 0;
    for (;;) {
      const deleted = await db(REQUESTS_TABLE)
        .whereIn('id', db(REQUESTS_TABLE).select('id').where('ts', '<', cutoff).limit(batchSize))
        .delete();
      total += deleted;
      if (deleted < batchSize) return total;
    }
  }

  async close(): Promise<void> {
    const db = this.db;
    this.db = undefined;
    this.migrated = undefined;
    const prepared = this.prepared;
    this.prepared = undefined;
    await prepared?.finalizeAll();
    if (db) await db.destroy();
  }
}
