// The store's tables as the store tooling (backup, restore) sees them: names, columns and what
// each column holds, the same in SQLite and PostgreSQL (both migrations share versions and column
// meanings), and the small interface each engine implements to read and write them whole.
import { KeelsonError } from "@keelson/protocol";

/** Every table a store of schema version LATEST_SCHEMA_VERSION holds, in the order they are written. */
export type TableName = "projects" | "services" | "releases" | "replicas" | "events" | "documents" | "settings";

/**
 * What a column holds, in the engine-neutral form a backup carries: `text`, `integer` (a safe
 * integer), `json` (the exact JSON text the store wrote), `time` (UTC `toISOString()` text).
 */
export type ColumnType = "text" | "integer" | "json" | "time";

export interface ColumnSpec {
  name: string;
  type: ColumnType;
  /** NULL allowed (SQL NULL, JSON null in a backup). */
  nullable?: true;
}

export interface TableSpec {
  name: TableName;
  columns: readonly ColumnSpec[];
}

const text = (name: string): ColumnSpec => ({ name, type: "text" });
const integer = (name: string): ColumnSpec => ({ name, type: "integer" });
const json = (name: string): ColumnSpec => ({ name, type: "json" });
const time = (name: string): ColumnSpec => ({ name, type: "time" });
const nullable = (column: ColumnSpec): ColumnSpec => ({ ...column, nullable: true });

/**
 * The tables in an order that satisfies the foreign keys (projects before services and replicas).
 * Not included: `schema_migrations` (a backup records the version instead), SQLite's
 * `sqlite_sequence` and PostgreSQL's `releases.stored_seq` (both follow from the order rows are
 * written in). A test compares this list with what the migrations create in both engines.
 */
export const STORE_TABLES: readonly TableSpec[] = [
  { name: "projects", columns: [text("name"), text("manifest_path"), text("manifest_hash"), time("applied_at")] },
  { name: "services", columns: [text("project"), text("name"), json("spec"), integer("generation"), nullable(text("release")), time("updated_at")] },
  {
    name: "releases",
    columns: [text("id"), text("project"), text("service"), text("source_hash"), text("config_hash"), nullable(text("git_commit")), time("created_at"), json("details")],
  },
  {
    name: "replicas",
    columns: [
      text("id"), text("project"), text("service"), text("release"), integer("replica_index"), text("state"), nullable(integer("pid")),
      nullable(integer("pid_start_time")), integer("port"), integer("restarts"), nullable(time("started_at")), time("updated_at"), json("details"),
    ],
  },
  { name: "events", columns: [integer("seq"), time("at"), text("project"), text("kind"), text("actor"), text("subject"), json("details")] },
  { name: "documents", columns: [text("collection"), text("project"), text("id"), text("tag"), time("at"), json("body")] },
  { name: "settings", columns: [text("key"), text("value")] },
];

/**
 * How each table is read for a backup: a total order, so two backups of the same data are the
 * same lines. Releases keep the order they were stored in (SQLite rowid, PostgreSQL stored_seq),
 * which breaks ties between releases created in the same millisecond.
 */
export const DUMP_ORDER: Readonly<Record<TableName, { sqlite: string; postgres: string }>> = {
  projects: { sqlite: "name", postgres: "name" },
  services: { sqlite: "project, name", postgres: "project, name" },
  releases: { sqlite: "rowid", postgres: "stored_seq" },
  replicas: { sqlite: "id", postgres: "id" },
  events: { sqlite: "seq", postgres: "seq" },
  documents: { sqlite: "collection, project, id", postgres: "collection, project, id" },
  settings: { sqlite: "key", postgres: "key" },
};

/** One row: column name to value (string, number or null, as `ColumnType` says). */
export type Row = Record<string, string | number | null>;

export interface TableRow {
  table: TableName;
  row: Row;
}

export type TableCounts = Record<TableName, number>;

export function emptyCounts(): TableCounts {
  return { projects: 0, services: 0, releases: 0, replicas: 0, events: 0, documents: 0, settings: 0 };
}

/** "2 projects, 1 service, 40 events": the tables that hold rows, for messages. */
export function describeCounts(counts: TableCounts): string {
  const parts = STORE_TABLES.filter((t) => counts[t.name] > 0).map((t) => {
    const n = counts[t.name];
    return `${n} ${n === 1 ? singular(t.name) : t.name}`;
  });
  return parts.length === 0 ? "no rows" : parts.join(", ");
}

/** The refusal of a restore into a store that holds rows, naming what it found. */
export function notEmpty(name: string, found: TableCounts): KeelsonError {
  return new KeelsonError(
    "KEELSON_ERR_CONFLICT",
    `the store ${name} is not empty: it holds ${describeCounts(found)}; restore into an empty store, or replace everything in it (keelson restore --force)`,
    { details: { counts: found } },
  );
}

function singular(table: TableName): string {
  return table === "settings" ? "setting" : table.slice(0, -1);
}

/** One consistent view of every table: the counts and the rows come from the same snapshot. */
export interface TableSnapshot {
  schemaVersion: number;
  counts: TableCounts;
  /** Every row, table by table in STORE_TABLES order, each table in DUMP_ORDER. */
  rows(): AsyncIterable<TableRow>;
}

/**
 * A store's tables, for backup and restore. SQLite and PostgreSQL implement it over a connection
 * of their own (sqlite-tables.ts, postgres-tables.ts); MemoryStore has no tables to back up.
 */
export interface StoreTables {
  readonly kind: "sqlite" | "postgres";
  /** How messages name the store (a path, or the URL without its password plus the schema). */
  readonly name: string;
  /** Runs `fn` over one snapshot (a SQLite read transaction, a PostgreSQL REPEATABLE READ READ ONLY one). */
  read<T>(fn: (snapshot: TableSnapshot) => Promise<T>): Promise<T>;
  /**
   * Writes `rows` in one transaction and makes new events continue after the highest seq written.
   * Refuses (KEELSON_ERR_CONFLICT) a store that holds any row, unless `replace`, which empties every
   * table first in the same transaction. Any error rolls everything back. Returns the rows written.
   */
  write(rows: AsyncIterable<TableRow>, options: { replace: boolean }): Promise<TableCounts>;
  close(): Promise<void>;
}
