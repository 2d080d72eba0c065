// StoreTables on PostgreSQL: a backup reads every table in one REPEATABLE READ READ ONLY
// transaction through cursors (the control planes go on writing), a restore writes them in one
// transaction under exclusive table locks, in batches, and moves the event seq past the last one.
import { escapeIdentifier } from "pg";
import type { Pool, PoolClient } from "pg";
import { KeelsonError, isKeelsonError } from "@keelson/protocol";
import { POSTGRES_SCHEMA_VERSION } from "./postgres-migrations.js";
import { driverError, migratePostgres, newerSchemaError, onConnectionError, openPostgresPool, schemaVersion } from "./postgres-store.js";
import type { PostgresStoreOptions, StoreContext } from "./postgres-store.js";
import { DUMP_ORDER, STORE_TABLES, emptyCounts, notEmpty } from "./store-tables.js";
import type { ColumnType, Row, StoreTables, TableCounts, TableName, TableRow, TableSnapshot, TableSpec } from "./store-tables.js";

/** Rows per FETCH of a backup and per INSERT of a restore: few round trips, bounded memory. */
const BATCH = 500;

const ARRAY_TYPE: Record<ColumnType, string> = { text: "text[]", integer: "bigint[]", json: "json[]", time: "timestamptz[]" };

/**
 * Opens a PostgreSQL store's tables. `create` (restore): creates the schema when missing and
 * migrates it to this code's version. Otherwise (backup) the schema must be at exactly this version.
 */
export async function openPostgresTables(options: PostgresStoreOptions & { create: boolean }): Promise<StoreTables> {
  const { pool, ctx } = openPostgresPool(options);
  try {
    if (options.create) await migratePostgres(pool, ctx);
    else requireCurrentSchema(ctx, await schemaVersion(pool, ctx.schema));
  } catch (err) {
    await pool.end().catch(() => {});
    throw isKeelsonError(err) ? err : driverError(ctx, options.create ? "restore" : "backup", err);
  }
  return postgresTables(pool, ctx);
}

function requireCurrentSchema(ctx: StoreContext, version: number): void {
  if (version > POSTGRES_SCHEMA_VERSION) throw newerSchemaError(ctx, version);
  if (version < POSTGRES_SCHEMA_VERSION) {
    throw new KeelsonError(
      "KEELSON_ERR_STORE_MIGRATION",
      version === 0
        ? `the store ${ctx.name} holds no Keelson schema (no migration ran there); check --store and --schema`
        : `the store ${ctx.name} has schema version ${version}, but this Keelson backs up and restores schema version ${POSTGRES_SCHEMA_VERSION}; run \`keelson migrate\` first`,
      { details: { schema: ctx.schema, schemaVersion: version, supportedSchemaVersion: POSTGRES_SCHEMA_VERSION } },
    );
  }
}

function postgresTables(opened: Pool, ctx: StoreContext): StoreTables {
  let pool: Pool | undefined = opened;
  const s = escapeIdentifier(ctx.schema);
  const qualified = (table: TableName): string => `${s}.${table}`;

  async function withClient<T>(operation: string, fn: (client: PoolClient) => Promise<T>): Promise<T> {
    if (pool === undefined) throw new KeelsonError("KEELSON_ERR_STORE", `store ${ctx.name}: ${operation}: the store is closed`);
    let client: PoolClient;
    try {
      client = await pool.connect();
    } catch (err) {
      throw driverError(ctx, operation, err);
    }
    const stopListening = onConnectionError(client);
    let broken: Error | undefined;
    try {
      return await fn(client);
    } catch (err) {
      await client.query("ROLLBACK").catch((rollbackErr: unknown) => {
        // A connection that cannot roll back is not given back to the pool.
        broken = rollbackErr instanceof Error ? rollbackErr : new Error(String(rollbackErr));
      });
      throw err;
    } finally {
      stopListening();
      client.release(broken);
    }
  }

  /** Runs store statements: driver errors become KEELSON_ERR_STORE naming the store. */
  async function query<T>(operation: string, fn: () => Promise<T>): Promise<T> {
    try {
      return await fn();
    } catch (err) {
      throw isKeelsonError(err) ? err : driverError(ctx, operation, err);
    }
  }

  async function countRows(client: PoolClient): Promise<TableCounts> {
    const select = STORE_TABLES.map((t) => `(SELECT COUNT(*) FROM ${qualified(t.name)})::bigint AS ${t.name}`).join(", ");
    const row = (await client.query<TableCounts>(`SELECT ${select}`)).rows[0];
    return { ...emptyCounts(), ...row };
  }

  async function* dumpRows(client: PoolClient): AsyncGenerator<TableRow> {
    for (const t of STORE_TABLES) {
      const table = t.name;
      const cursor = `keelson_backup_${table}`;
      await query("backup", () =>
        client.query(`DECLARE ${cursor} NO SCROLL CURSOR FOR SELECT ${t.columns.map((c) => c.name).join(", ")} FROM ${qualified(table)} ORDER BY ${DUMP_ORDER[table].postgres}`),
      );
      for (;;) {
        const batch = await query("backup", () => client.query<Record<string, unknown>>(`FETCH ${BATCH} FROM ${cursor}`));
        for (const raw of batch.rows) yield { table, row: portableRow(t, raw) };
        if (batch.rows.length < BATCH) break;
      }
      await query("backup", () => client.query(`CLOSE ${cursor}`));
    }
  }

  async function insertBatch(client: PoolClient, spec: TableSpec, rows: Row[]): Promise<void> {
    const columns = spec.columns.map((c) => c.name).join(", ");
    const arrays = spec.columns.map((c, i) => `$${i + 1}::${ARRAY_TYPE[c.type]}`).join(", ");
    // seq is GENERATED ALWAYS: a restore keeps the backup's numbers, so it overrides the identity.
    const overriding = spec.name === "events" ? " OVERRIDING SYSTEM VALUE" : "";
    await client.query(
      `INSERT INTO ${qualified(spec.name)} (${columns})${overriding} SELECT * FROM unnest(${arrays})`,
      spec.columns.map((c) => rows.map((row) => row[c.name] ?? null)),
    );
  }

  return {
    kind: "postgres",
    name: ctx.name,

    async read<T>(fn: (snapshot: TableSnapshot) => Promise<T>): Promise<T> {
      return withClient("backup", async (client) => {
        let snapshot: TableSnapshot;
        await query("backup", async () => {
          // One snapshot for the counts and every row; READ ONLY also keeps the backup from writing.
          await client.query("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY");
          const version = await schemaVersion(client, ctx.schema);
          requireCurrentSchema(ctx, version);
          snapshot = { schemaVersion: version, counts: await countRows(client), rows: () => dumpRows(client) };
        });
        // What fn throws (the backup file could not be written, say) is its own error, not the store's.
        const result = await fn(snapshot!);
        await query("backup", () => client.query("COMMIT"));
        return result;
      });
    },

    async write(rows: AsyncIterable<TableRow>, options: { replace: boolean }): Promise<TableCounts> {
      return withClient("restore", async (client) => {
        const all = STORE_TABLES.map((t) => qualified(t.name)).join(", ");
        await query("restore", async () => {
          await client.query("BEGIN");
          // Nobody reads half a restore, and no control plane writes between the check and the end.
          await client.query(`LOCK TABLE ${all} IN ACCESS EXCLUSIVE MODE`);
          const found = await countRows(client);
          if (!options.replace && Object.values(found).some((n) => n > 0)) throw notEmpty(ctx.name, found);
          if (options.replace) {
            // The event log refuses TRUNCATE by trigger; the restore lifts that for its own
            // transaction only (ALTER TABLE is transactional, and the lock keeps others out).
            await client.query(`ALTER TABLE ${qualified("events")} DISABLE TRIGGER events_append_only_truncate`);
            await client.query(`TRUNCATE ${all} RESTART IDENTITY`);
            await client.query(`ALTER TABLE ${qualified("events")} ENABLE TRIGGER events_append_only_truncate`);
          }
        });
        const written = emptyCounts();
        let pending: { spec: TableSpec; rows: Row[] } | undefined;
        const flush = async (): Promise<void> => {
          if (pending === undefined || pending.rows.length === 0) return;
          const batch = pending;
          pending = undefined;
          await query("restore", () => insertBatch(client, batch.spec, batch.rows));
        };
        for await (const { table, row } of rows) {
          if (pending?.spec.name !== table || pending.rows.length >= BATCH) {
            await flush();
            pending = { spec: STORE_TABLES.find((t) => t.name === table)!, rows: [] };
          }
          pending.rows.push(row);
          written[table] += 1;
        }
        await flush();
        await query("restore", async () => {
          // New events continue after the highest restored seq (is_called false: the next value is
          // exactly this one), so the audit chain goes on from where the backup ended.
          await client.query(`SELECT setval(pg_get_serial_sequence($1, 'seq'), COALESCE((SELECT MAX(seq) FROM ${qualified("events")}), 0) + 1, false)`, [
            qualified("events"),
          ]);
          await client.query("COMMIT");
        });
        return written;
      });
    },

    async close(): Promise<void> {
      const open = pool;
      pool = undefined;
      await open?.end();
    },
  };
}

/** A row as the driver returns it, in the engine-neutral form of a backup. */
function portableRow(spec: TableSpec, raw: Record<string, unknown>): Row {
  const row: Row = {};
  for (const c of spec.columns) {
    const value = raw[c.name];
    row[c.name] = value instanceof Date ? value.toISOString() : (value as string | number | null);
  }
  return row;
}
