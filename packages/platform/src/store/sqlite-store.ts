// The default Store: one SQLite file (better-sqlite3, WAL) that the control plane writes
// while CLI processes read it. The interface is async although the driver is not, so
// PostgreSQL fits behind it; the schema lives in migrations.ts.
import { existsSync } from "node:fs";
import Database from "better-sqlite3";
import { KeelsonError, isKeelsonError } from "@keelson/protocol";
import type { KeelsonEvent } from "@keelson/protocol";
import { LATEST_SCHEMA_VERSION, MIGRATIONS } from "./migrations.js";
import type { AppliedMigration } from "./migrations.js";
import {
  documentRecord,
  eventRecord,
  isoNow,
  nextServiceRow,
  prepareDesiredState,
  prepareDocumentQuery,
  prepareDocuments,
  prepareEvent,
  prepareEventQuery,
  prepareRelease,
  prepareReplica,
  prepareReplicaCount,
  projectNotFound,
  releaseRecord,
  replicaRecord,
  serviceNotFound,
  serviceRecord,
  specWithReplicas,
} from "./store-input.js";
import type { DocumentRow, EventRow, PreparedDesiredState, ReleaseRow, ReplicaRow, ServiceRow } from "./store-input.js";
import type { DocumentQuery, DocumentRecord, EventInput, EventQuery, IntegrityReport, ProjectRecord, ReleaseRecord, ReplicaRecord, ServiceRecord, Store } from "./store.js";
import { checkReferences } from "./integrity.js";

export interface SqliteStoreOptions {
  /** The database file; created (with its schema) when missing, unless `readonly`. */
  path: string;
  /** Open read-only: no migrations, every write is refused, and the file must exist. */
  readonly?: boolean;
  /** How long a write waits for another connection's lock before failing, in ms. Default 5000. */
  busyTimeoutMs?: number;
  /** Clock for the times the store assigns (event `at`, service `updatedAt`). Default `Date.now`. */
  now?: () => number;
}

type Db = Database.Database;

const DEFAULT_BUSY_TIMEOUT_MS = 5000;

/**
 * Opens (and, read-write, creates and migrates) a SQLite store.
 *
 * @example
 * const store = await createSqliteStore({ path: ".keelson/state.db" });
 * const cliView = await createSqliteStore({ path: ".keelson/state.db", readonly: true });
 */
export async function createSqliteStore(options: SqliteStoreOptions): Promise<Store> {
  const db = openSqliteDatabase(options);
  return sqliteStore(db, options);
}

/**
 * Opens the database with the settings every connection needs and brings its schema up
 * to date (read-write) or checks it is current (read-only). Exported for the store's own
 * tests, which inspect the connection, and for the store tooling (migrate, backup, restore),
 * which asks to find the schema as it is ("leave") and decides itself; other code uses
 * createSqliteStore.
 */
export function openSqliteDatabase(options: SqliteStoreOptions, schema: "migrate" | "check" | "leave" = options.readonly === true ? "check" : "migrate"): Db {
  const { path } = options;
  const readonly = options.readonly === true;
  const busyTimeoutMs = options.busyTimeoutMs ?? DEFAULT_BUSY_TIMEOUT_MS;
  if (readonly && !existsSync(path)) {
    throw new KeelsonError(
      "KEELSON_ERR_STORE",
      `no store at ${path}: opening read-only needs an existing database (the control plane creates it on first start)`,
      { details: { path } },
    );
  }
  let db: Db;
  try {
    db = new Database(path, { readonly, fileMustExist: readonly, timeout: busyTimeoutMs });
  } catch (err) {
    throw driverError(path, "open", err);
  }
  try {
    // busy_timeout first: the pragmas and the migration below may wait for another process.
    db.pragma(`busy_timeout = ${busyTimeoutMs}`);
    db.pragma("foreign_keys = ON");
    if (!readonly) {
      // WAL lets readers in other processes go on while one writer commits.
      db.pragma("journal_mode = WAL");
      db.pragma("synchronous = NORMAL");
    }
    if (schema === "check") checkSchemaIsCurrent(db, path);
    else if (schema === "migrate") migrateSqlite(db, path, { now: options.now ?? Date.now });
  } catch (err) {
    db.close();
    throw isKeelsonError(err) ? err : driverError(path, "open", err);
  }
  return db;
}

/** The schema version recorded in the database; 0 for a database no migration ran on. */
export function schemaVersion(db: Db): number {
  const table = db.prepare("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'schema_migrations'").get();
  if (table === undefined) return 0;
  const row = db.prepare("SELECT MAX(version) AS version FROM schema_migrations").get() as { version: number | null };
  return row.version ?? 0;
}

export function newerSchemaError(path: string, version: number): KeelsonError {
  return new KeelsonError(
    "KEELSON_ERR_STORE_MIGRATION",
    `the store at ${path} has schema version ${version}, but this Keelson knows schema versions up to ${LATEST_SCHEMA_VERSION}; upgrade Keelson to open it`,
    { details: { path, schemaVersion: version, supportedSchemaVersion: LATEST_SCHEMA_VERSION } },
  );
}

function checkSchemaIsCurrent(db: Db, path: string): void {
  const version = schemaVersion(db);
  if (version > LATEST_SCHEMA_VERSION) throw newerSchemaError(path, version);
  if (version < LATEST_SCHEMA_VERSION) {
    throw new KeelsonError(
      "KEELSON_ERR_STORE_MIGRATION",
      `the store at ${path} has schema version ${version}, but this Keelson needs version ${LATEST_SCHEMA_VERSION}; open it read-write once (start the control plane) to migrate it`,
      { details: { path, schemaVersion: version, supportedSchemaVersion: LATEST_SCHEMA_VERSION } },
    );
  }
}

/**
 * Applies the pending migrations up to `upTo` (default: all) in one IMMEDIATE transaction and
 * returns those it applied. `upTo` lets a test make a store of an older version.
 */
export function migrateSqlite(db: Db, path: string, options: { now: () => number; upTo?: number }): AppliedMigration[] {
  const { now } = options;
  const upTo = options.upTo ?? LATEST_SCHEMA_VERSION;
  // Read without a lock first: opening a current database must not queue behind the writer.
  const seen = schemaVersion(db);
  if (seen > LATEST_SCHEMA_VERSION) throw newerSchemaError(path, seen);
  if (seen >= upTo) return [];
  const applied: AppliedMigration[] = [];
  db.transaction(() => {
    db.exec(`CREATE TABLE IF NOT EXISTS schema_migrations (
      version    INTEGER PRIMARY KEY,
      name       TEXT NOT NULL,
      applied_at TEXT NOT NULL
    ) STRICT`);
    // Read again under the write lock: another process may have migrated meanwhile.
    const current = schemaVersion(db);
    if (current > LATEST_SCHEMA_VERSION) throw newerSchemaError(path, current);
    const record = db.prepare("INSERT INTO schema_migrations (version, name, applied_at) VALUES (?, ?, ?)");
    for (const migration of MIGRATIONS) {
      if (migration.version <= current || migration.version > upTo) continue;
      try {
        db.exec(migration.sql);
      } catch (err) {
        throw new KeelsonError(
          "KEELSON_ERR_STORE_MIGRATION",
          `migration ${migration.version} (${migration.name}) failed on the store at ${path}: ${messageOf(err)}; nothing was changed`,
          { cause: err, details: { path, version: migration.version } },
        );
      }
      record.run(migration.version, migration.name, isoNow(now));
      applied.push({ version: migration.version, name: migration.name });
    }
  }).immediate();
  return applied;
}

function messageOf(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

export function driverError(path: string, operation: string, err: unknown): KeelsonError {
  const sqliteCode = err instanceof Database.SqliteError ? err.code : undefined;
  return new KeelsonError("KEELSON_ERR_STORE", `store ${path}: ${operation} failed: ${messageOf(err)}`, {
    cause: err,
    details: { operation, ...(sqliteCode === undefined ? {} : { sqliteCode }) },
  });
}

// Columns as the driver returns them: SQL NULL where our records hold undefined.
interface ServiceColumns extends Omit<ServiceRow, "release"> {
  release: string | null;
}
interface ReleaseColumns extends Omit<ReleaseRow, "gitCommit"> {
  gitCommit: string | null;
}
interface ReplicaColumns extends Omit<ReplicaRow, "pid" | "pidStartTime" | "startedAt"> {
  pid: number | null;
  pidStartTime: number | null;
  startedAt: string | null;
}
interface EventColumns extends EventRow {
  seq: number;
  at: string;
}

const PROJECT_COLUMNS = "name, manifest_path AS manifestPath, manifest_hash AS manifestHash, applied_at AS appliedAt";
const SERVICE_COLUMNS = "project, name, spec, generation, release, updated_at AS updatedAt";
const RELEASE_COLUMNS =
  "id, project, service, source_hash AS sourceHash, config_hash AS configHash, git_commit AS gitCommit, created_at AS createdAt, details";
const REPLICA_COLUMNS =
  'id, project, service, release, replica_index AS "index", state, pid, pid_start_time AS pidStartTime, port, restarts, started_at AS startedAt, updated_at AS updatedAt, details';
const EVENT_COLUMNS = "seq, at, project, kind, actor, subject, details";
const DOCUMENT_COLUMNS = "collection, project, id, tag, at, body";

// The largest code point: prefix <= s < prefix + U+10FFFF holds exactly for the texts that
// start with prefix (in UTF-8 byte order), and unlike LIKE it is case-sensitive and uses
// the subject index.
const AFTER_EVERY_CHARACTER = "\u{10FFFF}";

function sqliteStore(opened: Db, options: SqliteStoreOptions): Store {
  const { path } = options;
  const readonly = options.readonly === true;
  const now = options.now ?? Date.now;
  let db: Db | undefined = opened;

  const sql = {
    projectExists: opened.prepare("SELECT 1 FROM projects WHERE name = ?"),
    getProject: opened.prepare(`SELECT ${PROJECT_COLUMNS} FROM projects WHERE name = ?`),
    listProjects: opened.prepare(`SELECT ${PROJECT_COLUMNS} FROM projects ORDER BY name`),
    getService: opened.prepare(`SELECT ${SERVICE_COLUMNS} FROM services WHERE project = ? AND name = ?`),
    listServices: opened.prepare(`SELECT ${SERVICE_COLUMNS} FROM services WHERE project = ? ORDER BY name`),
    getRelease: opened.prepare(`SELECT ${RELEASE_COLUMNS} FROM releases WHERE id = ?`),
    // rowid breaks ties: of two releases created in the same millisecond the later stored is newer.
    listReleases: opened.prepare(
      `SELECT ${RELEASE_COLUMNS} FROM releases WHERE project = ? AND service = ? ORDER BY created_at DESC, rowid DESC`,
    ),
    listReplicas: opened.prepare(`SELECT ${REPLICA_COLUMNS} FROM replicas WHERE project = ? ORDER BY service, replica_index, id`),
    listServiceReplicas: opened.prepare(
      `SELECT ${REPLICA_COLUMNS} FROM replicas WHERE project = ? AND service = ? ORDER BY replica_index, id`,
    ),
    getSetting: opened.prepare("SELECT value FROM settings WHERE key = ?"),
  };
  // Write statements cannot be prepared on a read-only connection.
  const write = readonly
    ? undefined
    : {
        upsertProject: opened.prepare(
          `INSERT INTO projects (name, manifest_path, manifest_hash, applied_at)
           VALUES (@name, @manifestPath, @manifestHash, @appliedAt)
           ON CONFLICT (name) DO UPDATE SET manifest_path = excluded.manifest_path,
             manifest_hash = excluded.manifest_hash, applied_at = excluded.applied_at`,
        ),
        writeService: opened.prepare(
          `INSERT INTO services (project, name, spec, generation, release, updated_at)
           VALUES (@project, @name, @spec, @generation, @release, @updatedAt)
           ON CONFLICT (project, name) DO UPDATE SET spec = excluded.spec, generation = excluded.generation,
             release = excluded.release, updated_at = excluded.updated_at`,
        ),
        deleteService: opened.prepare("DELETE FROM services WHERE project = ? AND name = ?"),
        deleteServiceReplicas: opened.prepare("DELETE FROM replicas WHERE project = ? AND service = ?"),
        insertRelease: opened.prepare(
          `INSERT INTO releases (id, project, service, source_hash, config_hash, git_commit, created_at, details)
           VALUES (@id, @project, @service, @sourceHash, @configHash, @gitCommit, @createdAt, @details)
           ON CONFLICT (id) DO NOTHING`,
        ),
        upsertReplica: opened.prepare(
          `INSERT INTO replicas (id, project, service, release, replica_index, state, pid, pid_start_time, port,
             restarts, started_at, updated_at, details)
           VALUES (@id, @project, @service, @release, @index, @state, @pid, @pidStartTime, @port,
             @restarts, @startedAt, @updatedAt, @details)
           ON CONFLICT (id) DO UPDATE SET project = excluded.project, service = excluded.service,
             release = excluded.release, replica_index = excluded.replica_index, state = excluded.state,
             pid = excluded.pid, pid_start_time = excluded.pid_start_time, port = excluded.port,
             restarts = excluded.restarts, started_at = excluded.started_at, updated_at = excluded.updated_at,
             details = excluded.details`,
        ),
        deleteReplica: opened.prepare("DELETE FROM replicas WHERE id = ?"),
        deleteRelease: opened.prepare("DELETE FROM releases WHERE id = ?"),
        insertEvent: opened.prepare(
          "INSERT INTO events (at, project, kind, actor, subject, details) VALUES (@at, @project, @kind, @actor, @subject, @details)",
        ),
        setSetting: opened.prepare(
          "INSERT INTO settings (key, value) VALUES (?, ?) ON CONFLICT (key) DO UPDATE SET value = excluded.value",
        ),
        putDocument: opened.prepare(
          `INSERT INTO documents (collection, project, id, tag, at, body) VALUES (@collection, @project, @id, @tag, @at, @body)
           ON CONFLICT (collection, project, id) DO UPDATE SET tag = excluded.tag, at = excluded.at, body = excluded.body`,
        ),
        deleteDocument: opened.prepare("DELETE FROM documents WHERE collection = ? AND project = ? AND id = ?"),
      };
  type WriteStatements = NonNullable<typeof write>;
  const eventQueries = new Map<string, Database.Statement>();

  /** Runs a read; driver errors become KEELSON_ERR_STORE. */
  function read<T>(operation: string, fn: (db: Db) => T): T {
    if (db === undefined) throw new KeelsonError("KEELSON_ERR_STORE", `store ${path}: ${operation}: the store is closed`);
    try {
      return fn(db);
    } catch (err) {
      throw isKeelsonError(err) ? err : driverError(path, operation, err);
    }
  }

  /**
   * Runs a write in one IMMEDIATE transaction: taking the write lock up front means a busy
   * database makes us wait (busy_timeout) rather than fail halfway; any throw rolls back.
   */
  function transact<T>(operation: string, fn: (w: WriteStatements) => T): T {
    if (write === undefined) {
      throw new KeelsonError("KEELSON_ERR_STORE", `store ${path} is open read-only: ${operation} needs a read-write store`, {
        details: { operation, readonly: true },
      });
    }
    return read(operation, (open) => open.transaction(() => fn(write)).immediate());
  }

  function serviceRow(columns: ServiceColumns): ServiceRow {
    return { ...columns, release: columns.release ?? undefined };
  }

  function findService(project: string, name: string): ServiceRow | undefined {
    const columns = sql.getService.get(project, name) as ServiceColumns | undefined;
    return columns === undefined ? undefined : serviceRow(columns);
  }

  function writeServiceRow(w: WriteStatements, row: ServiceRow): void {
    w.writeService.run({ ...row, release: row.release ?? null });
  }

  function insertEvent(w: WriteStatements, row: EventRow, at: string): KeelsonEvent {
    const seq = Number(w.insertEvent.run({ ...row, at }).lastInsertRowid);
    return eventRecord(seq, at, row);
  }

  function requireProject(project: string): void {
    if (sql.projectExists.get(project) === undefined) throw projectNotFound(project);
  }

  function changeService(
    operation: string,
    project: string,
    name: string,
    event: EventInput | undefined,
    change: (row: ServiceRow) => { spec: string; release: string | undefined },
  ): void {
    const eventRow = event === undefined ? undefined : prepareEvent(event);
    const at = isoNow(now);
    transact(operation, (w) => {
      const row = findService(project, name);
      if (row === undefined) throw serviceNotFound(project, name);
      const next = nextServiceRow(project, row, { name, ...change(row) }, at);
      if (next !== undefined) writeServiceRow(w, next);
      if (eventRow !== undefined) insertEvent(w, eventRow, at);
    });
  }

  function applyPrepared(w: WriteStatements, change: PreparedDesiredState, at: string): void {
    const project = change.project.name;
    w.upsertProject.run(change.project);
    for (const upsert of change.upserts) {
      const existing = findService(project, upsert.name);
      const next = nextServiceRow(project, existing, upsert, at);
      if (next !== undefined) writeServiceRow(w, next);
    }
    for (const name of change.remove) {
      w.deleteServiceReplicas.run(project, name);
      w.deleteService.run(project, name);
    }
    for (const event of change.events) insertEvent(w, event, at);
  }

  const store: Store = {
    kind: "sqlite",

    async getProject(name: string): Promise<ProjectRecord | undefined> {
      return read("getProject", () => sql.getProject.get(name) as ProjectRecord | undefined);
    },

    async listProjects(): Promise<ProjectRecord[]> {
      return read("listProjects", () => sql.listProjects.all() as ProjectRecord[]);
    },

    async applyDesiredState(change): Promise<void> {
      const prepared = prepareDesiredState(change);
      const at = isoNow(now);
      transact("applyDesiredState", (w) => applyPrepared(w, prepared, at));
    },

    async listServices(project: string): Promise<ServiceRecord[]> {
      return read("listServices", () =>
        (sql.listServices.all(project) as ServiceColumns[]).map((columns) => serviceRecord(serviceRow(columns))),
      );
    },

    async getService(project: string, name: string): Promise<ServiceRecord | undefined> {
      return read("getService", () => {
        const row = findService(project, name);
        return row === undefined ? undefined : serviceRecord(row);
      });
    },

    async setServiceRelease(project, name, release, event): Promise<void> {
      changeService("setServiceRelease", project, name, event, (row) => ({ spec: row.spec, release }));
    },

    async setServiceReplicas(project, name, replicas, event): Promise<void> {
      const count = prepareReplicaCount(replicas);
      changeService("setServiceReplicas", project, name, event, (row) => ({
        spec: specWithReplicas(row.spec, count),
        release: undefined,
      }));
    },

    async putRelease(release: ReleaseRecord): Promise<void> {
      const row = prepareRelease(release);
      transact("putRelease", (w) => w.insertRelease.run({ ...row, gitCommit: row.gitCommit ?? null }));
    },

    async getRelease(id: string): Promise<ReleaseRecord | undefined> {
      return read("getRelease", () => {
        const columns = sql.getRelease.get(id) as ReleaseColumns | undefined;
        return columns === undefined ? undefined : releaseRecord({ ...columns, gitCommit: columns.gitCommit ?? undefined });
      });
    },

    async listReleases(project: string, service: string): Promise<ReleaseRecord[]> {
      return read("listReleases", () =>
        (sql.listReleases.all(project, service) as ReleaseColumns[]).map((columns) =>
          releaseRecord({ ...columns, gitCommit: columns.gitCommit ?? undefined }),
        ),
      );
    },

    async upsertReplica(replica: ReplicaRecord): Promise<void> {
      const row = prepareReplica(replica);
      transact("upsertReplica", (w) => {
        requireProject(row.project);
        w.upsertReplica.run({
          ...row,
          pid: row.pid ?? null,
          pidStartTime: row.pidStartTime ?? null,
          startedAt: row.startedAt ?? null,
        });
      });
    },

    async deleteRelease(id: string): Promise<void> {
      transact("deleteRelease", (w) => w.deleteRelease.run(id));
    },

    async deleteReplica(id: string): Promise<void> {
      transact("deleteReplica", (w) => w.deleteReplica.run(id));
    },

    async listReplicas(project: string, service?: string): Promise<ReplicaRecord[]> {
      return read("listReplicas", () => {
        const rows = (service === undefined ? sql.listReplicas.all(project) : sql.listServiceReplicas.all(project, service)) as ReplicaColumns[];
        return rows.map((columns) =>
          replicaRecord({
            ...columns,
            pid: columns.pid ?? undefined,
            pidStartTime: columns.pidStartTime ?? undefined,
            startedAt: columns.startedAt ?? undefined,
          }),
        );
      });
    },

    async appendEvent(event: EventInput): Promise<KeelsonEvent> {
      const row = prepareEvent(event);
      const at = isoNow(now);
      return transact("appendEvent", (w) => insertEvent(w, row, at));
    },

    async listEvents(query?: EventQuery): Promise<KeelsonEvent[]> {
      const q = prepareEventQuery(query);
      // kind IN () is not SQL; no kinds asked for means no event matches.
      if (q.kinds !== undefined && q.kinds.length === 0) return [];
      const where: string[] = [];
      const params: Array<string | number> = [];
      if (q.project !== undefined) {
        where.push("project = ?");
        params.push(q.project);
      }
      if (q.afterSeq !== undefined) {
        where.push("seq > ?");
        params.push(q.afterSeq);
      }
      if (q.kinds !== undefined) {
        where.push(`kind IN (${q.kinds.map(() => "?").join(", ")})`);
        params.push(...q.kinds);
      }
      if (q.subject !== undefined) {
        where.push("subject = ?");
        params.push(q.subject);
      }
      if (q.subjectPrefix !== undefined) {
        where.push("subject >= ? AND subject < ?");
        params.push(q.subjectPrefix, q.subjectPrefix + AFTER_EVERY_CHARACTER);
      }
      let text = `SELECT ${EVENT_COLUMNS} FROM events`;
      if (where.length > 0) text += ` WHERE ${where.join(" AND ")}`;
      text += ` ORDER BY seq ${q.descending ? "DESC" : "ASC"}`;
      if (q.limit !== undefined) {
        text += " LIMIT ?";
        params.push(q.limit);
      }
      return read("listEvents", (open) => {
        let statement = eventQueries.get(text);
        if (statement === undefined) {
          statement = open.prepare(text);
          eventQueries.set(text, statement);
        }
        return (statement.all(...params) as EventColumns[]).map((row) => eventRecord(row.seq, row.at, row));
      });
    },

    async putDocuments(docs: DocumentRecord[]): Promise<void> {
      const rows = prepareDocuments(docs);
      if (rows.length === 0) return;
      transact("putDocuments", (w) => {
        for (const row of rows) w.putDocument.run(row);
      });
    },

    async listDocuments(query: DocumentQuery): Promise<DocumentRecord[]> {
      const q = prepareDocumentQuery(query);
      if (q.ids !== undefined && q.ids.length === 0) return [];
      const where = ["collection = ?", "project = ?"];
      const params: Array<string | number> = [q.collection, q.project];
      if (q.tag !== undefined) {
        where.push("tag = ?");
        params.push(q.tag);
      }
      if (q.since !== undefined) {
        where.push("at >= ?");
        params.push(q.since);
      }
      if (q.until !== undefined) {
        where.push("at < ?");
        params.push(q.until);
      }
      if (q.ids !== undefined) {
        // json_each takes any number of ids as one parameter (no "too many SQL variables").
        where.push("id IN (SELECT value FROM json_each(?))");
        params.push(JSON.stringify(q.ids));
      }
      const order = q.descending ? "DESC" : "ASC";
      let text = `SELECT ${DOCUMENT_COLUMNS} FROM documents WHERE ${where.join(" AND ")} ORDER BY at ${order}, id ${order}`;
      if (q.limit !== undefined) {
        text += " LIMIT ?";
        params.push(q.limit);
      }
      return read("listDocuments", (open) => {
        let statement = eventQueries.get(text);
        if (statement === undefined) {
          statement = open.prepare(text);
          eventQueries.set(text, statement);
        }
        return (statement.all(...params) as DocumentRow[]).map(documentRecord);
      });
    },

    async deleteDocuments(collection: string, project: string, ids: string[]): Promise<number> {
      const q = prepareDocumentQuery({ collection, project, ids });
      return transact("deleteDocuments", (w) => {
        let removed = 0;
        for (const id of q.ids ?? []) removed += w.deleteDocument.run(q.collection, q.project, id).changes;
        return removed;
      });
    },

    async getSetting(key: string): Promise<string | undefined> {
      return read("getSetting", () => (sql.getSetting.get(key) as { value: string } | undefined)?.value);
    },

    async setSetting(key: string, value: string): Promise<void> {
      transact("setSetting", (w) => w.setSetting.run(key, value));
    },

    async checkIntegrity(): Promise<IntegrityReport> {
      const engine = read("checkIntegrity", (open) => {
        const problems: string[] = [];
        for (const row of open.pragma("integrity_check") as Array<{ integrity_check: string }>) {
          if (row.integrity_check !== "ok") problems.push(`sqlite integrity_check: ${row.integrity_check}`);
        }
        for (const row of open.pragma("foreign_key_check") as Array<{ table: string; rowid: number; parent: string }>) {
          problems.push(`sqlite foreign_key_check: ${row.table} row ${row.rowid} refers to a missing ${row.parent} row`);
        }
        const events = (open.prepare("SELECT COUNT(*) AS n FROM events").get() as { n: number }).n;
        return { name: `sqlite ${path}`, problems, events };
      });
      return checkReferences(store, engine);
    },

    async close(): Promise<void> {
      const open = db;
      db = undefined;
      open?.close();
    },
  };
  return store;
}
