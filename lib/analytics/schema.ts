/**
 * The analytics schema as knex migrations kept in code: a published package cannot rely on finding a
 * migrations directory on disk. Add a migration by appending to `MIGRATIONS`; never edit a released one.
 */
import type { Knex } from 'knex';

export const REQUESTS_TABLE = 'gateway_requests';
export const MIGRATIONS_TABLE = 'gateway_analytics_migrations';

const MIGRATIONS: Record<string, Knex.Migration> = {
  '001_create_gateway_requests': {
    async up(knex) {
      await knex.schema.createTable(REQUESTS_TABLE, (t) => {
        t.bigIncrements('id').primary();
        t.bigInteger('ts').notNullable();
        t.string('kind', 8).notNullable();
        t.string('event_id', 36).notNullable();
        t.integer('attempt').notNullable();
        t.string('request_id', 128).notNullable();
        t.string('user_id', 200).nullable();
        t.string('provider', 200).nullable();
        t.string('model', 200).nullable();
        t.integer('status').nullable();
        t.string('error_kind', 32).nullable();
        t.integer('prompt_tokens').notNullable().defaultTo(0);
        t.integer('completion_tokens').notNullable().defaultTo(0);
        t.integer('total_tokens').notNullable().defaultTo(0);
        t.double('cost').notNullable().defaultTo(0);
        t.double('cost_saved').notNullable().defaultTo(0);
        t.double('latency_ms').notNullable().defaultTo(0);
        t.double('ttft_ms').nullable();
        t.boolean('cached').notNullable().defaultTo(false);
        t.boolean('rate_limited').notNullable().defaultTo(false);
        t.boolean('stream').notNullable().defaultTo(false);
        t.integer('attempts').notNullable().defaultTo(0);
        // A retried batch that had in fact been committed must not count twice.
        t.unique(['event_id', 'attempt'], { indexName: `${REQUESTS_TABLE}_event_uq` });
        // The summary and timeseries queries filter on kind and a time range, optionally one dimension.
        t.index(['kind', 'ts'], `${REQUESTS_TABLE}_kind_ts_idx`);
        t.index(['user_id', 'ts'], `${REQUESTS_TABLE}_user_ts_idx`);
        t.index(['provider', 'ts'], `${REQUESTS_TABLE}_provider_ts_idx`);
        t.index(['model', 'ts'], `${REQUESTS_TABLE}_model_ts_idx`);
        // Retention deletes by age alone.
        t.index(['ts'], `${REQUESTS_TABLE}_ts_idx`);
        t.index(['request_id'], `${REQUESTS_TABLE}_request_id_idx`);
      });
    },
    async down(knex) {
      await knex.schema.dropTableIfExists(REQUESTS_TABLE);
    },
  },
  // The attempt that produced the answer is stored on its request row instead of a row of its own (see
  // rowsFromOutcome): the upstream call's own latency needs a column there. Rows written before this keep
  // their attempt rows and leave it null; the queries read both forms.
  '002_request_upstream_latency': {
    async up(knex) {
      await knex.schema.alterTable(REQUESTS_TABLE, (t) => {
        t.double('upstream_latency_ms').nullable();
      });
    },
    async down(knex) {
      await knex.schema.alterTable(REQUESTS_TABLE, (t) => {
        t.dropColumn('upstream_latency_ms');
      });
    },
  },
};

const migrationSource: Knex.MigrationSource<string> = {
  getMigrations: async () => Object.keys(MIGRATIONS).sort(),
  getMigrationName: (name) => name,
  getMigration: async (name) => MIGRATIONS[name]!,
};

/**
 * Applies the migrations in order up to and including `name`, and no further: a database as an earlier
 * version left it (what the upgrade tests start from).
 */
export async function migrateUpTo(knex: Knex, name: string): Promise<void> {
  if (!(name in MIGRATIONS)) throw new RangeError(`No analytics migration is named "${name}".`);
  for (const next of Object.keys(MIGRATIONS).sort()) {
    await knex.migrate.up({ migrationSource, tableName: MIGRATIONS_TABLE, name: next });
    if (next === name) return;
  }
}

/** Creates or upgrades the schema; safe to call from several processes (knex takes a lock). */
export async function migrateToLatest(knex: Knex): Promise<void> {
  await knex.migrate.latest({ migrationSource, tableName: MIGRATIONS_TABLE });
}
