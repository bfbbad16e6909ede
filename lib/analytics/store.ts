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

/** Rows per PostgreSQL INSERT statement: keeps it well under the protocol's bound-parameter limit. */
const INSERT_CHUNK = 500;

const TUPLE = `(${COLUMNS.map(() => '?').join(', ')})`;
/** A retried batch that had in fact been committed must not count twice. */
const ON_CONFLICT = ' on conflict (event_id, attempt) do nothing';

/**
 * PostgreSQL: one multi-row INSERT written by hand. knex's builder cost ~50 µs of event-loop time per row
 * when SQLite still went through it, ten times what a hand-written statement did.
 */
function insertSql(count: number): string {
  return `insert into ${REQUESTS_TABLE} (${COLUMNS.join(', ')}) values ${Array(count).fill(TUPLE).join(', ')}${ON_CONFLICT}`;
}

/**
 * SQLite's table-valued functions that split a JSON array into rows: `jsonb_each` (SQLite 3.45+, what
 * sqlite3 bundles) hands each row array over as JSONB, which `->>` reads without parsing text again;
 * `json_each` (3.38+) is the fallback for a driver built against an older system SQLite.
 */
export const JSON_EACH = ['jsonb_each', 'json_each'] as const;
export type JsonEach = (typeof JSON_EACH)[number];

/**
 * SQLite: a batch is bound as one JSON text (an array of row arrays) that SQLite unpacks itself. Bound
 * as 22 parameters per row, node-sqlite3 spent ~7 µs per row of the writer thread's JavaScript
 * converting them (a global constructor lookup per value); one string costs it nothing per row, and
 * SQLite's unpacking is cheaper than the conversion was (bench/RESULTS.md, "Seventh pass"). `->>` gives
 * numbers as INTEGER or REAL, strings as TEXT, null as NULL and booleans as 1/0: what binding stored. A
 * double comes back bit for bit except about 1 in 10,000 of those with 17 significant digits, which
 * SQLite's text-to-double conversion leaves one unit in the last place off.
 * `where true` is SQLite's rule for an upsert whose rows come from a SELECT.
 */
export function sqliteInsertSql(each: JsonEach): string {
  const columns = COLUMNS.map((_, i) => `value ->> ${i}`).join(', ');
  return `insert into ${REQUESTS_TABLE} (${COLUMNS.join(', ')}) select ${columns} from ${each}(?) where true${ON_CONFLICT}`;
}

/** `count` rows' values (in `COLUMNS` order, one row after another) as a JSON array of row arrays. */
export function batchJson(values: readonly RowValue[], count: number): string {
  const width = COLUMNS.length;
  let json = '[';
  for (let i = 0; i < count; i++) {
    if (i > 0) json += ',';
    json += JSON.stringify(values.slice(i * width, (i + 1) * width));
  }
  return json + ']';
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
export interface SqliteStatement {
  run(values: readonly unknown[], done: (err: Error | null) => void): void;
  finalize(done?: () => void): void;
}
export interface SqliteConnection {
  prepare(sql: string, done: (err: Error | null) => void): SqliteStatement;
}

function prepare(connection: SqliteConnection, sql: string): Promise<SqliteStatement> {
  return new Promise<SqliteStatement>((resolve, reject) => {
    const statement = connection.prepare(sql, (err) => (err ? reject(err) : resolve(statement)));
  });
}

/**
 * The SQLite INSERT, prepared once on its connection and used for every batch whatever its size. A
 * statement belongs to its connection: a new connection (the pool replaced one) gets a new statement.
 * Exported for the tests, which hand it a connection without `jsonb_each`.
 */
export class PreparedInsert {
  private statement?: Promise<SqliteStatement>;

  constructor(readonly connection: SqliteConnection) {}

  async run(values: readonly RowValue[], count: number): Promise<void> {
    this.statement ??= this.prepareFirstAvailable().catch((err: unknown) => {
      this.statement = undefined;
      throw err;
    });
    const statement = await this.statement;
    const json = batchJson(values, count);
    try {
      await new Promise<void>((resolve, reject) =>
        statement.run([json], (err) => (err ? reject(err) : resolve())),
      );
    } catch (err) {
      // Prepared again next time rather than trusting a statement that failed half-way.
      if (this.statement) {
        this.statement = undefined;
        statement.finalize();
      }
      throw err;
    }
  }

  private async prepareFirstAvailable(): Promise<SqliteStatement> {
    let missing: unknown;
    for (const each of JSON_EACH) {
      try {
        return await prepare(this.connection, sqliteInsertSql(each));
      } catch (err) {
        // "no such table: jsonb_each" on an SQLite older than 3.45: try the next; anything else is real.
        if (!(err instanceof Error && err.message.includes(`no such table: ${each}`))) throw err;
        missing = err;
      }
    }
    throw missing;
  }

  /** Before the connection closes: SQLite refuses to close with statements still open. */
  async finalize(): Promise<void> {
    const pending = this.statement;
    this.statement = undefined;
    const statement = await pending?.catch(() => undefined);
    if (statement) await new Promise<void>((resolve) => statement.finalize(() => resolve()));
  }
}

export class AnalyticsStore {
  private db?: Knex;
  private migrated?: Promise<Knex>;
  private prepared?: PreparedInsert;

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
    if (this.config.storage !== 'postgres') {
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

  /** One statement on the pool's only SQLite connection, whatever the number of rows: one JSON text. */
  private async insertPrepared(db: Knex, values: readonly RowValue[], count: number): Promise<void> {
    const connection = (await db.client.acquireConnection()) as SqliteConnection;
    try {
      if (this.prepared?.connection !== connection) {
        void this.prepared?.finalize();
        this.prepared = new PreparedInsert(connection);
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
    await prepared?.finalize();
    if (db) await db.destroy();
  }
}
