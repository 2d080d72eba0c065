// `keelson migrate` at the store level: brings a store's schema to this code's version, or (check)
// says what is pending, without opening the store for use. The migrations themselves are the
// stores' own (migrations.ts, postgres-migrations.ts), applied by the same functions as on open.
import { existsSync } from "node:fs";
import { isKeelsonError } from "@keelson/protocol";
import { LATEST_SCHEMA_VERSION, MIGRATIONS } from "./migrations.js";
import type { AppliedMigration, Migration } from "./migrations.js";
import { resolveStoreLocation } from "./open-store.js";
import type { StoreLocation } from "./open-store.js";
import { POSTGRES_MIGRATIONS, POSTGRES_SCHEMA_VERSION } from "./postgres-migrations.js";
import { driverError as postgresDriverError, migratePostgres, newerSchemaError as postgresNewerSchemaError, openPostgresPool, schemaVersion as postgresSchemaVersion } from "./postgres-store.js";
import { migrateSqlite, newerSchemaError as sqliteNewerSchemaError, openSqliteDatabase, schemaVersion as sqliteSchemaVersion } from "./sqlite-store.js";

export interface MigrateStoreOptions extends StoreLocation {
  /** Only report: change nothing, and do not create a missing store. */
  check?: boolean;
  /** Stop at this version instead of the newest (tests make stores of an older version with it). */
  to?: number;
  /** Clock for the `applied_at` of each migration. Default `Date.now`. */
  now?: () => number;
}

/** What `migrateStore` found and did. */
export interface MigrationReport {
  kind: "sqlite" | "postgres";
  /** How messages name the store: the path, or the URL without its password plus the schema. */
  store: string;
  /** The schema version found (0: no store, or an empty one). */
  from: number;
  /** The schema version now (the same as `from` for a check). */
  to: number;
  /** The version this code writes and expects. */
  latest: number;
  /** Migrations applied by this call, in order. */
  applied: AppliedMigration[];
  /** Migrations still to apply to reach `latest`. */
  pending: AppliedMigration[];
}

/**
 * Migrates the store at `url` or `path` to this code's schema version, or with `check` only reports.
 * A store whose schema is newer than the code is refused (KEELSON_ERR_STORE_MIGRATION) either way.
 *
 * @example
 * const report = await migrateStore({ path: ".keelson/state.db", check: true });
 * if (report.pending.length > 0) console.log(`${report.pending.length} migrations pending`);
 */
export async function migrateStore(options: MigrateStoreOptions): Promise<MigrationReport> {
  const where = resolveStoreLocation(options);
  const now = options.now ?? Date.now;
  if (where.kind === "sqlite") {
    const { path } = where;
    if (options.check === true) {
      // A check never creates the file it was pointed at.
      let from = 0;
      if (existsSync(path)) {
        const db = openSqliteDatabase({ path, readonly: true }, "leave");
        try {
          from = sqliteSchemaVersion(db);
        } finally {
          db.close();
        }
      }
      if (from > LATEST_SCHEMA_VERSION) throw sqliteNewerSchemaError(path, from);
      return report("sqlite", path, from, from, [], MIGRATIONS, LATEST_SCHEMA_VERSION);
    }
    const db = openSqliteDatabase({ path, now }, "leave");
    try {
      const from = sqliteSchemaVersion(db);
      const applied = migrateSqlite(db, path, { now, ...(options.to === undefined ? {} : { upTo: options.to }) });
      return report("sqlite", path, from, sqliteSchemaVersion(db), applied, MIGRATIONS, LATEST_SCHEMA_VERSION);
    } finally {
      db.close();
    }
  }

  const { pool, ctx } = openPostgresPool({ url: where.url, ...(where.schema === undefined ? {} : { schema: where.schema }), now });
  try {
    const from = await postgresSchemaVersion(pool, ctx.schema);
    if (from > POSTGRES_SCHEMA_VERSION) throw postgresNewerSchemaError(ctx, from);
    if (options.check === true) return report("postgres", ctx.name, from, from, [], POSTGRES_MIGRATIONS, POSTGRES_SCHEMA_VERSION);
    const applied = await migratePostgres(pool, ctx, options.to ?? POSTGRES_SCHEMA_VERSION);
    return report("postgres", ctx.name, from, await postgresSchemaVersion(pool, ctx.schema), applied, POSTGRES_MIGRATIONS, POSTGRES_SCHEMA_VERSION);
  } catch (err) {
    throw isKeelsonError(err) ? err : postgresDriverError(ctx, "migrate", err);
  } finally {
    await pool.end().catch(() => {});
  }
}

function report(
  kind: MigrationReport["kind"],
  store: string,
  from: number,
  to: number,
  applied: AppliedMigration[],
  migrations: readonly Migration[],
  latest: number,
): MigrationReport {
  const pending = migrations.filter((m) => m.version > to).map(({ version, name }) => ({ version, name }));
  return { kind, store, from, to, latest, applied, pending };
}
