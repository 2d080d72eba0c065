// StoreTables on a SQLite file: a backup reads every table in one read transaction (WAL keeps the
// writer going meanwhile), a restore writes them in one IMMEDIATE transaction on a connection of
// its own, so nothing is half-restored.
import { KeelsonError, isKeelsonError } from "@keelson/protocol";
import { LATEST_SCHEMA_VERSION } from "./migrations.js";
import { driverError, newerSchemaError, openSqliteDatabase, schemaVersion } from "./sqlite-store.js";
import { DUMP_ORDER, STORE_TABLES, emptyCounts, notEmpty } from "./store-tables.js";
import type { Row, StoreTables, TableCounts, TableName, TableRow, TableSnapshot } from "./store-tables.js";

type Db = ReturnType<typeof openSqliteDatabase>;

/**
 * Opens a SQLite store's tables. `create` (restore): creates the file when missing and migrates it
 * to this code's schema. Otherwise (backup) the file must exist at exactly this code's schema.
 */
export function openSqliteTables(options: { path: string; create: boolean; now?: () => number }): StoreTables {
  const { path } = options;
  const db = options.create
    ? openSqliteDatabase({ path, ...(options.now === undefined ? {} : { now: options.now }) })
    : openSqliteDatabase({ path, readonly: true }, "leave");
  try {
    requireCurrentSchema(path, schemaVersion(db));
  } catch (err) {
    db.close();
    throw err;
  }
  let open: Db | undefined = db;

  function connection(operation: string): Db {
    if (open === undefined) throw new KeelsonError("KEELSON_ERR_STORE", `store ${path}: ${operation}: the store is closed`);
    return open;
  }

  function fail(operation: string, err: unknown): KeelsonError {
    return isKeelsonError(err) ? err : driverError(path, operation, err);
  }

  return {
    kind: "sqlite",
    name: path,

    async read<T>(fn: (snapshot: TableSnapshot) => Promise<T>): Promise<T> {
      const conn = connection("backup");
      // A deferred transaction: its first read fixes the snapshot every later read sees.
      conn.exec("BEGIN");
      try {
        let snapshot: TableSnapshot;
        try {
          const version = schemaVersion(conn);
          requireCurrentSchema(path, version);
          snapshot = { schemaVersion: version, counts: countRows(conn), rows: () => dumpRows(conn, path) };
        } catch (err) {
          throw fail("backup", err);
        }
        // What fn throws (the backup file could not be written, say) is its own error, not the store's.
        return await fn(snapshot);
      } finally {
        if (conn.inTransaction) conn.exec("COMMIT");
      }
    },

    async write(rows: AsyncIterable<TableRow>, options: { replace: boolean }): Promise<TableCounts> {
      const conn = connection("restore");
      // The write lock for the whole restore: rows arrive while the file is read, and no other
      // writer may slip in between the emptiness check and the last row.
      try {
        conn.exec("BEGIN IMMEDIATE");
      } catch (err) {
        throw fail("restore", err);
      }
      try {
        const found = countRows(conn);
        if (!options.replace && Object.values(found).some((n) => n > 0)) throw notEmpty(path, found);
        if (options.replace) emptyTables(conn);
        const insert = new Map(
          STORE_TABLES.map((t) => [
            t.name,
            conn.prepare(`INSERT INTO ${t.name} (${t.columns.map((c) => c.name).join(", ")}) VALUES (${t.columns.map(() => "?").join(", ")})`),
          ]),
        );
        const written = emptyCounts();
        for await (const { table, row } of rows) {
          const spec = STORE_TABLES.find((t) => t.name === table)!;
          insert.get(table)!.run(...spec.columns.map((c) => row[c.name] ?? null));
          written[table] += 1;
        }
        // AUTOINCREMENT remembers the highest seq ever handed out; after a replace that is the old
        // store's. New events continue after the restored ones, as in PostgreSQL.
        conn.prepare("UPDATE sqlite_sequence SET seq = (SELECT COALESCE(MAX(seq), 0) FROM events) WHERE name = 'events'").run();
        conn.exec("COMMIT");
        return written;
      } catch (err) {
        if (conn.inTransaction) conn.exec("ROLLBACK");
        throw fail("restore", err);
      }
    },

    async close(): Promise<void> {
      open?.close();
      open = undefined;
    },
  };
}

function requireCurrentSchema(path: string, version: number): void {
  if (version > LATEST_SCHEMA_VERSION) throw newerSchemaError(path, version);
  if (version < LATEST_SCHEMA_VERSION) {
    throw new KeelsonError(
      "KEELSON_ERR_STORE_MIGRATION",
      `the store at ${path} has schema version ${version}, but this Keelson backs up and restores schema version ${LATEST_SCHEMA_VERSION}; run \`keelson migrate\` first`,
      { details: { path, schemaVersion: version, supportedSchemaVersion: LATEST_SCHEMA_VERSION } },
    );
  }
}

function countRows(db: Db): TableCounts {
  const counts = emptyCounts();
  for (const t of STORE_TABLES) counts[t.name] = (db.prepare(`SELECT COUNT(*) AS n FROM ${t.name}`).get() as { n: number }).n;
  return counts;
}

async function* dumpRows(db: Db, path: string): AsyncGenerator<TableRow> {
  for (const t of STORE_TABLES) {
    const table: TableName = t.name;
    let rows: IterableIterator<Row>;
    try {
      rows = db.prepare(`SELECT ${t.columns.map((c) => c.name).join(", ")} FROM ${table} ORDER BY ${DUMP_ORDER[table].sqlite}`).iterate() as IterableIterator<Row>;
    } catch (err) {
      throw driverError(path, "backup", err);
    }
    // The iterator keeps the statement open between rows; leaving the loop early closes it.
    for (const row of rows) yield { table, row };
  }
}

/**
 * Empties every table. The event log's append-only triggers refuse the DELETE: they are dropped and
 * created again from their own stored definition, inside the restore's transaction.
 */
function emptyTables(db: Db): void {
  const triggers = db.prepare("SELECT name, sql FROM sqlite_master WHERE type = 'trigger' AND tbl_name = 'events'").all() as Array<{ name: string; sql: string }>;
  for (const t of triggers) db.exec(`DROP TRIGGER "${t.name}"`);
  for (const t of [...STORE_TABLES].reverse()) db.exec(`DELETE FROM ${t.name}`);
  for (const t of triggers) db.exec(t.sql);
}
